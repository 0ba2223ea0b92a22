//! Journal encoding of the event types: record kinds, the schema hash, and zero-copy
//! encode/access/decode with rkyv.
//!
//! The journal ([`ringbuffers::journal`]) stores opaque payloads tagged with a `u16` kind. This
//! module says what the kinds are ([`RecordKind`]) and how a fixed-size event becomes a payload
//! and back:
//!
//! * [`encode_into`] serialises an event with rkyv straight into a caller-provided buffer (the
//!   journal's mapped segment, through `Appender::append_with`) with no heap allocation: rkyv's
//!   low-level API with a [`Buffer`] writer and an empty [`SubAllocator`] (fixed-size events
//!   never need scratch space). [`encoded_len`] is a `const fn`, so the journal can reserve the
//!   record before the bytes exist.
//! * [`access`] validates a payload with bytecheck (length, alignment, enum discriminants,
//!   `bool`s) and returns a reference to the archived event **inside the payload**: a tailer
//!   reads events out of the mapped file without copying. [`decode`] returns the owned `Copy`
//!   value.
//! * [`SCHEMA_HASH`] identifies the layout of everything journaled; the journal stores it in
//!   each segment header and a tailer opened with a different hash refuses to read.
//! * Thin journal glue: [`append`] serialises an event in place into the mapped segment through
//!   `Appender::append_with`; [`access_journal`] / [`view_journal`] read a tailer's
//!   `RecordRef` zero-copy; [`journal_config`] and [`open_tailer`] bind the journal to
//!   [`SCHEMA_HASH`].
//!
//! # Changing an event type
//!
//! The `schema!` invocation below is the journal format's description. It lists every journaled
//! struct with its size and each field's name, type and offset, every enum with its
//! discriminants, and a manual [`SCHEMA_VERSION`]. The macro turns it into
//! [`SCHEMA_DESCRIPTION`] (hashed into [`SCHEMA_HASH`]) **and** into compile-time assertions:
//! native and archived sizes, every offset, every field type, that the listed fields cover the
//! struct with no padding (so a new field cannot be forgotten), every discriminant and that each
//! enum's variant list is exhaustive. Whoever changes an event must update the invocation (the
//! build fails until they do) and bump `SCHEMA_VERSION` when the *meaning* of a field changes
//! without its layout changing.

use core::mem::{align_of, offset_of, size_of};
use std::path::Path;

use ringbuffers::journal::{Appender, JournalConfig, JournalError, RecordRef, Tailer};

use rkyv::api::low::{LowDeserializer, LowSerializer, LowValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::Failure;
use rkyv::ser::allocator::SubAllocator;
use rkyv::ser::writer::Buffer;
use rkyv::{Archive, Deserialize, Serialize};

use crate::event::{
    Aggressor, ArchivedControl, ArchivedExecEvent, ArchivedMarketEvent, ArchivedOrderIntent,
    Control, ControlKind, Decision, DecisionOutcome, DecisionReason, ExecEvent, ExecKind,
    FilterScores, IntentAction, MarketEvent, MarketKind, OrderIntent, OrderType, ReasonCode,
    Reserved3, Side, StageTsc, Stamps, TimeInForce, Trend, ZoneSource,
};
use crate::fixed::{Price, Qty};
use crate::gateway::state::{OrderAlert, OrderState, OrderUpdate, UpdateCause};
use crate::instrument::InstrumentId;
use crate::risk::{RiskReject, TradeClose};

/// What a journal record holds (the journal's `kind: u16`).
///
/// The numbering is part of the journal format (it is in [`SCHEMA_DESCRIPTION`]): never reuse a
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum RecordKind {
    /// Raw inbound bytes (a WebSocket frame payload or REST response body), stamped on receipt.
    RawFrame = 1,
    /// A decoded [`MarketEvent`].
    Market = 2,
    /// An [`OrderIntent`].
    Intent = 3,
    /// Raw outbound order bytes as written to the socket.
    OutboundBytes = 4,
    /// An [`ExecEvent`].
    Exec = 5,
    /// A [`Control`] command.
    Control = 6,
    /// A strategy decision with its level scores and confluence (explains each entry/exit).
    Decision = 7,
    /// A feed decode or protocol error, with the offending bytes.
    FeedError = 8,
    /// A detected sequence gap (depth `U`/`u`/`pu` break, missed trade ids, reconnect).
    Gap = 9,
    /// A reconciliation result or discrepancy (venue state against journal state).
    Reconcile = 10,
    /// A gateway order-state transition or alert ([`OrderUpdate`]).
    OrderUpdate = 11,
    /// An entry refused by the risk layer's execution chain ([`RiskReject`]).
    RiskReject = 12,
    /// A closed position with its P&L after fees ([`TradeClose`]).
    TradeClose = 13,
    /// Where the strategy applied an execution or a control command among the market events
    /// ([`Applied`]): replay puts them back at the same place.
    Applied = 14,
}

/// Payload of a [`RecordKind::Applied`] record, journaled by the strategy stage right before it
/// applies an execution (the next one of the gateway's `Exec` records, which arrive in that
/// order on the SPSC ring) or a control command (the `Control` record that follows). Fills
/// and halts change what the strategy does next, and they reach it asynchronously, between two
/// market events that only the live run knows; recording how many market events it had
/// consumed is what lets a replay apply them between the same two and decide byte for byte the
/// same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Market events the strategy had consumed when it applied this.
    pub after_events: u64,
    /// What was applied.
    pub what: AppliedKind,
}

