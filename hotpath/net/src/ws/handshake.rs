//! The HTTP/1.1 opening handshake (RFC 6455 section 4), both sides, into caller buffers.
//!
//! The client builds its upgrade request with a fresh 16-byte random `Sec-WebSocket-Key` and
//! checks the server's `101 Switching Protocols` answer, including `Sec-WebSocket-Accept` =
//! base64(SHA-1(key + GUID)). The server helpers (used by the venue simulator and the tests)
//! parse an upgrade request and write the matching response. HTTP heads are parsed by `httparse`
//! into stack arrays; nothing allocates.

use std::io::Write;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::{Digest, Sha1};

use super::error::{HandshakeError, WsError};

/// The GUID RFC 6455 appends to the key before hashing.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Maximum number of headers parsed in a handshake head.
pub const MAX_HEADERS: usize = 48;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)), 28 ASCII bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 28];
    let n = B64
        .encode_slice(digest, &mut out)
        .expect("base64 of 20 bytes is 28 bytes");
    debug_assert_eq!(n, 28);
    out
}

/// Run `emit` into `out`; on overflow, run it again into a counter to report the size needed.
fn write_into(
    out: &mut [u8],
    emit: impl Fn(&mut dyn Write) -> std::io::Result<()>,
) -> Result<usize, WsError> {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cap = out.len();
    let mut w = &mut out[..];
    match emit(&mut w) {
        Ok(()) => Ok(cap - w.len()),
        Err(_) => {
            let mut c = Count(0);
            let _ = emit(&mut c);
            Err(WsError::BufferTooSmall {
                need: c.0,
                have: cap,
            })
        }
    }
}

fn header<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Client side of the opening handshake: holds the key sent so the answer can be verified.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    key: [u8; 24],
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    /// A handshake with a fresh key: 16 bytes from the operating system's CSPRNG, base64-encoded.
    pub fn new() -> Self {
        let mut raw = [0u8; 16];
        OsRng.fill_bytes(&mut raw);
        Self::with_key_bytes(raw)
    }

    /// A handshake with a given 16-byte nonce (tests).
    pub fn with_key_bytes(raw: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        B64.encode_slice(raw, &mut key)
            .expect("base64 of 16 bytes is 24 bytes");
        ClientHandshake { key }
    }

    /// The `Sec-WebSocket-Key` value.
    pub fn key(&self) -> &str {
        std::str::from_utf8(&self.key).expect("base64 is ASCII")
    }

    /// The `Sec-WebSocket-Accept` value the server must answer with.
    pub fn expected_accept(&self) -> [u8; 28] {
        accept_key(&self.key)
    }

    /// Write the GET upgrade request for `path` on `host` (sent verbatim as the `Host` header,
    /// include a non-default port) with optional extra headers; returns the bytes written.
    pub fn write_request(
        &self,
        host: &str,
        path: &str,
        extra_headers: &[(&str, &str)],
        out: &mut [u8],
    ) -> Result<usize, WsError> {
        let key = self.key();
        write_into(out, |w| {
            write!(
                w,
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            )?;
            for (k, v) in extra_headers {
                write!(w, "{k}: {v}\r\n")?;
            }
            w.write_all(b"\r\n")
        })
    }

    /// Parse the server's answer from the start of `buf`. `Ok(None)`: the head is incomplete.
    /// `Ok(Some(n))`: the upgrade succeeded and the head took `n` bytes (frames may follow).
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf).map_err(HandshakeError::Http)? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let code = resp.code.unwrap_or(0);
        if code != 101 {
            return Err(HandshakeError::Status(code));
        }
        let hs = &*resp.headers;
        match header(hs, "upgrade") {
            Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"websocket") => {}
            _ => return Err(HandshakeError::Header("Upgrade")),
        }
        match header(hs, "connection") {
            Some(v) if has_token(v, "upgrade") => {}
            _ => return Err(HandshakeError::Header("Connection")),
        }
        let accept = header(hs, "sec-websocket-accept")
            .ok_or(HandshakeError::Header("Sec-WebSocket-Accept"))?;
        if accept.trim_ascii() != self.expected_accept() {
            return Err(HandshakeError::AcceptMismatch);
        }
        // We offer no extension and no subprotocol: a server selecting one fails the handshake
        // (RFC 6455 section 4.1, items 5 and 6 of the client's checks).
        if header(hs, "sec-websocket-extensions").is_some_and(|v| !v.trim_ascii().is_empty()) {
            return Err(HandshakeError::NotOffered("Sec-WebSocket-Extensions"));
        }
        if header(hs, "sec-websocket-protocol").is_some_and(|v| !v.trim_ascii().is_empty()) {
            return Err(HandshakeError::NotOffered("Sec-WebSocket-Protocol"));
        }
        Ok(Some(n))
    }
}

/// A parsed client upgrade request (server side); borrows the receive buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRequest<'a> {
    /// Request target, e.g. `/ws/btcusdt@trade`.
    pub path: &'a str,
    /// `Host` header, if present.
    pub host: Option<&'a str>,
    /// `Sec-WebSocket-Key`.
    pub key: &'a str,
    /// Bytes the request head took.
    pub consumed: usize,
}

/// Parse a client's upgrade request (server side). `Ok(None)`: incomplete.
pub fn parse_client_request(buf: &[u8]) -> Result<Option<ServerRequest<'_>>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf).map_err(HandshakeError::Http)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    if req.method != Some("GET") {
        return Err(HandshakeError::NotUpgrade("method is not GET"));
    }
    let path = req.path.unwrap_or("/");
    let hs = &*req.headers;
    match header(hs, "upgrade") {
        Some(v) if has_token(v, "websocket") => {}
        _ => return Err(HandshakeError::Header("Upgrade")),
    }
    match header(hs, "connection") {
        Some(v) if has_token(v, "upgrade") => {}
        _ => return Err(HandshakeError::Header("Connection")),
    }
    match header(hs, "sec-websocket-version") {
        Some(v) if v.trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::Header("Sec-WebSocket-Version")),
    }
    let key = header(hs, "sec-websocket-key")
        .and_then(|v| std::str::from_utf8(v.trim_ascii()).ok())
        .filter(|k| k.len() == 24)
        .ok_or(HandshakeError::Header("Sec-WebSocket-Key"))?;
    let host = header(hs, "host").and_then(|v| std::str::from_utf8(v).ok());
    Ok(Some(ServerRequest {
        path,
        host,
        key,
        consumed,
    }))
}

/// Write the `101 Switching Protocols` answer for a client key; returns the bytes written.
pub fn write_server_response(client_key: &str, out: &mut [u8]) -> Result<usize, WsError> {
    let accept = accept_key(client_key.as_bytes());
    let accept = std::str::from_utf8(&accept).expect("base64 is ASCII");
    write_into(out, |w| {
        write!(
            w,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
    })
}
