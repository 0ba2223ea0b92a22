//! The reference decoder: simd-json's tape over the mutable receive buffer.
//!
//! It exists to be obviously right rather than fast: a mature, general JSON parser finds the
//! values, and the shared schema (`schema.rs`) gives them meaning. The hot-path
//! [`Scanner`](super::scanner::Scanner) is checked against it message by message (tests) and
//! byte by byte (fuzzing).
//!
//! # Three checks, because simd-json 0.15 alone is too lenient
//!
//! 1. **serde_json** validates the bytes first (`IgnoredAny`: grammar only, no values kept).
//!    simd-json 0.15 accepts some malformed input: bytes after an integer of 19 or more digits
//!    (`{"t":1234567890123456789x}`), a NUL byte after a scalar (`{"E":1\0}`). serde_json does
//!    not.
//! 2. **simd-json** builds the tape (reusing its buffers and tape, so steady state does not
//!    allocate for it) and rejects invalid UTF-8, bad surrogates and out-of-range numbers.
//! 3. A walk over the tape rejects JSON floats anywhere and nesting deeper than
//!    [`MAX_DEPTH`]: Binance never sends either, and simd-json's float
//!    parsing has acceptance quirks (exponents beyond 2^31 wrap) that nobody should have to
//!    reproduce.
//!
//! simd-json unescapes strings in place, so the caller's buffer is modified.

use simd_json::prelude::{TypedValue, ValueAsScalar, ValueIntoString};
use simd_json::{Node, StaticNode, ValueType};

use crate::event::MarketEvent;
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentId, InstrumentTable, Venue};

use super::error::{DecodeError, DecodeStats, Decoded};
use super::schema::{
    self, Access, Ctx, Key, SymbolCache, EXPECT_BOOL, EXPECT_LEVELS, EXPECT_OBJECT, EXPECT_STRING,
    EXPECT_UINT, KLINE_KEYS, MAX_DEPTH, PAYLOAD_KEYS, ROOT,
};
use super::{Decoder, DecoderConfig};

type TapeValue<'t, 'i> = simd_json::value::tape::Value<'t, 'i>;

/// The simd-json based Binance decoder (reference for the [`Scanner`](super::Scanner)).
pub struct SimdDecoder<'t> {
    table: &'t InstrumentTable,
    venue: Venue,
    config: DecoderConfig,
    buffers: simd_json::Buffers,
    /// The tape, kept between messages so its allocation is reused.
    tape: Option<simd_json::Tape<'static>>,
    levels: Vec<(Price, Qty)>,
    cache: SymbolCache,
    stats: DecodeStats,
}

impl<'t> SimdDecoder<'t> {
    /// A decoder for `venue` with the default [`DecoderConfig`].
    pub fn new(table: &'t InstrumentTable, venue: Venue) -> Self {
        Self::with_config(table, venue, DecoderConfig::default())
    }

    /// A decoder with explicit limits.
    pub fn with_config(table: &'t InstrumentTable, venue: Venue, config: DecoderConfig) -> Self {
        let config = config.clamped();
        SimdDecoder {
            table,
            venue,
            config,
            buffers: simd_json::Buffers::default(),
            tape: Some(simd_json::Tape::null().reset()),
            levels: Vec::with_capacity(config.max_levels),
            cache: SymbolCache::default(),
            stats: DecodeStats::default(),
        }
    }

