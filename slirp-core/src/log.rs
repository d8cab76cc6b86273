//! One logging shim over `log`, `defmt`, or nothing.
//!
//! `net_trace!`, `net_debug!` and `net_warn!` take `format_args!`-style arguments. Without a
//! logging feature they still type-check their arguments (so a log line cannot rot) and compile
//! to nothing. Arguments must implement both `Display` and `defmt::Format` to build with either
//! backend, so log plain numbers and the wire types (which implement both).

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the `log` and `defmt` features of slirp-core are mutually exclusive");

#[cfg(feature = "log")]
macro_rules! net_log {
    (trace, $($arg:expr),* $(,)?) => { log::trace!($($arg),*) };
    (debug, $($arg:expr),* $(,)?) => { log::debug!($($arg),*) };
    (warn, $($arg:expr),* $(,)?) => { log::warn!($($arg),*) };
}

#[cfg(feature = "defmt")]
macro_rules! net_log {
    (trace, $($arg:expr),* $(,)?) => { defmt::trace!($($arg),*) };
    (debug, $($arg:expr),* $(,)?) => { defmt::debug!($($arg),*) };
    (warn, $($arg:expr),* $(,)?) => { defmt::warn!($($arg),*) };
}

#[cfg(not(any(feature = "log", feature = "defmt")))]
macro_rules! net_log {
    ($level:ident, $($arg:expr),* $(,)?) => {{
        let _ = ($(&$arg),*);
    }};
}

macro_rules! net_trace {
    ($($arg:expr),* $(,)?) => { net_log!(trace, $($arg),*) };
}
#[allow(unused_macros)]
macro_rules! net_debug {
    ($($arg:expr),* $(,)?) => { net_log!(debug, $($arg),*) };
}
#[allow(unused_macros)]
macro_rules! net_warn {
    ($($arg:expr),* $(,)?) => { net_log!(warn, $($arg),*) };
}
