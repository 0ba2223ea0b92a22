//! Decode errors, the per-message summary and per-kind counters.
//!
//! Everything here is `Copy` and allocation-free: a feed that rejects a malformed frame on the
//! hot path must not allocate to say so. Names that came from the wire (an unknown event type, an
//! unknown symbol) are kept inline in a [`Text`] of at most [`Text::CAPACITY`] bytes.

use core::fmt;

use crate::event::{DepthIds, MarketKind};
use crate::fixed::ParseError;
use crate::instrument::{InstrumentId, Venue};

/// A short piece of wire text kept inline for an error message (truncated beyond
/// [`Text::CAPACITY`] bytes; `Display` escapes anything that is not printable ASCII).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Text {
    bytes: [u8; Text::CAPACITY],
    len: u8,
    truncated: bool,
}

impl Text {
    /// Bytes kept inline.
    pub const CAPACITY: usize = 24;

    /// The first [`Text::CAPACITY`] bytes of `s`.
    pub fn new(s: &[u8]) -> Self {
        let n = s.len().min(Self::CAPACITY);
        let mut bytes = [0u8; Self::CAPACITY];
        bytes[..n].copy_from_slice(&s[..n]);
        Text {
            bytes,
            len: n as u8,
            truncated: s.len() > n,
        }
    }

    /// The bytes kept (possibly a prefix of the original).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// True if the original was longer than [`Text::CAPACITY`].
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() || b == b' ' {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Why a Binance message was rejected.
///
/// A rejected message emits no event at all: both decoders validate the whole message before
/// the first event reaches the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not well-formed JSON (or JSON the decoders do not accept: a number with a fraction or
    /// exponent, nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH)).
    #[error("malformed JSON at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset of the problem (the reference decoder reports 0: its parsers do not
        /// expose one uniformly).
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The input ended inside a JSON value: a frame cut short.
    #[error("truncated JSON: the input ends at byte {offset} inside a value")]
    Truncated {
        /// Length of the input.
        offset: usize,
    },
    /// The message, or the number of depth levels in it, exceeds the configured limit.
    #[error("oversized message: {len} {what}, the limit is {max}")]
    Oversized {
        /// `bytes` or `depth levels`.
        what: &'static str,
        /// The actual size.
        len: usize,
        /// The limit ([`DecoderConfig`](super::DecoderConfig)).
        max: usize,
    },
    /// The `e` field names an event type this decoder does not handle.
    #[error("unknown event type \"{name}\"")]
    UnknownEvent {
        /// The `e` value.
        name: Text,
    },
    /// The symbol is not in the instrument table for this decoder's venue.
    #[error("unknown symbol \"{symbol}\" on {venue}")]
    UnknownSymbol {
        /// The symbol as sent.
        symbol: Text,
        /// The decoder's venue.
        venue: Venue,
    },
    /// A depth snapshot names a different symbol than the instrument it was requested for.
    #[error("depth snapshot is for \"{symbol}\", not for the requested instrument {requested}")]
    SymbolMismatch {
        /// The snapshot's `symbol`.
        symbol: Text,
        /// The instrument the caller asked for.
        requested: InstrumentId,
    },
    /// A field the message type requires is absent.
    #[error("missing field \"{field}\"")]
    MissingField {
        /// JSON key (`k.t` for a field of the kline object).
        field: &'static str,
    },
    /// A field has the wrong JSON type (a number where a string is expected, a negative id, ...).
    #[error("field \"{field}\" must be {expected}")]
    WrongType {
        /// JSON key.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A price or quantity has a non-zero digit beyond the instrument's scale.
    #[error("field \"{field}\" has more decimals than the instrument's scale {scale} allows")]
    TooPrecise {
        /// JSON key (`b`/`a`/`bids`/`asks` for a depth level).
        field: &'static str,
        /// The instrument's scale for this field.
        scale: u8,
    },
    /// A price or quantity string is not a plain decimal, or does not fit a 64-bit mantissa.
    #[error("field \"{field}\" is not a valid decimal: {error}")]
    InvalidNumber {
        /// JSON key.
        field: &'static str,
        /// The parser's reason.
        error: ParseError,
    },
    /// A field has the right type but a value that cannot be used (an unknown kline interval,
    /// a time that does not fit nanoseconds).
    #[error("field \"{field}\" is invalid: {reason}")]
    InvalidValue {
        /// JSON key.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// The kind of a [`DecodeError`], for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ErrorKind {
    /// [`DecodeError::Malformed`].
    Malformed = 0,
    /// [`DecodeError::Truncated`].
    Truncated = 1,
    /// [`DecodeError::Oversized`].
    Oversized = 2,
    /// [`DecodeError::UnknownEvent`].
    UnknownEvent = 3,
    /// [`DecodeError::UnknownSymbol`].
    UnknownSymbol = 4,
    /// [`DecodeError::SymbolMismatch`].
    SymbolMismatch = 5,
    /// [`DecodeError::MissingField`].
    MissingField = 6,
    /// [`DecodeError::WrongType`].
    WrongType = 7,
    /// [`DecodeError::TooPrecise`].
    TooPrecise = 8,
    /// [`DecodeError::InvalidNumber`].
    InvalidNumber = 9,
    /// [`DecodeError::InvalidValue`].
    InvalidValue = 10,
}

impl ErrorKind {
    /// Every kind, in discriminant order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Malformed,
        ErrorKind::Truncated,
        ErrorKind::Oversized,
        ErrorKind::UnknownEvent,
        ErrorKind::UnknownSymbol,
        ErrorKind::SymbolMismatch,
        ErrorKind::MissingField,
        ErrorKind::WrongType,
        ErrorKind::TooPrecise,
        ErrorKind::InvalidNumber,
        ErrorKind::InvalidValue,
    ];

    /// Stable lowercase name (metrics labels, logs).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Oversized => "oversized",
            ErrorKind::UnknownEvent => "unknown_event",
            ErrorKind::UnknownSymbol => "unknown_symbol",
            ErrorKind::SymbolMismatch => "symbol_mismatch",
            ErrorKind::MissingField => "missing_field",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::TooPrecise => "too_precise",
            ErrorKind::InvalidNumber => "invalid_number",
            ErrorKind::InvalidValue => "invalid_value",
        }
    }

