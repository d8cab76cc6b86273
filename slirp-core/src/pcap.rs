//! A classic pcap writer (not pcapng) for captures of the guest link, over any
//! [`embedded_io::Write`].
//!
//! A 24-byte file header, then a 16-byte record header before each frame, all little-endian with
//! microsecond timestamps whatever the platform (so one run gives the same bytes everywhere).
//! Link type Ethernet. Readable by tcpdump, tshark and Wireshark.
//!
//! slirp-std writes it to a file (`--pcap FILE`) with wall-clock timestamps; the simulation in
//! slirp-test-host to a `Vec<u8>` with the virtual clock's (an [`Instant`]). Nothing here
//! allocates: each record is two `write_all` calls.

use embedded_io::Write;

use crate::time::Instant;

/// Magic number of a classic pcap file with microsecond timestamps.
pub const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// `LINKTYPE_ETHERNET` from the tcpdump.org link-type registry.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The customary snapshot length (what tcpdump records by default): frames up to 65 535 bytes
/// are recorded whole.
pub const SNAPLEN: u32 = 65_535;
/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// Writes Ethernet frames into a classic pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Starts a capture on `out` by writing the file header. Frames longer than `snaplen` are
    /// cut (their original length is still recorded).
    pub fn new(mut out: W, snaplen: u32) -> Result<Self, W::Error> {
        let mut header = [0u8; FILE_HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        header[16..20].copy_from_slice(&snaplen.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Records one frame seen at `at` (seconds saturate at `u32::MAX`).
    pub fn write_frame(&mut self, at: Instant, frame: &[u8]) -> Result<(), W::Error> {
        let micros = at.total_micros();
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        self.write_frame_at(secs, (micros % 1_000_000) as u32, frame)
    }

    /// Records one frame with an explicit timestamp: `secs` and `micros` past them.
    pub fn write_frame_at(&mut self, secs: u32, micros: u32, frame: &[u8]) -> Result<(), W::Error> {
        let orig_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(self.snaplen);
        let mut record = [0u8; RECORD_HEADER_LEN];
        record[0..4].copy_from_slice(&secs.to_le_bytes());
        record[4..8].copy_from_slice(&micros.to_le_bytes());
        record[8..12].copy_from_slice(&incl_len.to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(&frame[..incl_len as usize])
    }

    /// Pushes buffered records to the underlying writer.
    pub fn flush(&mut self) -> Result<(), W::Error> {
        self.out.flush()
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
        let mut buf = [0u8; 128];
        let mut pcap = PcapWriter::new(&mut buf[..], SNAPLEN).unwrap();
        pcap.write_frame(Instant::from_micros(3_000_042), &[0xaa; 20]).unwrap();
        let left = pcap.into_inner().len();
        let bytes = &buf[..128 - left];
        assert_eq!(bytes.len(), 24 + 16 + 20);
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(&bytes[16..20], &SNAPLEN.to_le_bytes());
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        assert_eq!(&bytes[24..28], &3u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &42u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &20u32.to_le_bytes());
        assert_eq!(&bytes[36..40], &20u32.to_le_bytes());
        assert_eq!(&bytes[40..], &[0xaa; 20]);
    }

    #[test]
    fn long_frames_are_cut_to_the_snaplen_and_keep_their_length() {
        let mut buf = [0u8; 64];
        let mut pcap = PcapWriter::new(&mut buf[..], 4).unwrap();
        pcap.write_frame_at(7, 9, &[1, 2, 3, 4, 5, 6]).unwrap();
        let left = pcap.into_inner().len();
        let b = &buf[..64 - left];
        assert_eq!(b.len(), 24 + 16 + 4);
        assert_eq!(u32::from_le_bytes([b[32], b[33], b[34], b[35]]), 4, "caplen cut to snaplen");
        assert_eq!(u32::from_le_bytes([b[36], b[37], b[38], b[39]]), 6, "original length kept");
        assert_eq!(&b[40..], &[1, 2, 3, 4]);
    }

    #[test]
    fn a_full_writer_is_an_error() {
        let mut buf = [0u8; 30];
        let mut pcap = PcapWriter::new(&mut buf[..], SNAPLEN).unwrap();
        assert!(pcap.write_frame(Instant::ZERO, &[0; 20]).is_err());
    }
}
