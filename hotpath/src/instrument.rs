//! Instruments: interned ids, inline symbols and the per-instrument fixed-point scales.
//!
//! Events carry a 4-byte [`InstrumentId`] instead of a symbol string: comparing, hashing and
//! indexing per-symbol state by a dense `u32` is free, and an event stays fixed-size and `Copy`.
//! The [`InstrumentTable`] is filled during warm-up (from the venue's exchange information or
//! configuration) with [`InstrumentTable::intern`], which may allocate; after that the feed
//! decoder maps the symbol bytes of every message to an id with [`InstrumentTable::lookup`],
//! which is allocation-free and O(1) (open addressing over a fixed-capacity slot array).
//!
//! **Case.** Binance writes symbols lowercase in stream names (`btcusdt@trade`) and uppercase in
//! payloads (`"s":"BTCUSDT"`). The table keeps symbols exactly as interned and makes *lookup*
//! ASCII case-insensitive, so both spellings find the same instrument without a normalising
//! copy; two symbols that differ only in case are the same instrument of a venue.
//!
//! The [`InstrumentSpec`] also fixes the scales of [`Price`] and [`Qty`] for the instrument:
//! every price of the instrument is a mantissa at `price_scale`, every quantity at `qty_scale`.

use core::fmt;

use rkyv::{Archive, Deserialize, Serialize};

use crate::fixed::{Decimal, ParseError, Price, Qty, MAX_SCALE};

/// Dense, interned instrument id: the index of the instrument in its [`InstrumentTable`].
///
/// Ids are only meaningful together with the table that issued them (and a journal carries the
/// ids of the table of the run that wrote it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash), compare(PartialEq))]
#[repr(transparent)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// "No instrument" (a [`Control`](crate::event::Control) that applies to everything).
    pub const NONE: InstrumentId = InstrumentId(u32::MAX);

    /// The id as an index into per-instrument arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// True for [`InstrumentId::NONE`].
    #[inline]
    pub const fn is_none(self) -> bool {
        self.0 == u32::MAX
    }
}

impl ArchivedInstrumentId {
    /// The native id.
    #[inline]
    pub fn to_native(&self) -> InstrumentId {
        InstrumentId(self.0.to_native())
    }
}

impl fmt::Display for InstrumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("none")
        } else {
            write!(f, "#{}", self.0)
        }
    }
}

/// Longest symbol a [`Symbol`] holds inline.
pub const MAX_SYMBOL_LEN: usize = 24;

/// Why a symbol was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Empty symbol.
    #[error("empty symbol")]
    Empty,
    /// Longer than [`MAX_SYMBOL_LEN`] bytes.
    #[error("symbol is {len} bytes long, the maximum is 24")]
    TooLong {
        /// Length of the input.
        len: usize,
    },
    /// A byte that is not printable ASCII (space and control bytes included).
    #[error("invalid byte 0x{byte:02x} at position {pos} in symbol")]
    InvalidByte {
        /// Byte offset.
        pos: usize,
        /// The byte.
        byte: u8,
    },
}

/// A venue symbol (`BTCUSDT`, `BTCUSD_PERP`, `EUR/USD`) stored inline: no heap, `Copy`.
///
/// Printable ASCII only, 1 to [`MAX_SYMBOL_LEN`] bytes, case kept as given.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    bytes: [u8; MAX_SYMBOL_LEN],
    len: u8,
}

impl Symbol {
    /// A symbol from bytes.
    pub const fn new(s: &[u8]) -> Result<Self, SymbolError> {
        if s.is_empty() {
            return Err(SymbolError::Empty);
        }
        if s.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong { len: s.len() });
        }
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            if !b.is_ascii_graphic() {
                return Err(SymbolError::InvalidByte { pos: i, byte: b });
            }
            bytes[i] = b;
            i += 1;
        }
        Ok(Symbol {
            bytes,
            len: s.len() as u8,
        })
    }

    /// The symbol bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The symbol as `&str` (always valid: only printable ASCII is accepted).
    #[inline]
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (a symbol has at least one byte); present for API symmetry.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// ASCII case-insensitive comparison with raw bytes.
    #[inline]
    pub fn eq_ignore_ascii_case(&self, other: &[u8]) -> bool {
        self.as_bytes().eq_ignore_ascii_case(other)
    }
}