/// What an [`Applied`] record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedKind {
    /// The next `Exec` record of the gateway journal.
    Exec = 1,
    /// The `Control` record right after this one.
    Control = 2,
}

impl Applied {
    /// Payload length.
    pub const LEN: usize = 9;

    /// The payload bytes: `after_events` little-endian, then the kind.
    pub fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&self.after_events.to_le_bytes());
        b[8] = self.what as u8;
        b
    }

    /// Parses a payload.
    pub fn from_bytes(b: &[u8]) -> Option<Applied> {
        if b.len() != Self::LEN {
            return None;
        }
        let what = match b[8] {
            1 => AppliedKind::Exec,
            2 => AppliedKind::Control,
            _ => return None,
        };
        Some(Applied {
            after_events: u64::from_le_bytes(b[..8].try_into().ok()?),
            what,
        })
    }
}

impl RecordKind {
    /// Every kind, in numeric order.
    pub const ALL: [RecordKind; 14] = [
        RecordKind::RawFrame,
        RecordKind::Market,
        RecordKind::Intent,
        RecordKind::OutboundBytes,
        RecordKind::Exec,
        RecordKind::Control,
        RecordKind::Decision,
        RecordKind::FeedError,
        RecordKind::Gap,
        RecordKind::Reconcile,
        RecordKind::OrderUpdate,
        RecordKind::RiskReject,
        RecordKind::TradeClose,
        RecordKind::Applied,
    ];

    /// The kind with number `v`, if known.
    pub const fn from_u16(v: u16) -> Option<RecordKind> {
        Some(match v {
            1 => RecordKind::RawFrame,
            2 => RecordKind::Market,
            3 => RecordKind::Intent,
            4 => RecordKind::OutboundBytes,
            5 => RecordKind::Exec,
            6 => RecordKind::Control,
            7 => RecordKind::Decision,
            8 => RecordKind::FeedError,
            9 => RecordKind::Gap,
            10 => RecordKind::Reconcile,
            11 => RecordKind::OrderUpdate,
            12 => RecordKind::RiskReject,
            13 => RecordKind::TradeClose,
            14 => RecordKind::Applied,
            _ => return None,
        })
    }

    /// The number stored in the journal.
    #[inline]
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// Stable lowercase name (the CLI prints record counts by name).
    pub const fn name(self) -> &'static str {
        match self {
            RecordKind::RawFrame => "raw_frame",
            RecordKind::Market => "market",
            RecordKind::Intent => "intent",
            RecordKind::OutboundBytes => "outbound_bytes",
            RecordKind::Exec => "exec",
            RecordKind::Control => "control",
            RecordKind::Decision => "decision",
            RecordKind::FeedError => "feed_error",
            RecordKind::Gap => "gap",
            RecordKind::Reconcile => "reconcile",
            RecordKind::OrderUpdate => "order_update",
            RecordKind::RiskReject => "risk_reject",
            RecordKind::TradeClose => "trade_close",
            RecordKind::Applied => "applied",
        }
    }

    /// The fixed payload size of kinds that hold one of this module's events; `None` for
    /// variable-length kinds.
    pub const fn fixed_len(self) -> Option<usize> {
        match self {
            RecordKind::Market => Some(encoded_len::<MarketEvent>()),
            RecordKind::Intent => Some(encoded_len::<OrderIntent>()),
            RecordKind::Exec => Some(encoded_len::<ExecEvent>()),
            RecordKind::Control => Some(encoded_len::<Control>()),
            RecordKind::Decision => Some(encoded_len::<Decision>()),
            RecordKind::OrderUpdate => Some(encoded_len::<OrderUpdate>()),
            RecordKind::RiskReject => Some(encoded_len::<RiskReject>()),
            RecordKind::TradeClose => Some(encoded_len::<TradeClose>()),
            RecordKind::Applied => Some(Applied::LEN),
            _ => None,
        }
    }
}

impl core::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.pad(self.name())
    }
}

