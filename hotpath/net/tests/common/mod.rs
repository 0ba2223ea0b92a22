//! Shared test helpers: a blocking WebSocket server built on the crate's server-side helpers,
//! and a self-signed TLS server config. (The counting allocator is `testkit::CountingAllocator`.)
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::Arc;

use net::ws::frame::{encode_frame, Decoded, FrameDecoder, OpCode, Role};
use net::ws::{parse_client_request, write_server_response};

/// Server side of one WebSocket connection over any blocking stream.
pub struct WsServer<S> {
    pub stream: S,
    buf: Vec<u8>,
    len: usize,
    pub path: String,
}

impl<S: Read + Write> WsServer<S> {
    /// Read the upgrade request and answer 101.
    pub fn accept(mut stream: S) -> Self {
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0;
        let (consumed, path, key) = loop {
            let n = stream.read(&mut buf[len..]).expect("read request");
            assert!(n > 0, "client closed during handshake");
            len += n;
            if let Some(req) = parse_client_request(&buf[..len]).expect("valid request") {
                break (req.consumed, req.path.to_string(), req.key.to_string());
            }
        };
        let mut resp = [0u8; 256];
        let n = write_server_response(&key, &mut resp).unwrap();
        stream.write_all(&resp[..n]).unwrap();
        stream.flush().unwrap();
        buf.copy_within(consumed..len, 0);
        len -= consumed;
        WsServer {
            stream,
            buf,
            len,
            path,
        }
    }

    /// Encode a server (unmasked) frame into `out` (cleared first).
    pub fn frame_into(out: &mut Vec<u8>, fin: bool, op: OpCode, payload: &[u8]) {
        out.resize(payload.len() + 14, 0);
        let n = encode_frame(fin, op, None, payload, out).unwrap();
        out.truncate(n);
    }

    pub fn send(&mut self, fin: bool, op: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        Self::frame_into(&mut out, fin, op, payload);
        self.stream.write_all(&out).unwrap();
        self.stream.flush().unwrap();
    }

    /// Next frame from the client (masked), blocking: (fin, opcode, payload). `None` at EOF.
    pub fn recv(&mut self) -> Option<(bool, OpCode, Vec<u8>)> {
        let dec = FrameDecoder::new(Role::Server, 1 << 24);
        loop {
            match dec
                .decode(&mut self.buf[..self.len])
                .expect("valid client frame")
            {
                Decoded::Frame(f) => {
                    let p = self.buf[f.payload.clone()].to_vec();
                    self.buf.copy_within(f.consumed..self.len, 0);
                    self.len -= f.consumed;
                    return Some((f.fin, f.opcode, p));
                }
                Decoded::NeedMore { total } => {
                    if self.buf.len() < total {
                        self.buf.resize(total, 0);
                    }
                    let n = self.stream.read(&mut self.buf[self.len..]).ok()?;
                    if n == 0 {
                        return None;
                    }
                    self.len += n;
                }
            }
        }
    }
}

/// A self-signed certificate for `localhost`: (server config, client root store).
pub fn tls_pair() -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    (Arc::new(server), roots)
}
