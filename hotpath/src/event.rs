//! The events that flow between hot-path stages and into the journal.
//!
//! Every event is a fixed-size, `Copy`, `#[repr(C)]` struct with no padding (every byte is a
//! named field; reserved bytes are explicit and zero), deriving rkyv `Archive` so that the
//! journal stores it and a tailer reads it **in place** from the memory-mapped file
//! ([`codec::access`](crate::codec::access)). With rkyv's `little_endian` + `aligned` features the
//! archived form has exactly the native layout on x86-64/aarch64 (asserted in
//! [`codec`](crate::codec)), so encoding is a bounded copy and reading is a validated cast.
//!
//! Each event carries [`Stamps`]: the venue's event time, the local receive time as a raw TSC
//! value, and one TSC stamp per hot-path stage, so every hop's latency can be measured in
//! production and reproduced in replay.
//!
//! Prices and quantities are [`Price`]/[`Qty`] mantissas; the instrument's scales are copied
//! into each record so that a journal can be read without the instrument table.
//!
//! Enumerations are `#[repr(u8)]` and start at 1: an all-zero payload is never a valid event,
//! and rkyv's validation rejects unknown discriminants in a corrupted record.
//!
//! **Changing any type here changes the journal format:** update the `schema!` invocation in
//! [`codec`](crate::codec) (the compiler checks it against the real layout) and bump
//! [`SCHEMA_VERSION`](crate::codec::SCHEMA_VERSION) for changes of meaning.

use core::fmt;

use rkyv::{Archive, Deserialize, Serialize};

use crate::fixed::{Decimal, Price, Qty};
use crate::instrument::{InstrumentId, InstrumentRef};

/// Defines a `#[repr(u8)]` enum that is journaled (rkyv derives, `from_u8`, `name`, `ALL`,
/// `Display`, and `to_native` on the archived enum).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident / $archived:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $disc:literal => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            Archive, Serialize, Deserialize,
        )]
        #[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash), compare(PartialEq))]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $disc, )+
        }

        impl $name {
            /// Every variant, in discriminant order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The variant with discriminant `v`.
            #[inline]
            pub const fn from_u8(v: u8) -> Option<Self> {
                match v {
                    $( $disc => Some($name::$variant), )+
                    _ => None,
                }
            }

            /// The discriminant.
            #[inline]
            pub const fn as_u8(self) -> u8 {
                self as u8
            }

            /// Stable lowercase name (logs, CLI, metrics labels).
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl $archived {
            /// The native value.
            #[inline]
            pub const fn to_native(&self) -> $name {
                match self {
                    $( $archived::$variant => $name::$variant, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }
    };
}

/// Per-stage TSC stamps (see [`Stage`]).
pub type StageTsc = [u64; 4];

/// Three reserved bytes (always zero).
pub type Reserved3 = [u8; 3];

/// A hot-path stage that stamps events as they pass ([`Stamps::stage_tsc`] index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// The feed decoded the event (or the gateway decoded the venue response).
    Decoded = 0,
    /// The strategy took the event off its ring.
    StrategyIn = 1,
    /// The strategy emitted its reaction (an intent, or nothing).
    StrategyOut = 2,
    /// The gateway wrote the order bytes to the socket.
    GatewaySend = 3,
}

/// Timestamps carried by every event.
///
/// TSC values are raw `quanta` counter readings (`quanta::Clock::raw`), comparable within one
/// machine and converted to nanoseconds off the hot path; 0 means "not reached/not known".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq), compare(PartialEq))]
#[repr(C)]
pub struct Stamps {
    /// Venue time, nanoseconds since the Unix epoch (Binance `T` for trades and fills, `E`
    /// otherwise, in ms times 10^6); 0 if the message has none.
    pub venue_ns: u64,
    /// Raw TSC when the bytes carrying the event were received.
    pub recv_tsc: u64,
    /// Raw TSC per [`Stage`]: decoded, strategy-in, strategy-out, gateway-send.
    pub stage_tsc: StageTsc,
}

impl Stamps {
    /// Stamps with the venue time and receive TSC, no stage reached yet.
    #[inline]
    pub const fn new(venue_ns: u64, recv_tsc: u64) -> Self {
        Stamps {
            venue_ns,
            recv_tsc,
            stage_tsc: [0; 4],
        }
    }

    /// Record that `stage` was reached at `tsc`.
    #[inline]
    pub fn stamp(&mut self, stage: Stage, tsc: u64) {
        self.stage_tsc[stage as usize] = tsc;
    }

    /// The TSC at which `stage` was reached, if it was.
    #[inline]
    pub const fn at(&self, stage: Stage) -> Option<u64> {
        match self.stage_tsc[stage as usize] {
            0 => None,
            t => Some(t),
        }
    }

    /// TSC ticks from receive to `stage`, if both are known.
    #[inline]
    pub fn since_recv(&self, stage: Stage) -> Option<u64> {
        match (self.recv_tsc, self.at(stage)) {
            (0, _) | (_, None) => None,
            (r, Some(t)) => t.checked_sub(r),
        }
    }

    /// TSC ticks from stage `from` to stage `to`, if both were reached.
    #[inline]
    pub fn between(&self, from: Stage, to: Stage) -> Option<u64> {
        self.at(to)?.checked_sub(self.at(from)?)
    }
}

impl ArchivedStamps {
    /// The native stamps.
    #[inline]
    pub fn to_native(&self) -> Stamps {
        Stamps {
            venue_ns: self.venue_ns.to_native(),
            recv_tsc: self.recv_tsc.to_native(),
            stage_tsc: [
                self.stage_tsc[0].to_native(),
                self.stage_tsc[1].to_native(),
                self.stage_tsc[2].to_native(),
                self.stage_tsc[3].to_native(),
            ],
        }
    }
}

wire_enum! {
    /// Order (or position) side.
    pub enum Side / ArchivedSide {
        /// Buy / long.
        Buy = 1 => "buy",
        /// Sell / short.
        Sell = 2 => "sell",
    }
}

impl Side {
    /// The other side.
    #[inline]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for buy, -1 for sell.
    #[inline]
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

wire_enum! {
    /// The aggressor (taker) side of a trade: whose market order crossed the spread.
    ///
    /// Binance reports `"m": true` when **the buyer is the maker**: the resting order was the
    /// bid, so the taker was the **seller** and the aggressor is [`Sell`](Aggressor::Sell). Use
    /// [`Aggressor::from_buyer_is_maker`] rather than re-deriving this.
    pub enum Aggressor / ArchivedAggressor {
        /// Not known (venue does not say, or not a trade).
        Unknown = 0 => "unknown",
        /// A buyer lifted the offer.
        Buy = 1 => "buy",
        /// A seller hit the bid.
        Sell = 2 => "sell",
    }
}

impl Aggressor {
    /// From Binance's `m` ("is the buyer the market maker?"): `true` means a seller aggressed.
    #[inline]
    pub const fn from_buyer_is_maker(m: bool) -> Aggressor {
        if m {
            Aggressor::Sell
        } else {
            Aggressor::Buy
        }
    }

    /// The aggressor as an order side, if known.
    #[inline]
    pub const fn side(self) -> Option<Side> {
        match self {
            Aggressor::Unknown => None,
            Aggressor::Buy => Some(Side::Buy),
            Aggressor::Sell => Some(Side::Sell),
        }
    }
}

wire_enum! {
    /// What a [`MarketEvent`] is.
    pub enum MarketKind / ArchivedMarketKind {
        /// A single trade (Binance `@trade`).
        Trade = 1 => "trade",
        /// An aggregated trade (Binance `@aggTrade`).
        AggTrade = 2 => "agg_trade",
        /// Best bid/offer update (Binance `@bookTicker`).
        BookTicker = 3 => "book_ticker",
        /// One price level of a depth diff or snapshot (Binance `@depth`, REST `/depth`).
        DepthLevel = 4 => "depth_level",
        /// A candle update (Binance `@kline_<interval>`).
        Kline = 5 => "kline",
        /// Forex top of book (FXCM, FIX).
        Quote = 6 => "quote",
    }
}

/// Update ids of a depth update (Binance `U`, `u`, and `pu` on futures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DepthIds {
    /// First update id in the event (`U`); for a REST snapshot level, the snapshot's
    /// `lastUpdateId`.
    pub first_update_id: u64,
    /// Final update id in the event (`u`); for a snapshot level, `lastUpdateId`.
    pub final_update_id: u64,
    /// Final update id of the previous event (`pu`, futures only).
    pub prev_final_update_id: Option<u64>,
}

/// Ids of an aggregated trade (Binance `a`, `f`, `l`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AggTradeIds {
    /// Aggregate trade id (`a`).
    pub agg_id: u64,
    /// First trade id (`f`).
    pub first_trade_id: u64,
    /// Last trade id (`l`).
    pub last_trade_id: u64,
}

