//! The blocking `std::net` driver: the baseline the benchmarks compare the other drivers with.
//!
//! It implements the same trait, but `read_into` blocks until data arrives (it never returns
//! `WouldBlock`), and `connect` completes before returning. Not meant for the hot path.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::SockAddr;

use super::sockopt::{self, BusyPollStatus};
use super::{DriverKind, Interest, Readiness, SocketConfig, Transport};

/// Blocking TCP connection.
#[derive(Debug)]
pub struct StdTransport {
    stream: std::net::TcpStream,
    busy_poll: BusyPollStatus,
}

impl StdTransport {
    /// Connect (blocking) with the configured socket options.
    pub fn connect(addr: SocketAddr, cfg: &SocketConfig) -> io::Result<Self> {
        let (sock, busy_poll) = sockopt::new_tcp_socket(&addr, cfg)?;
        sock.connect(&SockAddr::from(addr))?;
        Ok(StdTransport {
            stream: sock.into(),
            busy_poll,
        })
    }

    /// Wrap an already connected stream, applying the options.
    pub fn from_std(stream: std::net::TcpStream, cfg: &SocketConfig) -> io::Result<Self> {
        let sock = socket2::Socket::from(stream);
        let busy_poll = sockopt::apply_options(&sock, cfg)?;
        sock.set_nonblocking(false)?;
        Ok(StdTransport {
            stream: sock.into(),
            busy_poll,
        })
    }

    /// What `SO_BUSY_POLL` ended up as on this socket.
    pub fn busy_poll_status(&self) -> BusyPollStatus {
        self.busy_poll
    }
}

impl Transport for StdTransport {
    fn driver(&self) -> DriverKind {
        DriverKind::Std
    }

    fn poll_connect(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let (readable, writable) = sockopt::poll_fd(
            self.stream.as_raw_fd(),
            interest.readable(),
            interest.writable(),
            timeout,
        )?;
        Ok(Readiness { readable, writable })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}
