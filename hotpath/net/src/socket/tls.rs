//! TLS client by `rustls` over any [`Transport`], itself a [`Transport`], allocation-free after
//! the handshake.
//!
//! # Why not the buffered `rustls::ClientConnection`
//!
//! `ClientConnection` queues every decrypted record as a fresh `Vec` of plaintext and every
//! encrypted record as a fresh `Vec` of ciphertext: about one allocation per message each way
//! (measured 1.1 per send and 1.35 per receive). `rustls` 0.23's unbuffered API
//! (`UnbufferedClientConnection`) does not fix that by itself: its `ReadTraffic` still copies
//! each application-data record into a `Vec` (`received_plaintext`), and `WriteTraffic::encrypt`
//! encrypts into a temporary `Vec` before copying it into the caller's buffer.
//!
//! # What this does instead
//!
//! * **Handshake** (once per connection, may allocate): driven by
//!   [`rustls::client::UnbufferedClientConnection`] over two buffers owned here (ciphertext in,
//!   ciphertext out), so no byte read from the socket is left inside `rustls` when it completes.
//!   Any application data that arrives during the handshake is kept aside and delivered first.
//! * **Data path** (allocation-free): once `rustls` reports `WriteTraffic`, the connection is
//!   turned into a [`rustls::kernel::KernelConnection`] (the API `rustls` provides for kTLS-style
//!   record layers) plus the traffic keys, and records are sealed and opened here with `ring`'s
//!   AEAD **in place**: received records are decrypted inside the receive buffer and copied once
//!   into the caller's buffer; sent data is copied once into the send buffer and encrypted there.
//!   TLS 1.3 and TLS 1.2 (AES-GCM, ChaCha20-Poly1305, the suites of the `ring` provider) are
//!   handled; records split across reads and several records per read are both fine.
//! * **Post-handshake messages**: a TLS 1.3 `NewSessionTicket` is handed to
//!   `KernelConnection::handle_new_session_ticket` (stored for resumption; `rustls` allocates
//!   there, once per ticket, normally twice per connection). A `KeyUpdate` from the peer switches
//!   the receive key (`update_rx_secret`, which allocates once per key update) and, if requested,
//!   answers with our own `KeyUpdate` and switches the send key. When the send sequence number
//!   approaches the suite's confidentiality limit, a TLS 1.3 session updates its send key by
//!   itself; a TLS 1.2 session fails instead (as `rustls` would). A TLS 1.2 `HelloRequest`
//!   (renegotiation) is ignored, as RFC 5246 allows.
//! * **Closure**: `close_notify` from the peer reads as end of stream (`Ok(0)`); end of stream
//!   without it is `UnexpectedEof` (truncation). [`Transport::shutdown_write`] sends
//!   `close_notify` before the TCP FIN.
//!
//! Limitation: a post-handshake handshake message fragmented across several records is rejected
//! (no server does that for the small `NewSessionTicket`/`KeyUpdate` messages).
//!
//! The client config must allow secret extraction (`enable_secret_extraction`);
//! [`client_config_with_roots`] sets it, and [`TlsTransport::new`] turns it on in a copy of any
//! config that lacks it. The keys stay inside this process, exactly as with `rustls` itself.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ring::aead;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{
    ClientConfig, ConnectionTrafficSecrets, ProtocolVersion, RootCertStore, SupportedCipherSuite,
};

use super::{DriverKind, Interest, NetError, Readiness, Transport};

/// A client config trusting the Mozilla root set shipped in `webpki-roots`, with `ring` crypto.
pub fn webpki_client_config() -> Result<Arc<ClientConfig>, NetError> {
    let roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    client_config_with_roots(roots)
}

/// A client config trusting exactly `roots` (e.g. a test CA), with `ring` crypto.
///
/// Secret extraction is enabled: [`TlsTransport`] needs the traffic keys to run the record layer
/// itself (see the module documentation).
pub fn client_config_with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

