//! Plain-words descriptions of frames, for demos, tracers and failing-test messages.
//!
//! The parsing here is smoltcp's, not the core's: an independent reading of what is on the wire.

use std::fmt::Write;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetFrame, EthernetProtocol,
    Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket,
};

/// Describes an Ethernet frame in one line, e.g. `ARP who-has 10.0.2.2? tell 10.0.2.15` or
/// `DHCP OFFER 10.0.2.15 to 02:00:00:00:00:01 (router 10.0.2.2, dns [10.0.2.3], ...)`.
/// Anything it cannot parse is described as such, never a panic.
pub fn describe_frame(frame: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("runt frame ({} bytes)", frame.len());
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => describe_arp(eth.payload()),
        EthernetProtocol::Ipv4 => describe_ipv4(eth.payload()),
        other => format!("{other} frame {} -> {}", eth.src_addr(), eth.dst_addr()),
    }
}

fn describe_arp(bytes: &[u8]) -> String {
    let parsed = ArpPacket::new_checked(bytes).and_then(|p| ArpRepr::parse(&p));
    let Ok(ArpRepr::EthernetIpv4 {
        operation, source_hardware_addr, source_protocol_addr, target_protocol_addr, ..
    }) = parsed
    else {
        return "ARP (unparsable)".to_string();
    };
    match operation {
        ArpOperation::Request => {
            format!("ARP who-has {target_protocol_addr}? tell {source_protocol_addr}")
        }
        ArpOperation::Reply => {
            format!("ARP {source_protocol_addr} is-at {source_hardware_addr}")
        }
        other => format!("ARP {other:?} from {source_protocol_addr}"),
    }
}

fn describe_ipv4(bytes: &[u8]) -> String {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return "IPv4 (unparsable)".to_string();
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.more_frags() || ip.frag_offset() != 0 {
        return format!(
            "IPv4 fragment {src} -> {dst} id {:#06x} offset {} len {}{} ({})",
            ip.ident(),
            ip.frag_offset(),
            ip.payload().len(),
            if ip.more_frags() { " +more" } else { "" },
            ip.next_header(),
        );
    }
    if !ip.verify_checksum() {
        return format!("IPv4 {src} -> {dst} with a bad header checksum");
    }
    match ip.next_header() {
        IpProtocol::Icmp => describe_icmp(src, dst, ip.payload()),
        IpProtocol::Udp => describe_udp(src, dst, ip.payload()),
        IpProtocol::Tcp => describe_tcp(src, dst, ip.payload()),
        other => format!("IPv4 {other} {src} -> {dst}, {} bytes", ip.payload().len()),
    }
}

fn describe_icmp(src: impl std::fmt::Display, dst: impl std::fmt::Display, bytes: &[u8]) -> String {
    let Ok(icmp) = Icmpv4Packet::new_checked(bytes) else {
        return format!("ICMP {src} -> {dst} (unparsable)");
    };
    let bad = if icmp.verify_checksum() { "" } else { " (bad checksum)" };
    match icmp.msg_type() {
        Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply => format!(
            "ICMP echo {} {src} -> {dst} id {} seq {}, {} bytes{bad}",
            if icmp.msg_type() == Icmpv4Message::EchoRequest { "request" } else { "reply" },
            icmp.echo_ident(),
            icmp.echo_seq_no(),
            icmp.data().len(),
        ),
        other => format!("ICMP {other} {src} -> {dst} code {}{bad}", icmp.msg_code()),
    }
}

fn describe_udp(src: impl std::fmt::Display, dst: impl std::fmt::Display, bytes: &[u8]) -> String {
    let Ok(udp) = UdpPacket::new_checked(bytes) else {
        return format!("UDP {src} -> {dst} (unparsable)");
    };
    let (sport, dport) = (udp.src_port(), udp.dst_port());
    if matches!((sport, dport), (68, 67) | (67, 68)) {
        if let Some(dhcp) = describe_dhcp(udp.payload()) {
            return dhcp;
        }
    }
    format!("UDP {src}:{sport} -> {dst}:{dport}, {} bytes", udp.payload().len())
}

