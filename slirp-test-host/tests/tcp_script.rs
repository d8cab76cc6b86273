//! The TCP glue with a scripted host ([`ScriptHost`]): when the SYN-ACK goes out, how host
//! refusals and unreachables reach the guest, data both ways, half-close, resets, forwards, full
//! tables. Hand-built guest frames in, emitted frames checked, as in slirp-core's own tests.

// The engine-level fixtures have one home, slirp-core's tests (which cannot use this crate).
#[path = "../../slirp-core/tests/common/mod.rs"]
mod common;

use common::*;
use core::net::{Ipv4Addr, SocketAddrV4};
use slirp_core::wire::{TcpControl, TcpPacket, TcpRepr};
use slirp_core::{Config, DropReason, HostError, Instant, Slirp, SocketId, Storage};
use slirp_test_host::ScriptHost;

struct T {
    slirp: Slirp<'static>,
    host: ScriptHost,
    now: Instant,
}

const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

impl T {
    fn new(config: Config, storage: Storage<'static>) -> T {
        let host =
            ScriptHost { dns: Some(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 53), 53)), ..ScriptHost::default() };
        let mut t = T { slirp: Slirp::new(config, storage).unwrap(), host, now: Instant::from_millis(1) };
        // Teach the engine the guest's MAC.
        t.frames(&arp_request(GUEST_MAC, GUEST_IP, GATEWAY));
        t
    }

    fn frames(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        self.slirp.handle_guest_frame(self.now, frame, &mut self.host);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70000];
        while let Some(n) = self.slirp.poll_transmit_into(self.now, &mut self.host, &mut buf) {
            check_frame(&buf[..n], usize::from(self.slirp.config().mtu)).unwrap();
            out.push(buf[..n].to_vec());
        }
        out
    }

    fn tcp_out(&mut self) -> Vec<(Ipv4Addr, TcpRepr<'static>, Vec<u8>)> {
        self.drain().iter().filter_map(|f| seg_of(f)).collect()
    }

    fn send(&mut self, dst: Ipv4Addr, seg: &TcpRepr<'_>) -> Vec<(Ipv4Addr, TcpRepr<'static>, Vec<u8>)> {
        self.frames(&tcp_frame(GUEST_IP, dst, seg)).iter().filter_map(|f| seg_of(f)).collect()
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now + core::time::Duration::from_millis(ms);
        self.slirp.handle_timeout(self.now, &mut self.host);
    }
}

/// (source address, segment without payload reference, payload) of a TCP frame.
fn seg_of(frame: &[u8]) -> Option<(Ipv4Addr, TcpRepr<'static>, Vec<u8>)> {
    let o = parse_ip(frame);
    if o.ip.protocol != slirp_core::wire::IpProtocol::Tcp {
        return None;
    }
    let p = TcpPacket::new_checked(&o.payload[..]).unwrap();
    let r = TcpRepr::parse(&p, o.ip.src_addr, o.ip.dst_addr, true).unwrap();
    let payload = r.payload.to_vec();
    Some((o.ip.src_addr, TcpRepr { payload: &[], ..r }, payload))
}

fn syn(port: u16) -> TcpRepr<'static> {
    TcpRepr { max_seg_size: Some(1460), ..tcp_seg(port, 80, TcpControl::Syn, 1000, None) }
}

fn ack(port: u16, seq: u32, ack: u32, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        payload,
        control: if payload.is_empty() { TcpControl::None } else { TcpControl::Psh },
        ..tcp_seg(port, 80, TcpControl::None, seq, Some(ack))
    }
}

/// Opens a connection through the NAT; returns our ISS.
fn establish(t: &mut T, port: u16) -> u32 {
    t.host.connect_now = Some(Ok(()));
    let out = t.send(REMOTE, &syn(port));
    assert!(out.is_empty(), "no SYN-ACK before the host connect completes: {out:?}");
    let id = t.host.last_connect.unwrap();
    t.slirp.handle_host_writable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    assert_eq!(out.len(), 1);
    let (src, sa, _) = &out[0];
    assert_eq!(*src, REMOTE);
    assert_eq!(sa.control, TcpControl::Syn);
    assert_eq!(sa.ack_number.map(|a| a.0), Some(1001));
    assert_eq!(sa.max_seg_size, Some(1460));
    let iss = sa.seq_number.0;
    assert!(t.send(REMOTE, &ack(port, 1001, iss.wrapping_add(1), b"")).is_empty());
    iss
}