/// Largest plaintext of one record (RFC 8446 5.1, RFC 5246 6.2.1).
const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest ciphertext payload of one record accepted (TLS 1.2 allows plaintext + 2048).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;
/// Record header: type, version, length.
const HEADER: usize = 5;
/// AEAD tag length of every supported suite.
const TAG: usize = 16;
/// Explicit nonce of TLS 1.2 AES-GCM records.
const EXPLICIT_NONCE: usize = 8;
/// Initial (and, after the handshake, fixed) size of the receive buffer: room for several full
/// records, so a read is rarely limited by it and compaction is rare.
const RX_BUFFER: usize = 64 * 1024;
/// Initial (and, after the handshake, fixed) size of the send buffer.
const TX_BUFFER: usize = 64 * 1024;
/// Receive buffer limit during the handshake (a long certificate chain must fit whole).
const RX_HANDSHAKE_MAX: usize = 1 << 20;

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const HS_HELLO_REQUEST: u8 = 0;
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_KEY_UPDATE: u8 = 24;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;
const ALERT_LEVEL_WARNING: u8 = 1;

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn protocol_err(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

fn ignore_would_block(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        r => r,
    }
}

/// One direction's AEAD key, static IV and record sequence number.
struct Keys {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Keys {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> io::Result<Keys> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(protocol_err("TLS: unsupported AEAD for the record layer")),
        };
        let key = aead::UnboundKey::new(alg, key.as_ref())
            .map_err(|_| protocol_err("TLS: bad AEAD key length"))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| protocol_err("TLS: bad AEAD IV length"))?;
        Ok(Keys {
            key: aead::LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The per-record nonce: the static IV XOR the sequence number (RFC 8446 5.3; also how
    /// `rustls` builds TLS 1.2 nonces, whose explicit part it then sends).
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }
}

/// TLS 1.2 additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = typ;
    a[9] = 3;
    a[10] = 3;
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

/// The established session: `rustls`'s post-handshake state plus our record layer keys.
struct Session {
    kernel: KernelConnection<ClientConnectionData>,
    tls13: bool,
    /// TLS 1.2 AES-GCM: records carry an 8-byte explicit nonce.
    explicit_nonce: bool,
    tx: Keys,
    rx: Keys,
    /// Send key update (TLS 1.3) or failure (TLS 1.2) at this many records.
    tx_limit: u64,
    /// A `KeyUpdate` of ours is due (peer asked, or the limit is near) but did not fit yet.
    key_update_due: bool,
}

impl Session {
    fn new(
        secrets: rustls::ExtractedSecrets,
        kernel: KernelConnection<ClientConnectionData>,
    ) -> io::Result<Self> {
        let tls13 = kernel.protocol_version() == ProtocolVersion::TLSv1_3;
        let (tx_seq, tx) = secrets.tx;
        let (rx_seq, rx) = secrets.rx;
        let explicit_nonce =
            !tls13 && !matches!(tx, ConnectionTrafficSecrets::Chacha20Poly1305 { .. });
        let limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        Ok(Session {
            tls13,
            explicit_nonce,
            tx: Keys::new(tx_seq, tx)?,
            rx: Keys::new(rx_seq, rx)?,
            // Keep a margin below the limit (and below the 2^64 wrap).
            tx_limit: limit.min(u64::MAX >> 1).saturating_sub(1024),
            key_update_due: false,
            kernel,
        })
    }

    /// Bytes a record adds around its plaintext (header, tag, TLS 1.3 content type, TLS 1.2
    /// explicit nonce).
    fn overhead(&self) -> usize {
        HEADER
            + TAG
            + usize::from(self.tls13)
            + if self.explicit_nonce {
                EXPLICIT_NONCE
            } else {
                0
            }
    }

    /// Encrypt `data` as one record of content type `typ` into `out` (which must hold
    /// `data.len() + self.overhead()` bytes); returns the record length.
    fn seal(&mut self, typ: u8, data: &[u8], out: &mut [u8]) -> io::Result<usize> {
        debug_assert!(data.len() <= MAX_PLAINTEXT);
        let nonce = self.tx.nonce();
        let (body_start, plain_len) = if self.tls13 {
            (HEADER, data.len() + 1)
        } else if self.explicit_nonce {
            (HEADER + EXPLICIT_NONCE, data.len())
        } else {
            (HEADER, data.len())
        };
        let total = body_start + plain_len + TAG;
        let payload_len = total - HEADER;
        out[0] = if self.tls13 { CT_APPLICATION_DATA } else { typ };
        out[1] = 3;
        out[2] = 3;
        out[3..5].copy_from_slice(&(payload_len as u16).to_be_bytes());
        out[body_start..body_start + data.len()].copy_from_slice(data);
        if self.tls13 {
            out[body_start + data.len()] = typ;
        }
        if self.explicit_nonce {
            out[HEADER..HEADER + EXPLICIT_NONCE].copy_from_slice(&nonce[4..]);
        }
        let header: [u8; HEADER] = [out[0], out[1], out[2], out[3], out[4]];
        let tls12 = tls12_aad(self.tx.seq, typ, plain_len);
        let aad: &[u8] = if self.tls13 { &header } else { &tls12 };
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut out[body_start..body_start + plain_len],
            )
            .map_err(|_| protocol_err("TLS: encryption failed"))?;
        out[body_start + plain_len..total].copy_from_slice(tag.as_ref());
        self.tx.seq += 1;
        Ok(total)
    }

    /// Decrypt the record `rec` (header included) in place. Returns the inner content type and
    /// the plaintext range within `rec`.
    fn open(&mut self, rec: &mut [u8]) -> io::Result<(u8, usize, usize)> {
        let typ = rec[0];
        let header: [u8; HEADER] = [rec[0], rec[1], rec[2], rec[3], rec[4]];
        let payload = &mut rec[HEADER..];
        let nonce = self.rx.nonce();
        let bad = || protocol_err("TLS: record decryption failed (bad_record_mac)");
        if self.tls13 {
            if typ != CT_APPLICATION_DATA {
                return Err(protocol_err(
                    "TLS 1.3: unexpected unencrypted record after handshake",
                ));
            }
            let plain = self
                .rx
                .key
                .open_in_place(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(header),
                    payload,
                )
                .map_err(|_| bad())?;
            // Strip the zero padding; the last non-zero byte is the real content type.
            let Some(end) = plain.iter().rposition(|&b| b != 0) else {
                return Err(protocol_err("TLS 1.3: record without content type"));
            };
            let inner = plain[end];
            self.rx.seq += 1;
            if end > MAX_PLAINTEXT {
                return Err(protocol_err("TLS: oversized record"));
            }
            Ok((inner, HEADER, HEADER + end))
        } else {
            if typ == CT_CHANGE_CIPHER_SPEC {
                return Err(protocol_err(
                    "TLS 1.2: unexpected ChangeCipherSpec after handshake",
                ));
            }
            let (skip, nonce) = if self.explicit_nonce {
                if payload.len() < EXPLICIT_NONCE + TAG {
                    return Err(bad());
                }
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&self.rx.iv[..4]);
                n[4..].copy_from_slice(&payload[..EXPLICIT_NONCE]);
                (EXPLICIT_NONCE, n)
            } else {
                (0, nonce)
            };
            if payload.len() < skip + TAG {
                return Err(bad());
            }
            let plain_len = payload.len() - skip - TAG;
            let aad = tls12_aad(self.rx.seq, typ, plain_len);
            let plain = self
                .rx
                .key
                .open_within(
                    aead::Nonce::assume_unique_for_key(nonce),
                    aead::Aad::from(aad),
                    payload,
                    skip..,
                )
                .map_err(|_| bad())?;
            debug_assert_eq!(plain.len(), plain_len);
            self.rx.seq += 1;
            if plain_len > MAX_PLAINTEXT {
                return Err(protocol_err("TLS: oversized record"));
            }
            Ok((typ, HEADER, HEADER + plain_len))
        }
    }
}

