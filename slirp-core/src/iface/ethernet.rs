//! Ethernet and ARP toward the guest: learning the guest's MAC addresses, answering ARP for the
//! virtual addresses, asking for unknown guests, and the packets held meanwhile.

use crate::iface::fragment::emit_frames;
use crate::iface::ipv6::{emit_frames6, Out6};
use crate::iface::Iface;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::ethernet::{HEADER_LEN as ETH_LEN, MIN_FRAME_LEN};
use crate::wire::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use crate::wire::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};
use core::net::{IpAddr, Ipv4Addr};

impl Iface<'_> {
    pub(crate) fn arp_input(&mut self, now: Instant, eth: &EthernetFrame<&[u8]>) {
        let repr = match ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => return self.stats.drop(DropReason::ArpMalformed),
        };
        let sender = repr.source_protocol_addr;
        let c = &self.config;
        // Learn guests only: an address of the subnet that is not ours, at a unicast MAC.
        // Requests, replies and gratuitous ARP all teach us.
        if c.is_host(sender) && sender != c.gateway && sender != c.dns && repr.source_hardware_addr.is_unicast() {
            self.neighbors.learn(now, sender, repr.source_hardware_addr);
            self.release_held(now);
        }
        if repr.operation != ArpOperation::Request {
            return;
        }
        let target = repr.target_protocol_addr;
        if !self.answers_arp_for(target) || sender == target {
            if sender != target {
                self.stats.drop(DropReason::ArpNotForUs);
            }
            return;
        }
        let our_mac = EthernetAddress::slirp_virtual(target);
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: our_mac,
            source_protocol_addr: target,
            target_hardware_addr: repr.source_hardware_addr,
            target_protocol_addr: sender,
        };
        let eth_repr = EthernetRepr { src_addr: our_mac, dst_addr: eth.src_addr(), ethertype: EtherType::Arp };
        self.queue_arp(&eth_repr, &reply);
    }

    /// Records that guest address `ip` is at `mac`: only addresses of the subnet that are not
    /// ours, at a unicast MAC. Releases packets held for it. Returns true when this replaced
    /// another MAC for `ip`: the caller then asks, with [`confirm_guest`](Self::confirm_guest).
    pub(crate) fn learn_guest(&mut self, now: Instant, ip: Ipv4Addr, mac: EthernetAddress) -> bool {
        let c = &self.config;
        if !c.is_host(ip) || ip == c.gateway || ip == c.dns || !mac.is_unicast() {
            return false;
        }
        let before = self.neighbors.lookup(ip);
        self.neighbors.learn(now, ip, mac);
        if before == Some(mac) {
            return false;
        }
        self.release_held(now);
        before.is_some()
    }

    /// Asks for `ip`'s MAC after a frame moved it. Nothing covers a frame's source MAC once the
    /// link dropped its FCS, so a frame damaged there (with intact IP and TCP checksums) would
    /// otherwise send every frame for the guest to a MAC nobody has until the guest sends again,
    /// which a guest waiting for data never does; the guest's answer restores its real MAC
    /// within a round trip, and confirms a real change.
    pub(crate) fn confirm_guest(&mut self, now: Instant, ip: Ipv4Addr) {
        if self.neighbors.should_request(now, ip) {
            self.send_arp_request(ip);
        }
    }

    /// The virtual addresses that answer ARP.
    fn answers_arp_for(&self, ip: Ipv4Addr) -> bool {
        ip == self.config.gateway || ip == self.config.dns || self.guest_forwards.has_addr(ip.into())
    }

    fn queue_arp(&mut self, eth: &EthernetRepr, arp: &ArpRepr) {
        let res = self.tx.push_with(MIN_FRAME_LEN, 0, Instant::ZERO, |buf| {
            eth.emit(&mut EthernetFrame::new_unchecked(&mut *buf));
            arp.emit(&mut buf[ETH_LEN..]);
            MIN_FRAME_LEN // zero-padded to the Ethernet minimum
        });
        if res.is_err() {
            self.stats.drop(DropReason::TxQueueFull);
        }
    }

    pub(crate) fn send_arp_request(&mut self, target: Ipv4Addr) {
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.gateway_mac,
            source_protocol_addr: self.config.gateway,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: target,
        };
        self.stats.arp_requests_sent += 1;
        self.queue_arp(&eth, &arp);
    }

    /// Moves held packets whose destination resolved to the guest-bound queue and drops those
    /// that waited too long. The hold queue is FIFO and every packet waits the same time, so
    /// only its head can be due; a packet behind an unresolved one waits at most one timeout.
    pub(crate) fn release_held(&mut self, now: Instant) {
        while let Some(rec) = self.hold.peek() {
            // We wrote these packets ourselves; their headers parse. The version says which.
            let v6 = rec.data.first().is_some_and(|b| b >> 4 == 6);
            let dst: IpAddr = if v6 {
                match Ipv6Packet::new_checked(rec.data) {
                    Ok(p) => IpAddr::V6(p.dst_addr()),
                    Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                }
            } else {
                IpAddr::V4(Ipv4Addr::from(rec.tag))
            };
            if let Some(mac) = self.neighbors.lookup(dst) {
                if v6 {
                    if let Ok(p) = Ipv6Packet::new_checked(rec.data) {
                        if let Ok(repr) = Ipv6Repr::parse(&p) {
                            let mtu = usize::from(self.config.mtu);
                            let out = Out6 {
                                tx: &mut self.tx,
                                stats: &mut self.stats,
                                gateway_mac: self.gateway_mac,
                                mtu,
                                next_id: &mut self.next_ip6_id,
                            };
                            emit_frames6(out, mac, &repr, &[], p.payload());
                        }
                    }
                } else if let Ok(p) = Ipv4Packet::new_checked(rec.data) {
                    if let Ok(repr) = Ipv4Repr::parse(&p, false) {
                        let mtu = usize::from(self.config.mtu);
                        let eth = self.ipv4_frame(mac);
                        emit_frames(&mut self.tx, &mut self.stats, mtu, &eth, &repr, &[], p.payload());
                    }
                }
            } else if rec.deadline <= now {
                self.stats.drop(DropReason::ArpHoldTimeout);
            } else {
                return;
            }
            self.hold.pop();
        }
    }
}
