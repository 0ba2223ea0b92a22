//! The socket under a venue connection: plain TCP or TLS over any `net` driver.
//!
//! Why one type: the feed's market-data WebSocket ([`crate::live`]) and the gateway's order
//! connections ([`crate::gateway`]) both connect to `ws://`/`http://` on loopback (the
//! simulator) or `wss://`/`https://` at the venue, through the same drivers, and both poll it
//! on a pinned thread. A `match` per call keeps the dispatch static.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use net::socket::{AnyTransport, Interest, Readiness, TlsTransport};
use net::{DriverKind, Transport};

/// Plain or TLS transport over any driver, dispatched by `match`.
// One per connection; boxing the TLS variant would add a pointer chase on every read.
#[allow(clippy::large_enum_variant)]
pub enum MaybeTls {
    /// Plain TCP (the simulator on loopback).
    Plain(AnyTransport),
    /// TLS (the venue).
    Tls(TlsTransport<AnyTransport>),
}

// SAFETY: every part of a transport is `Send` except the io_uring driver's provided-buffer ring
// (`net::socket::uring::BufRing`), which holds a raw pointer to a heap allocation it owns
// exclusively (allocated in its constructor, freed in its `Drop`, never aliased outside the
// transport and the kernel); a raw pointer only makes the type `!Send` by default, not by any
// thread affinity. The ring is set up without `IORING_SETUP_SINGLE_ISSUER`, so it may be used
// from any thread, one at a time, which `&mut` access guarantees (the same reasoning as the
// feed's `live::Conn`). A stage is built on the main thread and then moved, once, to its
// pinned thread; io_uring would at worst cancel an in-flight receive, which the stage sees as a
// broken connection and recovers from.
unsafe impl Send for MaybeTls {}

macro_rules! either {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            MaybeTls::Plain($t) => $e,
            MaybeTls::Tls($t) => $e,
        }
    };
}

impl Transport for MaybeTls {
    fn driver(&self) -> DriverKind {
        either!(self, t => t.driver())
    }
    fn poll_connect(&mut self) -> io::Result<bool> {
        either!(self, t => t.poll_connect())
    }
    #[inline]
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, t => t.read_into(buf))
    }
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        either!(self, t => t.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        either!(self, t => t.flush())
    }
    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        either!(self, t => t.poll(interest, timeout))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        either!(self, t => t.local_addr())
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        either!(self, t => t.peer_addr())
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        either!(self, t => t.shutdown_write())
    }
}