/// FNV-1a (64-bit) of `bytes`, usable in constants.
pub const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// Builds [`SCHEMA_DESCRIPTION`] and checks it against the real types at compile time.
///
/// Types are written as single identifiers (aliases for arrays) so that the description text
/// does not depend on how the compiler pretty-prints types.
macro_rules! schema {
    (
        version $version:literal;
        $( newtype $nname:ident ( $nty:ident ); )+
        $( struct $sname:ident = $ssize:literal {
            $( $field:ident : $fty:ident @ $off:literal ),+ $(,)?
        } )+
        $( enum $ename:ident : $erepr:ident {
            $( $variant:ident = $disc:literal ),+ $(,)?
        } )+
        $( plain enum $pname:ident : $prepr:ident {
            $( $pvariant:ident = $pdisc:literal ),+ $(,)?
        } )*
    ) => {
        /// Manual version of the journal schema: bump it when the meaning of a journaled field
        /// changes without its layout changing (layout changes alter the hash by themselves).
        pub const SCHEMA_VERSION: u32 = $version;

        /// Human-readable description of every journaled type (hashed into [`SCHEMA_HASH`]).
        pub const SCHEMA_DESCRIPTION: &str = concat!(
            "algo-engine journal schema v", $version, "\n",
            $( "newtype ", stringify!($nname), "(", stringify!($nty), ")\n", )+
            $(
                "struct ", stringify!($sname), " size ", $ssize, "\n",
                $( "  ", stringify!($field), ": ", stringify!($fty), " @", $off, "\n", )+
            )+
            $(
                "enum ", stringify!($ename), ": ", stringify!($erepr), "\n",
                $( "  ", stringify!($variant), " = ", $disc, "\n", )+
            )+
            $(
                "enum ", stringify!($pname), ": ", stringify!($prepr), "\n",
                $( "  ", stringify!($pvariant), " = ", $pdisc, "\n", )+
            )*
        );

        $(
            const _: () = {
                assert!(size_of::<$nname>() == size_of::<$nty>());
                assert!(size_of::<<$nname as Archive>::Archived>() == size_of::<$nty>());
                fn _field_type(v: &$nname) -> &$nty {
                    &v.0
                }
            };
        )+

        $(
            const _: () = {
                assert!(
                    size_of::<$sname>() == $ssize,
                    concat!("schema!: size of ", stringify!($sname), " changed")
                );
                assert!(
                    size_of::<<$sname as Archive>::Archived>() == $ssize,
                    concat!("schema!: archived size of ", stringify!($sname), " differs")
                );
                let mut covered = 0usize;
                $(
                    assert!(
                        offset_of!($sname, $field) == $off,
                        concat!("schema!: offset of ", stringify!($sname), ".", stringify!($field))
                    );
                    assert!(
                        offset_of!(<$sname as Archive>::Archived, $field) == $off,
                        concat!("schema!: archived offset of ", stringify!($sname), ".",
                            stringify!($field))
                    );
                    covered += size_of::<$fty>();
                    {
                        fn _field_type(v: &$sname) -> &$fty {
                            &v.$field
                        }
                    }
                )+
                assert!(
                    covered == $ssize,
                    concat!("schema!: fields of ", stringify!($sname),
                        " leave padding or a field is not listed")
                );
            };
        )+

        $(
            const _: () = {
                assert!(size_of::<$ename>() == size_of::<$erepr>());
                assert!(size_of::<<$ename as Archive>::Archived>() == size_of::<$erepr>());
                $( assert!($ename::$variant as $erepr == $disc); )+
                const fn _exhaustive(v: $ename) {
                    match v {
                        $( $ename::$variant => (), )+
                    }
                }
            };
        )+

        $(
            const _: () = {
                assert!(size_of::<$pname>() == size_of::<$prepr>());
                $( assert!($pname::$pvariant as $prepr == $pdisc); )+
                const fn _exhaustive(v: $pname) {
                    match v {
                        $( $pname::$pvariant => (), )+
                    }
                }
            };
        )*
    };
}

