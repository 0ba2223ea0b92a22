//! The hot-path decoder: a hand-written, single-pass scanner for Binance's message shapes.
//!
//! # Why not just simd-json
//!
//! A general JSON parser does work a feed does not need: it builds a tape or a tree of every
//! value, unescapes every string, converts every number, then the caller looks fields up by
//! name. A Binance message is small (about 150 bytes for a trade or a bookTicker) and has a
//! fixed vocabulary of one-letter keys, so the scanner walks the bytes once, recognises each key
//! with a `match`, records *where* the value of each interesting key is (a byte span, or the
//! integer itself), validates everything else without keeping it, and only then converts the
//! few values the message type needs, decimals straight to fixed-point mantissas. It allocates
//! nothing: all its state lives on the stack or in buffers sized at construction.
//!
//! Two paths fill the same slots. The hottest layouts (spot and USD-M `@trade` and
//! `@bookTicker` envelopes, exactly as Binance writes them) go through a template that compares
//! literal bytes and validates each value with the same lexer functions; anything else (another
//! key order, whitespace, escapes, other streams) falls back to the general member-by-member
//! scan. Which path ran never changes the result: the template only accepts bytes the general
//! scan would accept and fills exactly the slots it would fill (the tests edit those layouts
//! byte by byte to check it). Internally the lexer reports failures as one machine word, so
//! its `Result`s travel in registers; the public [`DecodeError`] is built once, on failure.
//!
//! # Strict, and in agreement with the reference
//!
//! The scanner accepts exactly what the reference decoder
//! ([`SimdDecoder`](super::reference::SimdDecoder)) accepts, and the differential test and fuzz
//! target check that it does. That is RFC 8259 JSON, plus these rules that both apply:
//!
//! * strings: no raw control bytes, valid UTF-8, escapes as JSON defines them; for UTF-16
//!   surrogates the scanner follows simd-json 0.15 (a lone high surrogate decodes to U+0000; a
//!   lone low surrogate, or a high one followed by `\u` below `DC00`, is an error);
//! * numbers are integers in `[-2^63, 2^64-1]`; a number with a fraction or an exponent is
//!   rejected anywhere in the message (Binance sends prices as strings and ids and times as
//!   integers, so a JSON float means the input is not what we think it is);
//! * nesting is at most [`MAX_DEPTH`] arrays/objects deep;
//! * duplicate keys: the first occurrence counts.
//!
//! Field order and whitespace do not matter. The meaning of the fields (which are required,
//! their types, how they become events) is shared with the reference decoder in
//! `schema.rs`, so the two can only differ in parsing.

use crate::event::MarketEvent;
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentId, InstrumentTable, Venue};

use super::error::{DecodeError, DecodeStats, Decoded};
use super::schema::{
    self, Access, Ctx, Key, SymbolCache, DATA_KEY, EXPECT_BOOL, EXPECT_LEVELS, EXPECT_OBJECT,
    EXPECT_STRING, EXPECT_UINT, KLINE_KEYS, MAX_DEPTH, PAYLOAD_KEYS, ROOT,
};
use super::{Decoder, DecoderConfig};

/// The allocation-free Binance market-data decoder for the feed stage.
///
/// One scanner per connection (it is bound to a [`Venue`]); it borrows the instrument table
/// filled during warm-up. Construction allocates the scratch buffers once (sized by
/// [`DecoderConfig`]); decoding never allocates.
///
/// ```
/// use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Venue};
/// use hotpath::venue::binance::Scanner;
///
/// let mut table = InstrumentTable::with_capacity(8);
/// let spec = InstrumentSpec::new(
///     Venue::BinanceSpot, "BTCUSDT".parse().unwrap(), InstrumentKind::Spot, 2, 5);
/// table.intern(spec).unwrap();
/// let mut scanner = Scanner::new(&table, Venue::BinanceSpot);
/// let msg = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,
///     "s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000",
///     "T":1723161255342,"m":true,"M":true}}"#;
/// let mut events = Vec::new();
/// let done = scanner.decode(msg, 0, &mut |e| events.push(e)).unwrap();
/// assert_eq!(done.events, 1);
/// assert_eq!(events[0].price.0, 6_183_763);
/// assert_eq!(events[0].qty.0, 2_000);
/// assert_eq!(events[0].stamps.venue_ns, 1_723_161_255_342_000_000);
/// ```
pub struct Scanner<'t> {
    table: &'t InstrumentTable,
    venue: Venue,
    config: DecoderConfig,
    /// Unescaped copies of the (rare) strings that contain escapes.
    scratch: Vec<u8>,
    /// Parsed depth levels of the current message, emitted once all are valid.
    levels: Vec<(Price, Qty)>,
    /// Captured values, valid where the message's presence mask says so (reused, never
    /// cleared: clearing 33 slots per message costs more than the mask).
    slots: [Raw; ALL_KEYS],
    cache: SymbolCache,
    stats: DecodeStats,
}

impl<'t> Scanner<'t> {
    /// A scanner for `venue` with the default [`DecoderConfig`].
    pub fn new(table: &'t InstrumentTable, venue: Venue) -> Self {
        Self::with_config(table, venue, DecoderConfig::default())
    }

    /// A scanner with explicit limits (allocates its buffers here, once).
    pub fn with_config(table: &'t InstrumentTable, venue: Venue, config: DecoderConfig) -> Self {
        let config = config.clamped();
        Scanner {
            table,
            venue,
            config,
            scratch: Vec::with_capacity(config.max_message_len),
            levels: Vec::with_capacity(config.max_levels),
            slots: [Raw::Absent; ALL_KEYS],
            cache: SymbolCache::default(),
            stats: DecodeStats::default(),
        }
    }