/// The fields of a candle ([`MarketKind::Kline`]), as constructor input and accessor output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Kline {
    /// Open price (`o`).
    pub open: Price,
    /// High price (`h`).
    pub high: Price,
    /// Low price (`l`).
    pub low: Price,
    /// Close (last) price (`c`).
    pub close: Price,
    /// Base-asset volume (`v`).
    pub volume: Qty,
    /// Taker-buy base-asset volume (`V`): the buy-aggressor share of `volume`.
    pub taker_buy_volume: Qty,
    /// Number of trades (`n`).
    pub trades: u64,
    /// Candle open time, ns since the epoch (`t` in ms times 10^6).
    pub open_time_ns: u64,
    /// Candle close time, ns since the epoch (`T`, the last millisecond of the candle).
    pub close_time_ns: u64,
    /// Interval in seconds (60 for `1m`).
    pub interval_secs: u32,
    /// True once the candle is final (`x`).
    pub closed: bool,
}

/// A market-data event: one trade, book-ticker update, depth level, candle or quote.
///
/// 144 bytes, 8-aligned, no padding. The first 64 bytes hold everything a trade or top-of-book
/// consumer reads; ids, candle extras and stamps follow. Slots are shared between kinds:
///
/// | field | Trade / AggTrade | BookTicker / Quote | DepthLevel | Kline |
/// |---|---|---|---|---|
/// | `aggressor` | taker side | `Unknown` | `Unknown` | `Unknown` |
/// | `price` | trade price | 0 | level price | close |
/// | `qty` | trade qty | 0 | level qty (0 = remove) | base volume |
/// | `bid_px` / `bid_qty` | 0 | best bid / size | 0 | low / taker-buy volume |
/// | `ask_px` / `ask_qty` | 0 | best ask / size | 0 | high / 0 |
/// | `aux_px` | 0 | 0 | 0 | open |
/// | `id` | trade id `t` / aggregate id `a` | update id `u` (Quote: venue seq or 0) | final update id `u` | number of trades `n` |
/// | `first_id` | 0 / first trade id `f` | 0 | first update id `U` | open time (ns) |
/// | `aux_id` | 0 / last trade id `l` | 0 | previous final id `pu` if [`FLAG_HAS_PREV_ID`](Self::FLAG_HAS_PREV_ID) | close time (ns) |
/// | `interval_secs` | 0 | 0 | 0 | candle interval |
///
/// A depth update with N levels becomes N `DepthLevel` events sharing `U`/`u`/`pu`, bids then
/// asks, with [`FLAG_LAST`](Self::FLAG_LAST) on the final one; a consumer applies the update to
/// its book when it sees `FLAG_LAST`. `stamps.venue_ns` is the trade time `T` for trades and
/// the event time `E` for every other kind (0 for a bookTicker, which carries no time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct MarketEvent {
    /// Instrument (offset 0, 4 bytes).
    pub instrument: InstrumentId,
    /// What this event is (4, 1).
    pub kind: MarketKind,
    /// Aggressor side for trades; `Unknown` otherwise (5, 1).
    pub aggressor: Aggressor,
    /// The instrument's price scale, so the record is self-describing (6, 1).
    pub price_scale: u8,
    /// The instrument's quantity scale (7, 1).
    pub qty_scale: u8,
    /// `FLAG_*` bits (8, 4).
    pub flags: u32,
    /// Kline interval in seconds; 0 for other kinds (12, 4).
    pub interval_secs: u32,
    /// Trade/level price; Kline close (16, 8).
    pub price: Price,
    /// Trade/level quantity; Kline base volume (24, 8).
    pub qty: Qty,
    /// Best bid; Kline low (32, 8).
    pub bid_px: Price,
    /// Best bid size; Kline taker-buy base volume (40, 8).
    pub bid_qty: Qty,
    /// Best ask; Kline high (48, 8).
    pub ask_px: Price,
    /// Best ask size (56, 8).
    pub ask_qty: Qty,
    /// Kline open; reserved for a second price (mark/index) of future kinds (64, 8).
    pub aux_px: Price,
    /// Primary id: trade id, aggregate id, final update id `u`, Kline trade count (72, 8).
    pub id: u64,
    /// First trade id `f`, first update id `U`, Kline open time ns (80, 8).
    pub first_id: u64,
    /// Last trade id `l`, previous final update id `pu`, Kline close time ns (88, 8).
    pub aux_id: u64,
    /// Timestamps (96, 48).
    pub stamps: Stamps,
}

