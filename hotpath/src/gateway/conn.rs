//! One keep-alive HTTP/1.1 connection of the gateway's pool: a `net` transport (plain TCP for
//! the simulator, TLS for the venue), a preallocated request buffer and a preallocated
//! response buffer, and at most one request in flight (HTTP/1.1 without pipelining, so the
//! pool, not the connection, gives concurrency).
//!
//! Requests are written by the gateway into [`Conn::tx`] and marked ready with
//! [`Conn::start`]; [`Conn::drive`] writes what the socket takes, reads what arrived and, when
//! a whole response is buffered, returns its [`Head`] (status, body span, the rate-limit
//! headers) parsed by `httparse`. Only `Content-Length` bodies are understood (Binance's REST
//! API sends them); a chunked or otherwise unframed response is an error that closes the
//! connection. Nothing here allocates once the connection is established.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub use crate::transport::MaybeTls;
use net::socket::{AnyTransport, TlsTransport};
use net::{NetError, SocketConfig, Transport};

/// Wraps a connected-or-connecting plain transport in TLS.
pub type TlsConnect =
    Arc<dyn Fn(AnyTransport) -> Result<TlsTransport<AnyTransport>, NetError> + Send + Sync>;

/// A TLS wrapper for `host` trusting the Mozilla roots (`webpki-roots`).
pub fn tls_connector(host: &str) -> Result<TlsConnect, NetError> {
    let config = net::socket::webpki_client_config()?;
    let name = host
        .to_string()
        .try_into()
        .map_err(|_| NetError::Config("the host is not a valid TLS server name"))?;
    Ok(Arc::new(move |t| {
        TlsTransport::new(t, Arc::clone(&config), Clone::clone(&name))
    }))
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// Socket address (resolved once, at start-up).
    pub addr: SocketAddr,
    /// Host name, for the `Host` header and TLS SNI.
    pub host: String,
    /// TLS wrapper; `None` for plain TCP.
    pub tls: Option<TlsConnect>,
    /// Socket options and driver.
    pub socket: SocketConfig,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("host", &self.host)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Target {
    /// `host:port` resolved now, over TLS to `host` (SNI and certificate name) when `tls`;
    /// `host_header` is what the `Host` header says (the port included unless it is the
    /// scheme's default).
    pub fn resolve(
        host: &str,
        port: u16,
        tls: bool,
        host_header: String,
    ) -> Result<Target, String> {
        use std::net::ToSocketAddrs;
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host} has no address"))?;
        let tls = if tls {
            Some(tls_connector(host).map_err(|e| format!("TLS to {host}: {e}"))?)
        } else {
            None
        };
        Ok(Target {
            addr,
            host: host_header,
            tls,
            socket: SocketConfig::default(),
        })
    }

    /// Opens a connection (non-blocking connect; drive it with [`Transport::poll_connect`]).
    pub fn open(&self) -> Result<MaybeTls, NetError> {
        let t = net::connect(self.addr, &self.socket)?;
        Ok(match &self.tls {
            Some(wrap) => MaybeTls::Tls(wrap(t)?),
            None => MaybeTls::Plain(t),
        })
    }
}

/// What a complete response looks like: status, where its body is in [`Conn::rx`], and the
/// headers the gateway acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// Body start in the receive buffer.
    pub body_start: usize,
    /// Body length.
    pub body_len: usize,
    /// Total response length (head plus body).
    pub total: usize,
    /// `X-MBX-USED-WEIGHT-1M` (or `-1m`), if present.
    pub used_weight: Option<u32>,
    /// `Retry-After` in seconds, if present.
    pub retry_after_s: Option<u32>,
    /// The server will close the connection after this response.
    pub close: bool,
}

/// Why a connection is unusable (it is closed and reopened by the gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnFault {
    /// Socket error or end of stream.
    Io,
    /// A response the gateway cannot frame (malformed, chunked, too large).
    Protocol,
}

/// One pooled connection.
pub struct Conn {
    /// The transport, `None` while closed.
    pub t: Option<MaybeTls>,
    /// The transport finished connecting (and TLS handshaking).
    pub connected: bool,
    /// Request bytes (written by the gateway).
    pub tx: Box<[u8]>,
    /// Length of the request in `tx`.
    pub tx_len: usize,
    /// Bytes of `tx` already accepted by the transport.
    pub tx_sent: usize,
    /// Response bytes.
    pub rx: Box<[u8]>,
    /// Bytes in `rx`.
    pub rx_len: usize,
    /// When the request in flight was started (`None`: idle).
    pub since: Option<Instant>,
    /// When the connection was (re)opened.
    pub opened: Instant,
}

impl Conn {
    /// A closed connection with buffers of the given sizes.
    pub fn new(tx: usize, rx: usize) -> Self {
        Conn {
            t: None,
            connected: false,
            tx: vec![0; tx].into_boxed_slice(),
            tx_len: 0,
            tx_sent: 0,
            rx: vec![0; rx].into_boxed_slice(),
            rx_len: 0,
            since: None,
            opened: Instant::now(),
        }
    }

