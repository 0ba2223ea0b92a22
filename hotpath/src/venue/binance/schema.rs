//! What a Binance market-data message means, written once for both decoders.
//!
//! The two decoders differ in how they *find* values in the JSON (a hand-written single-pass
//! scanner against simd-json's tape); what the values *mean* is defined here, once, through the
//! [`Access`] trait: which fields each message type requires, their JSON types, the order in
//! which problems are reported, how decimals become mantissas at the instrument's scales, and
//! how events are built. So a difference between the decoders can only come from parsing, and
//! the differential test and fuzz target aim squarely at that.
//!
//! Duplicate keys: the first occurrence counts (as in simd-json's tape lookup); later ones must
//! still be valid JSON.

use crate::event::{Aggressor, DepthIds, Kline, MarketEvent, MarketKind, Side, Stamps};
use crate::fixed::{parse_mantissa, ParseError, Price, Qty};
use crate::instrument::{InstrumentId, InstrumentRef, InstrumentTable, Venue};

use super::error::{DecodeError, Decoded, Text};

/// Deepest nesting of JSON arrays and objects either decoder accepts (the root object is depth
/// 1). Binance messages nest at most four deep; the bound keeps the scanner's container stack in
/// one machine word.
pub const MAX_DEPTH: usize = 64;

/// JSON keys the decoders look at. Payload keys first, then the keys of the kline object `k`
/// (prefixed `K`). The meaning of a key depends on the message type (`b` is the best bid price
/// in a bookTicker and the bid levels in a depth update).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Key {
    e,
    E,
    T,
    s,
    t,
    p,
    q,
    m,
    a,
    f,
    l,
    u,
    U,
    pu,
    b,
    B,
    A,
    k,
    lastUpdateId,
    bids,
    asks,
    symbol,
    Kt,
    KT,
    Ki,
    Ko,
    Kc,
    Kh,
    Kl,
    Kv,
    Kn,
    Kx,
    KV,
}

/// Number of payload keys (`e` ..= `symbol`).
pub(crate) const PAYLOAD_KEYS: usize = Key::symbol as usize + 1;
/// Number of kline keys (`Kt` ..= `KV`).
pub(crate) const KLINE_KEYS: usize = Key::KV as usize + 1 - PAYLOAD_KEYS;