/// Where the connection is.
enum Phase {
    /// `rustls` is running the handshake.
    Handshaking(Box<UnbufferedClientConnection>),
    /// Handshake done; records are processed here.
    Open(Box<Session>),
    /// A fatal error happened; the connection is unusable.
    Failed,
}

/// A TLS client session over an inner transport; see the module documentation.
pub struct TlsTransport<T> {
    inner: T,
    phase: Phase,
    /// Receive buffer: ciphertext in `rx_start..rx_end`; decrypted (in place) plaintext not yet
    /// read in `plain_start..plain_end`, which lies before `rx_start`.
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    plain_start: usize,
    plain_end: usize,
    /// Send buffer: encrypted records not yet accepted by the inner transport in
    /// `tx_start..tx_end`.
    tx: Vec<u8>,
    tx_start: usize,
    tx_end: usize,
    /// Application data `rustls` decrypted during the handshake, delivered first.
    early: Vec<u8>,
    early_pos: usize,
    /// The peer sent `close_notify`.
    peer_closed: bool,
}

impl<T: fmt::Debug> fmt::Debug for TlsTransport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match &self.phase {
            Phase::Handshaking(_) => "handshaking",
            Phase::Open(_) => "open",
            Phase::Failed => "failed",
        };
        f.debug_struct("TlsTransport")
            .field("inner", &self.inner)
            .field("phase", &phase)
            .field("rx_buffered", &(self.rx_end - self.rx_start))
            .field("plaintext_buffered", &(self.plain_end - self.plain_start))
            .field("tx_buffered", &(self.tx_end - self.tx_start))
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