schema! {
    version 1;

    newtype Price(i64);
    newtype Qty(i64);
    newtype InstrumentId(u32);
    newtype ReasonCode(u16);

    struct Stamps = 48 {
        venue_ns: u64 @ 0,
        recv_tsc: u64 @ 8,
        stage_tsc: StageTsc @ 16,
    }
    struct MarketEvent = 144 {
        instrument: InstrumentId @ 0,
        kind: MarketKind @ 4,
        aggressor: Aggressor @ 5,
        price_scale: u8 @ 6,
        qty_scale: u8 @ 7,
        flags: u32 @ 8,
        interval_secs: u32 @ 12,
        price: Price @ 16,
        qty: Qty @ 24,
        bid_px: Price @ 32,
        bid_qty: Qty @ 40,
        ask_px: Price @ 48,
        ask_qty: Qty @ 56,
        aux_px: Price @ 64,
        id: u64 @ 72,
        first_id: u64 @ 80,
        aux_id: u64 @ 88,
        stamps: Stamps @ 96,
    }
    struct OrderIntent = 96 {
        instrument: InstrumentId @ 0,
        side: Side @ 4,
        order_type: OrderType @ 5,
        time_in_force: TimeInForce @ 6,
        action: IntentAction @ 7,
        reason: ReasonCode @ 8,
        price_scale: u8 @ 10,
        qty_scale: u8 @ 11,
        reduce_only: bool @ 12,
        reserved: Reserved3 @ 13,
        price: Price @ 16,
        qty: Qty @ 24,
        client_order_id: u64 @ 32,
        decision_seq: u64 @ 40,
        stamps: Stamps @ 48,
    }
    struct ExecEvent = 128 {
        instrument: InstrumentId @ 0,
        kind: ExecKind @ 4,
        side: Side @ 5,
        price_scale: u8 @ 6,
        qty_scale: u8 @ 7,
        fee_scale: u8 @ 8,
        is_maker: bool @ 9,
        reserved: u16 @ 10,
        venue_error: i32 @ 12,
        last_px: Price @ 16,
        last_qty: Qty @ 24,
        cum_qty: Qty @ 32,
        leaves_qty: Qty @ 40,
        fee: i64 @ 48,
        client_order_id: u64 @ 56,
        venue_order_id: u64 @ 64,
        trade_id: u64 @ 72,
        stamps: Stamps @ 80,
    }
    struct Control = 72 {
        kind: ControlKind @ 0,
        reserved: Reserved3 @ 1,
        instrument: InstrumentId @ 4,
        arg: u64 @ 8,
        issued_unix_ns: u64 @ 16,
        stamps: Stamps @ 24,
    }
    struct Decision = 256 {
        instrument: InstrumentId @ 0,
        outcome: DecisionOutcome @ 4,
        level: u8 @ 5,
        reason: DecisionReason @ 6,
        trend: Trend @ 7,
        time_ns: u64 @ 8,
        price: Price @ 16,
        zone_low: Price @ 24,
        zone_high: Price @ 32,
        zone_id: u64 @ 40,
        zone_strength: u32 @ 48,
        price_scale: u8 @ 52,
        zone_kind: ZoneSource @ 53,
        filter_mask: u8 @ 54,
        flags: u8 @ 55,
        adx: f64 @ 56,
        hurst: f64 @ 64,
        hurst_corrected: f64 @ 72,
        mean_reversion: f64 @ 80,
        atr: f64 @ 88,
        imbalance_1m: f64 @ 96,
        imbalance_5m: f64 @ 104,
        imbalance_15m: f64 @ 112,
        bounce: f64 @ 120,
        volume_ratio: f64 @ 128,
        zscore: f64 @ 136,
        autocorr: f64 @ 144,
        confluence: f64 @ 152,
        contributions: FilterScores @ 160,
        stamps: Stamps @ 208,
    }
    struct OrderUpdate = 56 {
        client_order_id: u64 @ 0,
        venue_order_id: u64 @ 8,
        cum_qty: Qty @ 16,
        orig_qty: Qty @ 24,
        time_ns: u64 @ 32,
        venue_error: i32 @ 40,
        instrument: InstrumentId @ 44,
        from: OrderState @ 48,
        to: OrderState @ 49,
        cause: UpdateCause @ 50,
        alert: OrderAlert @ 51,
        qty_scale: u8 @ 52,
        reserved: Reserved3 @ 53,
    }
    struct RiskReject = 64 {
        instrument: InstrumentId @ 0,
        side: Side @ 4,
        state: u8 @ 5,
        reason: ReasonCode @ 6,
        price_scale: u8 @ 8,
        qty_scale: u8 @ 9,
        reserved: u16 @ 10,
        open_positions: u32 @ 12,
        time_ns: u64 @ 16,
        price: Price @ 24,
        qty: Qty @ 32,
        value: f64 @ 40,
        limit: f64 @ 48,
        decision_seq: u64 @ 56,
    }
    struct TradeClose = 96 {
        instrument: InstrumentId @ 0,
        side: Side @ 4,
        price_scale: u8 @ 5,
        qty_scale: u8 @ 6,
        pnl_scale: u8 @ 7,
        reason: ReasonCode @ 8,
        fills: u16 @ 10,
        hold_secs: u32 @ 12,
        open_ns: u64 @ 16,
        close_ns: u64 @ 24,
        entry_px: Price @ 32,
        exit_px: Price @ 40,
        qty: Qty @ 48,
        gross_pnl: i64 @ 56,
        fees: i64 @ 64,
        net_pnl: i64 @ 72,
        entry_cid: u64 @ 80,
        exit_cid: u64 @ 88,
    }

    enum MarketKind: u8 {
        Trade = 1, AggTrade = 2, BookTicker = 3, DepthLevel = 4, Kline = 5, Quote = 6,
    }
    enum Aggressor: u8 { Unknown = 0, Buy = 1, Sell = 2 }
    enum Side: u8 { Buy = 1, Sell = 2 }
    enum OrderType: u8 { Market = 1, Limit = 2, LimitMaker = 3, StopMarket = 4 }
    enum TimeInForce: u8 { Gtc = 1, Ioc = 2, Fok = 3, Gtx = 4 }
    enum IntentAction: u8 { New = 1, Cancel = 2 }
    enum ExecKind: u8 {
        Ack = 1, PartialFill = 2, Fill = 3, Canceled = 4, Rejected = 5, Expired = 6,
    }
    enum ControlKind: u8 {
        Halt = 1, Resume = 2, WatchlistAdd = 3, WatchlistRemove = 4, WatchlistRenew = 5,
        ConfigReload = 6, Shutdown = 7,
    }
    enum DecisionOutcome: u8 { Reject = 1, EnterLong = 2, EnterShort = 3 }
    enum Trend: u8 { None = 0, Up = 1, Down = 2 }
    enum ZoneSource: u8 {
        None = 0, Demand = 1, Supply = 2, Val = 3, Vah = 4, BullishFvg = 5, BearishFvg = 6,
    }
    enum DecisionReason: u8 {
        Entry = 1, NotWarm = 2, NoStructure = 3, AdxLow = 4, HurstLow = 5,
        MeanReversionHigh = 6, AtrLow = 7, NotAtZone = 8, CascadeNotWarm = 9,
        CascadeUnordered = 10, ImbalanceWeak = 11, BounceWeak = 12, VolumeLow = 13,
        NotMovingAway = 14, ConfluenceLow = 15, BookNotProven = 16,
    }
    enum OrderState: u8 {
        Unknown = 0, New = 1, Submitted = 2, Acked = 3, PartiallyFilled = 4, Filled = 5,
        Canceled = 6, Rejected = 7, Expired = 8,
    }
    enum UpdateCause: u8 {
        Intent = 1, RestResponse = 2, UserStream = 3, Query = 4, Timeout = 5, Local = 6,
        Resend = 7,
    }
    enum OrderAlert: u8 {
        None = 0, Overfill = 1, UnknownOrder = 2, RateLimited = 3, ClockResync = 4,
        Timeout = 5, Malformed = 6, CancelRejected = 7, DuplicateIntent = 8,
    }

    // Not archived itself: listed for its numbering, which is part of the journal format.
    plain enum RecordKind: u16 {
        RawFrame = 1, Market = 2, Intent = 3, OutboundBytes = 4, Exec = 5, Control = 6,
        Decision = 7, FeedError = 8, Gap = 9, Reconcile = 10,
        OrderUpdate = 11,
        RiskReject = 12, TradeClose = 13, Applied = 14,
    }
}