#[test]
fn syn_ack_waits_for_the_host_connect_and_data_flows_both_ways() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    let iss = establish(&mut t, 40000);
    let (id, s) = t.host.only();
    assert_eq!(s.dst, Some(SocketAddrV4::new(REMOTE, 80)));
    // Guest → host, straight through.
    let out = t.send(REMOTE, &ack(40000, 1001, iss.wrapping_add(1), b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(t.host.socks[&id.0].sent, b"GET / HTTP/1.0\r\n\r\n");
    t.advance(5);
    let acks: Vec<_> = out.into_iter().chain(t.tcp_out()).collect();
    assert!(acks.iter().any(|(_, s, _)| s.ack_number.map(|a| a.0) == Some(1001 + 18)), "data acknowledged");
    // Host → guest.
    t.host.socks.get_mut(&id.0).unwrap().inbox.extend(b"HTTP/1.0 200 OK\r\n\r\nhello".iter());
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    let data: Vec<u8> = out.iter().flat_map(|(_, _, p)| p.clone()).collect();
    assert_eq!(data, b"HTTP/1.0 200 OK\r\n\r\nhello");
    // Host EOF → FIN to the guest.
    t.host.socks.get_mut(&id.0).unwrap().eof = true;
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    assert!(out.iter().any(|(_, s, _)| s.control == TcpControl::Fin), "{out:?}");
    assert_eq!(t.slirp.tcp_connection_count(), 1);
    assert_eq!(t.slirp.tcp_connections().next().map(|c| c.guest), Some(SocketAddrV4::new(GUEST_IP, 40000).into()));
}

#[test]
fn refused_connect_is_rst_ack_and_unreachable_is_icmp() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    // Refused at once.
    t.host.connect_now = Some(Err(HostError::Refused));
    let out = t.send(REMOTE, &syn(40001));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.control, TcpControl::Rst);
    assert_eq!(out[0].1.ack_number.map(|a| a.0), Some(1001));
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpRefused), 1);
    // Refused later (SO_ERROR after the socket became writable).
    t.host.connect_now = Some(Err(HostError::WouldBlock));
    t.host.connect_now = None;
    assert!(t.send(REMOTE, &syn(40002)).is_empty());
    let id = t.host.socks.iter().find(|(_, s)| s.dst.is_some() && !s.closed).map(|(k, _)| SocketId(*k)).unwrap();
    t.host.socks.get_mut(&id.0).unwrap().connect = Some(Err(HostError::Refused));
    t.slirp.handle_host_writable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.control, TcpControl::Rst);
    // Network unreachable at once: ICMP net unreachable quoting the SYN's ports and sequence.
    t.host.connect_now = Some(Err(HostError::NetUnreachable));
    let frames = t.frames(&tcp_frame(GUEST_IP, REMOTE, &syn(40003)));
    assert_eq!(frames.len(), 1);
    let o = parse_ip(&frames[0]);
    let (ty, code, _, quote) = parse_icmp(&o.payload);
    assert_eq!((ty, code), (3, 0));
    assert_eq!(&quote[20..22], &40003u16.to_be_bytes());
    assert_eq!(&quote[24..28], &1000u32.to_be_bytes());
    // Every flow is gone once its last segment left.
    t.advance(10);
    assert_eq!(t.slirp.tcp_connection_count(), 0);
}

#[test]
fn guest_fin_shuts_the_host_write_side_after_the_data_and_reset_aborts() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    let iss = establish(&mut t, 40004);
    let (id, _) = t.host.only();
    // The host takes only 4 bytes now: the rest waits in our receive buffer.
    t.host.send_limit = Some(4);
    let fin = TcpRepr { control: TcpControl::Fin, payload: b"abcdefgh", ..ack(40004, 1001, iss.wrapping_add(1), b"") };
    t.send(REMOTE, &fin);
    assert_eq!(t.host.socks[&id.0].sent, b"abcd");
    assert!(!t.host.socks[&id.0].shut, "not before the data went through");
    t.host.send_limit = None;
    t.slirp.handle_host_writable(t.now, id, &mut t.host);
    assert_eq!(t.host.socks[&id.0].sent, b"abcdefgh");
    assert!(t.host.socks[&id.0].shut, "FIN → SHUT_WR once everything reached the host");
    // The host resets: the guest gets a RST, the host socket is aborted.
    t.host.socks.get_mut(&id.0).unwrap().reset = true;
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    assert!(out.iter().any(|(_, s, _)| s.control == TcpControl::Rst), "{out:?}");
    assert!(t.host.socks[&id.0].aborted);
    assert_eq!(t.slirp.tcp_connection_count(), 0);
}