impl<T: Transport> TlsTransport<T> {
    /// Start a TLS session to `server_name` over `inner` (which may still be connecting).
    ///
    /// If `config` does not have `enable_secret_extraction` set, a copy with it set is used.
    pub fn new(
        inner: T,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<Self, NetError> {
        let config = if config.enable_secret_extraction {
            config
        } else {
            let mut c = (*config).clone();
            c.enable_secret_extraction = true;
            Arc::new(c)
        };
        let conn = UnbufferedClientConnection::new(config, server_name)?;
        Ok(TlsTransport {
            inner,
            phase: Phase::Handshaking(Box::new(conn)),
            rx: vec![0; RX_BUFFER],
            rx_start: 0,
            rx_end: 0,
            plain_start: 0,
            plain_end: 0,
            tx: vec![0; TX_BUFFER],
            tx_start: 0,
            tx_end: 0,
            early: Vec::new(),
            early_pos: 0,
            peer_closed: false,
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

    /// Negotiated protocol version, once the handshake is done.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        match &self.phase {
            Phase::Open(s) => Some(s.kernel.protocol_version()),
            _ => None,
        }
    }

    /// Negotiated cipher suite, once the handshake is done.
    pub fn negotiated_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        match &self.phase {
            Phase::Open(s) => Some(s.kernel.negotiated_cipher_suite()),
            _ => None,
        }
    }

    /// Write buffered records to the inner transport until done or it would block, then flush
    /// it. `Err(WouldBlock)` if anything is left.
    fn push_tx(&mut self) -> io::Result<()> {
        while self.tx_start < self.tx_end {
            match self.inner.write(&self.tx[self.tx_start..self.tx_end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx_start += n,
                Err(e) => return Err(e),
            }
        }
        self.tx_start = 0;
        self.tx_end = 0;
        self.inner.flush()
    }

    /// Read once from the inner transport into the receive buffer. `Ok(0)` at end of stream.
    fn fill_rx(&mut self, handshaking: bool) -> io::Result<usize> {
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        } else if self.rx.len() - self.rx_end < HEADER + MAX_CIPHERTEXT && self.rx_start > 0 {
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        if self.rx_end == self.rx.len() {
            if !handshaking || self.rx.len() >= RX_HANDSHAKE_MAX {
                return Err(protocol_err("TLS: receive buffer full"));
            }
            let n = self.rx.len() * 2;
            self.rx.resize(n, 0);
        }
        let n = self.inner.read_into(&mut self.rx[self.rx_end..])?;
        self.rx_end += n;
        Ok(n)
    }

    /// Drive the handshake as far as possible. `Ok(true)` once established.
    fn drive_handshake(&mut self) -> io::Result<bool> {
        loop {
            let Phase::Handshaking(conn) = &mut self.phase else {
                return match self.phase {
                    Phase::Open(_) => Ok(true),
                    _ => Err(protocol_err("TLS: connection failed earlier")),
                };
            };
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.rx[self.rx_start..self.rx_end]);
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    // Best effort: send the alert `rustls` queued for the peer (e.g.
                    // `bad_certificate`), which it hands out as one more record to encode.
                    if let Ok(ConnectionState::EncodeTlsData(mut enc)) =
                        conn.process_tls_records(&mut []).state
                    {
                        if let Ok(n) = enc.encode(&mut self.tx[self.tx_end..]) {
                            self.tx_end += n;
                        }
                    }
                    self.phase = Phase::Failed;
                    let _ = self.push_tx();
                    return Err(tls_err(e));
                }
            };
            let (mut transmit, mut need_read, mut done) = (false, false, false);
            match state {
                ConnectionState::EncodeTlsData(mut enc) => loop {
                    match enc.encode(&mut self.tx[self.tx_end..]) {
                        Ok(n) => {
                            self.tx_end += n;
                            break;
                        }
                        Err(EncodeError::InsufficientSize(s)) => {
                            let n = (self.tx_end + s.required_size).max(self.tx.len() * 2);
                            self.tx.resize(n, 0);
                        }
                        Err(e) => return Err(io::Error::other(e)),
                    }
                },
                ConnectionState::TransmitTlsData(t) => {
                    // The records are in `tx`, which we own and send in order.
                    t.done();
                    transmit = true;
                }
                ConnectionState::BlockedHandshake => need_read = true,
                ConnectionState::WriteTraffic(_) => done = true,
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        let rec = rec.map_err(tls_err)?;
                        discard += rec.discard;
                        self.early.extend_from_slice(rec.payload);
                    }
                }
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => return Err(protocol_err("TLS: unexpected handshake state")),
            }
            self.rx_start += discard;
            if transmit {
                ignore_would_block(self.push_tx())?;
            }
            if need_read {
                ignore_would_block(self.push_tx())?;
                match self.fill_rx(true) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            if done {
                let Phase::Handshaking(conn) = mem::replace(&mut self.phase, Phase::Failed) else {
                    unreachable!("checked above")
                };
                let (secrets, kernel) = conn.dangerous_into_kernel_connection().map_err(tls_err)?;
                self.phase = Phase::Open(Box::new(Session::new(secrets, kernel)?));
                // From here on the buffers never grow; make sure they are at their working size.
                if self.rx.len() < RX_BUFFER {
                    self.rx.resize(RX_BUFFER, 0);
                }
                ignore_would_block(self.push_tx())?;
                return Ok(true);
            }
        }
    }

    /// The established session, driving the handshake first if needed (`WouldBlock` until done).
    fn session(&mut self) -> io::Result<&mut Session> {
        if !matches!(self.phase, Phase::Open(_)) && !self.drive_handshake()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match &mut self.phase {
            Phase::Open(s) => Ok(s),
            _ => Err(protocol_err("TLS: connection failed earlier")),
        }
    }

    /// Whether a complete record is waiting in the receive buffer.
    fn record_buffered(&self) -> bool {
        let b = &self.rx[self.rx_start..self.rx_end];
        b.len() >= HEADER && b.len() >= HEADER + usize::from(u16::from_be_bytes([b[3], b[4]]))
    }

    /// Send a `KeyUpdate` (ours) and switch the send key, if one is due and fits.
    fn send_key_update_if_due(&mut self) -> io::Result<()> {
        let Phase::Open(s) = &mut self.phase else {
            return Ok(());
        };
        if !s.key_update_due {
            return Ok(());
        }
        let need = 5 + s.overhead();
        if self.tx.len() - self.tx_end < need {
            if self.tx_start > 0 {
                self.tx.copy_within(self.tx_start..self.tx_end, 0);
                self.tx_end -= self.tx_start;
                self.tx_start = 0;
            }
            if self.tx.len() - self.tx_end < need {
                return Ok(());
            }
        }
        // KeyUpdate { request_update = update_not_requested }.
        let msg = [HS_KEY_UPDATE, 0, 0, 1, 0];
        self.tx_end += s.seal(CT_HANDSHAKE, &msg, &mut self.tx[self.tx_end..])?;
        let (seq, secrets) = s.kernel.update_tx_secret().map_err(tls_err)?;
        s.tx = Keys::new(seq, secrets)?;
        s.key_update_due = false;
        Ok(())
    }

    /// Decrypt and handle the next complete buffered record. `Ok(false)` if none is complete.
    fn open_next_record(&mut self) -> io::Result<bool> {
        if !self.record_buffered() {
            if self.rx_end - self.rx_start >= HEADER {
                let b = &self.rx[self.rx_start..];
                if usize::from(u16::from_be_bytes([b[3], b[4]])) > MAX_CIPHERTEXT {
                    return Err(protocol_err("TLS: record overflow"));
                }
            }
            return Ok(false);
        }
        let Phase::Open(s) = &mut self.phase else {
            return Ok(false);
        };
        let start = self.rx_start;
        let len =
            HEADER + usize::from(u16::from_be_bytes([self.rx[start + 3], self.rx[start + 4]]));
        let rec = &mut self.rx[start..start + len];
        let (typ, a, b) = s.open(rec)?;
        self.rx_start += len;
        let body = &rec[a..b];
        match typ {
            CT_APPLICATION_DATA => {
                self.plain_start = start + a;
                self.plain_end = start + b;
            }
            CT_ALERT => {
                let &[level, desc] = body else {
                    return Err(protocol_err("TLS: malformed alert"));
                };
                match desc {
                    ALERT_CLOSE_NOTIFY => self.peer_closed = true,
                    ALERT_USER_CANCELED => {}
                    _ if !s.tls13 && level == ALERT_LEVEL_WARNING => {}
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("TLS: peer sent fatal alert {desc}"),
                        ))
                    }
                }
            }
            CT_HANDSHAKE => {
                let mut rest = body;
                while !rest.is_empty() {
                    let &[t, l0, l1, l2, ref tail @ ..] = rest else {
                        return Err(protocol_err("TLS: fragmented post-handshake message"));
                    };
                    let l = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    if tail.len() < l {
                        return Err(protocol_err("TLS: fragmented post-handshake message"));
                    }
                    let (msg, tail) = tail.split_at(l);
                    rest = tail;
                    match t {
                        HS_NEW_SESSION_TICKET if s.tls13 => {
                            s.kernel.handle_new_session_ticket(msg).map_err(tls_err)?;
                        }
                        HS_KEY_UPDATE if s.tls13 => {
                            if !rest.is_empty() {
                                return Err(protocol_err("TLS 1.3: KeyUpdate not at record end"));
                            }
                            let &[requested] = msg else {
                                return Err(protocol_err("TLS 1.3: malformed KeyUpdate"));
                            };
                            if requested > 1 {
                                return Err(protocol_err("TLS 1.3: malformed KeyUpdate"));
                            }
                            let (seq, secrets) = s.kernel.update_rx_secret().map_err(tls_err)?;
                            s.rx = Keys::new(seq, secrets)?;
                            if requested == 1 {
                                s.key_update_due = true;
                            }
                        }
                        HS_HELLO_REQUEST if !s.tls13 => {}
                        _ => return Err(protocol_err("TLS: unexpected post-handshake message")),
                    }
                }
                if s.key_update_due {
                    self.send_key_update_if_due()?;
                    ignore_would_block(self.push_tx())?;
                }
            }
            _ => return Err(protocol_err("TLS: unexpected record type")),
        }
        Ok(true)
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
        self.drive_handshake()
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.session()?;
        loop {
            if self.early_pos < self.early.len() {
                let n = buf.len().min(self.early.len() - self.early_pos);
                buf[..n].copy_from_slice(&self.early[self.early_pos..self.early_pos + n]);
                self.early_pos += n;
                if self.early_pos == self.early.len() {
                    self.early = Vec::new();
                    self.early_pos = 0;
                }
                return Ok(n);
            }
            if self.plain_start < self.plain_end {
                let n = buf.len().min(self.plain_end - self.plain_start);
                buf[..n].copy_from_slice(&self.rx[self.plain_start..self.plain_start + n]);
                self.plain_start += n;
                return Ok(n);
            }
            if self.peer_closed {
                return Ok(0);
            }
            if self.open_next_record()? {
                continue;
            }
            match self.fill_rx(false)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => continue,
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.session()?;
        self.send_key_update_if_due()?;
        let Phase::Open(s) = &mut self.phase else {
            unreachable!("session() checked")
        };
        if s.key_update_due {
            // Our KeyUpdate must go first and does not fit yet.
            ignore_would_block(self.push_tx())?;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let overhead = s.overhead();
        if self.tx_start > 0
            && self.tx.len() - self.tx_end < overhead + MAX_PLAINTEXT.min(buf.len())
        {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
        let mut taken = 0;
        while taken < buf.len() {
            let room = self.tx.len() - self.tx_end;
            if room <= overhead {
                break;
            }
            if s.tx.seq >= s.tx_limit {
                if !s.tls13 {
                    return Err(protocol_err(
                        "TLS 1.2: send key exhausted (confidentiality limit)",
                    ));
                }
                s.key_update_due = true;
                break;
            }
            let n = (buf.len() - taken).min(MAX_PLAINTEXT).min(room - overhead);
            self.tx_end += s.seal(
                CT_APPLICATION_DATA,
                &buf[taken..taken + n],
                &mut self.tx[self.tx_end..],
            )?;
            taken += n;
        }
        if s.key_update_due {
            self.send_key_update_if_due()?;
        }
        ignore_would_block(self.push_tx())?;
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session()?;
        self.send_key_update_if_due()?;
        self.push_tx()
    }

    fn poll(&mut self, interest: Interest, timeout: Option<Duration>) -> io::Result<Readiness> {
        if interest.readable()
            && matches!(self.phase, Phase::Open(_))
            && (self.early_pos < self.early.len()
                || self.plain_start < self.plain_end
                || self.peer_closed
                || self.record_buffered())
        {
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
        if let Phase::Open(s) = &mut self.phase {
            let need = 2 + s.overhead();
            if self.tx.len() - self.tx_end < need && self.tx_start > 0 {
                self.tx.copy_within(self.tx_start..self.tx_end, 0);
                self.tx_end -= self.tx_start;
                self.tx_start = 0;
            }
            if self.tx.len() - self.tx_end >= need {
                let alert = [ALERT_LEVEL_WARNING, ALERT_CLOSE_NOTIFY];
                self.tx_end += s.seal(CT_ALERT, &alert, &mut self.tx[self.tx_end..])?;
            }
            ignore_would_block(self.push_tx())?;
        }
        self.inner.shutdown_write()
    }
}