impl core::str::FromStr for Symbol {
    type Err = SymbolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::new(s.as_bytes())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A trading venue (market-data and order-entry endpoint family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Venue {
    /// Binance spot.
    BinanceSpot = 1,
    /// Binance USD-M (linear) futures.
    BinanceUsdM = 2,
    /// Binance COIN-M (inverse) futures.
    BinanceCoinM = 3,
    /// Bybit.
    Bybit = 4,
    /// Hyperliquid.
    Hyperliquid = 5,
    /// FXCM (forex top-of-book data).
    Fxcm = 6,
    /// A FIX 4.4 forex broker (cTrader and similar).
    Fix = 7,
    /// The built-in Binance-compatible venue simulator.
    Simulator = 8,
}

impl Venue {
    /// Every venue.
    pub const ALL: [Venue; 8] = [
        Venue::BinanceSpot,
        Venue::BinanceUsdM,
        Venue::BinanceCoinM,
        Venue::Bybit,
        Venue::Hyperliquid,
        Venue::Fxcm,
        Venue::Fix,
        Venue::Simulator,
    ];

    /// Stable configuration name (`binance_spot`, `binance_usdm`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "binance_spot",
            Venue::BinanceUsdM => "binance_usdm",
            Venue::BinanceCoinM => "binance_coinm",
            Venue::Bybit => "bybit",
            Venue::Hyperliquid => "hyperliquid",
            Venue::Fxcm => "fxcm",
            Venue::Fix => "fix",
            Venue::Simulator => "simulator",
        }
    }

