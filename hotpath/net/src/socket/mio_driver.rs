//! The `mio` driver: non-blocking BSD sockets, epoll only when the caller chooses to wait.
//!
//! Busy-polling is the default way to use it: the stage calls [`Transport::read_into`], which is a
//! single `recv` returning data or `WouldBlock` (with `SO_BUSY_POLL` the kernel spins on the NIC
//! queue inside that call). `mio::Poll` (epoll, edge-triggered) is only consulted by
//! [`Transport::poll`] with a non-zero timeout, e.g. by a parked thread. Because epoll is edge-
//! triggered, the driver remembers whether the last read/write hit `WouldBlock` and answers
//! `poll` from that memory before asking the kernel, so a caller that did not drain the socket
//! is never put to sleep on data already there.
//!
//! This is the driver OpenOnload accelerates (it intercepts these socket calls).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::{Events, Poll, Token};

use super::sockopt::{self, BusyPollStatus};
use super::{DriverKind, Interest, Readiness, SocketConfig, Transport};

const TOKEN: Token = Token(0);

/// Non-blocking TCP connection driven by direct reads and, when waiting, `mio`/epoll.
#[derive(Debug)]
pub struct MioTransport {
    stream: mio::net::TcpStream,
    poll: Poll,
    events: Events,
    connected: bool,
    /// No `WouldBlock` seen since the last readable edge.
    read_hint: bool,
    /// No `WouldBlock` seen since the last writable edge.
    write_hint: bool,
    busy_poll: BusyPollStatus,
}

impl MioTransport {
    /// Start a non-blocking connect with the configured socket options.
    pub fn connect(addr: SocketAddr, cfg: &SocketConfig) -> io::Result<Self> {
        let (sock, busy) = sockopt::new_tcp_socket(&addr, cfg)?;
        sockopt::start_connect(&sock, &addr)?;
        let std_stream: std::net::TcpStream = sock.into();
        Self::from_stream(std_stream, busy, false)
    }

    /// Wrap an already connected stream (e.g. accepted by a server), applying the options.
    pub fn from_std(stream: std::net::TcpStream, cfg: &SocketConfig) -> io::Result<Self> {
        let sock = socket2::Socket::from(stream);
        let busy = sockopt::apply_options(&sock, cfg)?;
        sock.set_nonblocking(true)?;
        Self::from_stream(sock.into(), busy, true)
    }

    fn from_stream(
        stream: std::net::TcpStream,
        busy_poll: BusyPollStatus,
        connected: bool,
    ) -> io::Result<Self> {
        let mut stream = mio::net::TcpStream::from_std(stream);
        let poll = Poll::new()?;
        poll.registry().register(
            &mut stream,
            TOKEN,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )?;
        Ok(MioTransport {
            stream,
            poll,
            events: Events::with_capacity(4),
            connected,
            read_hint: true,
            write_hint: true,
            busy_poll,
        })
    }

    /// What `SO_BUSY_POLL` ended up as on this socket.
    pub fn busy_poll_status(&self) -> BusyPollStatus {
        self.busy_poll
    }
}

impl Transport for MioTransport {
    fn driver(&self) -> DriverKind {
        DriverKind::Mio
    }

    fn poll_connect(&mut self) -> io::Result<bool> {
        if !self.connected {
            self.connected = sockopt::connect_progress(&self.stream)?;
        }
        Ok(self.connected)
    }

    #[inline]
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.read_hint = false;
                Err(e)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !self.connected => {
                // Still connecting: nothing to read yet.
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }
    }

    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.stream.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.write_hint = false;
                Err(e)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected && !self.connected => {
                Err(io::ErrorKind::WouldBlock.into())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        let mut r = Readiness {
            readable: interest.readable() && self.read_hint && self.connected,
            writable: interest.writable() && self.write_hint && self.connected,
        };
        if r.readable || r.writable {
            return Ok(r);
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(r),
            Err(e) => return Err(e),
        }
        for ev in self.events.iter() {
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read_hint = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                self.write_hint = true;
            }
        }
        r.readable = interest.readable() && self.read_hint;
        r.writable = interest.writable() && self.write_hint;
        Ok(r)
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

impl AsRawFd for MioTransport {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.stream.as_raw_fd()
    }
}
