//! Non-blocking byte-stream connections behind one trait, with interchangeable drivers.
//!
//! The feed and the gateway talk to a [`Transport`]: connect without blocking, read into a
//! caller-owned (preallocated) buffer, write, ask for readiness. Which kernel interface moves the
//! bytes is configuration ([`DriverKind`]), so the same stage code runs on:
//!
//! * [`MioTransport`]: plain non-blocking BSD sockets (`TCP_NODELAY`, `SO_BUSY_POLL`), read by
//!   direct `recv` attempts when busy-polling and by `epoll` (through `mio`) when waiting. This is
//!   the driver OpenOnload accelerates, so it is forced when Onload is present
//!   ([`crate::onload::choose_driver`]).
//! * [`UringTransport`]: `io_uring` with a registered socket, registered (fixed) buffers and
//!   multishot receive into a provided-buffer ring where the kernel supports it.
//! * [`StdTransport`]: blocking `std::net` sockets, only as a baseline for benchmarks.
//!
//! [`TlsTransport`] wraps any of them in a `rustls` client connection and is itself a
//! [`Transport`], so the WebSocket client runs unchanged over `ws://` and `wss://`.
//! [`AnyTransport`] dispatches by `match` (no boxing) for code that picks the driver at run time.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod mio_driver;
mod sockopt;
mod std_driver;
mod tls;
mod uring;

pub use mio_driver::MioTransport;
pub use sockopt::BusyPollStatus;
pub use std_driver::StdTransport;
pub use tls::{client_config_with_roots, webpki_client_config, TlsTransport};
pub use uring::{probe_io_uring, RecvMode, UringProbe, UringTransport};

/// Which implementation of [`Transport`] to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// Non-blocking sockets with `mio`/epoll; busy-polled reads.
    Mio,
    /// `io_uring` with fixed buffers and multishot receive.
    IoUring,
    /// Blocking `std::net` sockets (benchmark baseline).
    Std,
}

impl DriverKind {
    /// The configuration spelling: `mio`, `io_uring` or `std`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Mio => "mio",
            DriverKind::IoUring => "io_uring",
            DriverKind::Std => "std",
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DriverKind {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self, NetError> {
        match s.to_ascii_lowercase().as_str() {
            "mio" | "epoll" => Ok(DriverKind::Mio),
            "io_uring" | "io-uring" | "uring" => Ok(DriverKind::IoUring),
            "std" | "blocking" => Ok(DriverKind::Std),
            _ => Err(NetError::Config("driver must be one of mio, io_uring, std")),
        }
    }
}

/// `io_uring` driver settings.
#[derive(Clone, Debug)]
pub struct UringConfig {
    /// Submission queue entries (the completion queue gets twice as many plus the buffer count).
    pub entries: u32,
    /// Try multishot receive into a provided-buffer ring; `false` forces single-shot
    /// `READ_FIXED` into a registered buffer.
    pub multishot: bool,
    /// Number of provided buffers in the ring (power of two, at most 32768).
    pub ring_buffers: u16,
    /// Size of each provided buffer.
    pub ring_buffer_size: u32,
    /// Size of the registered receive buffer of the single-shot path.
    pub recv_buffer: usize,
    /// Size of the registered send buffer (bytes accepted by `write` before `WouldBlock`).
    pub send_buffer: usize,
}

impl Default for UringConfig {
    fn default() -> Self {
        UringConfig {
            entries: 64,
            multishot: true,
            ring_buffers: 64,
            ring_buffer_size: 16 * 1024,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
        }
    }
}

/// Socket settings shared by the drivers.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// Driver to use.
    pub driver: DriverKind,
    /// Set `TCP_NODELAY` (disable Nagle). Always wanted for order entry and market data.
    pub nodelay: bool,
    /// `SO_BUSY_POLL` in microseconds (`None` leaves the socket default). Raising it above the
    /// current value needs `CAP_NET_ADMIN`; an `EPERM` is reported, not fatal.
    pub busy_poll_us: Option<u32>,
    /// `SO_RCVBUF`, if set.
    pub recv_buffer: Option<usize>,
    /// `SO_SNDBUF`, if set.
    pub send_buffer: Option<usize>,
    /// `io_uring` settings.
    pub uring: UringConfig,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            driver: DriverKind::Mio,
            nodelay: true,
            busy_poll_us: Some(50),
            recv_buffer: None,
            send_buffer: None,
            uring: UringConfig::default(),
        }
    }
}

impl SocketConfig {
    /// Default settings with the given driver.
    pub fn with_driver(driver: DriverKind) -> Self {
        SocketConfig {
            driver,
            ..Self::default()
        }
    }
}

/// Readiness interest for [`Transport::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Wait until reading can make progress.
    Readable,
    /// Wait until writing can make progress.
    Writable,
    /// Either.
    Both,
}

impl Interest {
    fn readable(self) -> bool {
        matches!(self, Interest::Readable | Interest::Both)
    }
    fn writable(self) -> bool {
        matches!(self, Interest::Writable | Interest::Both)
    }
}

/// What [`Transport::poll`] found. A `true` flag is a hint: the next call may still return
/// `WouldBlock` (spurious wake-ups are allowed), but a `false` one means the driver saw nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Reading may make progress (data, end of stream or an error is pending).
    pub readable: bool,
    /// Writing may make progress.
    pub writable: bool,
}

/// Errors constructing or configuring a connection.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Socket-level failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// `io_uring` cannot be used on this machine (kernel too old, disabled by sysctl, blocked by
    /// seccomp in a container...). Pick another driver.
    #[error("io_uring unavailable: {reason}: {source}")]
    IoUringUnavailable {
        /// What was attempted and the likely cause.
        reason: String,
        /// The underlying error (`ENOSYS`, `EPERM`...).
        source: io::Error,
    },
    /// TLS setup or protocol error.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}