    /// The venue with configuration name `name` (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Venue> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(name))
    }

    /// The venue with discriminant `v`.
    pub const fn from_u8(v: u8) -> Option<Venue> {
        match v {
            1 => Some(Venue::BinanceSpot),
            2 => Some(Venue::BinanceUsdM),
            3 => Some(Venue::BinanceCoinM),
            4 => Some(Venue::Bybit),
            5 => Some(Venue::Hyperliquid),
            6 => Some(Venue::Fxcm),
            7 => Some(Venue::Fix),
            8 => Some(Venue::Simulator),
            _ => None,
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What kind of contract an instrument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum InstrumentKind {
    /// Spot pair (Binance spot).
    Spot = 1,
    /// Linear perpetual, margined in the quote asset (Binance USD-M).
    Perp = 2,
    /// Inverse perpetual, margined in the base asset, quantity in contracts (Binance COIN-M).
    InversePerp = 3,
    /// Linear dated future.
    Future = 4,
    /// Inverse dated future (COIN-M quarterlies).
    InverseFuture = 5,
    /// Forex pair.
    Forex = 6,
}

impl InstrumentKind {
    /// True for inverse contracts (quantity in contracts of `contract_size` quote units).
    pub const fn is_inverse(self) -> bool {
        matches!(
            self,
            InstrumentKind::InversePerp | InstrumentKind::InverseFuture
        )
    }

    /// True for perpetuals and futures (reduce-only orders, positions rather than balances).
    pub const fn is_derivative(self) -> bool {
        !matches!(self, InstrumentKind::Spot | InstrumentKind::Forex)
    }

    /// True for instruments that trade in sessions with a weekly close (forex), whose
    /// positions the risk layer closes before the weekend
    /// ([`crate::risk::session`]); crypto trades 24/7.
    pub const fn is_session_based(self) -> bool {
        matches!(self, InstrumentKind::Forex)
    }
}

/// Errors building an instrument or interning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// The symbol is not acceptable.
    #[error("invalid symbol: {0}")]
    Symbol(#[from] SymbolError),
    /// A filter value (tick size, step size, ...) did not parse.
    #[error("invalid {field}: {error}")]
    Filter {
        /// Which filter.
        field: &'static str,
        /// The parse error.
        error: ParseError,
    },
    /// A scale above [`MAX_SCALE`].
    #[error("{field} scale {scale} exceeds the maximum of 18")]
    ScaleTooLarge {
        /// `price` or `qty`.
        field: &'static str,
        /// The scale.
        scale: u8,
    },
    /// The tick size is zero or negative.
    #[error("tick size must be positive")]
    NonPositiveTick,
    /// The step size is zero or negative.
    #[error("step size must be positive")]
    NonPositiveStep,
    /// The table is full.
    #[error("instrument table is full ({capacity} instruments)")]
    Full {
        /// The table's capacity.
        capacity: usize,
    },
    /// The venue and symbol are already interned with a different definition.
    #[error("instrument {id} is already interned with a different definition")]
    Conflict {
        /// The existing id.
        id: InstrumentId,
    },
}

/// Static definition of an instrument: identity, contract kind and fixed-point parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Venue symbol, case as given.
    pub symbol: Symbol,
    /// Venue.
    pub venue: Venue,
    /// Contract kind.
    pub kind: InstrumentKind,
    /// Decimals of every [`Price`] of this instrument (at most [`MAX_SCALE`]).
    pub price_scale: u8,
    /// Decimals of every [`Qty`] of this instrument (at most [`MAX_SCALE`]).
    pub qty_scale: u8,
    /// Price increment, at `price_scale` (Binance `PRICE_FILTER.tickSize`).
    pub tick: Price,
    /// Quantity increment, at `qty_scale` (Binance `LOT_SIZE.stepSize`).
    pub step: Qty,
    /// Minimum order quantity, at `qty_scale` (Binance `LOT_SIZE.minQty`).
    pub min_qty: Qty,
    /// Minimum order notional in the quote asset, with its own scale (Binance
    /// `NOTIONAL.minNotional` / `MIN_NOTIONAL.notional`); zero if none.
    pub min_notional: Decimal,
    /// Value of one unit of quantity: 1 for spot and linear contracts; the face value in the
    /// quote asset for inverse contracts (100 for Binance COIN-M `BTCUSD_PERP`).
    pub contract_size: Decimal,
}

impl InstrumentSpec {
    /// A spec with the given scales, a tick and step of one unit at those scales, no minimums
    /// and a contract size of 1. Adjust the public fields or use
    /// [`from_filters`](Self::from_filters).
    pub const fn new(
        venue: Venue,
        symbol: Symbol,
        kind: InstrumentKind,
        price_scale: u8,
        qty_scale: u8,
    ) -> Self {
        InstrumentSpec {
            symbol,
            venue,
            kind,
            price_scale,
            qty_scale,
            tick: Price(1),
            step: Qty(1),
            min_qty: Qty(0),
            min_notional: Decimal::ZERO,
            contract_size: Decimal::new(1, 0),
        }
    }

    /// A spec from the venue's filter strings (Binance `exchangeInfo`): the price scale is the
    /// number of significant decimals of `tick_size` (`"0.01000000"` gives 2), the quantity scale
    /// that of `step_size`. Venue prices with more decimals than the tick then parse exactly as
    /// long as the excess digits are zeros (which they are for a valid price).
    pub fn from_filters(
        venue: Venue,
        symbol: &[u8],
        kind: InstrumentKind,
        tick_size: &[u8],
        step_size: &[u8],
        min_qty: &[u8],
        min_notional: &[u8],
    ) -> Result<Self, InstrumentError> {
        let field = |field: &'static str| move |error| InstrumentError::Filter { field, error };
        let tick = Decimal::parse(tick_size).map_err(field("tick size"))?;
        let step = Decimal::parse(step_size).map_err(field("step size"))?;
        let price_scale = tick.min_scale();
        let qty_scale = step.min_scale();
        let mut spec =
            InstrumentSpec::new(venue, Symbol::new(symbol)?, kind, price_scale, qty_scale);
        spec.tick = Price::parse(tick_size, price_scale).map_err(field("tick size"))?;
        spec.step = Qty::parse(step_size, qty_scale).map_err(field("step size"))?;
        spec.min_qty = Qty::parse(min_qty, qty_scale).map_err(field("min qty"))?;
        spec.min_notional = Decimal::parse(min_notional)
            .map_err(field("min notional"))?
            .normalize();
        spec.validate()?;
        Ok(spec)
    }

    /// Whether the instrument trades in sessions with a weekly close (its kind decides:
    /// [`InstrumentKind::is_session_based`]).
    pub const fn is_session_based(&self) -> bool {
        self.kind.is_session_based()
    }

    /// Check scales and increments.
    pub fn validate(&self) -> Result<(), InstrumentError> {
        if self.price_scale > MAX_SCALE {
            return Err(InstrumentError::ScaleTooLarge {
                field: "price",
                scale: self.price_scale,
            });
        }
        if self.qty_scale > MAX_SCALE {
            return Err(InstrumentError::ScaleTooLarge {
                field: "qty",
                scale: self.qty_scale,
            });
        }
        if !self.tick.is_positive() {
            return Err(InstrumentError::NonPositiveTick);
        }
        if !self.step.is_positive() {
            return Err(InstrumentError::NonPositiveStep);
        }
        Ok(())
    }

    /// Same definition, treating symbols that differ only in ASCII case as equal.
    fn same_definition(&self, other: &InstrumentSpec) -> bool {
        let mut a = *other;
        a.symbol = self.symbol;
        self.symbol.eq_ignore_ascii_case(other.symbol.as_bytes()) && a == *self
    }
}

/// What an event constructor needs to know about an instrument: its id and scales (copied into
/// events so a journal record is self-describing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstrumentRef {
    /// The interned id.
    pub id: InstrumentId,
    /// [`InstrumentSpec::price_scale`].
    pub price_scale: u8,
    /// [`InstrumentSpec::qty_scale`].
    pub qty_scale: u8,
}