/// Hash of the journal schema: FNV-1a over [`SCHEMA_DESCRIPTION`], computed at compile time.
/// Any change to a journaled type's layout (or to [`SCHEMA_VERSION`]) changes it.
pub const SCHEMA_HASH: u64 = fnv1a64(SCHEMA_DESCRIPTION.as_bytes());

/// Why an event could not be encoded or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The output buffer is shorter than the encoded event.
    #[error("buffer of {available} bytes is too small for a {kind} record of {needed} bytes")]
    BufferTooSmall {
        /// Record kind.
        kind: RecordKind,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The payload length is not the event's encoded length.
    #[error("{kind} payload is {actual} bytes, expected {expected}")]
    Length {
        /// Record kind.
        kind: RecordKind,
        /// Expected length.
        expected: usize,
        /// Actual length.
        actual: usize,
    },
    /// The payload is not aligned for zero-copy access (use [`decode`], which copies).
    #[error("{kind} payload is not {align}-byte aligned for zero-copy access")]
    Misaligned {
        /// Record kind.
        kind: RecordKind,
        /// Required alignment.
        align: usize,
    },
    /// The payload failed validation (bad enum discriminant, bad `bool`, ...): corrupt or not
    /// this kind.
    #[error("{kind} payload failed validation (corrupt or wrong record kind)")]
    Invalid {
        /// Record kind.
        kind: RecordKind,
    },
    /// rkyv failed to serialise (cannot happen for the fixed-size events of this crate).
    #[error("failed to serialise a {kind} record")]
    Serialize {
        /// Record kind.
        kind: RecordKind,
    },
    /// The record's kind is not the one asked for.
    #[error("record kind {actual} is not {expected}")]
    KindMismatch {
        /// Kind asked for.
        expected: RecordKind,
        /// Kind found (raw number).
        actual: u16,
    },
    /// The record kind number is unknown to this build.
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
}

/// The rkyv serializer used by [`encode_into`]: a slice writer and an empty scratch allocator.
pub type EventSerializer<'a> = LowSerializer<Buffer<'a>, SubAllocator<'a>, Failure>;

/// An event type that is journaled as a fixed-size rkyv record of kind [`Journaled::KIND`].
///
/// The bounds say: it can be serialised without heap or scratch space, its archived form can be
/// validated without allocation, and deserialised back to `Self`.
pub trait Journaled:
    Copy
    + Archive<
        Archived: for<'a> CheckBytes<LowValidator<'a, Failure>>
                      + Deserialize<Self, LowDeserializer<Failure>>,
    > + for<'a> Serialize<EventSerializer<'a>>
{
    /// The record kind this type is journaled as.
    const KIND: RecordKind;
}