impl Key {
    /// The JSON key as it appears in error messages.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Key::e => "e",
            Key::E => "E",
            Key::T => "T",
            Key::s => "s",
            Key::t => "t",
            Key::p => "p",
            Key::q => "q",
            Key::m => "m",
            Key::a => "a",
            Key::f => "f",
            Key::l => "l",
            Key::u => "u",
            Key::U => "U",
            Key::pu => "pu",
            Key::b => "b",
            Key::B => "B",
            Key::A => "A",
            Key::k => "k",
            Key::lastUpdateId => "lastUpdateId",
            Key::bids => "bids",
            Key::asks => "asks",
            Key::symbol => "symbol",
            Key::Kt => "k.t",
            Key::KT => "k.T",
            Key::Ki => "k.i",
            Key::Ko => "k.o",
            Key::Kc => "k.c",
            Key::Kh => "k.h",
            Key::Kl => "k.l",
            Key::Kv => "k.v",
            Key::Kn => "k.n",
            Key::Kx => "k.x",
            Key::KV => "k.V",
        }
    }

    /// True for a key of the kline object.
    #[inline]
    pub(crate) const fn is_kline(self) -> bool {
        self as usize >= PAYLOAD_KEYS
    }

    /// Index in the payload slots, or in the kline slots for a kline key.
    #[inline]
    pub(crate) const fn slot(self) -> usize {
        if self.is_kline() {
            self as usize - PAYLOAD_KEYS
        } else {
            self as usize
        }
    }

    /// True for keys whose value may be an array of depth levels.
    #[inline]
    pub(crate) const fn is_levels(self) -> bool {
        matches!(self, Key::b | Key::a | Key::bids | Key::asks)
    }

    /// The payload key named `name`.
    #[inline]
    pub(crate) fn payload(name: &[u8]) -> Option<Key> {
        match *name {
            [c] => Key::payload1(c),
            [b'p', b'u'] => Some(Key::pu),
            [b'b', b'i', b'd', b's'] => Some(Key::bids),
            [b'a', b's', b'k', b's'] => Some(Key::asks),
            [b's', b'y', b'm', b'b', b'o', b'l'] => Some(Key::symbol),
            [b'l', b'a', b's', b't', b'U', b'p', b'd', b'a', b't', b'e', b'I', b'd'] => {
                Some(Key::lastUpdateId)
            }
            _ => None,
        }
    }

    /// The payload key named by the single byte `c` (the common case, without a slice match).
    #[inline(always)]
    pub(crate) fn payload1(c: u8) -> Option<Key> {
        Some(match c {
            b'e' => Key::e,
            b'E' => Key::E,
            b'T' => Key::T,
            b's' => Key::s,
            b't' => Key::t,
            b'p' => Key::p,
            b'q' => Key::q,
            b'm' => Key::m,
            b'a' => Key::a,
            b'f' => Key::f,
            b'l' => Key::l,
            b'u' => Key::u,
            b'U' => Key::U,
            b'b' => Key::b,
            b'B' => Key::B,
            b'A' => Key::A,
            b'k' => Key::k,
            _ => return None,
        })
    }

    /// The kline key named by the single byte `c`.
    #[inline(always)]
    pub(crate) fn kline1(c: u8) -> Option<Key> {
        Some(match c {
            b't' => Key::Kt,
            b'T' => Key::KT,
            b'i' => Key::Ki,
            b'o' => Key::Ko,
            b'c' => Key::Kc,
            b'h' => Key::Kh,
            b'l' => Key::Kl,
            b'v' => Key::Kv,
            b'n' => Key::Kn,
            b'x' => Key::Kx,
            b'V' => Key::KV,
            _ => return None,
        })
    }

    /// The kline key named `name` (a key of the `k` object).
    #[inline]
    pub(crate) fn kline(name: &[u8]) -> Option<Key> {
        match *name {
            [c] => Key::kline1(c),
            _ => None,
        }
    }
}

/// The envelope key whose object value is the payload of a combined-stream message.
pub(crate) const DATA_KEY: &[u8] = b"data";

/// What a string must be, for [`DecodeError::WrongType`].
pub(crate) const EXPECT_STRING: &str = "a string";
/// What an id or a time must be.
pub(crate) const EXPECT_UINT: &str = "a non-negative integer";
/// What a flag must be.
pub(crate) const EXPECT_BOOL: &str = "true or false";
/// What `data` and `k` must be.
pub(crate) const EXPECT_OBJECT: &str = "an object";
/// What `b`/`a`/`bids`/`asks` of a depth message must be.
pub(crate) const EXPECT_LEVELS: &str = "an array of [price, quantity] string pairs";
/// Field name used for the whole message.
pub(crate) const ROOT: &str = "(message)";

/// Typed access to the fields of one message, as found by a decoder. Every method reports
/// [`DecodeError::WrongType`] when the key is present with another JSON type and `None`/`false`
/// when it is absent.
pub(crate) trait Access {
    /// The (unescaped) string value of `key`.
    fn str(&self, key: Key) -> Result<Option<&[u8]>, DecodeError>;
    /// The value of `key` as a JSON integer without a sign.
    fn uint(&self, key: Key) -> Result<Option<u64>, DecodeError>;
    /// The value of `key` as `true`/`false`.
    fn boolean(&self, key: Key) -> Result<Option<bool>, DecodeError>;
    /// True if `key` (only [`Key::k`]) holds an object, whose fields then become readable
    /// through the kline keys.
    fn object(&mut self, key: Key) -> Result<bool, DecodeError>;
    /// Number of elements of the array at `key` (a level key).
    fn level_count(&self, key: Key) -> Result<Option<usize>, DecodeError>;
    /// Calls `f(price, qty)` for each level of the array at `key`, in order; a level that is not
    /// an array starting with two strings is [`DecodeError::WrongType`] (reported when reached,
    /// after the levels before it were passed to `f`). The first error from `f` stops the walk.
    fn levels<F>(&mut self, key: Key, f: F) -> Result<(), DecodeError>
    where
        F: FnMut(&[u8], &[u8]) -> Result<(), DecodeError>;
}

