//! [`WsClient`]: the RFC 6455 client state machine over any [`Transport`].
//!
//! One non-blocking [`WsClient::poll`] call does a bounded amount of work - flush pending output,
//! read what the socket has, decode frames in place - and returns at most one [`Message`], which
//! borrows the receive buffer (single-frame messages) or the reassembly buffer (fragmented ones).
//! The bytes are released at the next `poll`. Pings are answered with pongs automatically, the
//! close handshake is completed for both initiators, and protocol violations fail the connection
//! with the right status code. All buffers are allocated in [`WsClient::new`]; steady-state
//! operation does not allocate (see `tests/ws_alloc.rs`).

use std::io;
use std::ops::Range;
use std::time::Duration;

use super::error::{CloseCode, HandshakeError, WsError};
use super::frame::{
    parse_close_payload, Decoded, FrameDecoder, FrameEncoder, OpCode, Push, Reassembler, Role,
    MAX_HEADER_LEN,
};
use super::handshake::ClientHandshake;
use crate::socket::{Interest, Readiness, Transport};

/// Buffer sizes and limits of a [`WsClient`].
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest frame payload accepted (`FrameTooLarge`, close 1009, above it).
    pub max_frame: usize,
    /// Largest (reassembled) message accepted (`MessageTooLarge`, close 1009, above it).
    pub max_message: usize,
    /// Extra receive-buffer room beyond one maximal frame, so reads are large and compaction
    /// (moving a partial frame to the front) is rare.
    pub read_chunk: usize,
    /// Send buffer size: the largest frame that can be sent, and how much output can be queued
    /// while the socket is not writable.
    pub send_buffer: usize,
    /// Answer pings with pongs automatically.
    pub auto_pong: bool,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_frame: 4 << 20,
            max_message: 4 << 20,
            read_chunk: 64 << 10,
            send_buffer: 64 << 10,
            auto_pong: true,
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsState {
    /// The transport is still connecting (TCP, then TLS).
    Connecting,
    /// The upgrade request is sent or queued; waiting for `101 Switching Protocols`.
    Handshaking,
    /// Open: messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Close frames were exchanged; waiting for the server to close the TCP connection.
    Closing,
    /// Done (cleanly or not); every call returns [`WsError::Closed`].
    Closed,
}

/// A close frame's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// Status code.
    pub code: CloseCode,
    /// UTF-8 reason (may be empty).
    pub reason: &'a str,
}

/// What [`WsClient::poll`] returns. Data borrows the client's buffers until the next `poll`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A complete text message (UTF-8 validated).
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping (already answered when `auto_pong` is on).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The peer's close frame (`None`: no status code). The reply is already queued.
    Close(Option<CloseFrame<'a>>),
}

#[derive(Clone, Debug)]
enum Src {
    Rx(Range<usize>),
    Reassembled,
}

#[derive(Clone, Debug)]
enum Ev {
    Data(OpCode, Src),
    Ping(Range<usize>),
    Pong(Range<usize>),
    Close(Range<usize>),
}

/// RFC 6455 client over a transport `T` (see the module docs).
#[derive(Debug)]
pub struct WsClient<T> {
    transport: T,
    state: WsState,
    handshake: ClientHandshake,
    decoder: FrameDecoder,
    encoder: FrameEncoder,
    reasm: Reassembler,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    /// Bytes of the last returned message still to be released.
    consume: usize,
    last: Option<Src>,
    tx: Box<[u8]>,
    tx_start: usize,
    tx_end: usize,
    auto_pong: bool,
    min_read: usize,
}

impl<T: Transport> WsClient<T> {
    /// Create a client over `transport` (connected or still connecting) for `ws[s]://host/path`.
    /// `host` is sent as the `Host` header (add the port if it is not the default one).
    pub fn new(transport: T, host: &str, path: &str, cfg: &WsConfig) -> Result<Self, WsError> {
        Self::with_headers(transport, host, path, &[], cfg)
    }

