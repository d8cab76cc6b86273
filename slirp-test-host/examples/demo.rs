//! A simulated guest boots against the core, pings its gateway, resolves a name through the DNS
//! alias and pings the host it names on a fake internet, narrated in plain words.
//!
//! ```text
//! cargo run -p slirp-test-host --example demo -- [--seed N] [--faults] [--pcap FILE]
//! ```
//!
//! `--faults` turns on the hostile link (loss, duplicates, reordering, bit flips); `--pcap FILE`
//! writes every delivered frame to FILE for Wireshark or tcpdump.

use std::cell::RefCell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::{describe_frame, Direction, FakeNet, LinkFaults, SimConfig, Simulation, TraceEvent, TraceKind};

struct Args {
    seed: u64,
    faults: bool,
    pcap: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { seed: 1, faults: false, pcap: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seed" => {
                let value = it.next().ok_or("--seed needs a number")?;
                args.seed = value.parse().map_err(|_| format!("bad seed {value:?}"))?;
            }
            "--faults" => args.faults = true,
            "--pcap" => args.pcap = Some(it.next().ok_or("--pcap needs a file name")?),
            "-h" | "--help" => return Err("usage: demo [--seed N] [--faults] [--pcap FILE]".to_string()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Prints one line per frame event: what was sent, what the link did to it, what arrived.
fn narrate(event: &TraceEvent<'_>) {
    let who = match event.direction {
        Direction::ToCore => "guest -> slirp",
        Direction::ToGuest => "slirp -> guest",
    };
    let at = event.at;
    match event.kind {
        TraceKind::Sent(report) => {
            let mut fate = Vec::new();
            if report.copies == 0 {
                fate.push("LOST on the link");
            }
            if report.copies > 1 {
                fate.push("duplicated");
            }
            if report.reordered {
                fate.push("held back (reordered)");
            }
            if report.corrupted {
                fate.push("a bit flipped");
            }
            if !fate.is_empty() {
                println!("[{at}] {who}: {} -- {}", describe_frame(event.frame), fate.join(", "));
            }
        }
        TraceKind::Delivered => println!("[{at}] {who}: {}", describe_frame(event.frame)),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = SimConfig::seeded(args.seed);
    if args.faults {
        config = config.with_faults(LinkFaults::chaos());
    }
    if args.pcap.is_some() {
        config = config.with_capture();
    }
    let mut sim = match Simulation::with_host(config, FakeNet::internet()) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("core refused its configuration: {e:?}");
            return ExitCode::FAILURE;
        }
    };
    let lines = Rc::new(RefCell::new(0u32));
    let counter = Rc::clone(&lines);
    sim.set_tracer(move |event| {
        *counter.borrow_mut() += 1;
        narrate(event);
    });

    println!(
        "seed {}, link {}, guest MAC {}, gateway MAC {}",
        args.seed,
        if args.faults { "hostile (10% loss, duplicates, reordering, bit flips)" } else { "perfect" },
        sim.guest().mac(),
        sim.core().gateway_mac(),
    );
    println!("-- the guest boots and asks for an address (DHCP)");
    let lease = match sim.wait_for_lease(Duration::from_secs(300)) {
        Ok(lease) => lease,
        Err(e) => {
            eprintln!("no DHCP lease: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dns: Vec<String> = lease.dns_servers.iter().map(|a| a.to_string()).collect();
    println!(
        "-- [{}] configured: address {}, router {}, DNS {}",
        sim.now(),
        lease.address,
        lease.router.map_or("none".to_string(), |r| r.to_string()),
        dns.join(", "),
    );

    let mut seq = 0u16;
    let mut failed = false;
    for (name, dst, size) in [
        ("gateway", Ipv4Address::new(10, 0, 2, 2), 56),
        ("DNS alias", Ipv4Address::new(10, 0, 2, 3), 56),
        ("gateway, large (fragmented)", Ipv4Address::new(10, 0, 2, 2), 4000),
    ] {
        println!("-- ping {name} {dst} with {size} bytes");
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut answered = false;
        for _ in 0..10 {
            seq += 1;
            match sim.ping(dst, seq, &payload, Duration::from_secs(1)) {
                Ok(pong) if pong.reply.payload == payload => {
                    println!(
                        "-- [{}] reply from {dst}: seq {seq}, {} bytes, rtt {:?} (virtual)",
                        sim.now(),
                        pong.reply.payload.len(),
                        pong.rtt
                    );
                    if pong.rtt >= Duration::from_millis(900) {
                        println!("   (most of that is smoltcp waiting out its 1 s ARP rate limit)");
                    }
                    answered = true;
                    break;
                }
                Ok(_) => println!("-- reply from {dst} with a different payload!"),
                Err(e) => println!("-- no reply to seq {seq}: {e}; trying again"),
            }
        }
        failed |= !answered;
    }

    println!("-- resolve example.com through the DNS alias 10.0.2.3");
    let mut named = None;
    for attempt in 0..5 {
        let query = match sim.guest_mut().dns_start("example.com", &[]) {
            Ok(q) => q,
            Err(e) => {
                println!("-- cannot start the query: {e:?}");
                break;
            }
        };
        let mut result = None;
        let _ = sim.run_until(
            |sim| {
                result = sim.guest_mut().dns_result(query);
                result.is_some()
            },
            Duration::from_secs(15),
        );
        match result {
            Some(Ok(addrs)) if !addrs.is_empty() => {
                println!("-- [{}] example.com is {addrs:?}", sim.now());
                named = Some(addrs[0]);
                break;
            }
            other => println!("-- lookup {attempt} failed ({other:?}); trying again"),
        }
    }
    match named {
        Some(dst) => {
            let mut answered = false;
            for _ in 0..10 {
                seq += 1;
                match sim.ping(dst, seq, b"hello, internet", Duration::from_secs(1)) {
                    Ok(pong) => {
                        println!("-- [{}] reply from {dst} through the NAT: rtt {:?} (virtual)", sim.now(), pong.rtt);
                        answered = true;
                        break;
                    }
                    Err(e) => println!("-- no reply to seq {seq}: {e}; trying again"),
                }
            }
            failed |= !answered;
        }
        None => failed = true,
    }
    let net = sim.host().stats();
    println!(
        "-- fake internet: {} sockets opened, {} datagrams/echoes sent, {} entries delivered",
        net.opened, net.sent, net.delivered
    );

    let stats = sim.core().stats();
    println!("-- core stats after {} of virtual time, {} frame events:", sim.now(), lines.borrow());
    println!(
        "   from guest: {} frames, {} bytes; to guest: {} frames, {} bytes",
        stats.rx_frames, stats.rx_bytes, stats.tx_frames, stats.tx_bytes
    );
    println!(
        "   ARP requests sent {}, reassembled {}, fragmented {}, ICMP errors sent {}",
        stats.arp_requests_sent, stats.reassembled, stats.fragmented, stats.icmp_errors_sent
    );
    for (reason, count) in stats.drops() {
        println!("   dropped {count} ({reason})");
    }
    for direction in [Direction::ToCore, Direction::ToGuest] {
        println!("   link {direction:?}: {:?}", sim.link().stats(direction));
    }

    if let (Some(path), Some(bytes)) = (&args.pcap, sim.pcap_bytes()) {
        if let Err(e) = std::fs::write(path, bytes) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("-- wrote {} bytes of pcap to {path}", bytes.len());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
