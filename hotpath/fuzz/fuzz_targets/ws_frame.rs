//! RFC 6455 framing of `net::ws` on arbitrary bytes: frame decoding, reassembly and the client
//! state machine must never panic, every decoded payload range must lie inside the buffer, and
//! encoding then decoding must give the frame back.
//!
//! Input: byte 0 configures the run (decoder role, frame and message limits, UTF-8 validation,
//! whether the client sends and whether the mock socket interleaves `WouldBlock`), byte 1 seeds
//! how the stream is cut into socket reads, the rest is the byte stream. Three checks run on
//! every input:
//!
//! 1. **Decoder + reassembler**: `FrameDecoder::decode` over the stream for the chosen role
//!    (client: unmasked frames expected; server: masked), each frame fed to a `Reassembler`.
//!    Checked: payload range inside the buffer and inside the frame and agreeing with
//!    `parse_header`, payloads unmasked exactly (XOR with the key, or untouched when unmasked)
//!    and no other byte modified, `NeedMore` asks for more than the buffer holds, every strict
//!    prefix of a complete frame is `NeedMore` (never an error, never a frame, never modified),
//!    messages within the limits.
//! 2. **Client state machine**: a `WsClient` over a mock transport that answers the handshake
//!    correctly, then delivers the stream in chunks (with `WouldBlock` in between if asked),
//!    then end of stream. Checked: text messages are valid UTF-8 (the client builds them with
//!    `from_utf8_unchecked`), sizes within the limits, and everything the client wrote after
//!    its request (pongs, close replies, our sends) decodes as masked frames.
//! 3. **Round trip**: a frame built from the input (fin, opcode, optional mask, payload) is
//!    encoded and decoded back with the matching role; the other role must reject it; the
//!    payload, cut into fragments with a ping in between, reassembles to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use net::socket::{DriverKind, Interest, Readiness, Transport};
use net::ws::frame::{encode_frame, header_len, parse_header, MAX_CONTROL_PAYLOAD};
use net::ws::{
    parse_client_request, write_server_response, Decoded, FrameDecoder, FrameEncoder, Message,
    OpCode, Push, Reassembler, Role, WsClient, WsConfig, WsError,
};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Frame payload limits selectable by the config byte.
const MAX_FRAME: [usize; 4] = [0, 125, 300, 70_000];
/// Message limits selectable by the config byte.
const MAX_MESSAGE: [usize; 4] = [1, 125, 1_000, 70_000];

/// Run configuration decoded from byte 0.
#[derive(Clone, Copy, Debug)]
struct Cfg {
    role: Role,
    max_frame: usize,
    max_message: usize,
    validate_utf8: bool,
    client_sends: bool,
    would_block: bool,
}