fn describe_dhcp(bytes: &[u8]) -> Option<String> {
    let packet = DhcpPacket::new_checked(bytes).ok()?;
    let repr = DhcpRepr::parse(&packet).ok()?;
    let mut out = String::from("DHCP ");
    let name = match repr.message_type {
        DhcpMessageType::Discover => "DISCOVER",
        DhcpMessageType::Offer => "OFFER",
        DhcpMessageType::Request => "REQUEST",
        DhcpMessageType::Decline => "DECLINE",
        DhcpMessageType::Ack => "ACK",
        DhcpMessageType::Nak => "NAK",
        DhcpMessageType::Release => "RELEASE",
        DhcpMessageType::Inform => "INFORM",
        DhcpMessageType::Unknown(n) => return Some(format!("DHCP message type {n}")),
    };
    out.push_str(name);
    let mac = repr.client_hardware_address;
    match repr.message_type {
        DhcpMessageType::Offer | DhcpMessageType::Ack => {
            let _ = write!(out, " {} to {mac}", repr.your_ip);
            if let Some(mask) = repr.subnet_mask {
                let _ = write!(out, " mask {mask}");
            }
            if let Some(router) = repr.router {
                let _ = write!(out, " router {router}");
            }
            if let Some(dns) = &repr.dns_servers {
                let list: Vec<String> = dns.iter().map(|a| a.to_string()).collect();
                let _ = write!(out, " dns [{}]", list.join(", "));
            }
            if let Some(secs) = repr.lease_duration {
                let _ = write!(out, " lease {secs}s");
            }
        }
        DhcpMessageType::Request => {
            let _ = write!(out, " from {mac}");
            if let Some(ip) = repr.requested_ip {
                let _ = write!(out, " for {ip}");
            }
            if let Some(server) = repr.server_identifier {
                let _ = write!(out, " (server {server})");
            }
        }
        _ => {
            let _ = write!(out, " from {mac}");
        }
    }
    let _ = write!(out, " xid {:#010x}", repr.transaction_id);
    Some(out)
}

fn describe_tcp(src: impl std::fmt::Display, dst: impl std::fmt::Display, bytes: &[u8]) -> String {
    let Ok(tcp) = TcpPacket::new_checked(bytes) else {
        return format!("TCP {src} -> {dst} (unparsable)");
    };
    let mut flags = String::new();
    for (set, name) in [(tcp.syn(), 'S'), (tcp.fin(), 'F'), (tcp.rst(), 'R'), (tcp.psh(), 'P'), (tcp.ack(), '.')] {
        if set {
            flags.push(name);
        }
    }
    let mut opts = String::new();
    let mut rest = tcp.options();
    while !rest.is_empty() {
        let Ok((next, opt)) = smoltcp::wire::TcpOption::parse(rest) else { break };
        use smoltcp::wire::TcpOption as O;
        match opt {
            O::EndOfList => break,
            O::NoOperation => {}
            O::MaxSegmentSize(m) => {
                let _ = write!(opts, " mss {m}");
            }
            O::WindowScale(w) => {
                let _ = write!(opts, " wscale {w}");
            }
            O::SackPermitted => opts.push_str(" sackOK"),
            O::SackRange(r) => {
                for (l, r) in r.iter().flatten() {
                    let _ = write!(opts, " sack {l}-{r}");
                }
            }
            O::TimeStamp { tsval, tsecr } => {
                let _ = write!(opts, " ts {tsval}/{tsecr}");
            }
            O::Unknown { kind, .. } => {
                let _ = write!(opts, " opt{kind}");
            }
        }
        rest = next;
    }
    format!(
        "TCP {src}:{} -> {dst}:{} [{flags}] seq {} ack {} win {}{opts}, {} bytes",
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
        tcp.window_len(),
        tcp.payload().len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_arp_request() {
        let mut frame = vec![0u8; 42];
        frame[0..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        frame[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[28..32].copy_from_slice(&[10, 0, 2, 15]);
        frame[38..42].copy_from_slice(&[10, 0, 2, 2]);
        assert_eq!(describe_frame(&frame), "ARP who-has 10.0.2.2? tell 10.0.2.15");
    }

    #[test]
    fn never_panics_on_garbage() {
        assert_eq!(describe_frame(&[1, 2, 3]), "runt frame (3 bytes)");
        let mut frame = vec![0u8; 20];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(describe_frame(&frame), "IPv4 (unparsable)");
    }
}