#[test]
fn forward_opens_toward_the_guest_and_guest_refusal_closes_the_client() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    let rule = t
        .slirp
        .add_tcp_forward(&mut t.host, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080), SocketAddrV4::new(GUEST_IP, 80))
        .unwrap();
    assert_eq!(t.slirp.tcp_forwards().count(), 1);
    let listener = t.host.listener.unwrap();
    t.host.pending_accepts.push_back(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50000));
    t.slirp.handle_host_readable(t.now, listener, &mut t.host);
    let out = t.tcp_out();
    assert_eq!(out.len(), 1);
    let (src, s, _) = &out[0];
    assert_eq!((*src, s.src_port, s.dst_port, s.control), (GATEWAY, 50000, 80, TcpControl::Syn));
    // The guest has no listener: RST|ACK → the host client's connection is aborted.
    let rst = TcpRepr {
        src_port: 80,
        dst_port: 50000,
        ..tcp_seg(80, 50000, TcpControl::Rst, 0, Some(s.seq_number.0.wrapping_add(1)))
    };
    t.frames(&tcp_frame(GUEST_IP, GATEWAY, &rst));
    let accepted = t.host.socks.values().find(|s| s.accept_from.is_some()).unwrap();
    assert!(accepted.aborted);
    t.slirp.remove_tcp_forward(&mut t.host, rule).unwrap();
    assert_eq!(t.slirp.tcp_forwards().count(), 0);
}

#[test]
fn full_table_refuses_with_rst() {
    // A table full of established connections refuses a new one.
    let storage = Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535).with_tcp_capacity(1, 4096, 4096);
    let mut t = T::new(Config::default(), storage);
    establish(&mut t, 40010);
    let out = t.send(REMOTE, &syn(40011));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.control, TcpControl::Rst);
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpTableFull), 1);
}

#[test]
fn a_half_open_connection_in_a_full_table_gives_way_to_a_new_one() {
    let storage = Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535).with_tcp_capacity(1, 4096, 4096);
    let mut t = T::new(Config::default(), storage);
    t.host.connect_now = None;
    assert!(t.send(REMOTE, &syn(40012)).is_empty(), "first connection pending");
    let first = t.host.last_connect.unwrap();
    assert!(t.send(REMOTE, &syn(40013)).is_empty(), "the second one is taken, no RST");
    assert!(t.host.socks[&first.0].aborted || !t.host.socks.contains_key(&first.0), "the first one's connect ended");
    assert_eq!(t.slirp.tcp_connections().map(|c| c.guest.port()).collect::<Vec<_>>(), [40013]);
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpHalfOpenEvicted), 1);
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpTableFull), 0);
}

#[test]
fn black_hole_connect_times_out_with_rst() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    t.host.connect_now = None;
    assert!(t.send(REMOTE, &syn(40020)).is_empty());
    // Retransmitted SYNs while connecting are absorbed.
    assert!(t.send(REMOTE, &syn(40020)).is_empty());
    let at = t.slirp.poll_at().expect("connect timer");
    assert!(at <= Instant::from_secs(76), "{at:?}");
    t.now = at;
    t.slirp.handle_timeout(t.now, &mut t.host);
    let out = t.tcp_out();
    assert!(out.iter().any(|(_, s, _)| s.control == TcpControl::Rst), "{out:?}");
    assert!(t.host.socks.values().all(|s| s.closed));
    assert_eq!(t.slirp.tcp_connection_count(), 0);
}

