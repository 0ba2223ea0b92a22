//! RFC 6455 framing: in-place decoding, message reassembly and (masked) encoding.
//!
//! The decoder never copies a payload: it parses the header at the start of the received bytes,
//! unmasks the payload where it lies and hands back its range, so a single-frame message (what
//! market-data venues send) goes from the socket buffer to the JSON decoder without a copy. Only
//! fragmented messages are copied, once, into the [`Reassembler`]'s buffer, which is allocated
//! at construction with the maximum message size. Nothing here allocates after construction.

use std::ops::Range;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::error::{CloseCode, WsError};

/// Largest possible frame header: 2 bytes + 8-byte extended length + 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (ping, pong, close).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcode (RFC 6455 section 5.2). Reserved values are rejected by the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// 0x0: continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: text (UTF-8) message.
    Text = 0x1,
    /// 0x2: binary message.
    Binary = 0x2,
    /// 0x8: connection close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for the reserved 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Control frames (close, ping, pong) have the high bit of the opcode set.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Which end of the connection this endpoint is. Clients mask what they send and must receive
/// unmasked frames; servers the other way round (RFC 6455 section 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The connecting side (the engine towards a venue).
    Client,
    /// The accepting side (the venue simulator).
    Server,
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN bit: last frame of a message.
    pub fin: bool,
    /// Opcode.
    pub opcode: OpCode,
    /// Masking key, if the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length as announced.
    pub payload_len: u64,
    /// Bytes taken by the header (2 to 14).
    pub header_len: usize,
}

/// Parse a frame header from the start of `buf`. `Ok(None)` means more bytes are needed.
/// Reserved bits, reserved opcodes, fragmented or oversized control frames and a 64-bit length
/// with its top bit set are rejected as soon as the bytes that show them have arrived.
pub fn parse_header(buf: &[u8]) -> Result<Option<FrameHeader>, WsError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let rsv = (b0 >> 4) & 0x7;
    if rsv != 0 {
        return Err(WsError::ReservedBits(rsv));
    }
    let op = b0 & 0x0f;
    let opcode = OpCode::from_u8(op).ok_or(WsError::ReservedOpcode(op))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(WsError::FragmentedControl(op));
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7f;
    let (payload_len, mut pos) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(WsError::LengthOverflow);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    if opcode.is_control() && payload_len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(WsError::ControlTooLarge(payload_len));
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        header_len: pos,
    }))
}

/// A complete frame decoded in place: its payload is `buf[payload]`, already unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// Opcode.
    pub opcode: OpCode,
    /// Payload range within the buffer given to [`FrameDecoder::decode`].
    pub payload: Range<usize>,
    /// Bytes of the buffer the frame occupied (header + payload).
    pub consumed: usize,
}

/// Result of [`FrameDecoder::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The buffer holds no complete frame yet; at least `total` bytes (counted from the start of
    /// the buffer) are needed before a call can make progress. Use it to size the next read.
    NeedMore {
        /// Minimum total buffer length needed.
        total: usize,
    },
    /// A complete frame.
    Frame(Frame),
}

/// Stateless-per-frame decoder: validates headers against the role and the size limit and
/// unmasks payloads in place.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    role: Role,
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder for an endpoint of `role`, rejecting frames whose payload exceeds `max_frame`.
    pub fn new(role: Role, max_frame: usize) -> Self {
        FrameDecoder { role, max_frame }
    }

    /// The configured maximum payload of one frame.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Decode the frame at the start of `buf`. On success the payload is unmasked in place and the
    /// caller consumes `frame.consumed` bytes. A frame whose announced length exceeds the maximum
    /// is rejected as soon as its header is complete, without waiting for the payload.
    pub fn decode(&self, buf: &mut [u8]) -> Result<Decoded, WsError> {
        let hdr = match parse_header(buf)? {
            Some(h) => h,
            None => {
                return Ok(Decoded::NeedMore {
                    total: needed_for_header(buf),
                })
            }
        };
        match (self.role, hdr.mask.is_some()) {
            (Role::Client, true) => return Err(WsError::MaskedFrame),
            (Role::Server, false) => return Err(WsError::UnmaskedFrame),
            _ => {}
        }
        if hdr.payload_len > self.max_frame as u64 {
            return Err(WsError::FrameTooLarge {
                len: hdr.payload_len,
                max: self.max_frame,
            });
        }
        let len = hdr.payload_len as usize;
        let total = hdr.header_len + len;
        if buf.len() < total {
            return Ok(Decoded::NeedMore { total });
        }
        let payload = hdr.header_len..total;
        if let Some(mask) = hdr.mask {
            apply_mask(&mut buf[payload.clone()], mask);
        }
        Ok(Decoded::Frame(Frame {
            fin: hdr.fin,
            opcode: hdr.opcode,
            payload,
            consumed: total,
        }))
    }
}