    /// Decode one WebSocket message (a combined-stream envelope `{"stream":..,"data":{..}}` or
    /// a bare payload) and hand its events to `sink`. On error nothing reaches the sink.
    #[inline]
    pub fn decode<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &[u8],
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        let r = self.run(msg, recv_tsc, None, sink);
        self.stats.record(&r);
        r
    }

    /// Decode a REST depth snapshot (`GET /api/v3/depth`, `/fapi/v1/depth`, `/dapi/v1/depth`)
    /// requested for `instrument` into `DepthLevel` events flagged
    /// [`FLAG_SNAPSHOT`](MarketEvent::FLAG_SNAPSHOT), with `lastUpdateId` as both update ids.
    /// If the body names a `symbol` (COIN-M does), it must be `instrument`'s.
    pub fn decode_depth_snapshot<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &[u8],
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

    /// Zero the counters.
    pub fn reset_stats(&mut self) {
        self.stats = DecodeStats::default();
    }

    /// The instrument table the scanner resolves symbols in.
    pub fn table(&self) -> &'t InstrumentTable {
        self.table
    }

    /// The venue this scanner decodes for.
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// The limits in force.
    pub fn config(&self) -> DecoderConfig {
        self.config
    }

    #[inline]
    fn run<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &[u8],
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
        self.scratch.clear();
        let mut scan = Scan::new(msg, &mut self.scratch, &mut self.slots);
        scan.message(snapshot.is_none())?;
        let mut ctx = Ctx {
            table: self.table,
            venue: self.venue,
            max_levels: self.config.max_levels,
            cache: &mut self.cache,
        };
        let levels = &mut self.levels;
        match snapshot {
            None => schema::decode_stream(&mut scan, &mut ctx, recv_tsc, levels, sink),
            Some(id) => schema::decode_snapshot(&mut scan, &mut ctx, id, recv_tsc, levels, sink),
        }
    }
}

impl Decoder for Scanner<'_> {
    #[inline]
    fn decode<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        Scanner::decode(self, msg, recv_tsc, sink)
    }

    fn decode_depth_snapshot<S: FnMut(MarketEvent)>(
        &mut self,
        msg: &mut [u8],
        instrument: InstrumentId,
        recv_tsc: u64,
        sink: &mut S,
    ) -> Result<Decoded, DecodeError> {
        Scanner::decode_depth_snapshot(self, msg, instrument, recv_tsc, sink)
    }

    fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}

// ------------------------------------------------------------------------------------------
// Lexing: free functions over the message bytes. Each takes the index of the first byte of a
// token and returns the index just past it (sometimes with flags packed in the high bits), or
// a one-word `Fail`: `Result<usize, Fail>` travels in two registers, which keeps the hot path
// free of the memory round trips a large error type would cost on every call.
// ------------------------------------------------------------------------------------------

/// Why the scanner rejected the bytes (expanded into a [`DecodeError`] once, at the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Reason {
    Truncated,
    Control,
    Utf8,
    Escape,
    Hex,
    Surrogate,
    LoneLow,
    Number,
    Float,
    Range,
    Literal,
    Colon,
    Key,
    ObjectSep,
    ArraySep,
    Value,
    Depth,
    Trailing,
}

impl Reason {
    fn text(self) -> &'static str {
        match self {
            Reason::Truncated => "truncated",
            Reason::Control => "control character in a string",
            Reason::Utf8 => "invalid UTF-8 in a string",
            Reason::Escape => "invalid escape in a string",
            Reason::Hex => "invalid \\u escape",
            Reason::Surrogate => "invalid UTF-16 surrogate pair",
            Reason::LoneLow => "lone low UTF-16 surrogate",
            Reason::Number => "invalid number",
            Reason::Float => {
                "a number with a fraction or exponent (Binance sends decimals as strings)"
            }
            Reason::Range => "integer out of the 64-bit range",
            Reason::Literal => "invalid literal",
            Reason::Colon => "expected ':' after an object key",
            Reason::Key => "expected a string key",
            Reason::ObjectSep => "expected ',' or '}' in an object",
            Reason::ArraySep => "expected ',' or ']' in an array",
            Reason::Value => "expected a JSON value",
            Reason::Depth => "JSON nested deeper than 64 levels",
            Reason::Trailing => "characters after the end of the message",
        }
    }
}

/// A rejection: byte offset in the low 32 bits, [`Reason`] above.
#[derive(Clone, Copy, Debug)]
struct Fail(u64);

impl Fail {
    #[cold]
    #[inline(never)]
    fn at(offset: usize, reason: Reason) -> Fail {
        Fail(offset as u64 & 0xffff_ffff | (reason as u64) << 32)
    }

    fn into_error(self, len: usize) -> DecodeError {
        let offset = (self.0 & 0xffff_ffff) as usize;
        let reason = Reason::ALL[((self.0 >> 32) as usize).min(Reason::ALL.len() - 1)];
        match reason {
            Reason::Truncated => DecodeError::Truncated { offset: len },
            r => DecodeError::Malformed {
                offset,
                reason: r.text(),
            },
        }
    }
}

impl Reason {
    const ALL: [Reason; 18] = [
        Reason::Truncated,
        Reason::Control,
        Reason::Utf8,
        Reason::Escape,
        Reason::Hex,
        Reason::Surrogate,
        Reason::LoneLow,
        Reason::Number,
        Reason::Float,
        Reason::Range,
        Reason::Literal,
        Reason::Colon,
        Reason::Key,
        Reason::ObjectSep,
        Reason::ArraySep,
        Reason::Value,
        Reason::Depth,
        Reason::Trailing,
    ];
}

type Lex = Result<usize, Fail>;

/// High bit of a packed index: the string had escapes / the integer was negative.
const FLAG: usize = 1 << (usize::BITS - 1);

#[cold]
#[inline(never)]
fn truncated(b: &[u8]) -> Fail {
    Fail::at(b.len(), Reason::Truncated)
}