/// What the semantic layer needs from a decoder.
pub(crate) struct Ctx<'a> {
    /// Instruments.
    pub table: &'a InstrumentTable,
    /// The decoder's venue (symbols are looked up on it).
    pub venue: Venue,
    /// Most levels in one depth message.
    pub max_levels: usize,
    /// The decoder's last symbol lookup.
    pub cache: &'a mut SymbolCache,
}

/// The last symbol looked up, byte for byte, and its instrument: a stream carries one symbol
/// (or a few), so most lookups are a 24-byte compare instead of a case-folding hash and probe.
/// Valid for the decoder's lifetime: its table is borrowed immutably.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SymbolCache {
    bytes: [u8; 24],
    len: usize,
    inst: Option<InstrumentRef>,
}

#[inline]
fn need<T>(v: Option<T>, key: Key) -> Result<T, DecodeError> {
    match v {
        Some(v) => Ok(v),
        None => Err(DecodeError::MissingField { field: key.name() }),
    }
}

#[inline]
fn instrument(ctx: &mut Ctx<'_>, symbol: &[u8]) -> Result<InstrumentRef, DecodeError> {
    let c = &mut *ctx.cache;
    if let Some(inst) = c.inst {
        if c.len == symbol.len() && same_short(&c.bytes, symbol) {
            return Ok(inst);
        }
    }
    match ctx.table.lookup(ctx.venue, symbol) {
        Some(id) => {
            let inst = ctx.table.instrument_ref(id);
            if let Some(dst) = c.bytes.get_mut(..symbol.len()) {
                dst.copy_from_slice(symbol);
                c.len = symbol.len();
                c.inst = Some(inst);
            }
            Ok(inst)
        }
        None => Err(DecodeError::UnknownSymbol {
            symbol: Text::new(symbol),
            venue: ctx.venue,
        }),
    }
}

/// `symbol == cached[..symbol.len()]` for a symbol of at most 24 bytes, with at most three
/// overlapping 8-byte compares instead of a `memcmp` call.
#[inline(always)]
fn same_short(cached: &[u8; 24], symbol: &[u8]) -> bool {
    let n = symbol.len();
    let word = |s: &[u8], at: usize| -> u64 {
        s.get(at..at + 8)
            .and_then(|w| w.first_chunk::<8>())
            .map_or(0, |w| u64::from_le_bytes(*w))
    };
    if (8..=24).contains(&n) {
        let last = n - 8;
        let mid = last.min(8);
        word(cached, 0) == word(symbol, 0)
            && word(cached, mid) == word(symbol, mid)
            && word(cached, last) == word(symbol, last)
    } else {
        cached.get(..n) == Some(symbol)
    }
}

#[inline]
fn decimal(s: &[u8], scale: u8, key: Key) -> Result<i64, DecodeError> {
    match parse_mantissa(s, scale) {
        Ok(v) => Ok(v),
        Err(e) => Err(decimal_error(e, key)),
    }
}

#[cold]
fn decimal_error(e: ParseError, key: Key) -> DecodeError {
    match e {
        ParseError::TooPrecise { scale } => DecodeError::TooPrecise {
            field: key.name(),
            scale,
        },
        error => DecodeError::InvalidNumber {
            field: key.name(),
            error,
        },
    }
}

#[inline]
fn ms_to_ns(ms: u64, key: Key) -> Result<u64, DecodeError> {
    match ms.checked_mul(1_000_000) {
        Some(ns) => Ok(ns),
        None => Err(DecodeError::InvalidValue {
            field: key.name(),
            reason: "milliseconds do not fit 64-bit nanoseconds",
        }),
    }
}

/// Seconds of a Binance kline interval (`1M` counts as 30 days).
pub(crate) fn interval_secs(i: &[u8]) -> Option<u32> {
    Some(match i {
        b"1s" => 1,
        b"1m" => 60,
        b"3m" => 180,
        b"5m" => 300,
        b"15m" => 900,
        b"30m" => 1_800,
        b"1h" => 3_600,
        b"2h" => 7_200,
        b"4h" => 14_400,
        b"6h" => 21_600,
        b"8h" => 28_800,
        b"12h" => 43_200,
        b"1d" => 86_400,
        b"3d" => 259_200,
        b"1w" => 604_800,
        b"1M" => 2_592_000,
        _ => return None,
    })
}