    /// As [`WsClient::new`], with extra request headers (e.g. an API key).
    pub fn with_headers(
        transport: T,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        cfg: &WsConfig,
    ) -> Result<Self, WsError> {
        let rx_len = cfg.max_frame + MAX_HEADER_LEN + cfg.read_chunk.max(4096);
        let mut c = WsClient {
            transport,
            state: WsState::Connecting,
            handshake: ClientHandshake::new(),
            decoder: FrameDecoder::new(Role::Client, cfg.max_frame),
            encoder: FrameEncoder::new(Role::Client),
            reasm: Reassembler::new(cfg.max_message, false),
            rx: vec![0u8; rx_len].into_boxed_slice(),
            rx_start: 0,
            rx_end: 0,
            consume: 0,
            last: None,
            tx: vec![0u8; cfg.send_buffer.max(1024)].into_boxed_slice(),
            tx_start: 0,
            tx_end: 0,
            auto_pong: cfg.auto_pong,
            min_read: (cfg.read_chunk / 2).max(2048),
        };
        c.tx_end = c.handshake.write_request(host, path, headers, &mut c.tx)?;
        Ok(c)
    }

    /// Current state.
    pub fn state(&self) -> WsState {
        self.state
    }

    /// Whether messages can be sent and received.
    pub fn is_open(&self) -> bool {
        self.state == WsState::Open
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        self.state == WsState::Closed
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably (reading or writing it directly corrupts the stream).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Give the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Wait for the transport to become readable (for threads that park instead of spinning).
    /// Returns immediately if unread bytes are already buffered.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Readiness> {
        if self.rx_end > self.rx_start + self.consume || self.tx_end > self.tx_start {
            return Ok(Readiness {
                readable: true,
                writable: self.tx_end > self.tx_start,
            });
        }
        self.transport.poll(Interest::Readable, timeout)
    }

    /// The payload of the message returned by the last `poll`, mutably - for in-place parsers
    /// such as `simd-json`. `None` if the last `poll` returned no text/binary message. Valid
    /// until the next `poll`.
    pub fn last_payload_mut(&mut self) -> Option<&mut [u8]> {
        match self.last.as_ref()? {
            Src::Rx(r) => Some(&mut self.rx[r.clone()]),
            Src::Reassembled => Some(self.reasm.message_mut()),
        }
    }