/// The byte at `i`, or a truncation.
#[inline(always)]
fn at(b: &[u8], i: usize) -> Result<u8, Fail> {
    match b.get(i) {
        Some(&c) => Ok(c),
        None => Err(truncated(b)),
    }
}

/// Index of the first non-whitespace byte at or after `i` (JSON whitespace only).
#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(&c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in the lowest byte of `x` that is zero (bits above it may be false positives).
#[inline(always)]
const fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Flags bytes of `w` that end a run of plain string content: `"`, `\`, control bytes and
/// non-ASCII bytes. The lowest flagged byte is exact (each term only has false positives above a
/// true one).
#[inline(always)]
const fn string_specials(w: u64) -> u64 {
    zero_bytes(w ^ (ONES * b'"' as u64))
        | zero_bytes(w ^ (ONES * b'\\' as u64))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGH)
        | (w & HIGH)
}

#[inline(always)]
fn load8(b: &[u8], i: usize) -> Option<u64> {
    match b.get(i..) {
        Some(rest) => rest.first_chunk::<8>().map(|c| u64::from_le_bytes(*c)),
        None => None,
    }
}

/// Scan and validate the string whose opening quote is at `i`. Returns the index of the
/// closing quote, with [`FLAG`] set if the string contains escapes.
#[inline(always)]
fn string(b: &[u8], i: usize) -> Lex {
    let start = i + 1;
    let mut j = start;
    // Fast path: plain ASCII content, 8 bytes at a time, up to the closing quote.
    while let Some(w) = load8(b, j) {
        let m = string_specials(w);
        if m != 0 {
            j += (m.trailing_zeros() / 8) as usize;
            if b[j] == b'"' {
                return Ok(j);
            }
            return string_slow(b, start, j);
        }
        j += 8;
    }
    string_slow(b, start, j)
}

/// The rest of a string from `j`: escapes, non-ASCII, control bytes, the last few bytes.
#[inline(never)]
fn string_slow(b: &[u8], start: usize, mut j: usize) -> Lex {
    let mut escaped = false;
    let mut non_ascii = false;
    loop {
        while let Some(w) = load8(b, j) {
            let m = string_specials(w);
            if m != 0 {
                j += (m.trailing_zeros() / 8) as usize;
                break;
            }
            j += 8;
        }
        match at(b, j)? {
            b'"' => break,
            b'\\' => {
                escaped = true;
                j = escape(b, j)?;
            }
            0..=0x1f => return Err(Fail::at(j, Reason::Control)),
            0x80..=0xff => {
                non_ascii = true;
                j += 1;
            }
            _ => j += 1,
        }
    }
    if non_ascii && core::str::from_utf8(&b[start..j]).is_err() {
        return Err(Fail::at(start, Reason::Utf8));
    }
    Ok(if escaped { j | FLAG } else { j })
}

#[inline]
fn hex_digit(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'a'..=b'f' => Some(u32::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(c - b'A' + 10)),
        _ => None,
    }
}

/// The four hex digits at `i`.
fn hex4(b: &[u8], i: usize) -> Result<u32, Fail> {
    let mut v = 0;
    for k in i..i + 4 {
        match hex_digit(at(b, k)?) {
            Some(d) => v = v << 4 | d,
            None => return Err(Fail::at(k, Reason::Hex)),
        }
    }
    Ok(v)
}

/// Validate the escape sequence at the backslash at `j`; returns the index after it.
#[cold]
fn escape(b: &[u8], j: usize) -> Lex {
    match at(b, j + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(j + 2),
        b'u' => match hex4(b, j + 2)? {
            0xD800..=0xDBFF => {
                if b.get(j + 6) == Some(&b'\\') && b.get(j + 7) == Some(&b'u') {
                    if hex4(b, j + 8)? < 0xDC00 {
                        return Err(Fail::at(j, Reason::Surrogate));
                    }
                    Ok(j + 12)
                } else {
                    // A lone high surrogate: simd-json 0.15 decodes it as U+0000.
                    Ok(j + 6)
                }
            }
            0xDC00..=0xDFFF => Err(Fail::at(j, Reason::LoneLow)),
            _ => Ok(j + 6),
        },
        _ => Err(Fail::at(j, Reason::Escape)),
    }
}

/// Decode the validated escaped string content `raw`, byte by byte, exactly as simd-json 0.15
/// does (see [`escape`]).
#[cold]
fn unescape(raw: &[u8], mut put: impl FnMut(u8)) {
    let hex = |s: Option<&[u8]>| -> u32 {
        s.map_or(0, |s| {
            s.iter().fold(0, |v, &c| v << 4 | hex_digit(c).unwrap_or(0))
        })
    };
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c != b'\\' {
            put(c);
            i += 1;
            continue;
        }
        let e = raw.get(i + 1).copied().unwrap_or(b'\\');
        if e != b'u' {
            put(match e {
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                other => other,
            });
            i += 2;
            continue;
        }
        let mut cp = hex(raw.get(i + 2..i + 6));
        i += 6;
        if (0xD800..0xDC00).contains(&cp) {
            if raw.get(i..i + 2) == Some(b"\\u") {
                let lo = hex(raw.get(i + 2..i + 6));
                cp = (((cp - 0xD800) << 10) | lo.wrapping_sub(0xDC00)) + 0x10000;
                i += 6;
            } else {
                cp = 0;
            }
        }
        let mut buf = [0u8; 4];
        if let Some(ch) = char::from_u32(cp) {
            for &x in ch.encode_utf8(&mut buf).as_bytes() {
                put(x);
            }
        }
    }
}

/// Per-byte digit values of `chunk` and the number of leading bytes that are ASCII digits.
#[inline(always)]
const fn digit_run(chunk: u64) -> (u64, usize) {
    let x = chunk ^ (ONES * b'0' as u64);
    // A byte is a digit iff x < 10: `(x & 0x7f) + 0x76` sets the high bit iff `x & 0x7f >= 10`,
    // `| x` flags bytes whose own high bit is set.
    let non_digit = (((x & (ONES * 0x7f)) + ONES * 0x76) | x) & HIGH;
    let run = if non_digit == 0 {
        8
    } else {
        (non_digit.trailing_zeros() / 8) as usize
    };
    (x, run)
}

/// The number formed by 8 digit values (byte 0 most significant).
#[inline(always)]
const fn combine8(v: u64) -> u64 {
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff
}

const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Scan the integer at `i` (`-` or a digit) into `value` (its magnitude). Returns the index
/// after it, with [`FLAG`] set if it is negative.
#[inline(always)]
fn number(b: &[u8], i: usize, value: &mut u64) -> Lex {
    let neg = b.get(i) == Some(&b'-');
    let mut j = i + usize::from(neg);
    let first = at(b, j)?;
    if !first.is_ascii_digit() {
        return Err(Fail::at(j, Reason::Number));
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    if first == b'0' {
        j += 1;
    } else {
        loop {
            let Some(chunk) = load8(b, j) else {
                while let Some(&c) = b.get(j) {
                    if !c.is_ascii_digit() {
                        break;
                    }
                    match v
                        .checked_mul(10)
                        .and_then(|m| m.checked_add(u64::from(c - b'0')))
                    {
                        Some(n) => v = n,
                        None => overflow = true,
                    }
                    j += 1;
                }
                break;
            };
            let (x, run) = digit_run(chunk);
            if run > 0 {
                // Only the first `run` bytes: shift them to the top (low bytes become zeros).
                let d = combine8(if run == 8 { x } else { x << (8 * (8 - run)) });
                match v.checked_mul(POW10[run]).and_then(|m| m.checked_add(d)) {
                    Some(n) => v = n,
                    None => overflow = true,
                }
                j += run;
            }
            if run < 8 {
                break;
            }
        }
    }
    if matches!(b.get(j), Some(b'.' | b'e' | b'E')) {
        return Err(Fail::at(j, Reason::Float));
    }
    if overflow || (neg && v > 1 << 63) {
        return Err(Fail::at(i, Reason::Range));
    }
    *value = v;
    Ok(if neg { j | FLAG } else { j })
}

/// The literal `lit` at `i`.
#[inline]
fn literal(b: &[u8], i: usize, lit: &'static [u8]) -> Lex {
    match b.get(i..i + lit.len()) {
        Some(s) if s == lit => Ok(i + lit.len()),
        Some(_) => Err(Fail::at(i, Reason::Literal)),
        None => {
            let rest = b.get(i..).unwrap_or_default();
            if lit.starts_with(rest) {
                Err(truncated(b))
            } else {
                Err(Fail::at(i, Reason::Literal))
            }
        }
    }
}

/// After a key string ending before `i`: skip `:` and whitespace, return the value's index.
#[inline(always)]
fn colon(b: &[u8], i: usize) -> Lex {
    let i = ws(b, i);
    if at(b, i)? != b':' {
        return Err(Fail::at(i, Reason::Colon));
    }
    Ok(ws(b, i + 1))
}

/// Validate any JSON value at `i` that is enclosed by `depth` containers; returns the index
/// after it (for an array, its number of elements is in the high 32 bits).
#[inline]
fn skip_value(b: &[u8], i: usize, depth: usize) -> Lex {
    match at(b, i)? {
        b'"' => string(b, i).map(|e| (e & !FLAG) + 1),
        b'-' | b'0'..=b'9' => number(b, i, &mut 0).map(|n| n & !FLAG),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'[' | b'{' => container(b, i, depth),
        _ => Err(Fail::at(i, Reason::Value)),
    }
}

/// Index after a packed result.
#[inline(always)]
const fn low(packed: usize) -> usize {
    packed & 0xffff_ffff
}

/// Validate the array or object at `i` (enclosed by `depth` containers) without recursion:
/// one bit per open container says whether it is an object. Returns the index after it, with
/// the number of its elements (members for an object) in the high 32 bits.
fn container(b: &[u8], mut i: usize, depth: usize) -> Lex {
    #[derive(Clone, Copy)]
    enum St {
        Open,
        Value,
        After,
        Close,
    }
    let mut objects: u64 = 0;
    let mut open = 0usize;
    let mut count = 0usize;
    let mut st = St::Open;
    loop {
        match st {
            St::Open => {
                if depth + open + 1 > MAX_DEPTH {
                    return Err(Fail::at(i, Reason::Depth));
                }
                let is_obj = b[i] == b'{';
                if is_obj {
                    objects |= 1 << open;
                } else {
                    objects &= !(1 << open);
                }
                open += 1;
                i = ws(b, i + 1);
                let c = at(b, i)?;
                if c == if is_obj { b'}' } else { b']' } {
                    i += 1;
                    st = St::Close;
                    continue;
                }
                if open == 1 {
                    count += 1;
                }
                if is_obj {
                    if c != b'"' {
                        return Err(Fail::at(i, Reason::Key));
                    }
                    i = colon(b, (string(b, i)? & !FLAG) + 1)?;
                }
                st = St::Value;
            }
            St::Value => {
                i = match at(b, i)? {
                    b'[' | b'{' => {
                        st = St::Open;
                        continue;
                    }
                    b'"' => (string(b, i)? & !FLAG) + 1,
                    b'-' | b'0'..=b'9' => number(b, i, &mut 0)? & !FLAG,
                    b't' => literal(b, i, b"true")?,
                    b'f' => literal(b, i, b"false")?,
                    b'n' => literal(b, i, b"null")?,
                    _ => return Err(Fail::at(i, Reason::Value)),
                };
                st = St::After;
            }
            St::After => {
                i = ws(b, i);
                let is_obj = (objects >> (open - 1)) & 1 == 1;
                match at(b, i)? {
                    b',' => {
                        i = ws(b, i + 1);
                        if open == 1 {
                            count += 1;
                        }
                        if is_obj {
                            if at(b, i)? != b'"' {
                                return Err(Fail::at(i, Reason::Key));
                            }
                            i = colon(b, (string(b, i)? & !FLAG) + 1)?;
                        }
                        st = St::Value;
                    }
                    b'}' if is_obj => {
                        i += 1;
                        st = St::Close;
                    }
                    b']' if !is_obj => {
                        i += 1;
                        st = St::Close;
                    }
                    _ if is_obj => return Err(Fail::at(i, Reason::ObjectSep)),
                    _ => return Err(Fail::at(i, Reason::ArraySep)),
                }
            }
            St::Close => {
                open -= 1;
                if open == 0 {
                    return Ok(i | count.min(u32::MAX as usize) << 32);
                }
                st = St::After;
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Capturing: the values of the keys the schema reads, found in one pass.
// ------------------------------------------------------------------------------------------

/// Where a string value is: `start` (low 32 bits) and `len` (next 31 bits) in the message, or,
/// with the top bit set, in the scratch (unescaped). One word, written and read whole.
#[derive(Clone, Copy, Debug)]
struct Span(u64);

impl Span {
    const SCRATCH: u64 = 1 << 63;

    #[inline(always)]
    fn new(start: usize, len: usize, in_scratch: bool) -> Span {
        let flag = if in_scratch { Self::SCRATCH } else { 0 };
        Span(start as u64 & 0xffff_ffff | (len as u64 & 0x7fff_ffff) << 32 | flag)
    }

    #[inline(always)]
    fn parts(self) -> (usize, usize, bool) {
        (
            (self.0 & 0xffff_ffff) as usize,
            ((self.0 >> 32) & 0x7fff_ffff) as usize,
            self.0 & Self::SCRATCH != 0,
        )
    }
}

/// A captured value.
#[derive(Clone, Copy, Debug)]
enum Raw {
    Absent,
    Str(Span),
    UInt(u64),
    /// A negative integer (never valid for a Binance id or time, but valid JSON).
    Neg,
    Bool(bool),
    Null,
    /// An array: index of its `[` and number of elements.
    Array {
        start: u32,
        count: u32,
    },
    /// An object: index of its `{`.
    Object {
        start: u32,
    },
}

/// Which object the scanner is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The message's root (an envelope, or a bare payload).
    Root { envelope: bool },
    /// The envelope's `data` object.
    Data,
    /// A kline's `k` object.
    Kline,
}

/// State of the envelope's `data` key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DataState {
    Absent,
    Object,
    NotObject,
}

/// Payload and kline keys together.
const ALL_KEYS: usize = PAYLOAD_KEYS + KLINE_KEYS;
/// Presence bits of the payload keys.
const PAYLOAD_MASK: u64 = (1 << PAYLOAD_KEYS) - 1;
const _: () = assert!(ALL_KEYS <= 64);

/// One message being scanned: the captured fields of the payload (the `data` object if the
/// root has one, else the root) and of the kline object (filled on demand).
struct Scan<'m, 's> {
    b: &'m [u8],
    scratch: &'s mut Vec<u8>,
    /// Indexed by `Key as usize`; slot `k` is meaningful only if bit `k` of `present` is set.
    slots: &'s mut [Raw; ALL_KEYS],
    present: u64,
    kline_scanned: bool,
    data: DataState,
}

impl<'m, 's> Scan<'m, 's> {
    #[inline(always)]
    fn new(b: &'m [u8], scratch: &'s mut Vec<u8>, slots: &'s mut [Raw; ALL_KEYS]) -> Self {
        Scan {
            b,
            scratch,
            slots,
            present: 0,
            kline_scanned: false,
            data: DataState::Absent,
        }
    }

    /// Validate the whole message and capture the payload's fields. With `envelope`, a root
    /// key `data` holding an object makes that object the payload.
    #[inline]
    fn message(&mut self, envelope: bool) -> Result<(), DecodeError> {
        if envelope && self.template() {
            return Ok(());
        }
        self.present = 0;
        let b = self.b;
        let i = ws(b, 0);
        let root_is_object = b.get(i) == Some(&b'{');
        let scanned = if root_is_object {
            self.scan_object(i, 1, Level::Root { envelope })
        } else {
            skip_value(b, i, 0)
        };
        let end = match scanned {
            Ok(packed) => ws(b, low(packed)),
            Err(f) => return Err(f.into_error(b.len())),
        };
        if end != b.len() {
            return Err(Fail::at(end, Reason::Trailing).into_error(b.len()));
        }
        if !root_is_object {
            return Err(DecodeError::WrongType {
                field: ROOT,
                expected: EXPECT_OBJECT,
            });
        }
        if self.data == DataState::NotObject {
            return Err(DecodeError::WrongType {
                field: "data",
                expected: EXPECT_OBJECT,
            });
        }
        Ok(())
    }

    /// Fast path for the exact layouts Binance sends on its hottest streams (spot and USD-M
    /// `@trade` and `@bookTicker` in combined-stream envelopes, compact, keys in Binance's
    /// order): literal bytes are compared, each value is validated by the same lexer functions
    /// as in the general scan, and the same slots are filled. Any deviation (another order,
    /// whitespace, an escape, an extra key) returns false and the general scan starts over,
    /// so the result never depends on which path ran.
    #[inline]
    fn template(&mut self) -> bool {
        let b = self.b;
        let mut i = 0;
        if !(lit(b, &mut i, b"{\"stream\":\"")
            && self.t_str(&mut i, None)
            && lit(b, &mut i, b",\"data\":{\""))
        {
            return false;
        }
        let ok = if lit(b, &mut i, b"u\":") {
            // Spot bookTicker.
            self.t_int(&mut i, Key::u)
                && lit(b, &mut i, b",\"s\":\"")
                && self.t_str(&mut i, Some(Key::s))
                && self.t_quotes(&mut i)
        } else if lit(b, &mut i, b"e\":\"") {
            let e = i;
            if lit(b, &mut i, b"trade\",\"E\":") {
                self.t_keep(Key::e, e, 5);
                self.t_int(&mut i, Key::E)
                    && if lit(b, &mut i, b",\"s\":\"") {
                        // Spot trade.
                        self.t_str(&mut i, Some(Key::s))
                            && lit(b, &mut i, b",\"t\":")
                            && self.t_int(&mut i, Key::t)
                            && self.t_prices(&mut i, b"p", b"q")
                            && lit(b, &mut i, b",\"T\":")
                            && self.t_int(&mut i, Key::T)
                            && lit(b, &mut i, b",\"m\":")
                            && self.t_bool(&mut i, Some(Key::m))
                            && lit(b, &mut i, b",\"M\":")
                            && self.t_bool(&mut i, None)
                    } else {
                        // USD-M trade.
                        lit(b, &mut i, b",\"T\":")
                            && self.t_int(&mut i, Key::T)
                            && lit(b, &mut i, b",\"s\":\"")
                            && self.t_str(&mut i, Some(Key::s))
                            && lit(b, &mut i, b",\"t\":")
                            && self.t_int(&mut i, Key::t)
                            && self.t_prices(&mut i, b"p", b"q")
                            && lit(b, &mut i, b",\"X\":\"")
                            && self.t_str(&mut i, None)
                            && lit(b, &mut i, b",\"m\":")
                            && self.t_bool(&mut i, Some(Key::m))
                    }
            } else if lit(b, &mut i, b"bookTicker\",\"u\":") {
                // USD-M bookTicker.
                self.t_keep(Key::e, e, 10);
                self.t_int(&mut i, Key::u)
                    && lit(b, &mut i, b",\"s\":\"")
                    && self.t_str(&mut i, Some(Key::s))
                    && self.t_quotes(&mut i)
                    && lit(b, &mut i, b",\"T\":")
                    && self.t_int(&mut i, Key::T)
                    && lit(b, &mut i, b",\"E\":")
                    && self.t_int(&mut i, Key::E)
            } else {
                false
            }
        } else {
            false
        };
        if ok && lit(b, &mut i, b"}}") && i == b.len() {
            self.data = DataState::Object;
            return true;
        }
        false
    }

    /// Template: `,"b":"..","B":"..","a":"..","A":".."` of a book ticker.
    #[inline(always)]
    fn t_quotes(&mut self, i: &mut usize) -> bool {
        self.t_prices(i, b"b", b"B") && self.t_prices(i, b"a", b"A")
    }

    /// Template: `,"<k1>":"..","<k2>":".."` (two decimal strings).
    #[inline(always)]
    fn t_prices(&mut self, i: &mut usize, k1: &[u8; 1], k2: &[u8; 1]) -> bool {
        let b = self.b;
        let (Some(key1), Some(key2)) = (Key::payload1(k1[0]), Key::payload1(k2[0])) else {
            return false;
        };
        b.get(*i..*i + 6) == Some(&[b',', b'"', k1[0], b'"', b':', b'"'])
            && {
                *i += 6;
                self.t_str(i, Some(key1))
            }
            && b.get(*i..*i + 6) == Some(&[b',', b'"', k2[0], b'"', b':', b'"'])
            && {
                *i += 6;
                self.t_str(i, Some(key2))
            }
    }

    /// Template: the rest of a string whose opening quote is at `*i - 1`, without escapes.
    #[inline(always)]
    fn t_str(&mut self, i: &mut usize, key: Option<Key>) -> bool {
        match string(self.b, *i - 1) {
            Ok(end) if end & FLAG == 0 => {
                if let Some(key) = key {
                    self.t_keep(key, *i, end - *i);
                }
                *i = end + 1;
                true
            }
            _ => false,
        }
    }

    /// Template: a non-negative integer.
    #[inline(always)]
    fn t_int(&mut self, i: &mut usize, key: Key) -> bool {
        let mut v = 0;
        match number(self.b, *i, &mut v) {
            Ok(n) if n & FLAG == 0 => {
                self.slots[key as usize] = Raw::UInt(v);
                self.present |= 1 << key as u32;
                *i = n;
                true
            }
            _ => false,
        }
    }

    /// Template: `true` or `false`.
    #[inline(always)]
    fn t_bool(&mut self, i: &mut usize, key: Option<Key>) -> bool {
        let v = if lit(self.b, i, b"true") {
            true
        } else if lit(self.b, i, b"false") {
            false
        } else {
            return false;
        };
        if let Some(key) = key {
            self.slots[key as usize] = Raw::Bool(v);
            self.present |= 1 << key as u32;
        }
        true
    }

    /// Template: record the string content `start..start + len` for `key`.
    #[inline(always)]
    fn t_keep(&mut self, key: Key, start: usize, len: usize) {
        self.slots[key as usize] = Raw::Str(Span::new(start, len, false));
        self.present |= 1 << key as u32;
    }

    /// Scan the object at `i` (at nesting `depth`), capturing the members `level` cares about.
    #[inline]
    fn scan_object(&mut self, i: usize, depth: usize, level: Level) -> Lex {
        let b = self.b;
        let mut i = ws(b, i + 1);
        if at(b, i)? == b'}' {
            return Ok(i + 1);
        }
        loop {
            // Fast path: a one-byte plain key followed directly by `:` (almost every Binance
            // member), recognised with one bounds check.
            i = match b.get(i..i + 4) {
                Some(&[b'"', c, b'"', b':']) if plain_key_byte(c) => {
                    let key = match level {
                        Level::Root { .. } if self.data != DataState::Absent => None,
                        Level::Root { .. } | Level::Data => Key::payload1(c),
                        Level::Kline => Key::kline1(c),
                    };
                    self.member(ws(b, i + 4), depth, key)?
                }
                // The combined-stream envelope's two keys, as literals.
                Some(b"\"str")
                    if level == (Level::Root { envelope: true })
                        && b.get(i + 4..i + 9) == Some(b"eam\":") =>
                {
                    self.member(ws(b, i + 9), depth, None)?
                }
                Some(b"\"dat")
                    if level == (Level::Root { envelope: true })
                        && b.get(i + 4..i + 7) == Some(b"a\":") =>
                {
                    self.data_member(ws(b, i + 7), depth)?
                }
                _ => self.member_slow(i, depth, level)?,
            };
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => return Ok(i + 1),
                _ => {
                    i = ws(b, i);
                    match at(b, i)? {
                        b',' => i = ws(b, i + 1),
                        b'}' => return Ok(i + 1),
                        _ => return Err(Fail::at(i, Reason::ObjectSep)),
                    }
                }
            }
        }
    }

    /// A member in its general form: any key (escaped, long, non-ASCII), whitespace anywhere.
    #[inline(never)]
    fn member_slow(&mut self, i: usize, depth: usize, level: Level) -> Lex {
        let b = self.b;
        if at(b, i)? != b'"' {
            return Err(Fail::at(i, Reason::Key));
        }
        let end = string(b, i)?;
        let v = colon(b, (end & !FLAG) + 1)?;
        let mut buf = [0u8; 16];
        let name = if end & FLAG == 0 {
            Some(&b[i + 1..end])
        } else {
            unescape_key(&b[i + 1..end & !FLAG], &mut buf)
        };
        if level == (Level::Root { envelope: true }) && name == Some(DATA_KEY) {
            return self.data_member(v, depth);
        }
        let key = match level {
            Level::Root { .. } if self.data != DataState::Absent => None,
            Level::Root { .. } | Level::Data => name.and_then(Key::payload),
            Level::Kline => name.and_then(Key::kline),
        };
        self.member(v, depth, key)
    }

    /// The envelope's `data` member at `v`: the first one becomes the payload.
    fn data_member(&mut self, v: usize, depth: usize) -> Lex {
        if self.data != DataState::Absent {
            return skip_value(self.b, v, depth).map(low);
        }
        // From now on the payload is `data` alone: forget root members seen so far.
        self.present &= !PAYLOAD_MASK;
        if at(self.b, v)? == b'{' {
            self.data = DataState::Object;
            return self.scan_object(v, depth + 1, Level::Data);
        }
        self.data = DataState::NotObject;
        skip_value(self.b, v, depth).map(low)
    }

    /// Scan the value at `v` of a member whose key is `key` (`None`: not one we read).
    #[inline(always)]
    fn member(&mut self, v: usize, depth: usize, key: Option<Key>) -> Lex {
        match key {
            // The first occurrence of a key counts; duplicates are only validated.
            Some(key) if self.present & (1 << key as u32) == 0 => self.capture(v, depth, key),
            // Unread string values (`"stream":"btcusdt@trade"`) are common: skip them inline.
            _ if self.b.get(v) == Some(&b'"') => Ok((string(self.b, v)? & !FLAG) + 1),
            _ => skip_value(self.b, v, depth).map(low),
        }
    }

    /// Scan the value at `v` and keep it in `key`'s slot.
    #[inline(always)]
    fn capture(&mut self, v: usize, depth: usize, key: Key) -> Lex {
        let b = self.b;
        let (raw, next) = match at(b, v)? {
            b'"' => {
                let end = string(b, v)?;
                (Raw::Str(self.keep(v + 1, end)), (end & !FLAG) + 1)
            }
            b'-' | b'0'..=b'9' => {
                let mut value = 0;
                let n = number(b, v, &mut value)?;
                if n & FLAG == 0 {
                    (Raw::UInt(value), n)
                } else {
                    (Raw::Neg, n & !FLAG)
                }
            }
            b't' => (Raw::Bool(true), literal(b, v, b"true")?),
            b'f' => (Raw::Bool(false), literal(b, v, b"false")?),
            b'n' => (Raw::Null, literal(b, v, b"null")?),
            b'[' => {
                let packed = container(b, v, depth)?;
                let count = (packed >> 32) as u32;
                (
                    Raw::Array {
                        start: v as u32,
                        count,
                    },
                    low(packed),
                )
            }
            b'{' => (
                Raw::Object { start: v as u32 },
                low(container(b, v, depth)?),
            ),
            _ => return Err(Fail::at(v, Reason::Value)),
        };
        self.slots[key as usize] = raw;
        self.present |= 1 << key as u32;
        Ok(next)
    }

    /// The span of the string content `start..end` (`end` as returned by [`string`]),
    /// unescaping it into the scratch if it has escapes.
    #[inline(always)]
    fn keep(&mut self, start: usize, end: usize) -> Span {
        if end & FLAG == 0 {
            return Span::new(start, end - start, false);
        }
        self.keep_escaped(start, end & !FLAG)
    }

    #[cold]
    fn keep_escaped(&mut self, start: usize, end: usize) -> Span {
        let at = self.scratch.len();
        let scratch = &mut *self.scratch;
        unescape(&self.b[start..end], |c| scratch.push(c));
        Span::new(at, self.scratch.len() - at, true)
    }

    #[inline(always)]
    fn span(&self, s: Span) -> &[u8] {
        let (start, len, in_scratch) = s.parts();
        let buf: &[u8] = if in_scratch { self.scratch } else { self.b };
        buf.get(start..start + len).unwrap_or_default()
    }

    #[inline(always)]
    fn raw(&self, key: Key) -> Raw {
        if self.present & (1 << key as u32) != 0 {
            self.slots[key as usize]
        } else {
            Raw::Absent
        }
    }

    /// Walk the level array at `start` (validated by the first pass), calling `f` per level.
    fn walk_levels<F>(&mut self, key: Key, start: usize, f: &mut F) -> Result<(), DecodeError>
    where
        F: FnMut(&[u8], &[u8]) -> Result<(), DecodeError>,
    {
        let b = self.b;
        let fail = |e: Fail| e.into_error(b.len());
        let mut i = ws(b, start + 1);
        if at(b, i).map_err(fail)? == b']' {
            return Ok(());
        }
        loop {
            if at(b, i).map_err(fail)? != b'[' {
                return Err(wrong(key, EXPECT_LEVELS));
            }
            i = ws(b, i + 1);
            if at(b, i).map_err(fail)? != b'"' {
                return Err(wrong(key, EXPECT_LEVELS));
            }
            let (p_start, p_end) = (i + 1, string(b, i).map_err(fail)?);
            i = ws(b, (p_end & !FLAG) + 1);
            if at(b, i).map_err(fail)? != b',' {
                return Err(wrong(key, EXPECT_LEVELS));
            }
            i = ws(b, i + 1);
            if at(b, i).map_err(fail)? != b'"' {
                return Err(wrong(key, EXPECT_LEVELS));
            }
            let (q_start, q_end) = (i + 1, string(b, i).map_err(fail)?);
            i = ws(b, (q_end & !FLAG) + 1);
            // Anything after the quantity is ignored (valid JSON, already checked).
            while at(b, i).map_err(fail)? == b',' {
                i = ws(b, low(skip_value(b, ws(b, i + 1), 0).map_err(fail)?));
            }
            i = ws(b, i + 1);
            let (p, q) = (self.keep(p_start, p_end), self.keep(q_start, q_end));
            f(self.span(p), self.span(q))?;
            if at(b, i).map_err(fail)? != b',' {
                return Ok(());
            }
            i = ws(b, i + 1);
        }
    }
}

/// If `b[*i..]` starts with `l`, step over it.
#[inline(always)]
fn lit(b: &[u8], i: &mut usize, l: &[u8]) -> bool {
    if b.get(*i..*i + l.len()) == Some(l) {
        *i += l.len();
        true
    } else {
        false
    }
}

/// A byte that is a whole key by itself in the fast path: printable ASCII other than `"` and
/// `\\` (everything else goes through the general path, which validates it).
#[inline(always)]
fn plain_key_byte(c: u8) -> bool {
    (0x20..0x80).contains(&c) && c != b'"' && c != b'\\'
}

/// Unescape a key into `buf`; `None` if it is longer than any key the schema knows.
#[cold]
fn unescape_key<'a>(raw: &[u8], buf: &'a mut [u8; 16]) -> Option<&'a [u8]> {
    let mut n = 0usize;
    let mut too_long = false;
    unescape(raw, |c| {
        if n < buf.len() {
            buf[n] = c;
            n += 1;
        } else {
            too_long = true;
        }
    });
    if too_long {
        None
    } else {
        Some(&buf[..n])
    }
}