impl Cfg {
    fn from_byte(b: u8) -> Cfg {
        Cfg {
            role: if b & 1 == 0 {
                Role::Client
            } else {
                Role::Server
            },
            max_frame: MAX_FRAME[((b >> 1) & 3) as usize],
            max_message: MAX_MESSAGE[((b >> 3) & 3) as usize],
            validate_utf8: b & 0x20 != 0,
            client_sends: b & 0x40 != 0,
            would_block: b & 0x80 != 0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Decoder + reassembler
// ---------------------------------------------------------------------------------------------

fn check_decoder(cfg: Cfg, stream: &[u8]) {
    let dec = FrameDecoder::new(cfg.role, cfg.max_frame);
    let mut reasm = Reassembler::new(cfg.max_message, cfg.validate_utf8);
    let mut buf = stream.to_vec();
    // What the buffer must hold at the end: the input with every decoded payload unmasked.
    let mut expected = stream.to_vec();
    let mut pos = 0;
    while pos < buf.len() {
        let orig = &stream[pos..];
        // The header as parsed on its own, to cross-check the decoder's view of the frame.
        let hdr = parse_header(orig);
        let avail = orig.len();
        match dec.decode(&mut buf[pos..]) {
            Err(_) => {
                // Header errors come from `parse_header` itself, or from the role and size
                // checks on a complete header.
                if let Ok(Some(h)) = hdr {
                    assert!(
                        h.mask.is_some() == (cfg.role == Role::Client)
                            || h.payload_len > cfg.max_frame as u64,
                        "decode failed on a valid header: {h:?}"
                    );
                }
                break;
            }
            Ok(Decoded::NeedMore { total }) => {
                assert!(total > avail, "NeedMore {total} with {avail} bytes present");
                assert!(hdr.is_ok(), "NeedMore on a header parse_header rejects");
                break;
            }
            Ok(Decoded::Frame(f)) => {
                let h = hdr
                    .expect("decode accepted what parse_header rejects")
                    .expect("decode found a frame where parse_header needs more");
                assert!(
                    f.consumed > 0 && f.consumed <= avail,
                    "consumed {f:?} of {avail}"
                );
                assert!(
                    f.payload.start <= f.payload.end && f.payload.end == f.consumed,
                    "payload range {f:?} outside the frame"
                );
                assert_eq!(f.payload.start, h.header_len);
                assert_eq!((f.payload.end - f.payload.start) as u64, h.payload_len);
                assert!(f.payload.len() <= cfg.max_frame);
                assert_eq!((f.fin, f.opcode), (h.fin, h.opcode));
                assert_eq!(h.mask.is_some(), cfg.role == Role::Server);
                let abs = pos + f.payload.start..pos + f.payload.end;
                if let Some(m) = h.mask {
                    for (i, b) in expected[abs.clone()].iter_mut().enumerate() {
                        *b ^= m[i & 3];
                    }
                }
                // Every strict prefix of this frame needs more, and is left as it was.
                for k in [
                    0,
                    1,
                    h.header_len.saturating_sub(1),
                    h.header_len,
                    f.consumed - 1,
                ] {
                    if k >= f.consumed {
                        continue;
                    }
                    let mut prefix = orig[..k].to_vec();
                    match dec.decode(&mut prefix) {
                        Ok(Decoded::NeedMore { total }) => {
                            assert!(total > k && total <= f.consumed, "prefix {k}: need {total}")
                        }
                        other => panic!("prefix {k} of a {}-byte frame: {other:?}", f.consumed),
                    }
                    assert_eq!(&prefix[..], &orig[..k], "prefix modified");
                }
                let payload = &buf[abs];
                match reasm.push(f.fin, f.opcode, payload) {
                    Ok(Push::Single(op)) => {
                        assert!(matches!(op, OpCode::Text | OpCode::Binary) && f.fin);
                        assert!(payload.len() <= cfg.max_message);
                        if op == OpCode::Text && cfg.validate_utf8 {
                            assert!(std::str::from_utf8(payload).is_ok());
                        }
                    }
                    Ok(Push::Complete(op)) => {
                        let m = reasm.message();
                        assert!(m.len() <= cfg.max_message && f.fin);
                        if op == OpCode::Text && cfg.validate_utf8 {
                            assert!(std::str::from_utf8(m).is_ok());
                        }
                    }
                    Ok(Push::Fragment) => assert!(!f.fin && reasm.in_progress()),
                    Ok(Push::Control(op)) => {
                        assert!(op.is_control() && payload.len() <= MAX_CONTROL_PAYLOAD)
                    }
                    Err(_) => reasm.reset(),
                }
                pos += f.consumed;
            }
        }
    }
    // Payloads unmasked exactly (XOR with the key, untouched when unmasked); headers, rejected
    // and incomplete frames and everything after them untouched.
    assert!(buf == expected, "decoding changed bytes it should not have");
}

// ---------------------------------------------------------------------------------------------
// 2. Client state machine over a mock transport
// ---------------------------------------------------------------------------------------------

/// A socket that answers the client's upgrade request, then delivers `stream` in chunks whose
/// sizes come from a little generator seeded by the input, then reports end of stream.
struct Mock<'a> {
    stream: &'a [u8],
    pos: usize,
    response: Vec<u8>,
    response_pos: usize,
    /// Everything the client wrote.
    out: Vec<u8>,
    /// Length of the client's upgrade request within `out`, once parsed.
    request_len: Option<usize>,
    seed: u32,
    would_block: bool,
    read_tick: u32,
    write_tick: u32,
}

impl Mock<'_> {
    fn next_rand(&mut self) -> u32 {
        // xorshift32; the seed is made non-zero at construction.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 17;
        self.seed ^= self.seed << 5;
        self.seed
    }

    /// Every other read (and, separately, every other write) would block, if asked to; separate
    /// counters so that reads cannot be starved by an unlucky interleaving with writes.
    fn blocks_now(would_block: bool, tick: &mut u32) -> bool {
        *tick = tick.wrapping_add(1);
        would_block && *tick & 1 == 0
    }
}

impl Transport for Mock<'_> {
    fn driver(&self) -> DriverKind {
        DriverKind::Mio
    }