/// A non-blocking, connected (or connecting) byte stream.
///
/// Contract shared by all drivers:
/// * `read_into` returns `Ok(n > 0)` with data, `Ok(0)` at end of stream, `Err(WouldBlock)` when
///   nothing is available (never for [`StdTransport`], which blocks).
/// * `write` accepts up to `buf.len()` bytes and returns how many it took (possibly fewer), or
///   `Err(WouldBlock)` when it can take none right now. Accepted bytes are sent in order.
/// * `flush` pushes accepted bytes towards the kernel; `Err(WouldBlock)` while some are pending.
/// * Hot-path calls never allocate (for [`TlsTransport`]: once the handshake is done, except
///   for the rare session ticket or key update).
pub trait Transport {
    /// The driver behind this connection.
    fn driver(&self) -> DriverKind;

    /// Drive a non-blocking connect (and, for TLS, the TLS handshake): `Ok(true)` once the
    /// stream is established, `Ok(false)` while in progress, `Err` if it failed.
    fn poll_connect(&mut self) -> io::Result<bool>;

    /// Read received bytes into `buf` (see the trait contract).
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Queue or send bytes (see the trait contract).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Push accepted bytes out; `Err(WouldBlock)` while some remain.
    fn flush(&mut self) -> io::Result<()>;

    /// Wait up to `timeout` (`None`: indefinitely, `Some(ZERO)`: just look) for readiness.
    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness>;

    /// Local address of the socket.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Remote address of the socket.
    fn peer_addr(&self) -> io::Result<SocketAddr>;

    /// Shut down the sending half (TCP FIN; TLS sends `close_notify` first).
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn driver(&self) -> DriverKind {
        (**self).driver()
    }
    fn poll_connect(&mut self) -> io::Result<bool> {
        (**self).poll_connect()
    }
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_into(buf)
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (**self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        (**self).poll(interest, timeout)
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        (**self).local_addr()
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        (**self).peer_addr()
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        (**self).shutdown_write()
    }
}

/// A connection of any driver, dispatched by `match` (no boxing, no vtable).
// One value per connection, created once and not moved on the hot path: the size difference
// between variants costs nothing, while boxing the io_uring one would add a pointer chase.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyTransport {
    /// mio/epoll driver.
    Mio(MioTransport),
    /// io_uring driver.
    IoUring(UringTransport),
    /// Blocking std driver.
    Std(StdTransport),
}

macro_rules! dispatch {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            AnyTransport::Mio($t) => $e,
            AnyTransport::IoUring($t) => $e,
            AnyTransport::Std($t) => $e,
        }
    };
}

impl AnyTransport {
    /// What `SO_BUSY_POLL` setting the socket ended up with.
    pub fn busy_poll_status(&self) -> BusyPollStatus {
        dispatch!(self, t => t.busy_poll_status())
    }
}

impl Transport for AnyTransport {
    fn driver(&self) -> DriverKind {
        dispatch!(self, t => t.driver())
    }
    fn poll_connect(&mut self) -> io::Result<bool> {
        dispatch!(self, t => t.poll_connect())
    }
    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        dispatch!(self, t => t.read_into(buf))
    }
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        dispatch!(self, t => t.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        dispatch!(self, t => t.flush())
    }
    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        dispatch!(self, t => t.poll(interest, timeout))
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        dispatch!(self, t => t.local_addr())
    }
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        dispatch!(self, t => t.peer_addr())
    }
    fn shutdown_write(&mut self) -> io::Result<()> {
        dispatch!(self, t => t.shutdown_write())
    }
}

/// Start connecting to `addr` with the configured driver. Returns immediately (the std driver
/// excepted, which connects blocking); drive [`Transport::poll_connect`] until it says `true`.
pub fn connect(addr: SocketAddr, cfg: &SocketConfig) -> Result<AnyTransport, NetError> {
    Ok(match cfg.driver {
        DriverKind::Mio => AnyTransport::Mio(MioTransport::connect(addr, cfg)?),
        DriverKind::IoUring => AnyTransport::IoUring(UringTransport::connect(addr, cfg)?),
        DriverKind::Std => AnyTransport::Std(StdTransport::connect(addr, cfg)?),
    })
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("timed out waiting for {what}"),
    )
}

/// Drive `poll_connect` until established or `timeout` passes (cold path: start-up, reconnect).
pub fn wait_connected<T: Transport + ?Sized>(t: &mut T, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if t.poll_connect()? {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("connect"));
        }
        t.poll(Interest::Both, Some(left.min(Duration::from_millis(5))))?;
    }
}

/// Write all of `buf`, waiting for writability as needed, then flush (cold path and tests).
pub fn write_all<T: Transport + ?Sized>(
    t: &mut T,
    mut buf: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        while !buf.is_empty() {
            match t.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let flushed = match t.flush() {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => return Err(e),
        };
        if buf.is_empty() && flushed {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out("write"));
        }
        t.poll(Interest::Writable, Some(left.min(Duration::from_millis(5))))?;
    }
}

/// Fill `buf` completely, waiting for data as needed (cold path and tests).
pub fn read_exact<T: Transport + ?Sized>(
    t: &mut T,
    buf: &mut [u8],
    timeout: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    while got < buf.len() {
        match t.read_into(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out("read"));
                }
                t.poll(Interest::Readable, Some(left.min(Duration::from_millis(5))))?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