impl MarketEvent {
    /// DepthLevel: the last level of its depth update (or snapshot).
    pub const FLAG_LAST: u32 = 1 << 0;
    /// DepthLevel: a bid level (clear: ask).
    pub const FLAG_BID: u32 = 1 << 1;
    /// Kline: the candle is closed (final).
    pub const FLAG_KLINE_CLOSED: u32 = 1 << 2;
    /// DepthLevel: `aux_id` holds the previous final update id `pu` (futures).
    pub const FLAG_HAS_PREV_ID: u32 = 1 << 3;
    /// DepthLevel: from a REST snapshot rather than a diff stream.
    pub const FLAG_SNAPSHOT: u32 = 1 << 4;
    /// Set by the feed on every event of an instrument whose L2 book was proven (synchronised
    /// with no gap since its snapshot) after the event was applied. Signals and order sends are
    /// gated on it; carrying it in-band keeps the gate deterministic in replay, whatever the
    /// thread layout.
    pub const FLAG_BOOK_PROVEN: u32 = 1 << 5;
    /// Kline: history fetched over REST at start (the strategy's warm-up), not a live stream
    /// update.
    pub const FLAG_KLINE_HISTORY: u32 = 1 << 6;

    /// Filler for preallocated event buffers (an empty trade of [`InstrumentId::NONE`]); it is
    /// overwritten before use and never journaled or published as is.
    pub const PLACEHOLDER: MarketEvent = MarketEvent::base(
        MarketKind::Trade,
        InstrumentRef {
            id: InstrumentId::NONE,
            price_scale: 0,
            qty_scale: 0,
        },
        Stamps::new(0, 0),
    );

    /// An event of `kind` with every value field zero.
    #[inline]
    const fn base(kind: MarketKind, inst: InstrumentRef, stamps: Stamps) -> Self {
        MarketEvent {
            instrument: inst.id,
            kind,
            aggressor: Aggressor::Unknown,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            flags: 0,
            interval_secs: 0,
            price: Price::ZERO,
            qty: Qty::ZERO,
            bid_px: Price::ZERO,
            bid_qty: Qty::ZERO,
            ask_px: Price::ZERO,
            ask_qty: Qty::ZERO,
            aux_px: Price::ZERO,
            id: 0,
            first_id: 0,
            aux_id: 0,
            stamps,
        }
    }

    /// A single trade.
    #[inline]
    pub const fn trade(
        inst: InstrumentRef,
        stamps: Stamps,
        price: Price,
        qty: Qty,
        aggressor: Aggressor,
        trade_id: u64,
    ) -> Self {
        let mut e = Self::base(MarketKind::Trade, inst, stamps);
        e.price = price;
        e.qty = qty;
        e.aggressor = aggressor;
        e.id = trade_id;
        e
    }

    /// An aggregated trade.
    #[inline]
    pub const fn agg_trade(
        inst: InstrumentRef,
        stamps: Stamps,
        price: Price,
        qty: Qty,
        aggressor: Aggressor,
        ids: AggTradeIds,
    ) -> Self {
        let mut e = Self::base(MarketKind::AggTrade, inst, stamps);
        e.price = price;
        e.qty = qty;
        e.aggressor = aggressor;
        e.id = ids.agg_id;
        e.first_id = ids.first_trade_id;
        e.aux_id = ids.last_trade_id;
        e
    }

