//! TLS client by `rustls` over any [`Transport`], itself a [`Transport`].
//!
//! `rustls::ClientConnection` reads ciphertext straight from the inner transport into its own
//! (reused) deframing buffer via `read_tls`, and writes queued records to it via `write_tls`; the
//! wrapper adds no buffer of its own. The TLS handshake is driven by [`Transport::poll_connect`],
//! so callers that wait for "connected" get an established TLS session.
//!
//! Allocation: `rustls`'s buffered API allocates internally per record (one `Vec` for each
//! decrypted record it queues as plaintext, one for each encrypted record it queues for sending);
//! see `tests/tls_alloc.rs` for the measured count. Removing those would take `rustls`'s
//! unbuffered API (`UnbufferedClientConnection`), which decrypts in place in a caller buffer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::{DriverKind, Interest, NetError, Readiness, Transport};

/// A client config trusting the Mozilla root set shipped in `webpki-roots`, with `ring` crypto.
pub fn webpki_client_config() -> Result<Arc<ClientConfig>, NetError> {
    let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    client_config_with_roots(roots)
}

/// A client config trusting exactly `roots` (e.g. a test CA), with `ring` crypto.
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// `io::Read`/`io::Write` view of a transport for `read_tls`/`write_tls`.
struct Io<'a, T: ?Sized>(&'a mut T);

impl<T: Transport + ?Sized> io::Read for Io<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_into(buf)
    }
}

impl<T: Transport + ?Sized> io::Write for Io<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// A TLS client session over an inner transport.
#[derive(Debug)]
pub struct TlsTransport<T> {
    inner: T,
    conn: ClientConnection,
    /// Decrypted bytes are waiting in `rustls`'s plaintext queue.
    plaintext_pending: bool,
}

impl<T: Transport> TlsTransport<T> {
    /// Start a TLS session to `server_name` over `inner` (which may still be connecting).
    pub fn new(
        inner: T,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<Self, NetError> {
        let conn = ClientConnection::new(config, server_name)?;
        Ok(TlsTransport {
            inner,
            conn,
            plaintext_pending: false,
        })
    }

    /// The inner transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The inner transport, mutably (reading or writing it directly corrupts the TLS stream).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The `rustls` connection (negotiated version, cipher suite, ALPN...).
    pub fn connection(&self) -> &ClientConnection {
        &self.conn
    }

    /// Write queued TLS records to the inner transport until done or it would block.
    fn push_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Io(&mut self.inner)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        self.inner.flush()
    }

    /// Read ciphertext from the inner transport once and process it. `Ok(false)` at end of stream.
    fn pull_tls(&mut self) -> io::Result<bool> {
        let n = self.conn.read_tls(&mut Io(&mut self.inner))?;
        let state = self.conn.process_new_packets().map_err(tls_err)?;
        self.plaintext_pending = state.plaintext_bytes_to_read() > 0;
        if self.conn.wants_write() {
            match self.push_tls() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n > 0)
    }
}

fn ignore_would_block(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        r => r,
    }
}

impl<T: Transport> Transport for TlsTransport<T> {
    fn driver(&self) -> DriverKind {
        self.inner.driver()
    }

    fn poll_connect(&mut self) -> io::Result<bool> {
        if !self.inner.poll_connect()? {
            return Ok(false);
        }
        if !self.conn.is_handshaking() {
            return Ok(true);
        }
        ignore_would_block(self.push_tls())?;
        loop {
            match self.pull_tls() {
                Ok(true) if self.conn.is_handshaking() => continue,
                Ok(true) => break,
                Ok(false) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        ignore_would_block(self.push_tls())?;
        Ok(!self.conn.is_handshaking())
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match io::Read::read(&mut self.conn.reader(), buf) {
                Ok(n) => {
                    // Ok(0) here is a clean close_notify.
                    if n > 0 {
                        self.plaintext_pending = true;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.plaintext_pending = false;
                }
                Err(e) => return Err(e),
            }
            match self.pull_tls() {
                Ok(true) => {}
                // End of stream: the reader reports a clean close or UnexpectedEof next turn.
                Ok(false) => {
                    return match io::Read::read(&mut self.conn.reader(), buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            Err(io::ErrorKind::UnexpectedEof.into())
                        }
                        r => r,
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = io::Write::write(&mut self.conn.writer(), buf)?;
        ignore_would_block(self.push_tls())?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_tls()?;
        if self.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        if interest.readable() && self.plaintext_pending {
            return Ok(Readiness {
                readable: true,
                writable: false,
            });
        }
        self.inner.poll(interest, timeout)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        ignore_would_block(self.push_tls())?;
        self.inner.shutdown_write()
    }
}