#[test]
fn interactive_flow_goes_before_a_bulk_backlog() {
    // A guest-bound queue of a few frames: the bulk flow fills it and waits in line.
    let mut t = T::new(Config::default(), Storage::with_capacity(8 * 1024, 64 * 1024, 2, 65535));
    establish(&mut t, 41000);
    let bulk = t.host.last_connect.unwrap();
    establish(&mut t, 41001);
    let chat = t.host.last_connect.unwrap();
    // Both hosts have data at the same instant: 200 KiB for one, a keystroke for the other.
    t.host.socks.get_mut(&bulk.0).unwrap().inbox.extend(std::iter::repeat_n(7u8, 200 * 1024));
    t.host.socks.get_mut(&chat.0).unwrap().inbox.extend(b"k".iter());
    t.slirp.handle_host_readable(t.now, bulk, &mut t.host);
    t.slirp.handle_host_readable(t.now, chat, &mut t.host);
    // Pull frames one at a time, as a guest with a tiny RX ring would.
    let mut buf = vec![0u8; 70000];
    let mut order = Vec::new();
    for _ in 0..12 {
        let Some(n) = t.slirp.poll_transmit_into(t.now, &mut t.host, &mut buf) else { break };
        if let Some((_, s, p)) = seg_of(&buf[..n]) {
            if !p.is_empty() {
                order.push(s.dst_port);
            }
        }
    }
    let chat_at = order.iter().position(|&p| p == 41001).expect("the keystroke went out");
    // Only what was already in the guest-bound queue goes first (without the interactive line
    // the keystroke would wait for the bulk flow's whole initial window of 10 segments).
    assert!(chat_at <= 5, "keystroke waited behind {chat_at} bulk segments: {order:?}");
}

#[test]
fn host_urgent_byte_reaches_the_guest_with_urg() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    establish(&mut t, 42000);
    let id = t.host.last_connect.unwrap();
    let s = t.host.socks.get_mut(&id.0).unwrap();
    s.inbox.extend(b"abc!def".iter());
    s.urgent_at = Some(3); // "!" was sent with MSG_OOB
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    let data: Vec<u8> = out.iter().flat_map(|(_, _, p)| p.clone()).collect();
    assert_eq!(data, b"abc!def");
    // Some segment carries URG pointing just past the urgent byte (RFC 9293 3.8.5: the pointer
    // is the sequence number of the byte after the urgent data).
    let (first_seq, _) = (out[0].1.seq_number.0, 0);
    let urg: Vec<u32> = out
        .iter()
        .filter_map(|(_, s, _)| s.urgent_at.map(|u| s.seq_number.0.wrapping_add(u32::from(u)).wrapping_sub(first_seq)))
        .collect();
    assert!(!urg.is_empty(), "URG set: {out:?}");
    assert!(urg.iter().all(|&end| end == 4), "urgent data ends after '!': {urg:?}");
}

/// Drains the guest-bound queue as a link with offloads would: each frame with what it asks of
/// the link; the checksum finished in the copy, as the guest's kernel or a virtio device would.
fn drain_offloaded(t: &mut T) -> Vec<(slirp_core::TxOffload, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(frame) = t.slirp.poll_transmit(t.now, &mut t.host) {
        let off = frame.offload();
        let raw = frame.to_vec();
        let mut done = raw.clone();
        off.finish_checksum(&mut done);
        frame.consume();
        out.push((off, raw, done));
    }
    out
}