    /// A best bid/offer update.
    #[inline]
    pub const fn book_ticker(
        inst: InstrumentRef,
        stamps: Stamps,
        bid: (Price, Qty),
        ask: (Price, Qty),
        update_id: u64,
    ) -> Self {
        let mut e = Self::base(MarketKind::BookTicker, inst, stamps);
        e.bid_px = bid.0;
        e.bid_qty = bid.1;
        e.ask_px = ask.0;
        e.ask_qty = ask.1;
        e.id = update_id;
        e
    }

    /// One level of a depth update; `last` marks the final level of the update.
    #[inline]
    pub const fn depth_level(
        inst: InstrumentRef,
        stamps: Stamps,
        side: Side,
        price: Price,
        qty: Qty,
        ids: DepthIds,
        last: bool,
    ) -> Self {
        let mut e = Self::base(MarketKind::DepthLevel, inst, stamps);
        e.price = price;
        e.qty = qty;
        e.id = ids.final_update_id;
        e.first_id = ids.first_update_id;
        if let Some(pu) = ids.prev_final_update_id {
            e.aux_id = pu;
            e.flags |= Self::FLAG_HAS_PREV_ID;
        }
        if matches!(side, Side::Buy) {
            e.flags |= Self::FLAG_BID;
        }
        if last {
            e.flags |= Self::FLAG_LAST;
        }
        e
    }

    /// A candle update.
    #[inline]
    pub const fn kline(inst: InstrumentRef, stamps: Stamps, k: Kline) -> Self {
        let mut e = Self::base(MarketKind::Kline, inst, stamps);
        e.aux_px = k.open;
        e.ask_px = k.high;
        e.bid_px = k.low;
        e.price = k.close;
        e.qty = k.volume;
        e.bid_qty = k.taker_buy_volume;
        e.id = k.trades;
        e.first_id = k.open_time_ns;
        e.aux_id = k.close_time_ns;
        e.interval_secs = k.interval_secs;
        if k.closed {
            e.flags |= Self::FLAG_KLINE_CLOSED;
        }
        e
    }

    /// A forex top-of-book quote (sizes may be zero when the source has none).
    #[inline]
    pub const fn quote(
        inst: InstrumentRef,
        stamps: Stamps,
        bid: (Price, Qty),
        ask: (Price, Qty),
        seq: u64,
    ) -> Self {
        let mut e = Self::book_ticker(inst, stamps, bid, ask, seq);
        e.kind = MarketKind::Quote;
        e
    }

    /// True if every bit of `flag` is set.
    #[inline]
    pub const fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }

    /// DepthLevel: true on the last level of its update.
    #[inline]
    pub const fn is_last(&self) -> bool {
        self.has(Self::FLAG_LAST)
    }

    /// DepthLevel: the book side of the level.
    #[inline]
    pub const fn depth_side(&self) -> Side {
        if self.has(Self::FLAG_BID) {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    /// DepthLevel: `U`, `u` and `pu`.
    #[inline]
    pub const fn depth_ids(&self) -> DepthIds {
        DepthIds {
            first_update_id: self.first_id,
            final_update_id: self.id,
            prev_final_update_id: if self.has(Self::FLAG_HAS_PREV_ID) {
                Some(self.aux_id)
            } else {
                None
            },
        }
    }

    /// AggTrade: `a`, `f`, `l`.
    #[inline]
    pub const fn agg_trade_ids(&self) -> AggTradeIds {
        AggTradeIds {
            agg_id: self.id,
            first_trade_id: self.first_id,
            last_trade_id: self.aux_id,
        }
    }

    /// The candle, if this is a Kline event.
    #[inline]
    pub const fn as_kline(&self) -> Option<Kline> {
        if !matches!(self.kind, MarketKind::Kline) {
            return None;
        }
        Some(Kline {
            open: self.aux_px,
            high: self.ask_px,
            low: self.bid_px,
            close: self.price,
            volume: self.qty,
            taker_buy_volume: self.bid_qty,
            trades: self.id,
            open_time_ns: self.first_id,
            close_time_ns: self.aux_id,
            interval_secs: self.interval_secs,
            closed: self.has(Self::FLAG_KLINE_CLOSED),
        })
    }

    /// `price` as a [`Decimal`] at this event's price scale (printing).
    #[inline]
    pub const fn price_decimal(&self) -> Decimal {
        self.price.to_decimal(self.price_scale)
    }

    /// `qty` as a [`Decimal`] at this event's quantity scale (printing).
    #[inline]
    pub const fn qty_decimal(&self) -> Decimal {
        self.qty.to_decimal(self.qty_scale)
    }
}

wire_enum! {
    /// Order type.
    pub enum OrderType / ArchivedOrderType {
        /// Market order (`price` ignored).
        Market = 1 => "market",
        /// Limit order.
        Limit = 2 => "limit",
        /// Post-only limit order, rejected if it would take (Binance spot `LIMIT_MAKER`).
        LimitMaker = 3 => "limit_maker",
        /// Stop-market: a market order triggered at `price` (the stop price).
        StopMarket = 4 => "stop_market",
    }
}

wire_enum! {
    /// Time in force.
    pub enum TimeInForce / ArchivedTimeInForce {
        /// Good till canceled.
        Gtc = 1 => "gtc",
        /// Immediate or cancel.
        Ioc = 2 => "ioc",
        /// Fill or kill.
        Fok = 3 => "fok",
        /// Good till crossing: post-only (Binance futures `GTX`).
        Gtx = 4 => "gtx",
    }
}

wire_enum! {
    /// What an [`OrderIntent`] asks the gateway to do.
    pub enum IntentAction / ArchivedIntentAction {
        /// Place a new order.
        New = 1 => "new",
        /// Cancel the order with this `client_order_id`.
        Cancel = 2 => "cancel",
    }
}

/// Why the strategy or risk manager emitted an intent (journaled with every order so each
/// order is explainable). Open set of `u16` codes: the constants below are the ones the engine
/// uses; values from 1000 up are free for strategy-specific reasons.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Archive,
    Serialize,
    Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash), compare(PartialEq))]