    fn poll_connect(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if Self::blocks_now(self.would_block, &mut self.read_tick) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if self.request_len.is_none() {
            let (n, key) = match parse_client_request(&self.out) {
                Ok(Some(req)) => (req.consumed, req.key.to_string()),
                Ok(None) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => panic!("the client wrote an invalid upgrade request: {e}"),
            };
            let mut resp = [0u8; 512];
            let len = write_server_response(&key, &mut resp).expect("response fits");
            self.response = resp[..len].to_vec();
            self.request_len = Some(n);
        }
        if self.response_pos < self.response.len() {
            let n = (self.response.len() - self.response_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.response[self.response_pos..self.response_pos + n]);
            self.response_pos += n;
            return Ok(n);
        }
        if self.pos == self.stream.len() {
            return Ok(0);
        }
        let want = 1 + (self.next_rand() as usize % 97);
        let n = want.min(buf.len()).min(self.stream.len() - self.pos);
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if Self::blocks_now(self.would_block, &mut self.write_tick) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(1 + (self.next_rand() as usize % 200));
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn poll(&mut self, _interest: Interest, _timeout: Option<Duration>) -> io::Result<Readiness> {
        Ok(Readiness {
            readable: true,
            writable: true,
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 1)))
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::from(([127, 0, 0, 1], 2)))
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn check_client(cfg: Cfg, seed: u8, stream: &[u8]) {
    let mock = Mock {
        stream,
        pos: 0,
        response: Vec::new(),
        response_pos: 0,
        out: Vec::new(),
        request_len: None,
        seed: 0x9E37_79B9 ^ u32::from(seed),
        would_block: cfg.would_block,
        read_tick: 0,
        write_tick: 0,
    };
    let ws_cfg = WsConfig {
        max_frame: cfg.max_frame,
        max_message: cfg.max_message,
        read_chunk: 64,
        send_buffer: 1024,
        auto_pong: true,
    };
    let mut client = WsClient::new(mock, "fuzz.invalid", "/ws", &ws_cfg).expect("client");
    // Each poll either makes progress on the stream or hits a WouldBlock that the next poll
    // gets past, so this bound is never the reason the loop ends for inputs up to max_len.
    for _ in 0..4 * (stream.len() + 64) {
        let sent = match client.poll() {
            Ok(Some(msg)) => {
                match msg {
                    Message::Text(s) => {
                        assert!(std::str::from_utf8(s.as_bytes()).is_ok(), "invalid UTF-8");
                        assert!(s.len() <= cfg.max_message);
                    }
                    Message::Binary(b) => assert!(b.len() <= cfg.max_message),
                    Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                    Message::Close(_) => {}
                }
                cfg.client_sends
            }
            Ok(None) => false,
            Err(_) => break,
        };
        if let Some(p) = client.last_payload_mut() {
            assert!(p.len() <= cfg.max_message);
        }
        if sent {
            // Whatever state the connection is in, sending must fail cleanly or succeed.
            match client.send_binary(b"ack") {
                Ok(())
                | Err(WsError::NotOpen | WsError::Closed | WsError::BufferTooSmall { .. }) => {}
                Err(e) => {
                    if client.is_closed() {
                        break;
                    }
                    panic!("send on a live connection failed: {e}");
                }
            }
        }
    }
    // Everything the client wrote after its request is a sequence of masked frames.
    let mock = client.into_transport();
    let Some(req) = mock.request_len else {
        return;
    };
    let dec = FrameDecoder::new(Role::Server, 1 << 20);
    let mut out = mock.out[req..].to_vec();
    let mut pos = 0;
    while pos < out.len() {
        match dec.decode(&mut out[pos..]) {
            Ok(Decoded::Frame(f)) => {
                assert!(f.fin, "the client sent a fragment");
                assert!(
                    matches!(f.opcode, OpCode::Pong | OpCode::Close | OpCode::Binary),
                    "unexpected opcode {:?}",
                    f.opcode
                );
                pos += f.consumed;
            }
            // A frame cut short when the connection failed mid-write.
            Ok(Decoded::NeedMore { .. }) => break,
            Err(e) => panic!("the client wrote an invalid frame: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Round trip
// ---------------------------------------------------------------------------------------------

const OPCODES: [OpCode; 6] = [
    OpCode::Text,
    OpCode::Binary,
    OpCode::Continuation,
    OpCode::Close,
    OpCode::Ping,
    OpCode::Pong,
];

fn check_round_trip(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    let b = data[0];
    let fin = b & 1 != 0;
    let opcode = OPCODES[((b >> 1) % 6) as usize];
    let mask = (b & 0x80 != 0).then(|| [data[1], data[2], data[3], data[4]]);
    let payload = &data[5..];

    let mut wire = vec![0u8; header_len(payload.len(), mask.is_some()) + payload.len()];
    match encode_frame(fin, opcode, mask, payload, &mut wire) {
        Ok(n) => {
            assert_eq!(n, wire.len());
            let role = if mask.is_some() {
                Role::Server
            } else {
                Role::Client
            };
            let other = if mask.is_some() {
                Role::Client
            } else {
                Role::Server
            };
            let mut copy = wire.clone();
            assert!(
                FrameDecoder::new(other, usize::MAX)
                    .decode(&mut copy)
                    .is_err(),
                "the wrong role accepted a frame"
            );
            match FrameDecoder::new(role, payload.len()).decode(&mut wire) {
                Ok(Decoded::Frame(f)) => {
                    assert_eq!((f.fin, f.opcode, f.consumed), (fin, opcode, n));
                    assert_eq!(
                        &wire[f.payload], payload,
                        "payload changed in the round trip"
                    );
                }
                other => panic!("encoded frame did not decode: {other:?}"),
            }
        }
        Err(_) => assert!(
            opcode.is_control() && (!fin || payload.len() > MAX_CONTROL_PAYLOAD),
            "encode_frame refused a valid frame"
        ),
    }

    // A message cut into fragments, a ping in between, through an encoder and the reassembler.
    let parts = 1 + (data[1] % 4) as usize;
    let mut enc = FrameEncoder::with_seed(Role::Client, u64::from(data[2]));
    let mut stream = Vec::new();
    let step = payload.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(step).collect()
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        let mut frame = vec![0u8; enc.frame_len(chunk.len())];
        let n = enc
            .encode(i + 1 == chunks.len(), op, chunk, &mut frame)
            .expect("data frame encodes");
        stream.extend_from_slice(&frame[..n]);
        if i == 0 {
            let mut ping = vec![0u8; enc.frame_len(4)];
            let n = enc
                .encode(true, OpCode::Ping, b"ping", &mut ping)
                .expect("ping encodes");
            stream.extend_from_slice(&ping[..n]);
        }
    }
    let dec = FrameDecoder::new(Role::Server, payload.len().max(4));
    let mut reasm = Reassembler::new(payload.len().max(1), false);
    let mut pos = 0;
    let mut done = false;
    while pos < stream.len() {
        let f = match dec.decode(&mut stream[pos..]) {
            Ok(Decoded::Frame(f)) => f,
            other => panic!("fragment did not decode: {other:?}"),
        };
        let body = &stream[pos + f.payload.start..pos + f.payload.end];
        match reasm
            .push(f.fin, f.opcode, body)
            .expect("fragment accepted")
        {
            Push::Single(OpCode::Binary) => {
                assert_eq!(body, payload);
                done = true;
            }
            Push::Complete(OpCode::Binary) => {
                assert_eq!(reasm.message(), payload);
                done = true;
            }
            Push::Control(OpCode::Ping) => assert_eq!(body, b"ping"),
            Push::Fragment => {}
            other => panic!("unexpected reassembly step {other:?}"),
        }
        pos += f.consumed;
    }
    assert!(done, "the fragmented message never completed");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cfg = Cfg::from_byte(data[0]);
    let stream = &data[2..];
    check_decoder(cfg, stream);
    check_client(cfg, data[1], stream);
    check_round_trip(data);
});