#[test]
fn offloads_send_super_frames_with_partial_checksums_and_take_them_from_the_guest() {
    use slirp_core::{GuestOffload, RxChecksum};
    let mut t = T::new(Config::default(), Storage::with_capacity(1024 * 1024, 64 * 1024, 2, 65535));
    t.slirp.set_guest_offload(GuestOffload { checksum: true, segmentation: true });
    let iss = establish(&mut t, 40000);
    let (id, _) = t.host.only();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    t.host.socks.get_mut(&id.0).unwrap().inbox.extend(body.iter());
    t.slirp.handle_host_readable(t.now, id, &mut t.host);

    let mut got = Vec::new();
    let mut supers = 0;
    for _ in 0..50 {
        let frames = drain_offloaded(&mut t);
        if frames.is_empty() {
            break;
        }
        for (off, raw, done) in &frames {
            let o = parse_ip(done);
            let p = TcpPacket::new_checked(&o.payload[..]).unwrap();
            let seg = TcpRepr::parse(&p, o.ip.src_addr, o.ip.dst_addr, true).expect("finished checksum verifies");
            if seg.payload.is_empty() {
                continue;
            }
            // Data leaves the checksum to the link: the frame as queued does not verify.
            assert_eq!(off.checksum.map(|c| (c.start, c.offset)), Some((34, 16)));
            let r = parse_ip(raw);
            let rp = TcpPacket::new_checked(&r.payload[..]).unwrap();
            assert!(TcpRepr::parse(&rp, r.ip.src_addr, r.ip.dst_addr, true).is_err());
            if seg.payload.len() > 1460 {
                supers += 1;
                assert!(raw.len() > 1514);
                assert_eq!(off.gso_size, Some(1460), "split at the guest's MSS");
                assert_eq!(off.header_len, 54);
                let h = off.virtio_net_hdr();
                assert_eq!((h.flags, h.gso_type, h.gso_size, h.csum_start, h.csum_offset), (1, 1, 1460, 34, 16));
            } else {
                assert_eq!(off.gso_size, None);
            }
            assert_eq!(seg.seq_number.0.wrapping_sub(iss).wrapping_sub(1) as usize, got.len(), "in order, no gap");
            got.extend_from_slice(seg.payload);
        }
        // The guest acknowledges everything it got, with the whole window open again.
        let ackno = iss.wrapping_add(1).wrapping_add(got.len() as u32);
        t.slirp.handle_guest_frame(t.now, &tcp_frame(GUEST_IP, REMOTE, &ack(40000, 1001, ackno, b"")), &mut t.host);
        t.advance(1);
    }
    assert_eq!(got.len(), body.len());
    assert!(got == body, "stream intact");
    assert!(supers >= 3, "bulk data goes out as super-frames ({supers})");

    // Guest → host: a 20 000-byte super-frame whose checksum is left partial (here: garbage).
    let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let acked = iss.wrapping_add(1).wrapping_add(body.len() as u32);
    let seg = TcpRepr { payload: &data, ..ack(40000, 1001, acked, b"") };
    let mut frame = tcp_frame(GUEST_IP, REMOTE, &seg);
    frame[14 + 20 + 16] ^= 0x5a;
    // Without the link's word it is a corrupted segment.
    t.slirp.handle_guest_frame(t.now, &frame, &mut t.host);
    assert!(t.host.socks[&id.0].sent.is_empty());
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpMalformed), 1);
    t.slirp.handle_guest_frame_offloaded(t.now, &frame, RxChecksum::Trusted, &mut t.host);
    let sent = &t.host.socks[&id.0].sent;
    assert!(*sent == data, "{} bytes reached the host; {:?}", sent.len(), t.slirp.stats());
}

#[test]
fn checksum_offload_alone_keeps_segments_at_the_mss_and_poll_transmit_into_finishes_them() {
    use slirp_core::GuestOffload;
    let mut t = T::new(Config::default(), Storage::with_capacity(1024 * 1024, 64 * 1024, 2, 65535));
    // Segmentation without checksum offload is not a combination links offer: it is ignored.
    t.slirp.set_guest_offload(GuestOffload { checksum: false, segmentation: true });
    assert_eq!(t.slirp.guest_offload(), GuestOffload::default());
    t.slirp.set_guest_offload(GuestOffload { checksum: true, segmentation: false });
    let iss = establish(&mut t, 40001);
    let (id, _) = t.host.only();
    t.host.socks.get_mut(&id.0).unwrap().inbox.extend([7u8; 5000].iter());
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    // `drain` uses poll_transmit_into, which finishes checksums; `seg_of` verifies them.
    let out = t.tcp_out();
    let sizes: Vec<usize> = out.iter().map(|(_, _, p)| p.len()).collect();
    assert_eq!(sizes, [1460, 1460, 1460, 620]);
    assert_eq!(out[0].1.seq_number.0, iss.wrapping_add(1));
    // A one-byte segment is padded to 60 bytes; the checksum must not cover the padding.
    t.host.socks.get_mut(&id.0).unwrap().inbox.extend([9u8; 1].iter());
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    assert_eq!(out.iter().map(|(_, _, p)| p.len()).collect::<Vec<_>>(), [1]);
}