impl Journaled for MarketEvent {
    const KIND: RecordKind = RecordKind::Market;
}
impl Journaled for OrderIntent {
    const KIND: RecordKind = RecordKind::Intent;
}
impl Journaled for ExecEvent {
    const KIND: RecordKind = RecordKind::Exec;
}
impl Journaled for Control {
    const KIND: RecordKind = RecordKind::Control;
}
impl Journaled for Decision {
    const KIND: RecordKind = RecordKind::Decision;
}
impl Journaled for RiskReject {
    const KIND: RecordKind = RecordKind::RiskReject;
}
impl Journaled for TradeClose {
    const KIND: RecordKind = RecordKind::TradeClose;
}

/// Exact payload length of an encoded `E` (the archived size; equal to `size_of::<E>()` for
/// this crate's events).
#[inline]
pub const fn encoded_len<E: Journaled>() -> usize {
    size_of::<E::Archived>()
}

/// Largest [`encoded_len`] of this crate's events.
pub const MAX_ENCODED_LEN: usize = {
    let lens = [
        encoded_len::<MarketEvent>(),
        encoded_len::<OrderIntent>(),
        encoded_len::<ExecEvent>(),
        encoded_len::<Control>(),
        encoded_len::<Decision>(),
    ];
    let mut m = 0;
    let mut i = 0;
    while i < lens.len() {
        if lens[i] > m {
            m = lens[i];
        }
        i += 1;
    }
    m
};

/// Serialise `event` into the front of `out` and return the number of bytes written
/// ([`encoded_len::<E>()`](encoded_len)). No heap allocation; `out` need not be aligned (the
/// bytes are position-independent), but [`access`] needs the payload 8-aligned, which journal
/// payloads are.
#[inline]
pub fn encode_into<E: Journaled>(event: &E, out: &mut [u8]) -> Result<usize, CodecError> {
    let needed = encoded_len::<E>();
    let Some(dst) = out.get_mut(..needed) else {
        return Err(CodecError::BufferTooSmall {
            kind: E::KIND,
            needed,
            available: out.len(),
        });
    };
    let written = rkyv::api::low::to_bytes_in_with_alloc::<_, _, Failure>(
        event,
        Buffer::from(dst),
        SubAllocator::empty(),
    )
    .map_err(|_| CodecError::Serialize { kind: E::KIND })?
    .len();
    debug_assert_eq!(written, needed);
    Ok(written)
}

/// Validate `payload` and return the archived event inside it, without copying.
///
/// `payload` must be exactly [`encoded_len::<E>()`](encoded_len) bytes and aligned to
/// `align_of::<E::Archived>()` (8); journal payloads are. Validation checks every enum
/// discriminant and `bool`, so a corrupt or mis-typed record is an error, never undefined
/// behaviour or a panic.
#[inline]
pub fn access<E: Journaled>(payload: &[u8]) -> Result<&E::Archived, CodecError> {
    let expected = encoded_len::<E>();
    if payload.len() != expected {
        return Err(CodecError::Length {
            kind: E::KIND,
            expected,
            actual: payload.len(),
        });
    }
    let align = align_of::<E::Archived>();
    if payload.as_ptr().align_offset(align) != 0 {
        return Err(CodecError::Misaligned {
            kind: E::KIND,
            align,
        });
    }
    rkyv::api::low::access::<E::Archived, Failure>(payload)
        .map_err(|_| CodecError::Invalid { kind: E::KIND })
}

/// Scratch space for decoding misaligned payloads.
#[repr(C, align(16))]
struct AlignedScratch([u8; MAX_ENCODED_LEN]);

/// Validate `payload` and return the owned event. Unlike [`access`], a misaligned payload is
/// accepted: it is copied to an aligned stack buffer of [`MAX_ENCODED_LEN`] bytes first (a
/// larger foreign `Journaled` type still needs an aligned payload).
#[inline]
pub fn decode<E: Journaled>(payload: &[u8]) -> Result<E, CodecError> {
    let archived = match access::<E>(payload) {
        Ok(a) => a,
        Err(CodecError::Misaligned { .. }) if payload.len() <= MAX_ENCODED_LEN => {
            let mut scratch = AlignedScratch([0; MAX_ENCODED_LEN]);
            let copy = &mut scratch.0[..payload.len()];
            copy.copy_from_slice(payload);
            let a = access::<E>(copy)?;
            return deserialize::<E>(a);
        }
        Err(e) => return Err(e),
    };
    deserialize::<E>(archived)
}

/// The owned value of an archived event.
#[inline]
pub fn deserialize<E: Journaled>(archived: &E::Archived) -> Result<E, CodecError> {
    rkyv::api::low::deserialize::<E, Failure>(archived)
        .map_err(|_| CodecError::Invalid { kind: E::KIND })
}

/// [`access`] after checking that the record's `kind` is `E`'s.
#[inline]
pub fn access_record<E: Journaled>(kind: u16, payload: &[u8]) -> Result<&E::Archived, CodecError> {
    if kind != E::KIND as u16 {
        return Err(CodecError::KindMismatch {
            expected: E::KIND,
            actual: kind,
        });
    }
    access::<E>(payload)
}

