//! Captures of the guest link (`--pcap FILE`): the core's [`slirp_core::pcap::PcapWriter`] over a
//! [`std::io::Write`], stamped with wall-clock time.
//!
//! The format (classic pcap, not pcapng, readable by tcpdump, tshark and Wireshark) lives in the
//! core; this is its std side: files, `io::Error`, and timestamps in wall-clock microseconds, as
//! those tools expect.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use slirp_core::pcap;

/// A [`std::io::Write`] seen as an [`embedded_io::Write`] (errors stay `io::Error`).
#[derive(Debug)]
struct Std<W>(W);

impl<W: Write> embedded_io::ErrorType for Std<W> {
    type Error = io::Error;
}

impl<W: Write> embedded_io::Write for Std<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes Ethernet frames to a pcap stream.
pub struct PcapWriter<W: Write> {
    inner: pcap::PcapWriter<Std<W>>,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(path: &Path, snaplen: u32) -> io::Result<Self> {
        let file = File::create(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        PcapWriter::new(BufWriter::new(file), snaplen)
    }
}

impl<W: Write> PcapWriter<W> {
    /// Wraps `out` and writes the file header. Frames longer than `snaplen` are cut (their
    /// original length is still recorded).
    pub fn new(out: W, snaplen: u32) -> io::Result<Self> {
        Ok(PcapWriter { inner: pcap::PcapWriter::new(Std(out), snaplen)? })
    }

    /// Appends one frame stamped with the current wall-clock time.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.write_frame_at(t.as_secs() as u32, t.subsec_micros(), frame)
    }

    /// Appends one frame with an explicit timestamp.
    pub fn write_frame_at(&mut self, secs: u32, micros: u32, frame: &[u8]) -> io::Result<()> {
        self.inner.write_frame_at(secs, micros, frame)
    }

    /// Pushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.inner.into_inner().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new(), 4).unwrap();
        w.write_frame_at(7, 9, &[1, 2, 3, 4, 5, 6]).unwrap();
        let b = w.into_inner();
        assert_eq!(b.len(), 24 + 16 + 4);
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 9);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 4, "caplen cut to snaplen");
        assert_eq!(u32::from_le_bytes(b[36..40].try_into().unwrap()), 6, "original length kept");
        assert_eq!(&b[40..], &[1, 2, 3, 4]);
    }
}