/// FNV-1a over the venue byte and the ASCII-uppercased symbol (so that lookup is
/// case-insensitive).
#[inline]
fn key_hash(venue: Venue, symbol: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    h ^= u64::from(venue as u8);
    h = h.wrapping_mul(0x0000_0100_0000_01b3);
    for &b in symbol {
        h ^= u64::from(b.to_ascii_uppercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the well-mixed high bits into the low bits used for the slot index.
    h ^ (h >> 29)
}

/// The instruments of a run: interned during warm-up, read-only and allocation-free after.
///
/// Lookup is open addressing with linear probing over a power-of-two slot array at most half
/// full; a slot holds `index + 1` (0 is empty).
#[derive(Debug, Clone)]
pub struct InstrumentTable {
    specs: Vec<InstrumentSpec>,
    slots: Box<[u32]>,
    mask: usize,
    capacity: usize,
}

impl InstrumentTable {
    /// An empty table for up to `capacity` instruments (allocates once, here).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(u32::MAX as usize - 1);
        let nslots = (capacity.saturating_mul(2)).max(8).next_power_of_two();
        InstrumentTable {
            specs: Vec::with_capacity(capacity),
            slots: vec![0u32; nslots].into_boxed_slice(),
            mask: nslots - 1,
            capacity,
        }
    }

    /// Intern an instrument (warm-up only) and return its id. Interning the same venue and
    /// symbol again (in any ASCII case) with the same definition returns the same id; with a
    /// different definition it fails with [`InstrumentError::Conflict`].
    pub fn intern(&mut self, spec: InstrumentSpec) -> Result<InstrumentId, InstrumentError> {
        spec.validate()?;
        let mut i = key_hash(spec.venue, spec.symbol.as_bytes()) as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            let existing = &self.specs[slot as usize - 1];
            if existing.venue == spec.venue
                && existing.symbol.eq_ignore_ascii_case(spec.symbol.as_bytes())
            {
                let id = InstrumentId(slot - 1);
                return if existing.same_definition(&spec) {
                    Ok(id)
                } else {
                    Err(InstrumentError::Conflict { id })
                };
            }
            i = (i + 1) & self.mask;
        }
        if self.specs.len() >= self.capacity {
            return Err(InstrumentError::Full {
                capacity: self.capacity,
            });
        }
        let id = InstrumentId(self.specs.len() as u32);
        self.specs.push(spec);
        self.slots[i] = id.0 + 1;
        Ok(id)
    }

    /// The id of `symbol` on `venue` (ASCII case-insensitive); no allocation, O(1).
    #[inline]
    pub fn lookup(&self, venue: Venue, symbol: &[u8]) -> Option<InstrumentId> {
        if symbol.is_empty() || symbol.len() > MAX_SYMBOL_LEN {
            return None;
        }
        let mut i = key_hash(venue, symbol) as usize & self.mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            let spec = &self.specs[slot as usize - 1];
            if spec.venue == venue && spec.symbol.eq_ignore_ascii_case(symbol) {
                return Some(InstrumentId(slot - 1));
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The spec of `id`.
    ///
    /// # Panics
    /// If `id` was not issued by this table (ids are only ever produced by [`intern`](Self::intern)
    /// and [`lookup`](Self::lookup), so this is a wiring bug, not an input error).
    #[inline]
    pub fn get(&self, id: InstrumentId) -> &InstrumentSpec {
        match self.specs.get(id.index()) {
            Some(spec) => spec,
            None => panic!("instrument id {id} was not issued by this table"),
        }
    }

    /// The spec of `id`, or `None` if this table did not issue it.
    #[inline]
    pub fn try_get(&self, id: InstrumentId) -> Option<&InstrumentSpec> {
        self.specs.get(id.index())
    }

    /// Id and scales of `id`, for event constructors.
    #[inline]
    pub fn instrument_ref(&self, id: InstrumentId) -> InstrumentRef {
        let spec = self.get(id);
        InstrumentRef {
            id,
            price_scale: spec.price_scale,
            qty_scale: spec.qty_scale,
        }
    }

    /// Number of interned instruments.
    #[inline]
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True if nothing is interned.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Maximum number of instruments.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// All instruments in id order.
    pub fn iter(&self) -> impl Iterator<Item = (InstrumentId, &InstrumentSpec)> + '_ {
        self.specs
            .iter()
            .enumerate()
            .map(|(i, s)| (InstrumentId(i as u32), s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(venue: Venue, sym: &str) -> InstrumentSpec {
        InstrumentSpec::new(venue, sym.parse().unwrap(), InstrumentKind::Spot, 2, 5)
    }

    #[test]
    fn symbols() {
        let s = Symbol::new(b"BTCUSDT").unwrap();
        assert_eq!(s.as_str(), "BTCUSDT");
        assert_eq!(s.len(), 7);
        assert!(s.eq_ignore_ascii_case(b"btcusdt"));
        assert_eq!(Symbol::new(b""), Err(SymbolError::Empty));
        assert_eq!(
            Symbol::new(&[b'A'; 25]),
            Err(SymbolError::TooLong { len: 25 })
        );
        assert_eq!(
            Symbol::new(b"BTC USDT"),
            Err(SymbolError::InvalidByte { pos: 3, byte: b' ' })
        );
        assert!(Symbol::new(b"EUR/USD").is_ok());
        assert_eq!(format!("{s:?}"), "\"BTCUSDT\"");
    }

    #[test]
    fn intern_and_lookup() {
        let mut t = InstrumentTable::with_capacity(64);
        let btc = t.intern(spec(Venue::BinanceSpot, "BTCUSDT")).unwrap();
        let eth = t.intern(spec(Venue::BinanceSpot, "ETHUSDT")).unwrap();
        let btc_f = t.intern(spec(Venue::BinanceUsdM, "BTCUSDT")).unwrap();
        assert_eq!(
            (btc, eth, btc_f),
            (InstrumentId(0), InstrumentId(1), InstrumentId(2))
        );
        assert_eq!(t.intern(spec(Venue::BinanceSpot, "btcusdt")), Ok(btc));
        let mut different = spec(Venue::BinanceSpot, "BTCUSDT");
        different.price_scale = 3;
        assert_eq!(
            t.intern(different),
            Err(InstrumentError::Conflict { id: btc })
        );
        assert_eq!(t.lookup(Venue::BinanceSpot, b"btcusdt"), Some(btc));
        assert_eq!(t.lookup(Venue::BinanceSpot, b"BTCUSDT"), Some(btc));
        assert_eq!(t.lookup(Venue::BinanceUsdM, b"BTCUSDT"), Some(btc_f));
        assert_eq!(t.lookup(Venue::BinanceCoinM, b"BTCUSDT"), None);
        assert_eq!(t.lookup(Venue::BinanceSpot, b"XRPUSDT"), None);
        assert_eq!(t.get(eth).symbol.as_str(), "ETHUSDT");
        assert_eq!(t.instrument_ref(eth).price_scale, 2);
        for i in 0..61 {
            t.intern(spec(Venue::Simulator, &format!("SYM{i}")))
                .unwrap();
        }
        assert_eq!(t.len(), 64);
        assert_eq!(
            t.intern(spec(Venue::Simulator, "ONEMORE")),
            Err(InstrumentError::Full { capacity: 64 })
        );
        for (id, s) in t.iter() {
            assert_eq!(t.lookup(s.venue, s.symbol.as_bytes()), Some(id));
        }
    }

    #[test]
    fn only_forex_is_session_based() {
        let mut fx = spec(Venue::Fxcm, "EURUSD");
        fx.kind = InstrumentKind::Forex;
        assert!(fx.is_session_based());
        for k in [
            InstrumentKind::Spot,
            InstrumentKind::Perp,
            InstrumentKind::InversePerp,
            InstrumentKind::Future,
            InstrumentKind::InverseFuture,
        ] {
            assert!(!k.is_session_based(), "{k:?} trades 24/7");
        }
    }

    #[test]
    fn from_binance_filters() {
        let s = InstrumentSpec::from_filters(
            Venue::BinanceSpot,
            b"BTCUSDT",
            InstrumentKind::Spot,
            b"0.01000000",
            b"0.00001000",
            b"0.00001000",
            b"5.00000000",
        )
        .unwrap();
        assert_eq!((s.price_scale, s.qty_scale), (2, 5));
        assert_eq!((s.tick, s.step, s.min_qty), (Price(1), Qty(1), Qty(1)));
        assert_eq!(s.min_notional, Decimal::new(5, 0));
        assert_eq!(
            Price::parse(b"61837.63000000", s.price_scale),
            Ok(Price(6_183_763))
        );
        assert!(matches!(
            InstrumentSpec::from_filters(
                Venue::BinanceSpot,
                b"X",
                InstrumentKind::Spot,
                b"0",
                b"1",
                b"0",
                b"0"
            ),
            Err(InstrumentError::NonPositiveTick)
        ));
    }
}