/// A journal record viewed by kind: archived events in place, other kinds as their bytes.
#[derive(Debug, Clone, Copy)]
pub enum RecordView<'a> {
    /// [`RecordKind::Market`].
    Market(&'a ArchivedMarketEvent),
    /// [`RecordKind::Intent`].
    Intent(&'a ArchivedOrderIntent),
    /// [`RecordKind::Exec`].
    Exec(&'a ArchivedExecEvent),
    /// [`RecordKind::Control`].
    Control(&'a ArchivedControl),
    /// Any variable-length kind (raw frames, outbound bytes, decisions, errors, gaps,
    /// reconciliation): the payload as is.
    Bytes {
        /// The kind.
        kind: RecordKind,
        /// The payload.
        payload: &'a [u8],
    },
}

impl RecordView<'_> {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            RecordView::Market(_) => RecordKind::Market,
            RecordView::Intent(_) => RecordKind::Intent,
            RecordView::Exec(_) => RecordKind::Exec,
            RecordView::Control(_) => RecordKind::Control,
            RecordView::Bytes { kind, .. } => *kind,
        }
    }
}

/// View any journal record by its kind number (validating fixed-size events).
pub fn view(kind: u16, payload: &[u8]) -> Result<RecordView<'_>, CodecError> {
    let k = RecordKind::from_u16(kind).ok_or(CodecError::UnknownKind(kind))?;
    Ok(match k {
        RecordKind::Market => RecordView::Market(access::<MarketEvent>(payload)?),
        RecordKind::Intent => RecordView::Intent(access::<OrderIntent>(payload)?),
        RecordKind::Exec => RecordView::Exec(access::<ExecEvent>(payload)?),
        RecordKind::Control => RecordView::Control(access::<Control>(payload)?),
        kind => RecordView::Bytes { kind, payload },
    })
}

// ---------------------------------------------------------------------------------------------
// Journal glue
// ---------------------------------------------------------------------------------------------

/// Why an event could not be appended to the journal.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The journal refused the record (full disk, too large, ...).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The event could not be serialised (cannot happen for this crate's events; the record is
    /// then appended zero-filled, which [`access`] rejects).
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A journal configuration for this build's [`SCHEMA_HASH`], with the journal's defaults.
pub fn journal_config() -> JournalConfig {
    JournalConfig::new(SCHEMA_HASH)
}

/// Open a tailer on `dir` that refuses journals written with another schema.
pub fn open_tailer(dir: &Path) -> Result<Tailer, JournalError> {
    Tailer::open(dir, Some(SCHEMA_HASH))
}

/// Append `event` as one record of kind [`E::KIND`](Journaled::KIND), serialised in place into
/// the mapped segment (no intermediate copy, no allocation). Returns the record's sequence
/// number.
#[inline]
pub fn append<E: Journaled>(
    appender: &mut Appender,
    event: &E,
    flags: u16,
    timestamp: u64,
) -> Result<u64, AppendError> {
    let mut encoded = Ok(0);
    let seq = appender.append_with(
        E::KIND.as_u16(),
        flags,
        timestamp,
        encoded_len::<E>(),
        |buf| {
            encoded = encode_into(event, buf);
            if encoded.is_err() {
                buf.fill(0);
            }
        },
    )?;
    encoded?;
    Ok(seq)
}

/// Append a variable-length record (raw inbound frame, outbound order bytes, decision, feed
/// error, gap, reconciliation) as is.
#[inline]
pub fn append_bytes(
    appender: &mut Appender,
    kind: RecordKind,
    flags: u16,
    timestamp: u64,
    payload: &[u8],
) -> Result<u64, JournalError> {
    appender.append(kind.as_u16(), flags, timestamp, payload)
}

/// The archived `E` inside a journal record, zero-copy (checks the record kind first).
#[inline]
pub fn access_journal<'a, E: Journaled>(
    record: &RecordRef<'a>,
) -> Result<&'a E::Archived, CodecError> {
    access_record::<E>(record.kind, record.payload)
}

/// Any journal record viewed by its kind (see [`view`]).
#[inline]
pub fn view_journal<'a>(record: &RecordRef<'a>) -> Result<RecordView<'a>, CodecError> {
    view(record.kind, record.payload)
}

// ---------------------------------------------------------------------------------------------
// Human-readable summaries (cold path)
// ---------------------------------------------------------------------------------------------

