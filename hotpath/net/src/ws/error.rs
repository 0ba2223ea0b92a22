//! Errors of the WebSocket layer and the close codes they map to.
//!
//! Every variant is allocation-free (no `String`s) so that a protocol error on the hot path does not
//! allocate either; [`WsError::close_code`] tells which RFC 6455 status code the connection must be
//! failed with.

use std::io;

/// A WebSocket status code (RFC 6455 section 7.4), as carried in a close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, browser navigating away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: payload data inconsistent with the message type (e.g. invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether this code may legitimately appear in a received close frame: 1000-1003, 1007-1014
    /// (1012-1014 are IANA-registered after the RFC) and the application/private range 3000-4999.
    /// 1004, 1005, 1006, 1015, anything below 1000 and the unassigned 1016-2999 are invalid and
    /// fail the connection with 1002.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

/// Why an HTTP upgrade handshake failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// The HTTP head did not parse.
    #[error("malformed HTTP: {0}")]
    Http(httparse::Error),
    /// The server answered with a status other than 101.
    #[error("expected HTTP status 101, got {0}")]
    Status(u16),
    /// A required header is absent or has the wrong value.
    #[error("missing or invalid header {0}")]
    Header(&'static str),
    /// `Sec-WebSocket-Accept` does not match the key we sent.
    #[error("Sec-WebSocket-Accept does not match the Sec-WebSocket-Key sent")]
    AcceptMismatch,
    /// The server selected an extension or subprotocol we did not offer.
    #[error("server negotiated {0}, which was not offered")]
    NotOffered(&'static str),
    /// The HTTP head exceeds the receive buffer.
    #[error("HTTP head larger than the {0}-byte buffer")]
    HeadTooLarge(usize),
    /// The request is not a WebSocket upgrade (server side).
    #[error("not a WebSocket upgrade request: {0}")]
    NotUpgrade(&'static str),
}

/// Errors of frame decoding/encoding, the message assembler and [`WsClient`](super::WsClient).
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// RSV1-3 set although no extension was negotiated (close 1002).
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// Opcode 3-7 or 0xB-0xF (close 1002).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A control frame with FIN clear (close 1002).
    #[error("fragmented control frame (opcode {0:#x})")]
    FragmentedControl(u8),
    /// A control frame with a payload above 125 bytes (close 1002).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLarge(u64),
    /// A frame whose payload exceeds the configured maximum (close 1009).
    #[error("frame payload of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Payload length announced by the header.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// A (possibly reassembled) message whose size exceeds the configured maximum (close 1009).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    MessageTooLarge {
        /// Size the message would have reached.
        len: u64,
        /// Configured maximum.
        max: usize,
    },
    /// The most significant bit of a 64-bit payload length is set (close 1002).
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A continuation frame arrived with no fragmented message in progress (close 1002).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text/binary frame arrived while a fragmented message was in progress (close 1002).
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A server sent a masked frame (close 1002, RFC 6455 section 5.1).
    #[error("masked frame received by a client")]
    MaskedFrame,
    /// A client sent an unmasked frame (close 1002, RFC 6455 section 5.1).
    #[error("unmasked frame received by a server")]
    UnmaskedFrame,
    /// A text message or close reason that is not valid UTF-8 (close 1007).
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close frame with a one-byte payload (close 1002).
    #[error("close frame with a 1-byte payload")]
    InvalidClosePayload,
    /// A close frame carrying a code that must not appear on the wire (close 1002).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// The caller's output buffer (or the client's send buffer) cannot hold what must be written.
    #[error("buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes required.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The TCP stream ended without a completed close handshake (status 1006 semantics).
    #[error("connection ended without a close handshake")]
    AbnormalClosure,
    /// The connection is closed; nothing more will be received or sent.
    #[error("connection closed")]
    Closed,
    /// A message was sent before the handshake completed or after a close frame was sent.
    #[error("connection not open for sending")]
    NotOpen,
    /// Transport error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl WsError {
    /// The status code to fail the connection with, if this error is a protocol violation by the
    /// peer (as opposed to an I/O error, a local misuse or an already closed connection).
    pub fn close_code(&self) -> Option<CloseCode> {
        use WsError::*;
        match self {
            ReservedBits(_)
            | ReservedOpcode(_)
            | FragmentedControl(_)
            | ControlTooLarge(_)
            | LengthOverflow
            | UnexpectedContinuation
            | ExpectedContinuation
            | MaskedFrame
            | UnmaskedFrame
            | InvalidClosePayload
            | InvalidCloseCode(_) => Some(CloseCode::PROTOCOL_ERROR),
            FrameTooLarge { .. } | MessageTooLarge { .. } => Some(CloseCode::MESSAGE_TOO_BIG),
            InvalidUtf8 => Some(CloseCode::INVALID_PAYLOAD),
            BufferTooSmall { .. } | Handshake(_) | AbnormalClosure | Closed | NotOpen | Io(_) => {
                None
            }
        }
    }
}
