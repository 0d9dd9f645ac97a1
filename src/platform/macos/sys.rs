//! The macOS syscall glue, kept minimal: a PF_ROUTE socket that writes one request and reads
//! the kernel's echo for our (pid, seq), and the interface ioctls (addresses, MTU, flags) on
//! buffers encoded by [`addr_req`](super::addr_req). It compiles on every Unix so Linux CI
//! type-checks it, but is only called on macOS. The one `unsafe` block is the `ioctl` call.
#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

use socket2::{Domain, Socket, Type};

use super::route_msg::{RouteMsg, decode_route};

/// _IOW('i', 52, struct ifreq): set MTU.
pub const SIOCSIFMTU: u64 = 0x8020_6934;
/// _IOWR('i', 17, struct ifreq): get flags.
pub const SIOCGIFFLAGS: u64 = 0xc020_6911;
/// _IOW('i', 16, struct ifreq): set flags.
pub const SIOCSIFFLAGS: u64 = 0x8020_6910;

/// Opens a routing socket (`socket(PF_ROUTE, SOCK_RAW, 0)`).
pub fn route_socket() -> io::Result<Socket> {
    Socket::new(Domain::from(libc::PF_ROUTE), Type::RAW, None)
}

/// Sends one routing message and returns the kernel's reply to it (matched on pid + seq).
/// An `rtm_errno` in the reply becomes an `io::Error`.
pub fn route_request(sock: &mut Socket, msg: &[u8], seq: i32) -> io::Result<RouteMsg> {
    sock.write_all(msg)?;
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut buf = vec![0u8; 2048];
    loop {
        let n = sock.read(&mut buf)?;
        let Ok(reply) = decode_route(&buf[..n]) else {
            continue;
        };
        if reply.pid == pid && reply.seq == seq {
            if reply.errno != 0 {
                return Err(io::Error::from_raw_os_error(reply.errno));
            }
            return Ok(reply);
        }
    }
}

/// An ioctl on a datagram socket of `domain` with an in/out request buffer.
pub fn ioctl(domain: Domain, request: u64, buf: &mut [u8]) -> io::Result<()> {
    let sock = Socket::new(domain, Type::DGRAM, None)?;
    // SAFETY: `buf` is a live, exclusively borrowed buffer of at least the size encoded in
    // `request` (the callers build it with addr_req's fixed-size encoders), and the fd is
    // valid for the duration of the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request as _, buf.as_mut_ptr()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Interface index by name.
pub fn if_index(name: &str) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
}