#[repr(transparent)]
pub struct ReasonCode(pub u16);

impl ReasonCode {
    /// Not specified.
    pub const NONE: ReasonCode = ReasonCode(0);
    /// Four-level entry, long.
    pub const ENTRY_LONG: ReasonCode = ReasonCode(1);
    /// Four-level entry, short.
    pub const ENTRY_SHORT: ReasonCode = ReasonCode(2);
    /// Exit: trailing stop hit.
    pub const EXIT_TRAILING_STOP: ReasonCode = ReasonCode(10);
    /// Exit: order-flow cascade reversal.
    pub const EXIT_CASCADE_REVERSAL: ReasonCode = ReasonCode(11);
    /// Exit: consecutive adverse price moves.
    pub const EXIT_ADVERSE_MOVES: ReasonCode = ReasonCode(12);
    /// Exit: maximum hold time.
    pub const EXIT_MAX_HOLD: ReasonCode = ReasonCode(13);
    /// Exit: forex session close.
    pub const EXIT_SESSION_CLOSE: ReasonCode = ReasonCode(14);
    /// Exit: position reversal (existing position on the other side).
    pub const EXIT_REVERSAL: ReasonCode = ReasonCode(15);
    /// Risk: daily drawdown level.
    pub const RISK_DRAWDOWN: ReasonCode = ReasonCode(20);
    /// Risk: leader-dump correlation exit.
    pub const RISK_CORRELATION: ReasonCode = ReasonCode(21);
    /// Risk: health score action.
    pub const RISK_HEALTH: ReasonCode = ReasonCode(22);
    /// Risk: halt / kill switch.
    pub const RISK_HALT: ReasonCode = ReasonCode(23);
    /// Operator action through the admin API.
    pub const MANUAL: ReasonCode = ReasonCode(30);
    /// Exit: dump detected (volume reversal, order-flow flip, momentum breakdown).
    pub const EXIT_DUMP: ReasonCode = ReasonCode(16);
    /// Entry refused: the trading state is not ACTIVE.
    pub const RISK_REJECT_STATE: ReasonCode = ReasonCode(60);
    /// Entry refused: a position or entry in flight on the same side.
    pub const RISK_REJECT_EXISTING: ReasonCode = ReasonCode(61);
    /// Entry refused: maximum open positions.
    pub const RISK_REJECT_POSITION_LIMIT: ReasonCode = ReasonCode(62);
    /// Entry refused: exposure limit.
    pub const RISK_REJECT_EXPOSURE: ReasonCode = ReasonCode(63);
    /// Entry refused: price outside the band around the last trade (fat finger).
    pub const RISK_REJECT_PRICE_BAND: ReasonCode = ReasonCode(64);
    /// Entry refused: order notional above the maximum.
    pub const RISK_REJECT_MAX_NOTIONAL: ReasonCode = ReasonCode(65);
    /// Entry refused: rate-limit budget used up.
    pub const RISK_REJECT_RATE_LIMIT: ReasonCode = ReasonCode(66);
    /// Entry refused: no quantity could be sized (below the minimum).
    pub const RISK_REJECT_SIZING: ReasonCode = ReasonCode(67);
    /// Entry refused: a session-based instrument (forex) is in its pre-close window or its
    /// session is closed.
    pub const RISK_REJECT_SESSION: ReasonCode = ReasonCode(68);

    /// Name of a known code, `None` for other values.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "none",
            1 => "entry_long",
            2 => "entry_short",
            10 => "exit_trailing_stop",
            11 => "exit_cascade_reversal",
            12 => "exit_adverse_moves",
            13 => "exit_max_hold",
            14 => "exit_session_close",
            15 => "exit_reversal",
            20 => "risk_drawdown",
            21 => "risk_correlation",
            22 => "risk_health",
            23 => "risk_halt",
            30 => "manual",
            16 => "exit_dump",
            60 => "risk_reject_state",
            61 => "risk_reject_existing",
            62 => "risk_reject_position_limit",
            63 => "risk_reject_exposure",
            64 => "risk_reject_price_band",
            65 => "risk_reject_max_notional",
            66 => "risk_reject_rate_limit",
            67 => "risk_reject_sizing",
            68 => "risk_reject_session",
            _ => return None,
        })
    }
}

impl ArchivedReasonCode {
    /// The native code.
    #[inline]
    pub fn to_native(&self) -> ReasonCode {
        ReasonCode(self.0.to_native())
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.pad(n),
            None => write!(f, "reason_{}", self.0),
        }
    }
}