/// The message types of the WebSocket streams.
enum StreamKind {
    Trade,
    AggTrade,
    BookTicker,
    Depth,
    Kline,
}

/// Decode one WebSocket payload (the `data` object of a combined-stream message, or a bare
/// payload) into events.
#[inline]
pub(crate) fn decode_stream<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    levels: &mut Vec<(Price, Qty)>,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let kind = match a.str(Key::e)? {
        // Spot bookTicker payloads carry no `e`.
        None => StreamKind::BookTicker,
        Some(b"trade") => StreamKind::Trade,
        Some(b"aggTrade") => StreamKind::AggTrade,
        Some(b"bookTicker") => StreamKind::BookTicker,
        Some(b"depthUpdate") => StreamKind::Depth,
        Some(b"kline") => StreamKind::Kline,
        Some(other) => {
            return Err(DecodeError::UnknownEvent {
                name: Text::new(other),
            })
        }
    };
    match kind {
        StreamKind::Trade => trade(a, ctx, recv_tsc, sink),
        StreamKind::AggTrade => agg_trade(a, ctx, recv_tsc, sink),
        StreamKind::BookTicker => book_ticker(a, ctx, recv_tsc, sink),
        StreamKind::Depth => depth_update(a, ctx, recv_tsc, levels, sink),
        StreamKind::Kline => kline(a, ctx, recv_tsc, sink),
    }
}

#[inline]
fn trade<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let sym = need(a.str(Key::s)?, Key::s)?;
    let id = need(a.uint(Key::t)?, Key::t)?;
    let p = need(a.str(Key::p)?, Key::p)?;
    let q = need(a.str(Key::q)?, Key::q)?;
    let time = need(a.uint(Key::T)?, Key::T)?;
    let m = need(a.boolean(Key::m)?, Key::m)?;
    let inst = instrument(ctx, sym)?;
    let price = Price(decimal(p, inst.price_scale, Key::p)?);
    let qty = Qty(decimal(q, inst.qty_scale, Key::q)?);
    let stamps = Stamps::new(ms_to_ns(time, Key::T)?, recv_tsc);
    sink(MarketEvent::trade(
        inst,
        stamps,
        price,
        qty,
        Aggressor::from_buyer_is_maker(m),
        id,
    ));
    Ok(one(MarketKind::Trade, inst.id))
}

#[inline]
fn agg_trade<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let sym = need(a.str(Key::s)?, Key::s)?;
    let agg_id = need(a.uint(Key::a)?, Key::a)?;
    let p = need(a.str(Key::p)?, Key::p)?;
    let q = need(a.str(Key::q)?, Key::q)?;
    let first = need(a.uint(Key::f)?, Key::f)?;
    let last = need(a.uint(Key::l)?, Key::l)?;
    let time = need(a.uint(Key::T)?, Key::T)?;
    let m = need(a.boolean(Key::m)?, Key::m)?;
    let inst = instrument(ctx, sym)?;
    let price = Price(decimal(p, inst.price_scale, Key::p)?);
    let qty = Qty(decimal(q, inst.qty_scale, Key::q)?);
    let stamps = Stamps::new(ms_to_ns(time, Key::T)?, recv_tsc);
    let ids = crate::event::AggTradeIds {
        agg_id,
        first_trade_id: first,
        last_trade_id: last,
    };
    sink(MarketEvent::agg_trade(
        inst,
        stamps,
        price,
        qty,
        Aggressor::from_buyer_is_maker(m),
        ids,
    ));
    Ok(one(MarketKind::AggTrade, inst.id))
}

