//! A bare-metal embedder in miniature: static storage, one frame in, frames out.
#![no_std]
#![forbid(unsafe_code)]

use slirp_core::{Config, Instant, NoHost, ReassemblySlot, Slirp, Storage};

/// Answers one frame with static-sized borrowed buffers; returns the number of bytes sent back.
pub fn answer_one(frame: &[u8], out: &mut [u8]) -> usize {
    let mut tx = [0u8; 4096];
    let mut hold = [0u8; 2048];
    let mut reasm_buf = [0u8; 1600];
    let mut slots = [ReassemblySlot::new(&mut reasm_buf[..])];
    let storage = Storage::new(&mut tx[..], &mut hold[..], &mut slots[..]);
    let Ok(mut slirp) = Slirp::new(Config::default(), storage) else {
        return 0;
    };
    let now = Instant::from_millis(1);
    slirp.handle_guest_frame(now, frame, &mut NoHost);
    let mut n = 0;
    while let Some(len) = slirp.poll_transmit_into(now, &mut NoHost, &mut out[n..]) {
        n += len;
    }
    n
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