    /// Open (cold: the driver allocates its poller and, for TLS, its buffers).
    pub fn open(&mut self, target: &Target) -> Result<(), NetError> {
        self.close();
        self.t = Some(target.open()?);
        self.opened = Instant::now();
        Ok(())
    }

    /// Drop the transport and forget any request in flight.
    pub fn close(&mut self) {
        self.t = None;
        self.connected = false;
        self.tx_len = 0;
        self.tx_sent = 0;
        self.rx_len = 0;
        self.since = None;
    }

    /// Ready for a new request: connected and nothing in flight.
    #[inline]
    pub fn idle(&self) -> bool {
        self.t.is_some() && self.connected && self.since.is_none()
    }

    /// Marks the `len` bytes written into `tx` as the request in flight.
    #[inline]
    pub fn start(&mut self, len: usize, now: Instant) {
        self.tx_len = len;
        self.tx_sent = 0;
        self.rx_len = 0;
        self.since = Some(now);
    }

    /// Connects, writes, reads; returns a complete response's head once one is buffered.
    pub fn drive(&mut self) -> Result<Option<Head>, ConnFault> {
        let Some(t) = self.t.as_mut() else {
            return Ok(None);
        };
        if !self.connected {
            match t.poll_connect() {
                Ok(true) => self.connected = true,
                Ok(false) => return Ok(None),
                Err(_) => return Err(ConnFault::Io),
            }
        }
        while self.tx_sent < self.tx_len {
            match t.write(&self.tx[self.tx_sent..self.tx_len]) {
                Ok(0) => return Err(ConnFault::Io),
                Ok(n) => self.tx_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ConnFault::Io),
            }
        }
        match t.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(ConnFault::Io),
        }
        if self.since.is_none() {
            // Idle: anything the server sends now is unsolicited; only end of stream matters.
            let mut probe = [0u8; 64];
            return match t.read_into(&mut probe) {
                Ok(0) => Err(ConnFault::Io),
                Ok(_) => Err(ConnFault::Protocol),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(_) => Err(ConnFault::Io),
            };
        }
        loop {
            if self.rx_len == self.rx.len() {
                return Err(ConnFault::Protocol);
            }
            match t.read_into(&mut self.rx[self.rx_len..]) {
                Ok(0) => return Err(ConnFault::Io),
                Ok(n) => self.rx_len += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ConnFault::Io),
            }
        }
        parse_head(&self.rx[..self.rx_len])
    }

    /// Forget the response just handled (the connection is idle again).
    #[inline]
    pub fn finish(&mut self) {
        self.since = None;
        self.rx_len = 0;
        self.tx_len = 0;
        self.tx_sent = 0;
    }
}

fn parse_u32(v: &[u8]) -> Option<u32> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0')))
}

/// Parses a buffered response: `Ok(None)` while incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, ConnFault> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ConnFault::Protocol),
    };
    let status = resp.code.ok_or(ConnFault::Protocol)?;
    let mut h = Head {
        status,
        body_start: head_len,
        body_len: 0,
        total: head_len,
        used_weight: None,
        retry_after_s: None,
        close: false,
    };
    let mut length = None;
    for hd in resp.headers.iter() {
        let n = hd.name.as_bytes();
        if n.eq_ignore_ascii_case(b"content-length") {
            length = Some(parse_u32(hd.value).ok_or(ConnFault::Protocol)? as usize);
        } else if n.eq_ignore_ascii_case(b"x-mbx-used-weight-1m") {
            h.used_weight = parse_u32(hd.value);
        } else if n.eq_ignore_ascii_case(b"retry-after") {
            h.retry_after_s = parse_u32(hd.value);
        } else if n.eq_ignore_ascii_case(b"connection") {
            h.close = hd.value.trim_ascii().eq_ignore_ascii_case(b"close");
        } else if n.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(ConnFault::Protocol);
        }
    }
    let len = length.ok_or(ConnFault::Protocol)?;
    if buf.len() < head_len + len {
        return Ok(None);
    }
    h.body_len = len;
    h.total = head_len + len;
    Ok(Some(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_partial_complete_and_refused() {
        let full = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 5\r\nX-MBX-USED-WEIGHT-1M: 61\r\nRetry-After: 7\r\n\r\nhello";
        for cut in 0..full.len() {
            assert_eq!(parse_head(&full[..cut]), Ok(None), "{cut}");
        }
        let h = parse_head(full).unwrap().unwrap();
        assert_eq!(h.status, 429);
        assert_eq!(h.used_weight, Some(61));
        assert_eq!(h.retry_after_s, Some(7));
        assert_eq!(&full[h.body_start..h.body_start + h.body_len], b"hello");
        assert_eq!(h.total, full.len());
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ConnFault::Protocol)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(ConnFault::Protocol)
        );
        assert_eq!(parse_head(b"garbage\r\n\r\n"), Err(ConnFault::Protocol));
    }
}