#[cold]
fn wrong(key: Key, expected: &'static str) -> DecodeError {
    DecodeError::WrongType {
        field: key.name(),
        expected,
    }
}

impl Access for Scan<'_, '_> {
    #[inline(always)]
    fn str(&self, key: Key) -> Result<Option<&[u8]>, DecodeError> {
        match self.raw(key) {
            Raw::Str(s) => Ok(Some(self.span(s))),
            Raw::Absent => Ok(None),
            _ => Err(wrong(key, EXPECT_STRING)),
        }
    }

    #[inline(always)]
    fn uint(&self, key: Key) -> Result<Option<u64>, DecodeError> {
        match self.raw(key) {
            Raw::UInt(v) => Ok(Some(v)),
            Raw::Absent => Ok(None),
            _ => Err(wrong(key, EXPECT_UINT)),
        }
    }

    #[inline(always)]
    fn boolean(&self, key: Key) -> Result<Option<bool>, DecodeError> {
        match self.raw(key) {
            Raw::Bool(v) => Ok(Some(v)),
            Raw::Absent => Ok(None),
            _ => Err(wrong(key, EXPECT_BOOL)),
        }
    }

    fn object(&mut self, key: Key) -> Result<bool, DecodeError> {
        match self.raw(key) {
            Raw::Object { start } => {
                if !self.kline_scanned {
                    self.kline_scanned = true;
                    // Already validated (at its true depth) by the first pass.
                    let b = self.b;
                    self.scan_object(start as usize, 0, Level::Kline)
                        .map_err(|f| f.into_error(b.len()))?;
                }
                Ok(true)
            }
            Raw::Absent => Ok(false),
            _ => Err(wrong(key, EXPECT_OBJECT)),
        }
    }

    #[inline(always)]
    fn level_count(&self, key: Key) -> Result<Option<usize>, DecodeError> {
        match self.raw(key) {
            Raw::Array { count, .. } if key.is_levels() => Ok(Some(count as usize)),
            Raw::Absent => Ok(None),
            _ => Err(wrong(key, EXPECT_LEVELS)),
        }
    }

    #[inline]
    fn levels<F>(&mut self, key: Key, mut f: F) -> Result<(), DecodeError>
    where
        F: FnMut(&[u8], &[u8]) -> Result<(), DecodeError>,
    {
        match self.raw(key) {
            Raw::Array { start, .. } => self.walk_levels(key, start as usize, &mut f),
            Raw::Absent => Err(DecodeError::MissingField { field: key.name() }),
            _ => Err(wrong(key, EXPECT_LEVELS)),
        }
    }
}
