//! A classic libpcap writer (LINKTYPE_ETHERNET), so a run can be opened in Wireshark or tcpdump.
//!
//! The format is written little-endian with microsecond timestamps whatever the platform, so the
//! same simulation produces the same bytes everywhere.

use std::io::{self, Write};

use slirp_core::Instant;

/// Magic number of a classic pcap file with microsecond timestamps.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// `LINKTYPE_ETHERNET` from the tcpdump.org link-type registry.
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame recorded whole; longer frames are cut (and their original length kept).
pub const SNAPLEN: u32 = 65_535;

/// Writes Ethernet frames into a classic pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a capture on `out` by writing the file header.
    pub fn new(mut out: W) -> io::Result<PcapWriter<W>> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out })
    }

    /// Records one frame seen at `at` (the virtual clock's reading).
    pub fn write_frame(&mut self, at: Instant, frame: &[u8]) -> io::Result<()> {
        let micros = at.total_micros();
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let sub = (micros % 1_000_000) as u32;
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(SNAPLEN);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&secs.to_le_bytes());
        record[4..8].copy_from_slice(&sub.to_le_bytes());
        record[8..12].copy_from_slice(&incl_len.to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(&frame[..incl_len as usize])
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Ends the capture and returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut pcap = PcapWriter::new(Vec::new()).unwrap();
        pcap.write_frame(Instant::from_micros(3_000_042), &[0xaa; 20]).unwrap();
        let bytes = pcap.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + 20);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        assert_eq!(&bytes[24..28], &3u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &42u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &20u32.to_le_bytes());
        assert_eq!(&bytes[36..40], &20u32.to_le_bytes());
        assert_eq!(&bytes[40..], &[0xaa; 20]);
    }
}