#[inline]
fn book_ticker<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let sym = need(a.str(Key::s)?, Key::s)?;
    let update_id = need(a.uint(Key::u)?, Key::u)?;
    let bp = need(a.str(Key::b)?, Key::b)?;
    let bq = need(a.str(Key::B)?, Key::B)?;
    let ap = need(a.str(Key::a)?, Key::a)?;
    let aq = need(a.str(Key::A)?, Key::A)?;
    // Spot has no event time; futures send `E`.
    let time = a.uint(Key::E)?;
    let inst = instrument(ctx, sym)?;
    let bid = (
        Price(decimal(bp, inst.price_scale, Key::b)?),
        Qty(decimal(bq, inst.qty_scale, Key::B)?),
    );
    let ask = (
        Price(decimal(ap, inst.price_scale, Key::a)?),
        Qty(decimal(aq, inst.qty_scale, Key::A)?),
    );
    let venue_ns = match time {
        Some(ms) => ms_to_ns(ms, Key::E)?,
        None => 0,
    };
    sink(MarketEvent::book_ticker(
        inst,
        Stamps::new(venue_ns, recv_tsc),
        bid,
        ask,
        update_id,
    ));
    Ok(one(MarketKind::BookTicker, inst.id))
}

#[inline]
fn depth_update<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    levels: &mut Vec<(Price, Qty)>,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let sym = need(a.str(Key::s)?, Key::s)?;
    let time = need(a.uint(Key::E)?, Key::E)?;
    let first = need(a.uint(Key::U)?, Key::U)?;
    let last = need(a.uint(Key::u)?, Key::u)?;
    let prev = a.uint(Key::pu)?;
    let nb = need(a.level_count(Key::b)?, Key::b)?;
    let na = need(a.level_count(Key::a)?, Key::a)?;
    let inst = instrument(ctx, sym)?;
    let stamps = Stamps::new(ms_to_ns(time, Key::E)?, recv_tsc);
    let ids = DepthIds {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: prev,
    };
    let levels_spec = LevelsSpec {
        bids: (Key::b, nb),
        asks: (Key::a, na),
        flags: 0,
    };
    emit_levels(a, ctx, inst, stamps, ids, levels_spec, levels, sink)
}

#[inline]
fn kline<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    recv_tsc: u64,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    if !a.object(Key::k)? {
        return Err(DecodeError::MissingField {
            field: Key::k.name(),
        });
    }
    let sym = need(a.str(Key::s)?, Key::s)?;
    let time = need(a.uint(Key::E)?, Key::E)?;
    let open_ms = need(a.uint(Key::Kt)?, Key::Kt)?;
    let close_ms = need(a.uint(Key::KT)?, Key::KT)?;
    let interval = need(a.str(Key::Ki)?, Key::Ki)?;
    let o = need(a.str(Key::Ko)?, Key::Ko)?;
    let c = need(a.str(Key::Kc)?, Key::Kc)?;
    let h = need(a.str(Key::Kh)?, Key::Kh)?;
    let l = need(a.str(Key::Kl)?, Key::Kl)?;
    let v = need(a.str(Key::Kv)?, Key::Kv)?;
    let n = need(a.uint(Key::Kn)?, Key::Kn)?;
    let x = need(a.boolean(Key::Kx)?, Key::Kx)?;
    let tbv = need(a.str(Key::KV)?, Key::KV)?;
    let Some(interval_secs) = interval_secs(interval) else {
        return Err(DecodeError::InvalidValue {
            field: Key::Ki.name(),
            reason: "unknown kline interval",
        });
    };
    let inst = instrument(ctx, sym)?;
    let (ps, qs) = (inst.price_scale, inst.qty_scale);
    let k = Kline {
        open: Price(decimal(o, ps, Key::Ko)?),
        high: Price(decimal(h, ps, Key::Kh)?),
        low: Price(decimal(l, ps, Key::Kl)?),
        close: Price(decimal(c, ps, Key::Kc)?),
        volume: Qty(decimal(v, qs, Key::Kv)?),
        taker_buy_volume: Qty(decimal(tbv, qs, Key::KV)?),
        trades: n,
        open_time_ns: ms_to_ns(open_ms, Key::Kt)?,
        close_time_ns: ms_to_ns(close_ms, Key::KT)?,
        interval_secs,
        closed: x,
    };
    let stamps = Stamps::new(ms_to_ns(time, Key::E)?, recv_tsc);
    sink(MarketEvent::kline(inst, stamps, k));
    Ok(one(MarketKind::Kline, inst.id))
}