#[test]
fn full_table_reclaims_the_oldest_time_wait_connection() {
    let storage = Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535).with_tcp_capacity(2, 16384, 16384);
    let mut t = T::new(Config::default(), storage);
    // Connection A: the host closes first, so A ends in TIME_WAIT on our side.
    let iss = establish(&mut t, 41000);
    let a = t.host.last_connect.unwrap();
    t.host.socks.get_mut(&a.0).unwrap().eof = true;
    t.slirp.handle_host_readable(t.now, a, &mut t.host);
    let out = t.tcp_out();
    assert!(out.iter().any(|(_, s, _)| s.control == TcpControl::Fin), "{out:?}");
    let fin = TcpRepr { control: TcpControl::Fin, ..ack(41000, 1001, iss.wrapping_add(2), b"") };
    let out = t.send(REMOTE, &fin);
    assert!(out.iter().any(|(_, s, _)| s.ack_number.map(|n| n.0) == Some(1002)), "guest FIN acknowledged: {out:?}");
    let info = |t: &T, port: u16| t.slirp.tcp_connections().find(|c| c.guest.port() == port).map(|c| c.state);
    assert_eq!(info(&t, 41000), Some(slirp_core::tcp::TcpState::TimeWait));
    // B fills the table.
    establish(&mut t, 41001);
    assert_eq!(t.slirp.tcp_connection_count(), 2);
    // C finds it full: A gives way, C opens.
    establish(&mut t, 41002);
    assert_eq!(info(&t, 41000), None);
    assert_eq!(t.slirp.stats().tcp_time_wait_reclaimed, 1);
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpTableFull), 0);
    // D finds it full of live connections: refused with RST, as before.
    t.host.connect_now = Some(Ok(()));
    let out = t.send(REMOTE, &syn(41003));
    assert!(out.iter().any(|(_, s, _)| s.control == TcpControl::Rst), "{out:?}");
    assert_eq!(t.slirp.stats().dropped(DropReason::TcpTableFull), 1);
}

#[test]
fn a_guest_reset_in_time_wait_closes_the_host_socket_without_aborting_it() {
    // Both directions finished: the reset loses nothing, and aborting the host socket would
    // discard what the host's kernel still has to send of the guest's data (found by the fault
    // sweep: a stray ACK after the guest's last ACK draws a RST from a guest that already closed).
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    let iss = establish(&mut t, 41010);
    let id = t.host.last_connect.unwrap();
    t.host.socks.get_mut(&id.0).unwrap().eof = true;
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    assert!(t.tcp_out().iter().any(|(_, s, _)| s.control == TcpControl::Fin));
    let fin = TcpRepr { control: TcpControl::Fin, payload: b"last", ..ack(41010, 1001, iss.wrapping_add(2), b"") };
    t.send(REMOTE, &fin);
    assert_eq!(t.host.socks[&id.0].sent, b"last");
    assert!(t.host.socks[&id.0].shut);
    let info = t.slirp.tcp_connections().next().map(|c| c.state);
    assert_eq!(info, Some(slirp_core::tcp::TcpState::TimeWait));
    let rst = TcpRepr { control: TcpControl::Rst, ..tcp_seg(41010, 80, TcpControl::Rst, 1006, None) };
    t.send(REMOTE, &rst);
    t.advance(1);
    let s = &t.host.socks[&id.0];
    assert!(s.closed && !s.aborted, "closed gracefully: {s:?}");
    assert_eq!(t.slirp.tcp_connection_count(), 0);
}

#[test]
fn a_connection_closed_while_the_host_is_slow_keeps_the_guests_bytes_for_it() {
    let mut t = T::new(Config::default(), Storage::with_capacity(256 * 1024, 64 * 1024, 2, 65535));
    let iss = establish(&mut t, 40006);
    let (id, _) = t.host.only();
    // The host takes 4 bytes; the guest sends 8 and its FIN (we are in CLOSE-WAIT).
    t.host.send_limit = Some(4);
    let fin = TcpRepr { control: TcpControl::Fin, payload: b"abcdefgh", ..ack(40006, 1001, iss.wrapping_add(1), b"") };
    t.send(REMOTE, &fin);
    assert_eq!(t.host.socks[&id.0].sent, b"abcd");
    // The host side ends too: our FIN goes to the guest (LAST-ACK)...
    t.host.socks.get_mut(&id.0).unwrap().eof = true;
    t.slirp.handle_host_readable(t.now, id, &mut t.host);
    let out = t.tcp_out();
    let our_fin = out.iter().find(|(_, s, _)| s.control == TcpControl::Fin).expect("our FIN");
    let fin_seq = our_fin.1.seq_number.0;
    // ...and the guest acknowledges it: the TCB is closed, 4 bytes still wait for the host.
    t.send(REMOTE, &ack(40006, 1010, fin_seq.wrapping_add(1), b""));
    assert_eq!(t.slirp.tcp_connection_count(), 1, "not finished while the host has bytes to take");
    assert!(!t.host.socks[&id.0].closed, "the host socket stays open for them");
    t.host.send_limit = None;
    t.slirp.handle_host_writable(t.now, id, &mut t.host);
    assert_eq!(t.host.socks[&id.0].sent, b"abcdefgh", "every byte the guest sent");
    assert!(t.host.socks[&id.0].closed, "then closed");
    assert_eq!(t.slirp.tcp_connection_count(), 0);
}