    /// Do a bounded amount of work and return the next message, if one is complete.
    /// `Ok(None)`: nothing complete yet (handshake in progress, or no data). After an error or a
    /// finished close, the connection is [`WsState::Closed`] and calls return `Err(Closed)`.
    pub fn poll(&mut self) -> Result<Option<Message<'_>>, WsError> {
        self.rx_start += std::mem::take(&mut self.consume);
        self.last = None;
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        }
        match self.state {
            WsState::Closed => return Err(WsError::Closed),
            WsState::Connecting => match self.transport.poll_connect() {
                Ok(true) => self.state = WsState::Handshaking,
                Ok(false) => return Ok(None),
                Err(e) => return Err(self.fail(e.into())),
            },
            _ => {}
        }
        self.flush_tx()?;
        if self.state == WsState::Handshaking && !self.read_handshake()? {
            return Ok(None);
        }
        let Some(ev) = self.next_event()? else {
            return Ok(None);
        };
        Ok(Some(self.materialize(ev)))
    }

    fn materialize(&self, ev: Ev) -> Message<'_> {
        match ev {
            Ev::Data(op, src) => {
                let bytes = match src {
                    Src::Rx(r) => &self.rx[r],
                    Src::Reassembled => self.reasm.message(),
                };
                if op == OpCode::Text {
                    // SAFETY: `next_event` validated exactly these bytes as UTF-8 in this same
                    // `poll` call, and nothing has written to the buffers since.
                    Message::Text(unsafe { std::str::from_utf8_unchecked(bytes) })
                } else {
                    Message::Binary(bytes)
                }
            }
            Ev::Ping(r) => Message::Ping(&self.rx[r]),
            Ev::Pong(r) => Message::Pong(&self.rx[r]),
            Ev::Close(r) => {
                // Validated in `next_event`; a failure here cannot happen, None is a safe answer.
                let c = parse_close_payload(&self.rx[r]).ok().flatten();
                Message::Close(c.map(|(code, reason)| CloseFrame { code, reason }))
            }
        }
    }

    /// Decode frames until one yields a message or the transport has nothing more.
    fn next_event(&mut self) -> Result<Option<Ev>, WsError> {
        loop {
            let decoded = self
                .decoder
                .decode(&mut self.rx[self.rx_start..self.rx_end]);
            let frame = match decoded {
                Err(e) => return Err(self.fail(e)),
                Ok(Decoded::NeedMore { total }) => {
                    if self.fill(total)? {
                        continue;
                    }
                    return Ok(None);
                }
                Ok(Decoded::Frame(f)) => f,
            };
            let base = self.rx_start;
            let payload = base + frame.payload.start..base + frame.payload.end;
            if self.state == WsState::Closing {
                // The peer's close was received: anything after it is ignored (RFC 6455 5.5.1).
                self.rx_start += frame.consumed;
                continue;
            }
            let pushed = self
                .reasm
                .push(frame.fin, frame.opcode, &self.rx[payload.clone()]);
            match pushed {
                Err(e) => return Err(self.fail(e)),
                Ok(Push::Fragment) => self.rx_start += frame.consumed,
                Ok(Push::Single(op)) => {
                    if op == OpCode::Text && std::str::from_utf8(&self.rx[payload.clone()]).is_err()
                    {
                        return Err(self.fail(WsError::InvalidUtf8));
                    }
                    self.consume = frame.consumed;
                    self.last = Some(Src::Rx(payload.clone()));
                    return Ok(Some(Ev::Data(op, Src::Rx(payload))));
                }
                Ok(Push::Complete(op)) => {
                    if op == OpCode::Text && std::str::from_utf8(self.reasm.message()).is_err() {
                        return Err(self.fail(WsError::InvalidUtf8));
                    }
                    self.rx_start += frame.consumed;
                    self.last = Some(Src::Reassembled);
                    return Ok(Some(Ev::Data(op, Src::Reassembled)));
                }
                Ok(Push::Control(op)) => {
                    self.consume = frame.consumed;
                    return self.on_control(op, payload).map(Some);
                }
            }
        }
    }

    fn on_control(&mut self, op: OpCode, payload: Range<usize>) -> Result<Ev, WsError> {
        match op {
            OpCode::Ping => {
                if self.auto_pong && self.state == WsState::Open {
                    self.make_room(self.encoder.frame_len(payload.len()))?;
                    let n = self.encoder.encode(
                        true,
                        OpCode::Pong,
                        &self.rx[payload.clone()],
                        &mut self.tx[self.tx_end..],
                    )?;
                    self.tx_end += n;
                    self.flush_tx()?;
                }
                Ok(Ev::Ping(payload))
            }
            OpCode::Pong => Ok(Ev::Pong(payload)),
            OpCode::Close => {
                let close = match parse_close_payload(&self.rx[payload.clone()]) {
                    Ok(c) => c.map(|(code, _)| code),
                    Err(e) => return Err(self.fail(e)),
                };
                if self.state == WsState::Open {
                    // Echo the status code (RFC 6455 section 5.5.1).
                    self.queue_close(close.map(|c| (c, "")))?;
                }
                self.state = WsState::Closing;
                self.flush_tx()?;
                Ok(Ev::Close(payload))
            }
            OpCode::Continuation | OpCode::Text | OpCode::Binary => {
                // Not a control frame: the reassembler never reports these as control.
                Err(self.fail(WsError::ReservedOpcode(op as u8)))
            }
        }
    }

    /// Read more bytes so that at least `total` bytes from `rx_start` can be present.
    /// `Ok(false)`: the transport has nothing now.
    fn fill(&mut self, total: usize) -> Result<bool, WsError> {
        if self.rx_start > 0
            && (self.rx_start + total > self.rx.len()
                || self.rx.len() - self.rx_end < self.min_read)
        {
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        if self.rx_end == self.rx.len() {
            // Cannot happen: the buffer holds a maximal frame plus `read_chunk`.
            return Err(self.fail(WsError::BufferTooSmall {
                need: total,
                have: self.rx.len(),
            }));
        }
        match self.transport.read_into(&mut self.rx[self.rx_end..]) {
            Ok(0) => {
                // The peer closed its side; close ours so it does not wait for us (RFC 6455
                // 7.1.1: after the server's TCP close the client closes too).
                let clean = self.state == WsState::Closing;
                let _ = self.transport.shutdown_write();
                self.state = WsState::Closed;
                Err(if clean {
                    WsError::Closed
                } else {
                    WsError::AbnormalClosure
                })
            }
            Ok(n) => {
                self.rx_end += n;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(self.fail(e.into())),
        }
    }

    /// Read and check the server's handshake answer. `Ok(false)`: not complete yet.
    fn read_handshake(&mut self) -> Result<bool, WsError> {
        loop {
            match self.handshake.parse_response(&self.rx[..self.rx_end]) {
                Ok(Some(n)) => {
                    self.rx_start = n;
                    self.state = WsState::Open;
                    return Ok(true);
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(e.into())),
            }
            if self.rx_end == self.rx.len() {
                let e = HandshakeError::HeadTooLarge(self.rx.len());
                return Err(self.fail(e.into()));
            }
            match self.transport.read_into(&mut self.rx[self.rx_end..]) {
                Ok(0) => return Err(self.fail(WsError::AbnormalClosure)),
                Ok(n) => self.rx_end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e.into())),
            }
        }
    }

    /// Write queued output until done or the transport would block.
    fn flush_tx(&mut self) -> Result<(), WsError> {
        while self.tx_start < self.tx_end {
            match self.transport.write(&self.tx[self.tx_start..self.tx_end]) {
                Ok(0) => return Err(self.fail(io::Error::from(io::ErrorKind::WriteZero).into())),
                Ok(n) => self.tx_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(e.into())),
            }
        }
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        }
        match self.transport.flush() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(self.fail(e.into())),
        }
    }

    /// Make `need` contiguous bytes free at the end of the send buffer.
    fn make_room(&mut self, need: usize) -> Result<(), WsError> {
        if self.tx.len() - self.tx_end >= need {
            return Ok(());
        }
        self.flush_tx()?;
        if self.tx_start > 0 {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
        let have = self.tx.len() - self.tx_end;
        if have < need {
            return Err(WsError::BufferTooSmall { need, have });
        }
        Ok(())
    }

    fn queue_frame(&mut self, op: OpCode, payload: &[u8]) -> Result<(), WsError> {
        self.make_room(self.encoder.frame_len(payload.len()))?;
        let n = self
            .encoder
            .encode(true, op, payload, &mut self.tx[self.tx_end..])?;
        self.tx_end += n;
        Ok(())
    }

    fn queue_close(&mut self, close: Option<(CloseCode, &str)>) -> Result<(), WsError> {
        self.make_room(MAX_HEADER_LEN + 125)?;
        let n = self
            .encoder
            .encode_close(close, &mut self.tx[self.tx_end..])?;
        self.tx_end += n;
        Ok(())
    }

    /// Fail the connection: send a close frame with the error's status code if the connection is
    /// open, flush what can be flushed, shut down our sending half, and mark it closed.
    fn fail(&mut self, e: WsError) -> WsError {
        if self.state == WsState::Closed {
            return e;
        }
        if let (Some(code), WsState::Open) = (e.close_code(), self.state) {
            if self.queue_close(Some((code, ""))).is_ok() {
                self.state = WsState::CloseSent;
                while self.tx_start < self.tx_end {
                    match self.transport.write(&self.tx[self.tx_start..self.tx_end]) {
                        Ok(n) if n > 0 => self.tx_start += n,
                        _ => break,
                    }
                }
                let _ = self.transport.flush();
            }
        }
        if !matches!(e, WsError::Io(_) | WsError::AbnormalClosure) {
            let _ = self.transport.shutdown_write();
        }
        self.state = WsState::Closed;
        e
    }

    /// Send a text message (one frame).
    pub fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        self.send(OpCode::Text, text.as_bytes())
    }

    /// Send a binary message (one frame).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send(OpCode::Binary, data)
    }

    /// Send a ping (at most 125 bytes).
    pub fn send_ping(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send(OpCode::Ping, data)
    }

    /// Send an unsolicited pong (at most 125 bytes), e.g. as a keep-alive.
    pub fn send_pong(&mut self, data: &[u8]) -> Result<(), WsError> {
        self.send(OpCode::Pong, data)
    }

    /// Queue one frame and try to flush. Fails with `BufferTooSmall` if the send buffer cannot
    /// take it even after flushing (poll and retry), `NotOpen` before the handshake completes or
    /// after a close frame was sent.
    pub fn send(&mut self, op: OpCode, payload: &[u8]) -> Result<(), WsError> {
        match self.state {
            WsState::Open => {}
            WsState::Closed => return Err(WsError::Closed),
            _ => return Err(WsError::NotOpen),
        }
        if op == OpCode::Close {
            return self.close(CloseCode::NORMAL, "");
        }
        self.queue_frame(op, payload)?;
        self.flush_tx()
    }

    /// Start the closing handshake with `code` and `reason` (at most 123 bytes). Keep polling:
    /// remaining messages, then the peer's [`Message::Close`], then `Err(Closed)` when the
    /// server has closed the TCP connection.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), WsError> {
        match self.state {
            WsState::Open => {
                self.queue_close(Some((code, reason)))?;
                self.state = WsState::CloseSent;
                self.flush_tx()
            }
            WsState::Connecting | WsState::Handshaking => {
                let _ = self.transport.shutdown_write();
                self.state = WsState::Closed;
                Ok(())
            }
            WsState::CloseSent | WsState::Closing | WsState::Closed => Ok(()),
        }
    }
}