/// One line describing a record's payload, for inspection tools (`journal tail`). Cold path:
/// allocates. Fixed-size events are validated and printed with their exact decimals; other
/// kinds show their length and a printable preview; invalid payloads say why.
pub fn summarize(kind: u16, payload: &[u8]) -> String {
    use core::fmt::Write;

    let mut out = String::new();
    let Some(k) = RecordKind::from_u16(kind) else {
        let _ = write!(out, "unknown kind {kind}, {} bytes", payload.len());
        return out;
    };
    let result = match k {
        RecordKind::Market => {
            decode::<MarketEvent>(payload).map(|e| summarize_market(&e, &mut out))
        }
        RecordKind::Intent => decode::<OrderIntent>(payload).map(|i| {
            let _ = write!(
                out,
                "{} {} {} {} px={} qty={} cid={} reason={} decision={}{}",
                i.action,
                i.side,
                i.order_type,
                i.time_in_force,
                i.price.to_decimal(i.price_scale),
                i.qty.to_decimal(i.qty_scale),
                i.client_order_id,
                i.reason,
                i.decision_seq,
                if i.reduce_only { " reduce_only" } else { "" },
            );
        }),
        RecordKind::Exec => decode::<ExecEvent>(payload).map(|x| {
            let _ = write!(
                out,
                "{} {} inst={} cid={} vid={} last={}@{} cum={} leaves={} fee={}{}",
                x.kind,
                x.side,
                x.instrument,
                x.client_order_id,
                x.venue_order_id,
                x.last_qty.to_decimal(x.qty_scale),
                x.last_px.to_decimal(x.price_scale),
                x.cum_qty.to_decimal(x.qty_scale),
                x.leaves_qty.to_decimal(x.qty_scale),
                x.fee_decimal(),
                if x.is_maker { " maker" } else { "" },
            );
            if x.venue_error != 0 {
                let _ = write!(out, " err={}", x.venue_error);
            }
        }),
        RecordKind::Decision => decode::<Decision>(payload).map(|d| {
            let f = |v: f64| {
                if v.is_nan() {
                    String::from("-")
                } else {
                    format!("{v:.4}")
                }
            };
            let _ = write!(
                out,
                "{} level={} reason={} inst={} t_ns={} px={} trend={} zone={} adx={} hurst={} \
                 mr={} atr={} imb={}/{}/{} bounce={} vol={} confluence={} filters={:#08b}",
                d.outcome,
                d.level,
                d.reason,
                d.instrument,
                d.time_ns,
                d.price.to_decimal(d.price_scale),
                d.trend,
                d.zone_kind,
                f(d.adx),
                f(d.hurst),
                f(d.mean_reversion),
                f(d.atr),
                f(d.imbalance_1m),
                f(d.imbalance_5m),
                f(d.imbalance_15m),
                f(d.bounce),
                f(d.volume_ratio),
                f(d.confluence),
                d.filter_mask,
            );
        }),
        RecordKind::Control => decode::<Control>(payload).map(|c| {
            let _ = write!(
                out,
                "{} inst={} arg={} issued_ns={}",
                c.kind, c.instrument, c.arg, c.issued_unix_ns
            );
        }),
        _ => {
            const PREVIEW: usize = 96;
            let shown = &payload[..payload.len().min(PREVIEW)];
            let _ = write!(out, "{} bytes: \"", payload.len());
            for ch in String::from_utf8_lossy(shown).chars() {
                let _ = write!(out, "{}", ch.escape_debug());
            }
            out.push('"');
            if payload.len() > PREVIEW {
                out.push_str("...");
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        out.clear();
        let _ = write!(out, "invalid: {e}");
    }
    out
}

/// The market-event part of [`summarize`].
fn summarize_market(e: &MarketEvent, out: &mut String) {
    use core::fmt::Write;

    let px = |p: Price| p.to_decimal(e.price_scale);
    let qty = |q: Qty| q.to_decimal(e.qty_scale);
    let _ = write!(out, "{} inst={} ", e.kind, e.instrument);
    let _ = match e.kind {
        MarketKind::Trade | MarketKind::AggTrade => write!(
            out,
            "px={} qty={} aggr={} id={}",
            px(e.price),
            qty(e.qty),
            e.aggressor,
            e.id
        ),
        MarketKind::BookTicker | MarketKind::Quote => write!(
            out,
            "bid={}x{} ask={}x{} u={}",
            px(e.bid_px),
            qty(e.bid_qty),
            px(e.ask_px),
            qty(e.ask_qty),
            e.id
        ),
        MarketKind::DepthLevel => {
            let ids = e.depth_ids();
            let _ = write!(
                out,
                "{} px={} qty={} U={} u={}",
                if e.depth_side() == Side::Buy {
                    "bid"
                } else {
                    "ask"
                },
                px(e.price),
                qty(e.qty),
                ids.first_update_id,
                ids.final_update_id
            );
            if let Some(pu) = ids.prev_final_update_id {
                let _ = write!(out, " pu={pu}");
            }
            if e.has(MarketEvent::FLAG_SNAPSHOT) {
                out.push_str(" snapshot");
            }
            if e.is_last() {
                out.push_str(" last");
            }
            Ok(())
        }
        MarketKind::Kline => match e.as_kline() {
            Some(k) => write!(
                out,
                "{}s o={} h={} l={} c={} v={} trades={}{}",
                k.interval_secs,
                px(k.open),
                px(k.high),
                px(k.low),
                px(k.close),
                qty(k.volume),
                k.trades,
                if k.closed { " closed" } else { "" }
            ),
            None => Ok(()),
        },
    };
}
