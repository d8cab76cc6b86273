//! A minimal pcap writer for captures of the guest link (`--pcap FILE`).
//!
//! The classic pcap format (not pcapng): a 24-byte file header, then a 16-byte record header
//! before each frame. Readable by tcpdump, tshark and Wireshark. Timestamps are wall-clock
//! microseconds, as those tools expect.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// `LINKTYPE_ETHERNET`.
const LINKTYPE_ETHERNET: u32 = 1;
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;

/// Writes Ethernet frames to a pcap stream.
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
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
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Appends one frame stamped with the current wall-clock time.
    pub fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.write_frame_at(t.as_secs() as u32, t.subsec_micros(), frame)
    }

    /// Appends one frame with an explicit timestamp.
    pub fn write_frame_at(&mut self, secs: u32, micros: u32, frame: &[u8]) -> io::Result<()> {
        let caplen = frame.len().min(self.snaplen as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&micros.to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..caplen])
    }

    /// Pushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Gives back the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
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