    /// True for the kinds that mean "this is not acceptable JSON" rather than "this JSON is not
    /// a message we can use". The two decoders may disagree on *which* of these two a broken
    /// frame gets (they detect different problems first), never on whether it is rejected.
    pub const fn is_syntax(self) -> bool {
        matches!(self, ErrorKind::Malformed | ErrorKind::Truncated)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl DecodeError {
    /// The kind of this error.
    pub const fn kind(&self) -> ErrorKind {
        match self {
            DecodeError::Malformed { .. } => ErrorKind::Malformed,
            DecodeError::Truncated { .. } => ErrorKind::Truncated,
            DecodeError::Oversized { .. } => ErrorKind::Oversized,
            DecodeError::UnknownEvent { .. } => ErrorKind::UnknownEvent,
            DecodeError::UnknownSymbol { .. } => ErrorKind::UnknownSymbol,
            DecodeError::SymbolMismatch { .. } => ErrorKind::SymbolMismatch,
            DecodeError::MissingField { .. } => ErrorKind::MissingField,
            DecodeError::WrongType { .. } => ErrorKind::WrongType,
            DecodeError::TooPrecise { .. } => ErrorKind::TooPrecise,
            DecodeError::InvalidNumber { .. } => ErrorKind::InvalidNumber,
            DecodeError::InvalidValue { .. } => ErrorKind::InvalidValue,
        }
    }
}

/// What one successfully decoded message produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Kind of the events emitted (`DepthLevel` for depth updates and snapshots).
    pub kind: MarketKind,
    /// The instrument.
    pub instrument: InstrumentId,
    /// Number of events handed to the sink (0 for a depth update without levels).
    pub events: usize,
    /// For depth updates and snapshots, the update ids, also when `events` is 0: an update with
    /// no levels still moves the `U`/`u`/`pu` chain, and the book must see that.
    pub depth: Option<DepthIds>,
}

/// Counters of decoded messages by kind and of rejections by [`ErrorKind`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    messages: [u64; 8],
    events: u64,
    errors: [u64; ErrorKind::ALL.len()],
}

impl DecodeStats {
    /// Count one decode result.
    #[inline]
    pub fn record(&mut self, result: &Result<Decoded, DecodeError>) {
        match result {
            Ok(d) => {
                self.messages[usize::from(d.kind.as_u8()) & 7] += 1;
                self.events += d.events as u64;
            }
            Err(e) => self.errors[e.kind() as usize] += 1,
        }
    }

    /// Messages decoded into events of `kind`.
    pub fn messages(&self, kind: MarketKind) -> u64 {
        self.messages[usize::from(kind.as_u8()) & 7]
    }

    /// All messages decoded successfully.
    pub fn total_messages(&self) -> u64 {
        self.messages.iter().sum()
    }

    /// Events handed to sinks.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Rejections of `kind`.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize]
    }

    /// All rejections.
    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Add every counter of `other`.
    pub fn merge(&mut self, other: &DecodeStats) {
        for (a, b) in self.messages.iter_mut().zip(other.messages) {
            *a += b;
        }
        self.events += other.events;
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
    }
}

impl fmt::Display for DecodeStats {
    /// One line: non-zero message counts by kind, events, non-zero error counts by kind.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "messages")?;
        for &k in MarketKind::ALL {
            let n = self.messages(k);
            if n > 0 {
                write!(f, " {k}={n}")?;
            }
        }
        write!(f, "; events {}; errors", self.events)?;
        if self.total_errors() == 0 {
            return write!(f, " none");
        }
        for k in ErrorKind::ALL {
            let n = self.errors(k);
            if n > 0 {
                write!(f, " {k}={n}")?;
            }
        }
        Ok(())
    }
}