    /// Decode one WebSocket message; see [`Scanner::decode`](super::Scanner::decode). `msg` is
    /// modified (simd-json unescapes in place).
    pub fn decode<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        let r = self.run(msg, recv_tsc, None, sink);
        self.stats.record(&r);
        r
    }

    /// Decode a REST depth snapshot; see
    /// [`Scanner::decode_depth_snapshot`](super::Scanner::decode_depth_snapshot).
    pub fn decode_depth_snapshot<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        instrument: InstrumentId,
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        let r = self.run(msg, recv_tsc, Some(instrument), sink);
        self.stats.record(&r);
        r
    }

    /// Counters of everything decoded so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn run<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        recv_tsc: u64,
        snapshot: Option<InstrumentId>,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        if msg.len() > self.config.max_message_len {
            return Err(DecodeError::Oversized {
                what: "bytes",
                len: msg.len(),
                max: self.config.max_message_len,
            });
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(msg) {
            return Err(if e.is_eof() {
                DecodeError::Truncated { offset: msg.len() }
            } else {
                DecodeError::Malformed {
                    offset: 0,
                    reason: "not valid JSON (serde_json)",
                }
            });
        }
        let mut ctx = Ctx {
            table: self.table,
            venue: self.venue,
            max_levels: self.config.max_levels,
            cache: &mut self.cache,
        };
        let mut tape = self
            .tape
            .take()
            .unwrap_or_else(simd_json::Tape::null)
            .reset();
        let r = decode_tape(
            msg,
            &mut self.buffers,
            &mut tape,
            &mut ctx,
            snapshot,
            recv_tsc,
            &mut self.levels,
            sink,
        );
        self.tape = Some(tape.reset());
        r
    }
}

impl Decoder for SimdDecoder<'_> {
    fn decode<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        SimdDecoder::decode(self, msg, recv_tsc, sink)
    }

    fn decode_depth_snapshot<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        instrument: InstrumentId,
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        SimdDecoder::decode_depth_snapshot(self, msg, instrument, recv_tsc, sink)
    }

    fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_tape<'m, S: FnMut(MarketEvent)>(
    msg: &'m mut [u8],
    buffers: &mut simd_json::Buffers,
    tape: &mut simd_json::Tape<'m>,
    ctx: &mut Ctx<'_>,
    snapshot: Option<InstrumentId>,
    recv_tsc: u64,
    levels: &mut Vec<(Price, Qty)>,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    if let Err(e) = simd_json::fill_tape(msg, buffers, tape) {
        return Err(match e.error() {
            simd_json::ErrorType::Eof => DecodeError::Truncated { offset: 0 },
            _ => DecodeError::Malformed {
                offset: 0,
                reason: "not valid JSON (simd-json)",
            },
        });
    }
    check_tape(&tape.0)?;
    let root = tape.as_value();
    if root.as_object().is_none() {
        return Err(DecodeError::WrongType {
            field: ROOT,
            expected: EXPECT_OBJECT,
        });
    }
    let payload = match snapshot {
        None => match root.get("data") {
            Some(data) if data.as_object().is_some() => data,
            Some(_) => {
                return Err(DecodeError::WrongType {
                    field: "data",
                    expected: EXPECT_OBJECT,
                })
            }
            None => root,
        },
        Some(_) => root,
    };
    let mut access = TapeAccess::new(payload);
    match snapshot {
        None => schema::decode_stream(&mut access, ctx, recv_tsc, levels, sink),
        Some(id) => schema::decode_snapshot(&mut access, ctx, id, recv_tsc, levels, sink),
    }
}