/// How many bytes a header needs given the (incomplete) prefix in `buf`.
fn needed_for_header(buf: &[u8]) -> usize {
    if buf.len() < 2 {
        return 2;
    }
    let mask = if buf[1] & 0x80 != 0 { 4 } else { 0 };
    match buf[1] & 0x7f {
        126 => 4 + mask,
        127 => 10 + mask,
        _ => 2 + mask,
    }
}

/// XOR `buf` with the 4-byte masking key, starting at key index 0 (RFC 6455 section 5.3).
/// Eight bytes at a time; the compiler vectorises the loop.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let m = [
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ];
    let m64 = u64::from_ne_bytes(m);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m64).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key index restarts at 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Header length for a payload of `payload_len` bytes.
pub const fn header_len(payload_len: usize, masked: bool) -> usize {
    let base = if payload_len <= 125 {
        2
    } else if payload_len <= 0xffff {
        4
    } else {
        10
    };
    if masked {
        base + 4
    } else {
        base
    }
}

/// Write a frame header into `out`, returning its length. Uses the minimal length encoding.
pub fn encode_header(
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, WsError> {
    let need = header_len(payload_len, mask.is_some());
    if out.len() < need {
        return Err(WsError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    out[0] = (if fin { 0x80 } else { 0 }) | opcode as u8;
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len <= 125 {
        out[1] = mbit | payload_len as u8;
        2
    } else if payload_len <= 0xffff {
        out[1] = mbit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mbit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    if let Some(m) = mask {
        out[pos..pos + 4].copy_from_slice(&m);
        pos += 4;
    }
    Ok(pos)
}

/// Write a complete frame (header + payload, masked with `mask` if given) into `out`, returning
/// the bytes written. Control frames must be final and carry at most 125 bytes.
pub fn encode_frame(
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, WsError> {
    if opcode.is_control() {
        if !fin {
            return Err(WsError::FragmentedControl(opcode as u8));
        }
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlTooLarge(payload.len() as u64));
        }
    }
    let need = header_len(payload.len(), mask.is_some()) + payload.len();
    if out.len() < need {
        return Err(WsError::BufferTooSmall {
            need,
            have: out.len(),
        });
    }
    let h = encode_header(fin, opcode, mask, payload.len(), out)?;
    let body = &mut out[h..need];
    body.copy_from_slice(payload);
    if let Some(m) = mask {
        apply_mask(body, m);
    }
    Ok(need)
}

/// Build a close payload (`code` big-endian + UTF-8 reason) in `buf`; returns its length.
/// `None` gives an empty payload (no status code).
pub fn close_payload(
    close: Option<(CloseCode, &str)>,
    buf: &mut [u8; MAX_CONTROL_PAYLOAD],
) -> Result<usize, WsError> {
    let Some((code, reason)) = close else {
        return Ok(0);
    };
    let len = 2 + reason.len();
    if len > MAX_CONTROL_PAYLOAD {
        return Err(WsError::ControlTooLarge(len as u64));
    }
    buf[..2].copy_from_slice(&code.0.to_be_bytes());
    buf[2..len].copy_from_slice(reason.as_bytes());
    Ok(len)
}

/// Parse and validate a received close payload: empty (no status), or a valid code followed by a
/// UTF-8 reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_on_wire() {
                return Err(WsError::InvalidCloseCode(code.0));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Frame encoder that draws a fresh masking key per frame when acting as a client.
///
/// Masking keys come from `rand`'s `StdRng` (ChaCha12, a CSPRNG) seeded once from the operating
/// system at construction. RFC 6455 section 10.3 asks for keys an intermediary cannot predict;
/// a fast non-cryptographic generator would be acceptable for connections that are TLS-wrapped
/// end to end (no intermediary sees the frames), but ChaCha12 with its 256-byte block buffer costs
/// a few nanoseconds per key, so there is no reason to weaken it. [`FrameEncoder::with_seed`] gives
/// a deterministic sequence for tests. The generator lives inline: no allocation.
#[derive(Clone, Debug)]
pub struct FrameEncoder {
    role: Role,
    rng: StdRng,
}

impl FrameEncoder {
    /// An encoder for `role`, seeded from the operating system.
    pub fn new(role: Role) -> Self {
        FrameEncoder {
            role,
            rng: StdRng::from_entropy(),
        }
    }

    /// An encoder with a deterministic key sequence (tests, reproducible captures).
    pub fn with_seed(role: Role, seed: u64) -> Self {
        FrameEncoder {
            role,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The role this encoder writes for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The masking key for the next frame: a fresh random key for a client, none for a server.
    pub fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Client => Some(self.rng.next_u32().to_ne_bytes()),
            Role::Server => None,
        }
    }

    /// Bytes a frame with `payload_len` bytes of payload takes on the wire for this role.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        header_len(payload_len, self.role == Role::Client) + payload_len
    }

    /// Encode one frame into `out`; returns the bytes written.
    pub fn encode(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, WsError> {
        let need = self.frame_len(payload.len());
        if out.len() < need {
            // Checked before drawing a key so a retry reuses the same key sequence position.
            return Err(WsError::BufferTooSmall {
                need,
                have: out.len(),
            });
        }
        let mask = self.next_mask();
        encode_frame(fin, opcode, mask, payload, out)
    }

    /// Encode a close frame with an optional status code and reason.
    pub fn encode_close(
        &mut self,
        close: Option<(CloseCode, &str)>,
        out: &mut [u8],
    ) -> Result<usize, WsError> {
        let mut p = [0u8; MAX_CONTROL_PAYLOAD];
        let n = close_payload(close, &mut p)?;
        self.encode(true, OpCode::Close, &p[..n], out)
    }
}

/// What [`Reassembler::push`] made of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// A complete single-frame message of this opcode: its payload is the frame's own payload
    /// (no copy was made).
    Single(OpCode),
    /// A fragment was stored; the message is not complete yet.
    Fragment,
    /// The last fragment arrived: the message is [`Reassembler::message`].
    Complete(OpCode),
    /// A control frame; the reassembly state is untouched (control frames may be interleaved).
    Control(OpCode),
}

/// Reassembles fragmented text/binary messages into a buffer preallocated with the maximum
/// message size, validates UTF-8 of text messages and enforces the message size limit.
#[derive(Debug)]
pub struct Reassembler {
    buf: Box<[u8]>,
    len: usize,
    opcode: Option<OpCode>,
    complete: bool,
    validate_utf8: bool,
}

impl Reassembler {
    /// A reassembler for messages of at most `max_message` bytes (allocated now).
    pub fn new(max_message: usize, validate_utf8: bool) -> Self {
        Reassembler {
            buf: vec![0u8; max_message].into_boxed_slice(),
            len: 0,
            opcode: None,
            complete: false,
            validate_utf8,
        }
    }

    /// The maximum message size.
    pub fn max_message(&self) -> usize {
        self.buf.len()
    }

    /// Whether a fragmented message is in progress.
    pub fn in_progress(&self) -> bool {
        self.opcode.is_some() && !self.complete
    }

    /// The last reassembled message (valid after [`Push::Complete`] until the next push).
    pub fn message(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The last reassembled message, mutably (for in-place parsers).
    pub fn message_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Forget any message in progress.
    pub fn reset(&mut self) {
        self.len = 0;
        self.opcode = None;
        self.complete = false;
    }

    /// Feed one decoded frame (header bits and its unmasked payload).
    pub fn push(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) -> Result<Push, WsError> {
        let max = self.buf.len();
        match opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => Ok(Push::Control(opcode)),
            OpCode::Text | OpCode::Binary => {
                if self.complete {
                    self.reset();
                }
                if self.opcode.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                if payload.len() > max {
                    return Err(WsError::MessageTooLarge {
                        len: payload.len() as u64,
                        max,
                    });
                }
                if fin {
                    if opcode == OpCode::Text && self.validate_utf8 {
                        std::str::from_utf8(payload).map_err(|_| WsError::InvalidUtf8)?;
                    }
                    return Ok(Push::Single(opcode));
                }
                self.buf[..payload.len()].copy_from_slice(payload);
                self.len = payload.len();
                self.opcode = Some(opcode);
                Ok(Push::Fragment)
            }
            OpCode::Continuation => {
                let op = match self.opcode {
                    Some(op) if !self.complete => op,
                    _ => return Err(WsError::UnexpectedContinuation),
                };
                let total = self.len + payload.len();
                if total > max {
                    let len = total as u64;
                    self.reset();
                    return Err(WsError::MessageTooLarge { len, max });
                }
                self.buf[self.len..total].copy_from_slice(payload);
                self.len = total;
                if !fin {
                    return Ok(Push::Fragment);
                }
                if op == OpCode::Text && self.validate_utf8 {
                    if let Err(_e) = std::str::from_utf8(&self.buf[..self.len]) {
                        self.reset();
                        return Err(WsError::InvalidUtf8);
                    }
                }
                self.complete = true;
                Ok(Push::Complete(op))
            }
        }
    }
}