/// An order the strategy wants placed (or canceled): the strategy-to-gateway event.
///
/// 96 bytes, 8-aligned, no padding. `client_order_id` is derived deterministically from the
/// decision (so a replay produces the same ids and a resend is idempotent at the venue), and
/// `decision_seq` is the journal sequence number of the decision record that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct OrderIntent {
    /// Instrument (0, 4).
    pub instrument: InstrumentId,
    /// Side (4, 1).
    pub side: Side,
    /// Order type (5, 1).
    pub order_type: OrderType,
    /// Time in force; ignored for market orders (6, 1).
    pub time_in_force: TimeInForce,
    /// New order or cancel (7, 1).
    pub action: IntentAction,
    /// Why (8, 2).
    pub reason: ReasonCode,
    /// The instrument's price scale (10, 1).
    pub price_scale: u8,
    /// The instrument's quantity scale (11, 1).
    pub qty_scale: u8,
    /// Reduce-only (derivatives) (12, 1).
    pub reduce_only: bool,
    /// Zero (13, 3).
    pub reserved: Reserved3,
    /// Limit price; stop price for `StopMarket`; 0 for `Market` (16, 8).
    pub price: Price,
    /// Quantity (24, 8).
    pub qty: Qty,
    /// Deterministic client order id (Binance `newClientOrderId`) (32, 8).
    pub client_order_id: u64,
    /// Journal sequence number of the causing decision (40, 8).
    pub decision_seq: u64,
    /// Timestamps, inherited from the market event that triggered the decision (48, 48).
    pub stamps: Stamps,
}

impl OrderIntent {
    /// A new-order intent (reduce-only off; set the field for exits on derivatives).
    #[inline]
    pub const fn new_order(
        inst: InstrumentRef,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        price: Price,
        qty: Qty,
        client_order_id: u64,
    ) -> Self {
        OrderIntent {
            instrument: inst.id,
            side,
            order_type,
            time_in_force,
            action: IntentAction::New,
            reason: ReasonCode::NONE,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            reduce_only: false,
            reserved: [0; 3],
            price,
            qty,
            client_order_id,
            decision_seq: 0,
            stamps: Stamps::new(0, 0),
        }
    }

    /// A cancel intent for the order `client_order_id` (side, type and quantity are kept for
    /// logging; the gateway cancels by id).
    #[inline]
    pub const fn cancel(inst: InstrumentRef, side: Side, client_order_id: u64) -> Self {
        let mut i = Self::new_order(
            inst,
            side,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price::ZERO,
            Qty::ZERO,
            client_order_id,
        );
        i.action = IntentAction::Cancel;
        i
    }

    /// Set the reason and causing decision.
    #[inline]
    pub const fn because(mut self, reason: ReasonCode, decision_seq: u64) -> Self {
        self.reason = reason;
        self.decision_seq = decision_seq;
        self
    }

    /// Set the stamps.
    #[inline]
    pub const fn with_stamps(mut self, stamps: Stamps) -> Self {
        self.stamps = stamps;
        self
    }
}

wire_enum! {
    /// What an [`ExecEvent`] reports.
    pub enum ExecKind / ArchivedExecKind {
        /// The venue accepted the order (Binance `NEW`).
        Ack = 1 => "ack",
        /// A partial fill.
        PartialFill = 2 => "partial_fill",
        /// The final fill.
        Fill = 3 => "fill",
        /// Canceled (by us or the venue).
        Canceled = 4 => "canceled",
        /// Rejected (`venue_error` holds the code).
        Rejected = 5 => "rejected",
        /// Expired (IOC/FOK remainder, GTX that would take).
        Expired = 6 => "expired",
    }
}

/// An execution report from the venue (order response or user-data stream), decoded by the
/// gateway.
///
/// 128 bytes, 8-aligned, no padding. The fee is a mantissa with its own scale because it is in
/// the fee asset (which may be neither base nor quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct ExecEvent {
    /// Instrument (0, 4).
    pub instrument: InstrumentId,
    /// What happened (4, 1).
    pub kind: ExecKind,
    /// Order side (5, 1).
    pub side: Side,
    /// The instrument's price scale (6, 1).
    pub price_scale: u8,
    /// The instrument's quantity scale (7, 1).
    pub qty_scale: u8,
    /// Scale of `fee` (8, 1).
    pub fee_scale: u8,
    /// The fill was on the maker side (9, 1).
    pub is_maker: bool,
    /// Zero (10, 2).
    pub reserved: u16,
    /// Venue error code for rejects (Binance `-1021` timestamp outside recvWindow, `-2010`
    /// new order rejected); 0 otherwise (12, 4).
    pub venue_error: i32,
    /// Price of this fill (16, 8).
    pub last_px: Price,
    /// Quantity of this fill (24, 8).
    pub last_qty: Qty,
    /// Cumulative filled quantity (32, 8).
    pub cum_qty: Qty,
    /// Remaining open quantity (40, 8).
    pub leaves_qty: Qty,
    /// Fee of this fill, mantissa at `fee_scale` (48, 8).
    pub fee: i64,
    /// Our client order id (56, 8).
    pub client_order_id: u64,
    /// The venue's order id (64, 8).
    pub venue_order_id: u64,
    /// The venue's trade id of this fill; 0 if not a fill (72, 8).
    pub trade_id: u64,
    /// Timestamps; `venue_ns` is the venue's transaction time (80, 48).
    pub stamps: Stamps,
}

impl ExecEvent {
    /// A report of `kind` for an order, with all fill fields zero.
    #[inline]
    pub const fn new(
        inst: InstrumentRef,
        kind: ExecKind,
        side: Side,
        client_order_id: u64,
        venue_order_id: u64,
        stamps: Stamps,
    ) -> Self {
        ExecEvent {
            instrument: inst.id,
            kind,
            side,
            price_scale: inst.price_scale,
            qty_scale: inst.qty_scale,
            fee_scale: 0,
            is_maker: false,
            reserved: 0,
            venue_error: 0,
            last_px: Price::ZERO,
            last_qty: Qty::ZERO,
            cum_qty: Qty::ZERO,
            leaves_qty: Qty::ZERO,
            fee: 0,
            client_order_id,
            venue_order_id,
            trade_id: 0,
            stamps,
        }
    }