/// Reject JSON floats and nesting deeper than [`MAX_DEPTH`], walking the tape once with a stack
/// of "child nodes left" per open container.
fn check_tape(nodes: &[Node<'_>]) -> Result<(), DecodeError> {
    let mut left = [0usize; MAX_DEPTH];
    let mut open = 0usize;
    for node in nodes {
        while open > 0 && left[open - 1] == 0 {
            open -= 1;
        }
        if open > 0 {
            left[open - 1] -= 1;
        }
        let children =
            match *node {
                Node::Object { len, .. } => Some(2 * len),
                Node::Array { len, .. } => Some(len),
                Node::Static(StaticNode::F64(_)) => return Err(DecodeError::Malformed {
                    offset: 0,
                    reason:
                        "a number with a fraction or exponent (Binance sends decimals as strings)",
                }),
                _ => None,
            };
        if let Some(children) = children {
            if open + 1 > MAX_DEPTH {
                return Err(DecodeError::Malformed {
                    offset: 0,
                    reason: "JSON nested deeper than 64 levels",
                });
            }
            if children > 0 {
                left[open] = children;
                open += 1;
            }
        }
    }
    Ok(())
}

/// The payload's members (first occurrence of each key), and the kline object's once asked for.
struct TapeAccess<'t, 'i> {
    slots: [Option<TapeValue<'t, 'i>>; PAYLOAD_KEYS],
    kline: [Option<TapeValue<'t, 'i>>; KLINE_KEYS],
}

impl<'t, 'i> TapeAccess<'t, 'i> {
    fn new(payload: TapeValue<'t, 'i>) -> Self {
        let mut slots = [None; PAYLOAD_KEYS];
        if let Some(obj) = payload.as_object() {
            for (name, value) in obj.iter() {
                if let Some(key) = Key::payload(name.as_bytes()) {
                    slots[key.slot()].get_or_insert(value);
                }
            }
        }
        TapeAccess {
            slots,
            kline: [None; KLINE_KEYS],
        }
    }

    fn get(&self, key: Key) -> Option<TapeValue<'t, 'i>> {
        if key.is_kline() {
            self.kline[key.slot()]
        } else {
            self.slots[key.slot()]
        }
    }
}

fn wrong(key: Key, expected: &'static str) -> DecodeError {
    DecodeError::WrongType {
        field: key.name(),
        expected,
    }
}

impl Access for TapeAccess<'_, '_> {
    fn str(&self, key: Key) -> Result<Option<&[u8]>, DecodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.into_string() {
                Some(s) => Ok(Some(s.as_bytes())),
                None => Err(wrong(key, EXPECT_STRING)),
            },
        }
    }

    fn uint(&self, key: Key) -> Result<Option<u64>, DecodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.value_type() == ValueType::U64 => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => Err(wrong(key, EXPECT_UINT)),
            },
            Some(_) => Err(wrong(key, EXPECT_UINT)),
        }
    }

    fn boolean(&self, key: Key) -> Result<Option<bool>, DecodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_bool() {
                Some(b) => Ok(Some(b)),
                None => Err(wrong(key, EXPECT_BOOL)),
            },
        }
    }

    fn object(&mut self, key: Key) -> Result<bool, DecodeError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => match v.as_object() {
                Some(obj) => {
                    for (name, value) in obj.iter() {
                        if let Some(field) = Key::kline(name.as_bytes()) {
                            self.kline[field.slot()].get_or_insert(value);
                        }
                    }
                    Ok(true)
                }
                None => Err(wrong(key, EXPECT_OBJECT)),
            },
        }
    }

    fn level_count(&self, key: Key) -> Result<Option<usize>, DecodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_array() {
                Some(arr) if key.is_levels() => Ok(Some(arr.len())),
                _ => Err(wrong(key, EXPECT_LEVELS)),
            },
        }
    }

    fn levels<F>(&mut self, key: Key, mut f: F) -> Result<(), DecodeError>
    where
        F: FnMut(&[u8], &[u8]) -> Result<(), DecodeError>,
    {
        let Some(v) = self.get(key) else {
            return Err(DecodeError::MissingField { field: key.name() });
        };
        let Some(arr) = v.as_array() else {
            return Err(wrong(key, EXPECT_LEVELS));
        };
        for level in arr.iter() {
            let pair = level.as_array().ok_or_else(|| wrong(key, EXPECT_LEVELS))?;
            let price = pair.get(0).and_then(|p| p.into_string());
            let qty = pair.get(1).and_then(|q| q.into_string());
            match (price, qty) {
                (Some(p), Some(q)) => f(p.as_bytes(), q.as_bytes())?,
                _ => return Err(wrong(key, EXPECT_LEVELS)),
            }
        }
        Ok(())
    }
}
