//! Writing the core's trace events ([`slirp_core::trace`]) for `slirp --trace FILE`: one line
//! per event, as JSON (one object per line: `t` seconds since start, `event`, its fields) or as
//! text (`t event key=value ...`).

use slirp_core::trace::{FrameDirection, TraceEvent};
use std::fmt::Write as _;
use std::io::{self, Write};

/// How trace lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// JSON lines.
    Json,
    /// Plain text.
    Text,
}

/// One event as a line (with its newline), `t` seconds after start.
pub fn format_event(ev: &TraceEvent, t: f64, format: TraceFormat) -> String {
    let (name, fields): (&str, Vec<(&str, String)>) = match *ev {
        TraceEvent::Frame { direction, len, ethertype } => (
            match direction {
                FrameDirection::FromGuest => "frame_in",
                FrameDirection::ToGuest => "frame_out",
            },
            vec![("len", len.to_string()), ("ethertype", format!("0x{ethertype:04x}"))],
        ),
        TraceEvent::Dropped(reason) => ("drop", vec![("reason", reason.to_string())]),
        TraceEvent::TcpOpened { guest, remote, forwarded } => (
            "tcp_opened",
            vec![("guest", guest.to_string()), ("remote", remote.to_string()), ("forwarded", forwarded.to_string())],
        ),
        TraceEvent::TcpClosed { guest, remote, reason, forwarded } => (
            "tcp_closed",
            vec![
                ("guest", guest.to_string()),
                ("remote", remote.to_string()),
                ("reason", reason.name().to_string()),
                ("forwarded", forwarded.to_string()),
            ],
        ),
        TraceEvent::UdpOpened { guest, remote } => {
            ("udp_opened", vec![("guest", guest.to_string()), ("remote", remote.to_string())])
        }
        TraceEvent::UdpClosed { guest, reason } => {
            ("udp_closed", vec![("guest", guest.to_string()), ("reason", reason.name().to_string())])
        }
        TraceEvent::Lease { mac, addr } => ("lease", vec![("mac", mac.to_string()), ("addr", addr.to_string())]),
    };
    let mut line = String::new();
    match format {
        TraceFormat::Json => {
            let _ = write!(line, "{{\"t\":{t:.6},\"event\":\"{name}\"");
            for (k, v) in &fields {
                // Booleans stay bare; everything else is a string (addresses, names: no quotes
                // or backslashes can occur in them).
                if v == "true" || v == "false" || *k == "len" {
                    let _ = write!(line, ",\"{k}\":{v}");
                } else {
                    let _ = write!(line, ",\"{k}\":\"{v}\"");
                }
            }
            line.push_str("}\n");
        }
        TraceFormat::Text => {
            let _ = write!(line, "{t:.6} {name}");
            for (k, v) in &fields {
                let _ = write!(line, " {k}={v}");
            }
            line.push('\n');
        }
    }
    line
}

/// A trace file being written.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: io::BufWriter<W>,
    format: TraceFormat,
}

impl<W: Write> TraceWriter<W> {
    /// Writes to `out` in `format`.
    pub fn new(out: W, format: TraceFormat) -> Self {
        TraceWriter { out: io::BufWriter::new(out), format }
    }

    /// Writes one event.
    pub fn write(&mut self, ev: &TraceEvent, t: f64) -> io::Result<()> {
        self.out.write_all(format_event(ev, t, self.format).as_bytes())
    }

    /// Flushes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slirp_core::DropReason;

    #[test]
    fn events_are_json_lines_or_text() {
        let ev = TraceEvent::TcpOpened {
            guest: "10.0.2.15:41000".parse().unwrap(),
            remote: "[2001:db8::1]:80".parse().unwrap(),
            forwarded: true,
        };
        let j = format_event(&ev, 1.5, TraceFormat::Json);
        assert_eq!(
            j,
            "{\"t\":1.500000,\"event\":\"tcp_opened\",\"guest\":\"10.0.2.15:41000\",\"remote\":\"[2001:db8::1]:80\",\"forwarded\":true}\n"
        );
        let t = format_event(&TraceEvent::Dropped(DropReason::EthernetTruncated), 0.25, TraceFormat::Text);
        assert_eq!(t, "0.250000 drop reason=eth_truncated\n");
        let f = format_event(
            &TraceEvent::Frame { direction: FrameDirection::ToGuest, len: 60, ethertype: 0x0806 },
            2.0,
            TraceFormat::Json,
        );
        assert_eq!(f, "{\"t\":2.000000,\"event\":\"frame_out\",\"len\":60,\"ethertype\":\"0x0806\"}\n");
    }
}