    /// Set the fill fields (price, quantity, cumulative, remaining, trade id).
    #[inline]
    pub const fn with_fill(
        mut self,
        last_px: Price,
        last_qty: Qty,
        cum_qty: Qty,
        leaves_qty: Qty,
        trade_id: u64,
    ) -> Self {
        self.last_px = last_px;
        self.last_qty = last_qty;
        self.cum_qty = cum_qty;
        self.leaves_qty = leaves_qty;
        self.trade_id = trade_id;
        self
    }

    /// Set the fee.
    #[inline]
    pub const fn with_fee(mut self, fee: Decimal, is_maker: bool) -> Self {
        self.fee = fee.mantissa;
        self.fee_scale = fee.scale;
        self.is_maker = is_maker;
        self
    }

    /// Set the venue error code.
    #[inline]
    pub const fn with_venue_error(mut self, code: i32) -> Self {
        self.venue_error = code;
        self
    }

    /// The fee as a [`Decimal`].
    #[inline]
    pub const fn fee_decimal(&self) -> Decimal {
        Decimal::new(self.fee, self.fee_scale)
    }

    /// True for `Fill`, `Canceled`, `Rejected` and `Expired`: the order is no longer open.
    #[inline]
    pub const fn is_terminal(&self) -> bool {
        !matches!(self.kind, ExecKind::Ack | ExecKind::PartialFill)
    }
}

wire_enum! {
    /// An operator or risk command.
    pub enum ControlKind / ArchivedControlKind {
        /// Stop opening positions (kill switch).
        Halt = 1 => "halt",
        /// Resume trading after a halt.
        Resume = 2 => "resume",
        /// Add `instrument` to the watchlist; `arg` = expiry, ns since the epoch.
        WatchlistAdd = 3 => "watchlist_add",
        /// Remove `instrument` from the watchlist.
        WatchlistRemove = 4 => "watchlist_remove",
        /// Renew the watchlist entry of `instrument`; `arg` = new expiry, ns since the epoch.
        WatchlistRenew = 5 => "watchlist_renew",
        /// Reload configuration; `arg` = configuration generation.
        ConfigReload = 6 => "config_reload",
        /// Orderly shutdown.
        Shutdown = 7 => "shutdown",
    }
}

/// A control command from the admin API (through the SPSC control ring) or the risk manager.
///
/// 72 bytes, 8-aligned, no padding. Commands refer only to instruments already in the
/// instrument table (the table holds every tradable instrument; the watchlist selects among
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct Control {
    /// The command (0, 1).
    pub kind: ControlKind,
    /// Zero (1, 3).
    pub reserved: Reserved3,
    /// Target instrument, or [`InstrumentId::NONE`] (4, 4).
    pub instrument: InstrumentId,
    /// Command argument (see [`ControlKind`]) (8, 8).
    pub arg: u64,
    /// Wall-clock time the command was issued, ns since the epoch (16, 8).
    pub issued_unix_ns: u64,
    /// Timestamps (24, 48).
    pub stamps: Stamps,
}

impl Control {
    /// A command.
    #[inline]
    pub const fn new(
        kind: ControlKind,
        instrument: InstrumentId,
        arg: u64,
        issued_unix_ns: u64,
        stamps: Stamps,
    ) -> Self {
        Control {
            kind,
            reserved: [0; 3],
            instrument,
            arg,
            issued_unix_ns,
            stamps,
        }
    }
}

const _: () = assert!(core::mem::size_of::<Stamps>() == 48);
const _: () = assert!(core::mem::size_of::<MarketEvent>() == 144);
const _: () = assert!(core::mem::size_of::<OrderIntent>() == 96);
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 128);
const _: () = assert!(core::mem::size_of::<Control>() == 72);
const _: () = assert!(core::mem::align_of::<MarketEvent>() == 8);

wire_enum! {
    /// What a strategy [`Decision`] concluded.
    pub enum DecisionOutcome / ArchivedDecisionOutcome {
        /// No entry (see [`Decision::level`] and [`Decision::reason`]).
        Reject = 1 => "reject",
        /// Enter a long position.
        EnterLong = 2 => "enter_long",
        /// Enter a short position.
        EnterShort = 3 => "enter_short",
    }
}

wire_enum! {
    /// The Level 1 regime the strategy saw (the only direction it allows).
    pub enum Trend / ArchivedTrend {
        /// Neither higher highs/higher lows nor lower highs/lower lows: ranging (or not warm).
        None = 0 => "none",
        /// Higher highs and higher lows: longs only.
        Up = 1 => "up",
        /// Lower highs and lower lows: shorts only.
        Down = 2 => "down",
    }
}

wire_enum! {
    /// Which surveillance area Level 2 found the price at.
    pub enum ZoneSource / ArchivedZoneSource {
        /// None.
        None = 0 => "none",
        /// A demand (support) zone.
        Demand = 1 => "demand",
        /// A supply (resistance) zone.
        Supply = 2 => "supply",
        /// The value area low of the 15-minute market profile.
        Val = 3 => "val",
        /// The value area high of the 15-minute market profile.
        Vah = 4 => "vah",
        /// A bullish fair value gap.
        BullishFvg = 5 => "bullish_fvg",
        /// A bearish fair value gap.
        BearishFvg = 6 => "bearish_fvg",
    }
}