/// Decode a REST depth snapshot (`{"lastUpdateId":..,"bids":[..],"asks":[..]}`, futures add
/// `E`/`T`, COIN-M adds `symbol`/`pair`) for `requested`.
#[inline]
pub(crate) fn decode_snapshot<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    requested: InstrumentId,
    recv_tsc: u64,
    levels: &mut Vec<(Price, Qty)>,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let Some(spec) = ctx.table.try_get(requested) else {
        return Err(DecodeError::InvalidValue {
            field: "instrument",
            reason: "the requested instrument id was not issued by this decoder's table",
        });
    };
    let last = need(a.uint(Key::lastUpdateId)?, Key::lastUpdateId)?;
    let nb = need(a.level_count(Key::bids)?, Key::bids)?;
    let na = need(a.level_count(Key::asks)?, Key::asks)?;
    let time = a.uint(Key::E)?;
    if let Some(sym) = a.str(Key::symbol)? {
        let found = instrument(ctx, sym)?;
        if found.id != requested {
            return Err(DecodeError::SymbolMismatch {
                symbol: Text::new(sym),
                requested,
            });
        }
    }
    let inst = InstrumentRef {
        id: requested,
        price_scale: spec.price_scale,
        qty_scale: spec.qty_scale,
    };
    let venue_ns = match time {
        Some(ms) => ms_to_ns(ms, Key::E)?,
        None => 0,
    };
    let ids = DepthIds {
        first_update_id: last,
        final_update_id: last,
        prev_final_update_id: None,
    };
    let levels_spec = LevelsSpec {
        bids: (Key::bids, nb),
        asks: (Key::asks, na),
        flags: MarketEvent::FLAG_SNAPSHOT,
    };
    let stamps = Stamps::new(venue_ns, recv_tsc);
    emit_levels(a, ctx, inst, stamps, ids, levels_spec, levels, sink)
}

/// Which arrays hold the levels, their lengths, and extra flags for every level event.
struct LevelsSpec {
    bids: (Key, usize),
    asks: (Key, usize),
    flags: u32,
}

/// Parse every level into `levels` (preallocated to `ctx.max_levels`), then, only if all of
/// them are valid, emit them: bids, then asks, `FLAG_LAST` on the final one.
#[allow(clippy::too_many_arguments)]
#[inline]
fn emit_levels<A: Access, S: FnMut(MarketEvent)>(
    a: &mut A,
    ctx: &mut Ctx<'_>,
    inst: InstrumentRef,
    stamps: Stamps,
    ids: DepthIds,
    spec: LevelsSpec,
    levels: &mut Vec<(Price, Qty)>,
    sink: &mut S,
) -> Result<Decoded, DecodeError> {
    let (bid_key, nb) = spec.bids;
    let (ask_key, na) = spec.asks;
    let total = nb.saturating_add(na);
    if total > ctx.max_levels {
        return Err(DecodeError::Oversized {
            what: "depth levels",
            len: total,
            max: ctx.max_levels,
        });
    }
    levels.clear();
    let (ps, qs) = (inst.price_scale, inst.qty_scale);
    for key in [bid_key, ask_key] {
        a.levels(key, |p, q| {
            let price = Price(decimal(p, ps, key)?);
            let qty = Qty(decimal(q, qs, key)?);
            levels.push((price, qty));
            Ok(())
        })?;
    }
    let n = levels.len();
    for (i, &(price, qty)) in levels.iter().enumerate() {
        let side = if i < nb { Side::Buy } else { Side::Sell };
        let mut ev = MarketEvent::depth_level(inst, stamps, side, price, qty, ids, i + 1 == n);
        ev.flags |= spec.flags;
        sink(ev);
    }
    Ok(Decoded {
        kind: MarketKind::DepthLevel,
        instrument: inst.id,
        events: n,
        depth: Some(ids),
    })
}

#[inline]
const fn one(kind: MarketKind, instrument: InstrumentId) -> Decoded {
    Decoded {
        kind,
        instrument,
        events: 1,
        depth: None,
    }
}
