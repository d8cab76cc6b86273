//! Sharing one engine between an interrupt handler and a main loop (feature `critical-section`).
//!
//! On bare metal the NIC's receive interrupt and the main loop both want the engine. Wrapping it
//! in a [`SharedSlirp`] makes every access go through a critical section, with no allocation and
//! no unsafe code.

use crate::iface::Slirp;
use core::cell::RefCell;
use critical_section::Mutex;

/// An engine behind a `critical_section::Mutex`; usable from a `static`.
#[derive(Debug)]
pub struct SharedSlirp<'a> {
    inner: Mutex<RefCell<Option<Slirp<'a>>>>,
}

impl<'a> SharedSlirp<'a> {
    /// An empty cell, for a `static` initialised later with [`put`](Self::put).
    pub const fn empty() -> Self {
        SharedSlirp { inner: Mutex::new(RefCell::new(None)) }
    }

    /// Stores (or replaces) the engine.
    pub fn put(&self, slirp: Slirp<'a>) {
        critical_section::with(|cs| *self.inner.borrow_ref_mut(cs) = Some(slirp));
    }

    /// Runs `f` on the engine inside a critical section; `None` if no engine was stored yet or
    /// the engine is already borrowed by an outer `with` on this core (re-entrancy).
    pub fn with<R>(&self, f: impl FnOnce(&mut Slirp<'a>) -> R) -> Option<R> {
        critical_section::with(|cs| {
            let cell = self.inner.borrow(cs);
            let mut guard = cell.try_borrow_mut().ok()?;
            guard.as_mut().map(f)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Storage};

    #[test]
    fn shared_access_and_reentrancy() {
        let shared = SharedSlirp::empty();
        assert_eq!(shared.with(|_| ()), None);
        shared.put(Slirp::new(Config::default(), Storage::with_capacity(4096, 4096, 1, 2048)).unwrap());
        assert_eq!(shared.with(|s| s.config().mtu), Some(1500));
        assert_eq!(shared.with(|_| shared.with(|_| ())), Some(None));
    }
}