wire_enum! {
    /// Why a [`Decision`] came out as it did (the check that failed, or `Entry`).
    pub enum DecisionReason / ArchivedDecisionReason {
        /// Every level passed and the confluence reached the threshold.
        Entry = 1 => "entry",
        /// Level 1: fewer than the structure candles, or ADX / Hurst / mean reversion / ATR
        /// not warm yet.
        NotWarm = 2 => "not_warm",
        /// Level 1: neither HH/HL nor LH/LL over the last 15m candles (ranging).
        NoStructure = 3 => "no_structure",
        /// Level 1: ADX at or below its minimum.
        AdxLow = 4 => "adx_low",
        /// Level 1: Hurst (plain R/S) at or below its minimum.
        HurstLow = 5 => "hurst_low",
        /// Level 1: mean-reversion strength at or above its maximum.
        MeanReversionHigh = 6 => "mean_reversion_high",
        /// Level 1: ATR below the floor.
        AtrLow = 7 => "atr_low",
        /// Level 2: the price is not at a zone of the allowed direction.
        NotAtZone = 8 => "not_at_zone",
        /// Level 3: an imbalance has too few trades.
        CascadeNotWarm = 9 => "cascade_not_warm",
        /// Level 3: the imbalances are not ordered (`i1 > i5 > i15`, or `<` for shorts).
        CascadeUnordered = 10 => "cascade_unordered",
        /// Level 3: the 1-minute imbalance is not beyond its threshold.
        ImbalanceWeak = 11 => "imbalance_weak",
        /// Level 4: bounce strength at or below its minimum.
        BounceWeak = 12 => "bounce_weak",
        /// Level 4: volume not above the multiple of its average (or no average yet).
        VolumeLow = 13 => "volume_low",
        /// Level 4: the candle does not move away from the zone.
        NotMovingAway = 14 => "not_moving_away",
        /// All levels passed, confluence score below the entry threshold.
        ConfluenceLow = 15 => "confluence_low",
        /// All levels passed, but the symbol's order book is not proven yet.
        BookNotProven = 16 => "book_not_proven",
    }
}

/// The six confluence filter contributions (market profile, mean reversion, autocorrelation,
/// demand zone, supply zone as target, fair value gap).
pub type FilterScores = [f64; 6];

/// One evaluation of the strategy's four-level decision, with every value it used: the record
/// that makes each decision (entry or not) explainable after the fact.
///
/// 256 bytes, 8-aligned, no padding. Statistics are `f64`; a value that was not available
/// (not warm) is NaN. Deterministic in event time: the same market events give the same bytes
/// except the TSC fields of `stamps`.
#[derive(Debug, Clone, Copy, PartialEq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug), compare(PartialEq))]
#[repr(C)]
pub struct Decision {
    /// Instrument (0, 4).
    pub instrument: InstrumentId,
    /// Enter long / enter short / reject (4, 1).
    pub outcome: DecisionOutcome,
    /// Level that rejected (1-4), or 0 for an entry or a confluence/book rejection (5, 1).
    pub level: u8,
    /// Reason code (6, 1).
    pub reason: DecisionReason,
    /// Level 1 regime (7, 1).
    pub trend: Trend,
    /// Event time of the evaluation: the end of the 1m candle that closed, ns (8, 8).
    pub time_ns: u64,
    /// Close of that candle (16, 8).
    pub price: Price,
    /// Lower edge of the zone found at Level 2 (0 if none) (24, 8).
    pub zone_low: Price,
    /// Upper edge of the zone (32, 8).
    pub zone_high: Price,
    /// Zone id: creation time of the zone or gap (ns), 0 for the profile or none (40, 8).
    pub zone_id: u64,
    /// Zone strength (0..100; 100 for the profile levels, 0 if none) (48, 4).
    pub zone_strength: u32,
    /// Scale of the prices (52, 1).
    pub price_scale: u8,
    /// Which zone (53, 1).
    pub zone_kind: ZoneSource,
    /// Bit `i` set when confluence filter `i` contributed (54, 1).
    pub filter_mask: u8,
    /// `FLAG_*` bits (55, 1).
    pub flags: u8,
    /// ADX(14) of the 15m candles (56, 8).
    pub adx: f64,
    /// Hurst exponent, plain R/S (the value tested) (64, 8).
    pub hurst: f64,
    /// Hurst exponent, corrected R/S (recorded only) (72, 8).
    pub hurst_corrected: f64,
    /// Mean-reversion strength (80, 8).
    pub mean_reversion: f64,
    /// ATR(14) of the 15m candles, price units (88, 8).
    pub atr: f64,
    /// 1-minute buy/sell imbalance (96, 8).
    pub imbalance_1m: f64,
    /// 5-minute imbalance (104, 8).
    pub imbalance_5m: f64,
    /// 15-minute imbalance (112, 8).
    pub imbalance_15m: f64,
    /// Bounce strength of the 1m candle (120, 8).
    pub bounce: f64,
    /// 1m volume / average of the previous 20 (128, 8).
    pub volume_ratio: f64,
    /// z-score of the price over the 15-minute tick window (136, 8).
    pub zscore: f64,
    /// Lag-1 autocorrelation of the 15m returns (144, 8).
    pub autocorr: f64,
    /// Confluence score (sum of `contributions`) (152, 8).
    pub confluence: f64,
    /// Each filter's contribution (160, 48).
    pub contributions: FilterScores,
    /// Stamps of the market event that triggered the evaluation (208, 48).
    pub stamps: Stamps,
}

impl Decision {
    /// `flags`: the symbol's order book was proven at evaluation.
    pub const FLAG_BOOK_PROVEN: u8 = 1 << 0;
    /// `flags`: the confluence was computed for a short (clear: long).
    pub const FLAG_SHORT_SIDE: u8 = 1 << 1;

    /// True for an entry.
    #[inline]
    pub const fn is_entry(&self) -> bool {
        !matches!(self.outcome, DecisionOutcome::Reject)
    }
}

const _: () = assert!(core::mem::size_of::<Decision>() == 256);
