//! A minimal blocking RFC 6455 client for the simulator's WebSocket endpoints (market streams,
//! user data stream, WebSocket API), written out here rather than taken from the engine so a
//! test of the engine's WebSocket code does not check it against itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

/// A minimal blocking RFC 6455 client (masks its frames, as clients must).
pub struct Ws {
    s: BufReader<TcpStream>,
}

/// A frame the client cares about.
pub enum Msg {
    /// A text frame's payload.
    Text(Vec<u8>),
    /// A close frame's status code.
    Close(u16),
}

impl Ws {
    /// Opens `path` on `addr` (the upgrade must be accepted).
    pub fn connect(addr: SocketAddr, path: &str) -> Ws {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            head.push_str(&l);
            if l == "\r\n" {
                break;
            }
        }
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        Ws { s: r }
    }

    /// Sends one frame of opcode `op`, masked as a client must unless `masked` is false.
    pub fn send(&mut self, op: u8, payload: &[u8], masked: bool) {
        let mut f = vec![0x80 | op];
        let m = if masked { 0x80 } else { 0 };
        f.push(m | payload.len() as u8);
        let key = [1u8, 2, 3, 4];
        if masked {
            f.extend_from_slice(&key);
        }
        f.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| if masked { b ^ key[i % 4] } else { *b }),
        );
        self.s.get_mut().write_all(&f).unwrap();
    }

    /// The next text or close frame (other frames skipped).
    pub fn recv(&mut self) -> Msg {
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.s.read_exact(&mut b).unwrap();
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.s.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut p = vec![0u8; len];
            self.s.read_exact(&mut p).unwrap();
            match h[0] & 0x0f {
                1 => return Msg::Text(p),
                8 => return Msg::Close(u16::from_be_bytes([p[0], p[1]])),
                _ => continue,
            }
        }
    }

    /// Reads exactly `buf.len()` raw bytes (a frame read byte for byte).
    pub fn read_raw(&mut self, buf: &mut [u8]) {
        self.s.read_exact(buf).unwrap();
    }

    /// The next text frame's payload (a close frame fails the test).
    pub fn next_text(&mut self) -> Vec<u8> {
        match self.recv() {
            Msg::Text(t) => t,
            Msg::Close(c) => panic!("closed {c}"),
        }
    }

    /// The next frame, which must be text, as JSON.
    pub fn text(&mut self) -> Value {
        match self.recv() {
            Msg::Text(t) => serde_json::from_slice(&t).unwrap(),
            Msg::Close(c) => panic!("closed {c}"),
        }
    }
}
