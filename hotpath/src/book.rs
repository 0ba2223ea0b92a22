//! The L2 order book and Binance depth synchronisation.
//!
//! The book is kept for **execution**, not for signals (see the design's contradiction table):
//! slippage estimates before an order, price bands, and a [`proven`](BookSync::proven) flag that
//! the strategy and gateway check before acting. A book that is not proven must not be used to
//! size or price an order, so this module is strict about when a book counts as proven.
//!
//! # Data structure: [`L2Book`]
//!
//! Each side is a pair of preallocated arrays (structure of arrays: sort keys and quantities)
//! sorted by a *key* that grows toward the best price (`key = price` for bids, `-price` for
//! asks), so **the best level is the last element**. A level update is a binary search
//! (O(log n)) plus, for an insert or a removal, a `copy_within` of the levels *better* than the
//! changed one (O(k), k = distance from the top). Almost all depth traffic is near the top, so k
//! is small; the best price is `keys[len - 1]`, O(1). Nothing allocates after
//! [`L2Book::new`]: the capacity (`max_levels` per side) is fixed. When a side is full, a new
//! level worse than every stored one is dropped and a better one evicts the worst; either way
//! the side's *horizon* (see below) moves inward so a depth query never claims to know levels it
//! has dropped. Alternatives considered: a `BTreeMap` allocates per insert; a price-indexed
//! ladder (array by tick offset) is O(1) per update but needs re-centring and a tick size per
//! instrument, and its best-price search is O(range) after the best level is removed.
//!
//! The **horizon** ([`L2Book::horizon`]) is the worst price down to which a side is known
//! completely: a REST snapshot only returns the best N levels (Binance: 1000 or 5000), and
//! levels outside it are only learnt when they change. A fill estimate that walks past the
//! horizon reports [`FillEstimate::complete`] `== false`.
//!
//! # Synchronisation: [`BookSync`]
//!
//! Input is the [`MarketEvent`] stream of [`MarketKind::DepthLevel`] events: a depth update with
//! N levels arrives as N events sharing `U`/`u`/`pu` with [`MarketEvent::FLAG_LAST`] on the last,
//! a REST snapshot as levels with [`MarketEvent::FLAG_SNAPSHOT`] and `U == u == lastUpdateId`.
//! The state machine follows Binance's "How to manage a local order book correctly":
//!
//! 1. Diffs are buffered (fixed-capacity ring; the oldest updates are dropped when it is full)
//!    until a snapshot arrives ([`SyncState::AwaitingSnapshot`]).
//! 2. On the snapshot (`lastUpdateId = L`) the book is replaced by it, and the buffered diffs are
//!    replayed: diffs that are entirely older than the snapshot are dropped (spot: `u <= L`;
//!    USD-M/COIN-M futures: `u < L`, Binance's futures wording "drop any event where u is <
//!    lastUpdateId"). The first diff applied must bridge the snapshot: spot
//!    `U <= L + 1 <= u`, futures `U <= L <= u`. If it does not, the snapshot cannot be joined to
//!    the stream: a [`GapKind::SnapshotMismatch`] is reported and a new snapshot requested.
//!    The futures drop rule is strict (`<`), not `<=`, on purpose: in the recorded USD-M ETHUSDT
//!    capture the bridging diff has `u == L` exactly, and dropping it would make every later diff
//!    fail the first-diff rule.
//! 3. Once the first diff is applied the book is [`SyncState::Proven`]. From then on every update
//!    must continue the chain: spot `U <= prev_u + 1` (Binance: "if U > local update id + 1,
//!    something went wrong"; in practice `U == prev_u + 1`), futures `pu == prev_u`. A break is a
//!    [`GapKind::Sequence`]: the book becomes unproven, the gap is reported (expected vs got, as a
//!    [`GapInfo`] that [`GapInfo::write_payload`] turns into the journal's `Gap` record) and a new
//!    snapshot is requested ([`BookSync::take_snapshot_request`]). A diff whose `u` is not newer
//!    than the last one seen is a duplicate and is ignored.
//! 4. After every applied update the book is checked for being **crossed** (best bid >= best
//!    ask). A correctly synchronised book of one matching-engine state is never crossed, so a
//!    crossed book means corrupt input: [`GapKind::Crossed`], unproven, resync.
//!
//! Chain continuity is checked on the *stream* (each diff against the previous diff), in every
//! state; what a break means depends on the state: it loses a proven book (resync), discards the
//! pre-snapshot buffer (a buffer with a hole cannot be replayed), or does not matter (between a
//! snapshot and the first usable diff the first-diff rule decides).
//!
//! [`BookSync::on_event`] returns what the event did ([`SyncEvent`]); every failure is also
//! queued as a [`GapInfo`] for the caller to journal ([`BookSync::pop_gap`]), and a new snapshot
//! is asked for through [`BookSync::take_snapshot_request`]. A depth update (or snapshot) with no
//! levels produces no event but still moves the chain: the feed passes its ids to
//! [`BookSync::on_empty_update`].
//!
//! # Replay without a snapshot: [`SyncMode::FromStream`]
//!
//! A recorded capture may hold only the diff stream. In `FromStream` mode the sync still buffers
//! and still uses a snapshot if one arrives, but while there is none it also applies every diff
//! to the book, in state [`SyncState::Partial`]. Diffs carry absolute quantities, so every level
//! such a book holds is exactly right (as long as the chain is continuous; a gap clears the book
//! and starts again); what it cannot know is the levels that have not changed since the stream
//! started. Its best bid can therefore be *below* the real one (never above), and it becomes
//! right once the real best level has been touched by a diff. That is useful for replay
//! statistics but is **never proven**: [`BookSync::proven`] stays false until a snapshot is
//! joined, so nothing trades on a partial book.
//!
//! # Allocation
//!
//! [`BookSync::new`] allocates the book and the buffer; after that no method allocates (the
//! buffer is a pair of `VecDeque`s created with their final capacity and never grown). The
//! `book_sync` integration test runs a whole USD-M capture through it under a counting
//! allocator.

use core::fmt;
use std::collections::VecDeque;

use crate::event::{DepthIds, MarketEvent, MarketKind, Side};
use crate::fixed::{format_decimal, ArithError, Price, Qty, Rounding, MAX_DECIMAL_LEN};
use crate::instrument::{InstrumentId, Venue};

/// Default number of levels kept per side (Binance spot serves snapshots of up to 5000 levels).
pub const DEFAULT_MAX_LEVELS: usize = 5000;
/// Default capacity of the pre-snapshot buffer, in levels.
pub const DEFAULT_BUFFER_LEVELS: usize = 1 << 16;
/// Default capacity of the pre-snapshot buffer, in updates.
pub const DEFAULT_BUFFER_UPDATES: usize = 4096;

// ---------------------------------------------------------------------------------------------
// One side of the book
// ---------------------------------------------------------------------------------------------

/// One side: keys ascending toward the best price (best last), fixed capacity.
#[derive(Debug, Clone)]
struct BookSide {
    /// `price` for bids, `-price` for asks; ascending; `keys[len - 1]` is the best.
    keys: Box<[i64]>,
    /// Quantity mantissas, parallel to `keys`; never zero for a stored level.
    qtys: Box<[i64]>,
    len: usize,
    /// Levels with `key >= horizon` are known completely; `i64::MAX` means nothing is.
    horizon: i64,
    /// `1` for bids, `-1` for asks (`price = key * sign`).
    sign: i64,
}

/// What [`L2Book::set_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelChange {
    /// A new price level was inserted.
    Inserted,
    /// An existing level's quantity was replaced.
    Updated,
    /// An existing level was removed (quantity zero).
    Removed,
    /// A removal of a level that is not in the book (normal on Binance: the level may be outside
    /// the snapshot or beyond the kept depth).
    AbsentRemoved,
    /// The side is full and the level is worse than every stored one: not stored.
    DroppedBeyondCapacity,
}

impl BookSide {
    fn new(capacity: usize, sign: i64) -> Self {
        BookSide {
            keys: vec![0; capacity].into_boxed_slice(),
            qtys: vec![0; capacity].into_boxed_slice(),
            len: 0,
            horizon: i64::MAX,
            sign,
        }
    }

    #[inline]
    fn key(&self, price: Price) -> i64 {
        price.0.wrapping_mul(self.sign)
    }

    #[inline]
    fn price(&self, key: i64) -> Price {
        Price(key.wrapping_mul(self.sign))
    }

    fn clear(&mut self) {
        self.len = 0;
        self.horizon = i64::MAX;
    }

    #[inline]
    fn best(&self) -> Option<(Price, Qty)> {
        match self.len {
            0 => None,
            n => Some((self.price(self.keys[n - 1]), Qty(self.qtys[n - 1]))),
        }
    }

    /// `n`-th best level (0 = best).
    #[inline]
    fn nth(&self, n: usize) -> Option<(Price, Qty)> {
        if n >= self.len {
            return None;
        }
        let i = self.len - 1 - n;
        Some((self.price(self.keys[i]), Qty(self.qtys[i])))
    }

    fn set(&mut self, price: Price, qty: Qty) -> LevelChange {
        let key = self.key(price);
        let cap = self.keys.len();
        match self.keys[..self.len].binary_search(&key) {
            Ok(i) => {
                if qty.0 > 0 {
                    self.qtys[i] = qty.0;
                    LevelChange::Updated
                } else {
                    self.keys.copy_within(i + 1..self.len, i);
                    self.qtys.copy_within(i + 1..self.len, i);
                    self.len -= 1;
                    LevelChange::Removed
                }
            }
            Err(_) if qty.0 <= 0 => LevelChange::AbsentRemoved,
            Err(i) if self.len < cap => {
                self.keys.copy_within(i..self.len, i + 1);
                self.qtys.copy_within(i..self.len, i + 1);
                self.keys[i] = key;
                self.qtys[i] = qty.0;
                self.len += 1;
                LevelChange::Inserted
            }
            Err(0) => {
                // Full, and worse than everything stored: the book no longer knows this price.
                self.horizon = self.horizon.max(key.saturating_add(1));
                LevelChange::DroppedBeyondCapacity
            }
            Err(i) => {
                // Full: evict the worst level, insert at i - 1.
                self.keys.copy_within(1..i, 0);
                self.qtys.copy_within(1..i, 0);
                self.keys[i - 1] = key;
                self.qtys[i - 1] = qty.0;
                self.horizon = self.horizon.max(self.keys[0]);
                LevelChange::Inserted
            }
        }
    }

    /// Snapshot loading: append without ordering (capacity-limited).
    fn push_unsorted(&mut self, price: Price, qty: Qty) -> bool {
        if self.len == self.keys.len() {
            return false;
        }
        self.keys[self.len] = self.key(price);
        self.qtys[self.len] = qty.0;
        self.len += 1;
        true
    }

    /// Snapshot loading finished: sort ascending, drop zero quantities and duplicate prices
    /// (the later one wins), set the horizon to the worst stored level.
    fn finish_load(&mut self, truncated: bool) {
        let n = self.len;
        let keys = &mut self.keys[..n];
        let qtys = &mut self.qtys[..n];
        if keys.windows(2).all(|w| w[0] > w[1]) {
            // Binance sends best first, i.e. keys descending: the common case is a reversal.
            keys.reverse();
            qtys.reverse();
        } else if !keys.windows(2).all(|w| w[0] <= w[1]) {
            // Stable insertion sort, allocation-free; only for unusually ordered input.
            for i in 1..n {
                let (k, q) = (keys[i], qtys[i]);
                let mut j = i;
                while j > 0 && keys[j - 1] > k {
                    keys[j] = keys[j - 1];
                    qtys[j] = qtys[j - 1];
                    j -= 1;
                }
                keys[j] = k;
                qtys[j] = q;
            }
        }
        // Compact: zero quantities out, duplicates keep the last written.
        let mut w = 0;
        for r in 0..n {
            if w > 0 && keys[w - 1] == keys[r] {
                w -= 1;
            }
            keys[w] = keys[r];
            qtys[w] = qtys[r];
            w += 1;
            if qtys[w - 1] <= 0 {
                w -= 1;
            }
        }
        self.len = w;
        self.horizon = if w == 0 && !truncated {
            i64::MIN
        } else if w == 0 {
            i64::MAX
        } else {
            self.keys[0]
        };
    }
}

// ---------------------------------------------------------------------------------------------
// The book
// ---------------------------------------------------------------------------------------------

/// What it would cost to take `requested` from the book at once (see
/// [`L2Book::estimate_fill`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillEstimate {
    /// Quantity asked for.
    pub requested: Qty,
    /// Quantity the stored levels can fill (at most `requested`).
    pub filled: Qty,
    /// `sum(price * qty)` over the fill, exact, as a mantissa at `price_scale + qty_scale`.
    pub notional: i128,
    /// Price of the last (worst) level touched.
    pub worst_price: Option<Price>,
    /// Number of levels touched.
    pub levels: u32,
    /// True when `filled == requested` and every level touched is inside the book's horizon,
    /// i.e. the estimate does not depend on levels the book may not know.
    pub complete: bool,
}

impl FillEstimate {
    /// Volume-weighted average fill price at `out_scale` decimals (`notional / filled`),
    /// rounded as asked; `None` when nothing fills.
    pub fn vwap(
        &self,
        price_scale: u8,
        out_scale: u8,
        rounding: Rounding,
    ) -> Option<Result<Price, ArithError>> {
        if self.filled.0 <= 0 {
            return None;
        }
        // notional / 10^(ps+qs) / (filled / 10^qs) = notional / (filled * 10^ps); at out_scale
        // multiply by 10^out.
        let num = self.notional;
        let (num, den) = if out_scale >= price_scale {
            match pow10_i128(u32::from(out_scale - price_scale)).and_then(|p| num.checked_mul(p)) {
                Some(n) => (n, i128::from(self.filled.0)),
                None => return Some(Err(ArithError::Overflow)),
            }
        } else {
            match pow10_i128(u32::from(price_scale - out_scale))
                .and_then(|p| i128::from(self.filled.0).checked_mul(p))
            {
                Some(d) => (num, d),
                None => return Some(Err(ArithError::Overflow)),
            }
        };
        Some(
            div_round_i128(num, den, rounding)
                .and_then(|v| i64::try_from(v).map_err(|_| ArithError::Overflow))
                .map(Price),
        )
    }
}

/// `10^n` as `i128` if it fits.
fn pow10_i128(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// `n / d` rounded as asked (`d > 0`).
fn div_round_i128(n: i128, d: i128, mode: Rounding) -> Result<i128, ArithError> {
    if d <= 0 {
        return Err(ArithError::BadIncrement);
    }
    let q = n / d;
    let r = n % d;
    if r == 0 {
        return Ok(q);
    }
    Ok(match mode {
        Rounding::Exact => return Err(ArithError::Inexact),
        Rounding::TowardZero => q,
        Rounding::Floor => q - i128::from(r < 0),
        Rounding::Ceil => q + i128::from(r > 0),
        Rounding::HalfEven => {
            let twice = r.unsigned_abs() * 2;
            let du = d.unsigned_abs();
            if twice > du || (twice == du && q % 2 != 0) {
                q + n.signum()
            } else {
                q
            }
        }
    })
}

/// A per-instrument L2 book with fixed-point prices and a fixed capacity per side.
///
/// See the [module documentation](self) for the layout and complexity. Sides are named by
/// [`Side`]: `Side::Buy` is the bid side, `Side::Sell` the ask side.
#[derive(Debug, Clone)]
pub struct L2Book {
    bids: BookSide,
    asks: BookSide,
    update_id: u64,
}

impl L2Book {
    /// An empty book keeping up to `max_levels` levels per side (allocates here, only here).
    pub fn new(max_levels: usize) -> Self {
        let max_levels = max_levels.max(1);
        L2Book {
            bids: BookSide::new(max_levels, 1),
            asks: BookSide::new(max_levels, -1),
            update_id: 0,
        }
    }

    #[inline]
    fn side(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    #[inline]
    fn side_mut(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Remove every level and forget the horizon and update id.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.update_id = 0;
    }

    /// Set the quantity at `price` on `side` (zero removes the level). O(log n + k).
    #[inline]
    pub fn set_level(&mut self, side: Side, price: Price, qty: Qty) -> LevelChange {
        self.side_mut(side).set(price, qty)
    }

    /// The update id the book reflects (snapshot `lastUpdateId` or the last applied `u`).
    #[inline]
    pub fn update_id(&self) -> u64 {
        self.update_id
    }

    /// Set the update id (done by [`BookSync`]; public for tools that build books by hand).
    #[inline]
    pub fn set_update_id(&mut self, id: u64) {
        self.update_id = id;
    }

    /// Best bid price and size.
    #[inline]
    pub fn best_bid(&self) -> Option<(Price, Qty)> {
        self.bids.best()
    }

    /// Best ask price and size.
    #[inline]
    pub fn best_ask(&self) -> Option<(Price, Qty)> {
        self.asks.best()
    }

    /// `best ask - best bid`, if both sides have a level.
    #[inline]
    pub fn spread(&self) -> Option<Price> {
        Some(Price(self.best_ask()?.0 .0 - self.best_bid()?.0 .0))
    }

    /// True when both sides have levels and the best bid is at or above the best ask.
    #[inline]
    pub fn is_crossed(&self) -> bool {
        matches!((self.best_bid(), self.best_ask()), (Some(b), Some(a)) if b.0 >= a.0)
    }

    /// Number of levels stored on `side`.
    #[inline]
    pub fn depth(&self, side: Side) -> usize {
        self.side(side).len
    }

    /// The `n`-th best level of `side` (0 = best).
    #[inline]
    pub fn level(&self, side: Side, n: usize) -> Option<(Price, Qty)> {
        self.side(side).nth(n)
    }

    /// Levels of `side`, best first. Allocation-free.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = (Price, Qty)> + '_ {
        let s = self.side(side);
        s.keys[..s.len]
            .iter()
            .zip(&s.qtys[..s.len])
            .rev()
            .map(move |(&k, &q)| (s.price(k), Qty(q)))
    }

    /// The worst price down to which `side` is known completely: `Some(p)` after a snapshot
    /// (its worst level, moved inward if levels were dropped for capacity); `None` when no
    /// level is known to be complete (no snapshot yet, or a partial book). A side that the
    /// snapshot returned empty is complete everywhere: `Some(Price::MIN)` for bids,
    /// `Some(Price::MAX)` for asks.
    pub fn horizon(&self, side: Side) -> Option<Price> {
        let s = self.side(side);
        match s.horizon {
            i64::MAX => None,
            i64::MIN => Some(match side {
                Side::Buy => Price::MIN,
                Side::Sell => Price::MAX,
            }),
            k => Some(s.price(k)),
        }
    }

    /// Total quantity on `side` at prices at or better than `limit` (bids `>= limit`, asks
    /// `<= limit`): what a taker limit order at `limit` could take. Saturates at `i64::MAX`.
    pub fn depth_within(&self, side: Side, limit: Price) -> Qty {
        let s = self.side(side);
        let lim = s.key(limit);
        let start = s.keys[..s.len].partition_point(|&k| k < lim);
        Qty(s.qtys[start..s.len]
            .iter()
            .fold(0i64, |a, &q| a.saturating_add(q)))
    }

    /// Walk the book as a taker `taker` order of `qty` would (a buy takes asks, a sell takes
    /// bids) and report the fill: quantity, exact notional, worst price, levels, and whether the
    /// estimate stays within the known horizon. O(levels touched), allocation-free.
    pub fn estimate_fill(&self, taker: Side, qty: Qty) -> FillEstimate {
        let s = self.side(taker.opposite());
        let mut left = qty.0.max(0);
        let mut notional: i128 = 0;
        let mut levels = 0u32;
        let mut worst_key = None;
        for i in (0..s.len).rev() {
            if left == 0 {
                break;
            }
            let take = s.qtys[i].min(left);
            left -= take;
            notional += i128::from(s.price(s.keys[i]).0) * i128::from(take);
            levels += 1;
            worst_key = Some(s.keys[i]);
        }
        let filled = qty.0.max(0) - left;
        let inside = match worst_key {
            Some(k) => k >= s.horizon,
            None => s.horizon == i64::MIN,
        };
        FillEstimate {
            requested: qty,
            filled: Qty(filled),
            notional,
            worst_price: worst_key.map(|k| s.price(k)),
            levels,
            complete: left == 0 && inside,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Synchronisation
// ---------------------------------------------------------------------------------------------

/// Which of Binance's sequencing rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Spot: stale if `u <= L`; first diff `U <= L + 1 <= u`; chain `U <= prev_u + 1`.
    Spot,
    /// USD-M and COIN-M futures: stale if `u < L`; first diff `U <= L <= u`; chain
    /// `pu == prev_u` (falls back to the spot chain rule for a diff without `pu`).
    Futures,
}

impl Flavor {
    /// The rules of `venue`'s depth stream (futures for Binance USD-M/COIN-M, spot otherwise).
    pub const fn for_venue(venue: Venue) -> Flavor {
        match venue {
            Venue::BinanceUsdM | Venue::BinanceCoinM => Flavor::Futures,
            _ => Flavor::Spot,
        }
    }

    /// `spot` or `futures`.
    pub const fn name(self) -> &'static str {
        match self {
            Flavor::Spot => "spot",
            Flavor::Futures => "futures",
        }
    }
}

/// How the book is built before a snapshot is joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncMode {
    /// Live trading: buffer diffs until a snapshot; the book is empty until then.
    #[default]
    Snapshot,
    /// Replay of diff-only captures: also apply diffs to a [`SyncState::Partial`] book while no
    /// snapshot has been joined (never proven; see the module documentation).
    FromStream,
}

/// Where the synchronisation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncState {
    /// Buffering diffs, waiting for a snapshot; the book is not usable.
    AwaitingSnapshot,
    /// [`SyncMode::FromStream`] without a snapshot: the book holds the levels seen in the
    /// stream, exact but possibly incomplete. Not proven.
    Partial,
    /// A snapshot is loaded; waiting for the first diff that bridges it.
    AwaitingFirstDiff,
    /// Snapshot joined and the chain continuous since: the book may be traded on.
    Proven,
}

impl SyncState {
    /// Stable lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            SyncState::AwaitingSnapshot => "awaiting_snapshot",
            SyncState::Partial => "partial",
            SyncState::AwaitingFirstDiff => "awaiting_first_diff",
            SyncState::Proven => "proven",
        }
    }
}

/// What kind of synchronisation failure a [`GapInfo`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapKind {
    /// The diff stream's chain broke (`U`/`pu` not continuing the previous `u`).
    Sequence,
    /// A snapshot could not be joined to the buffered/live diffs (first-diff rule failed).
    SnapshotMismatch,
    /// The book was crossed after an update (corrupt input).
    Crossed,
}

impl GapKind {
    /// Stable lowercase name (the `kind=` field of the Gap record).
    pub const fn name(self) -> &'static str {
        match self {
            GapKind::Sequence => "sequence",
            GapKind::SnapshotMismatch => "snapshot_mismatch",
            GapKind::Crossed => "crossed",
        }
    }

    /// The kind named `s`.
    pub fn from_name(s: &str) -> Option<GapKind> {
        [
            GapKind::Sequence,
            GapKind::SnapshotMismatch,
            GapKind::Crossed,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// What the sync did about a [`GapInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapAction {
    /// The book was proven (or a snapshot loaded) and is now unproven; a new snapshot is
    /// requested.
    Resync,
    /// The pre-snapshot buffer had to be discarded (a buffer with a hole cannot be replayed).
    Rebuffer,
    /// A partial ([`SyncMode::FromStream`]) book was cleared and is rebuilt from the stream.
    Restart,
    /// Nothing to do: the break lies before the first diff that will be applied to the
    /// loaded snapshot (the first-diff rule decides).
    Ignored,
}

impl GapAction {
    /// Stable lowercase name (the `action=` field of the Gap record).
    pub const fn name(self) -> &'static str {
        match self {
            GapAction::Resync => "resync",
            GapAction::Rebuffer => "rebuffer",
            GapAction::Restart => "restart",
            GapAction::Ignored => "ignored",
        }
    }

    /// The action named `s`.
    pub fn from_name(s: &str) -> Option<GapAction> {
        [
            GapAction::Resync,
            GapAction::Rebuffer,
            GapAction::Restart,
            GapAction::Ignored,
        ]
        .into_iter()
        .find(|k| k.name() == s)
    }
}

/// A detected synchronisation failure: what was expected and what arrived.
///
/// Field meaning by kind:
///
/// | kind | `expected` | `got` |
/// |---|---|---|
/// | `Sequence`, spot | `prev_u + 1` (the largest acceptable `U`) | the diff's `U`/`u` |
/// | `Sequence`, futures | `prev_u` (the required `pu`) | the diff's `U`/`u`/`pu` |
/// | `SnapshotMismatch` | `L + 1` (spot) or `L` (futures), the id that must lie in `[U, u]` | the first non-stale diff's `U`/`u`/`pu` |
/// | `Crossed` | best ask price mantissa (bids must stay below it) | `got_first` = best bid price mantissa, `got_final` = the update's `u` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapInfo {
    /// What failed.
    pub kind: GapKind,
    /// What the sync did about it.
    pub action: GapAction,
    /// The rules in force.
    pub flavor: Flavor,
    /// State before the failure.
    pub state_before: SyncState,
    /// See the table above.
    pub expected: u64,
    /// See the table above.
    pub got_first: u64,
    /// See the table above.
    pub got_final: u64,
    /// The diff's `pu`, if it had one.
    pub got_prev: Option<u64>,
    /// Venue time of the diff (ns since the epoch; 0 if unknown).
    pub venue_ns: u64,
    /// Price scale (to print `Crossed` prices).
    pub price_scale: u8,
}

/// Tag that starts every Gap record payload written by [`GapInfo::write_payload`].
pub const GAP_RECORD_TAG: &str = "book_gap";

/// Longest payload [`GapInfo::write_payload`] writes.
pub const MAX_GAP_PAYLOAD: usize = 320;

/// `fmt::Write` into a fixed byte slice (allocation-free), failing when full.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// A price mantissa printed at a scale, without allocating.
struct Px(i64, u8);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut b = [0u8; MAX_DECIMAL_LEN + 4];
        match format_decimal(self.0, self.1, &mut b) {
            Some(n) => f.write_str(core::str::from_utf8(&b[..n]).map_err(|_| fmt::Error)?),
            None => write!(f, "{}e-{}", self.0, self.1),
        }
    }
}

impl GapInfo {
    /// Write the journal `Gap` record payload for `instrument` into `out` (no allocation):
    /// one ASCII line of `key=value` fields starting with [`GAP_RECORD_TAG`], e.g.
    /// `book_gap inst=0 kind=sequence rule=futures action=resync state=proven expected=9
    /// got_U=12 got_u=15 got_pu=10 venue_ns=...`. Returns the length written (the line is cut
    /// at `out.len()`; [`MAX_GAP_PAYLOAD`] bytes always suffice).
    pub fn write_payload(&self, instrument: InstrumentId, out: &mut [u8]) -> usize {
        let mut w = SliceWriter { buf: out, len: 0 };
        let _ = self.write_fields(instrument, &mut w);
        w.len
    }

    fn write_fields(&self, instrument: InstrumentId, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            w,
            "{GAP_RECORD_TAG} inst={} kind={} rule={} action={} state={}",
            instrument.0,
            self.kind.name(),
            self.flavor.name(),
            self.action.name(),
            self.state_before.name()
        )?;
        match self.kind {
            GapKind::Crossed => write!(
                w,
                " bid={} ask={} u={}",
                Px(self.got_first as i64, self.price_scale),
                Px(self.expected as i64, self.price_scale),
                self.got_final
            )?,
            _ => {
                write!(
                    w,
                    " expected={} got_U={} got_u={}",
                    self.expected, self.got_first, self.got_final
                )?;
                if let Some(pu) = self.got_prev {
                    write!(w, " got_pu={pu}")?;
                }
            }
        }
        write!(w, " venue_ns={}", self.venue_ns)
    }
}

impl fmt::Display for GapInfo {
    /// A human sentence: what failed, what was expected, what arrived, what was done.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            GapKind::Sequence => match (self.flavor, self.got_prev) {
                (Flavor::Futures, Some(pu)) => write!(
                    f,
                    "depth sequence gap: expected pu={} (previous u), got U={} u={} pu={pu}",
                    self.expected, self.got_first, self.got_final
                )?,
                _ => write!(
                    f,
                    "depth sequence gap: expected U<={} (previous u + 1), got U={} u={}",
                    self.expected, self.got_first, self.got_final
                )?,
            },
            GapKind::SnapshotMismatch => write!(
                f,
                "snapshot does not bridge the diff stream: {} {} must lie in [U, u], got U={} u={}",
                match self.flavor {
                    Flavor::Spot => "lastUpdateId+1 =",
                    Flavor::Futures => "lastUpdateId =",
                },
                self.expected,
                self.got_first,
                self.got_final
            )?,
            GapKind::Crossed => write!(
                f,
                "crossed book after update u={}: best bid {} >= best ask {}",
                self.got_final,
                Px(self.got_first as i64, self.price_scale),
                Px(self.expected as i64, self.price_scale)
            )?,
        }
        write!(
            f,
            " ({}, action {})",
            self.state_before.name(),
            self.action.name()
        )
    }
}

/// The fields of a Gap record payload written by [`GapInfo::write_payload`] that statistics
/// need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapRecord {
    /// Instrument.
    pub instrument: InstrumentId,
    /// Kind.
    pub kind: GapKind,
    /// Action taken.
    pub action: GapAction,
}

impl GapRecord {
    /// Parse a Gap record payload; `None` if it was not written by [`GapInfo::write_payload`].
    pub fn parse(payload: &[u8]) -> Option<GapRecord> {
        let s = core::str::from_utf8(payload).ok()?;
        let mut it = s.split(' ');
        if it.next()? != GAP_RECORD_TAG {
            return None;
        }
        let (mut inst, mut kind, mut action) = (None, None, None);
        for kv in it {
            let (k, v) = kv.split_once('=')?;
            match k {
                "inst" => inst = v.parse().ok().map(InstrumentId),
                "kind" => kind = GapKind::from_name(v),
                "action" => action = GapAction::from_name(v),
                _ => {}
            }
        }
        Some(GapRecord {
            instrument: inst?,
            kind: kind?,
            action: action?,
        })
    }
}

/// What one event did to the synchronisation.
///
/// Every failure, including ones that do not change the outcome (a sequence gap while still
/// buffering), is also queued as a [`GapInfo`]: drain [`BookSync::pop_gap`] after each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEvent {
    /// Nothing to report (a level in the middle of an update, a buffered or stale diff, an
    /// event that is not a depth level).
    Nothing,
    /// A diff update was applied completely; the book is proven at `update_id`.
    Updated {
        /// The update's `u`.
        update_id: u64,
    },
    /// A diff update was applied to a partial ([`SyncMode::FromStream`]) book.
    PartialUpdated {
        /// The update's `u`.
        update_id: u64,
    },
    /// A snapshot was loaded; no buffered diff bridges it yet (the next live one must).
    SnapshotLoaded {
        /// Its `lastUpdateId`.
        last_update_id: u64,
    },
    /// The book became proven: a snapshot was joined by its first diff.
    Synced {
        /// The `u` of the last diff applied.
        update_id: u64,
        /// Buffered diff updates replayed onto the snapshot (0 if a live diff joined it).
        replayed: u32,
    },
    /// A synchronisation failure made the book (or the loaded snapshot) unusable; a new
    /// snapshot is requested. The [`GapInfo`] is waiting in [`BookSync::pop_gap`].
    Failed,
}

/// Configuration of a [`BookSync`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookConfig {
    /// Sequencing rules.
    pub flavor: Flavor,
    /// Live or replay-without-snapshot.
    pub mode: SyncMode,
    /// Levels kept per side.
    pub max_levels: usize,
    /// Pre-snapshot buffer capacity in levels.
    pub buffer_levels: usize,
    /// Pre-snapshot buffer capacity in updates.
    pub buffer_updates: usize,
}

impl BookConfig {
    /// Defaults for `venue` in [`SyncMode::Snapshot`].
    pub const fn for_venue(venue: Venue) -> Self {
        BookConfig {
            flavor: Flavor::for_venue(venue),
            mode: SyncMode::Snapshot,
            max_levels: DEFAULT_MAX_LEVELS,
            buffer_levels: DEFAULT_BUFFER_LEVELS,
            buffer_updates: DEFAULT_BUFFER_UPDATES,
        }
    }

    /// The same configuration with `mode`.
    pub const fn with_mode(mut self, mode: SyncMode) -> Self {
        self.mode = mode;
        self
    }
}

/// Counters of a [`BookSync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Diff updates applied to a proven (or joining) book.
    pub updates_applied: u64,
    /// Diff updates applied to a partial book.
    pub partial_updates: u64,
    /// Diff updates dropped as older than the snapshot or duplicates of the stream.
    pub stale_dropped: u64,
    /// Sequence gaps in the diff stream (every [`GapKind::Sequence`]).
    pub gaps: u64,
    /// Failures that made a proven or loaded book unproven and requested a new snapshot.
    pub resyncs: u64,
    /// Snapshots loaded.
    pub snapshots: u64,
    /// Snapshots ignored because the book was proven.
    pub snapshots_ignored: u64,
    /// Times the book became proven.
    pub syncs: u64,
    /// Updates dropped from the full pre-snapshot buffer.
    pub buffer_dropped: u64,
    /// Crossed books detected.
    pub crossed: u64,
    /// Updates whose last level never carried `FLAG_LAST` (a new update started first).
    pub unterminated: u64,
    /// Levels not stored because a side was full.
    pub capacity_drops: u64,
    /// Gaps overwritten in the queue before [`BookSync::pop_gap`] took them.
    pub gaps_unreported: u64,
}

/// A buffered diff update: its ids and how many levels follow in the level ring.
#[derive(Debug, Clone, Copy)]
struct BufUpdate {
    ids: DepthIds,
    venue_ns: u64,
    levels: u32,
}

/// A buffered level.
#[derive(Debug, Clone, Copy)]
struct BufLevel {
    price: Price,
    qty: Qty,
    bid: bool,
}

/// The fixed-capacity pre-snapshot buffer (two rings created at full capacity).
#[derive(Debug, Clone)]
struct DiffBuffer {
    updates: VecDeque<BufUpdate>,
    levels: VecDeque<BufLevel>,
    max_updates: usize,
    max_levels: usize,
    /// The update being pushed did not fit and is being discarded.
    skipping: bool,
    dropped: u64,
}

impl DiffBuffer {
    fn new(max_updates: usize, max_levels: usize) -> Self {
        let max_updates = max_updates.max(1);
        let max_levels = max_levels.max(1);
        DiffBuffer {
            updates: VecDeque::with_capacity(max_updates),
            levels: VecDeque::with_capacity(max_levels),
            max_updates,
            max_levels,
            skipping: false,
            dropped: 0,
        }
    }

    fn clear(&mut self) {
        self.updates.clear();
        self.levels.clear();
        self.skipping = false;
    }

    fn drop_oldest(&mut self) {
        if let Some(u) = self.updates.pop_front() {
            for _ in 0..u.levels {
                self.levels.pop_front();
            }
            self.dropped += 1;
        }
    }

    fn begin(&mut self, ids: DepthIds, venue_ns: u64) {
        if self.updates.len() == self.max_updates {
            self.drop_oldest();
        }
        self.skipping = false;
        self.updates.push_back(BufUpdate {
            ids,
            venue_ns,
            levels: 0,
        });
    }

    fn push(&mut self, level: BufLevel) {
        if self.skipping {
            return;
        }
        while self.levels.len() == self.max_levels {
            if self.updates.len() > 1 {
                self.drop_oldest();
            } else {
                // The current update alone does not fit: discard everything (a buffer with a
                // hole would be replayed wrongly; an empty one makes the first-diff rule decide).
                self.clear();
                self.skipping = true;
                self.dropped += 1;
                return;
            }
        }
        self.levels.push_back(level);
        if let Some(u) = self.updates.back_mut() {
            u.levels += 1;
        }
    }
}

/// What to do with the levels of the update in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Apply to the (joining or proven) book.
    Apply,
    /// Buffer only.
    Buffer,
    /// Buffer and apply to the partial book.
    BufferAndApply,
    /// Ignore.
    Drop,
}

/// The diff update whose levels are arriving.
#[derive(Debug, Clone, Copy)]
struct CurrentUpdate {
    ids: DepthIds,
    disposition: Disposition,
    /// This update is the first diff joining the snapshot.
    joins: bool,
}

/// Per-instrument Binance depth synchronisation around an [`L2Book`].
///
/// Feed it every `DepthLevel` event of one instrument, in stream order, with
/// [`on_event`](Self::on_event); snapshot levels (`FLAG_SNAPSHOT`) and diff levels go through
/// the same call. See the [module documentation](self) for the rules.
#[derive(Debug, Clone)]
pub struct BookSync {
    instrument: InstrumentId,
    cfg: BookConfig,
    book: L2Book,
    state: SyncState,
    buffer: DiffBuffer,
    /// `u` of the last diff seen in the stream (chain check).
    stream_last: Option<u64>,
    cur: Option<CurrentUpdate>,
    /// `lastUpdateId` of the snapshot being loaded.
    loading: Option<u64>,
    loading_truncated: bool,
    snapshot_pending: bool,
    price_scale: u8,
    stats: SyncStats,
    /// Gaps not yet taken by [`pop_gap`](Self::pop_gap), oldest first.
    gaps: [Option<GapInfo>; MAX_PENDING_GAPS],
}

/// Gaps [`BookSync`] queues between two [`BookSync::pop_gap`] drains (one event produces at
/// most two; older ones are overwritten if the caller never drains, counted in
/// [`SyncStats::gaps_unreported`]).
pub const MAX_PENDING_GAPS: usize = 4;

impl BookSync {
    /// A sync for `instrument` (allocates the book and buffer here, and only here). The first
    /// snapshot request is pending from the start.
    pub fn new(instrument: InstrumentId, cfg: BookConfig) -> Self {
        BookSync {
            instrument,
            cfg,
            book: L2Book::new(cfg.max_levels),
            state: match cfg.mode {
                SyncMode::Snapshot => SyncState::AwaitingSnapshot,
                SyncMode::FromStream => SyncState::Partial,
            },
            buffer: DiffBuffer::new(cfg.buffer_updates, cfg.buffer_levels),
            stream_last: None,
            cur: None,
            loading: None,
            loading_truncated: false,
            snapshot_pending: true,
            price_scale: 0,
            stats: SyncStats::default(),
            gaps: [None; MAX_PENDING_GAPS],
        }
    }

    /// The instrument.
    #[inline]
    pub fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// The configuration.
    #[inline]
    pub fn config(&self) -> &BookConfig {
        &self.cfg
    }

    /// The book (check [`proven`](Self::proven) before trading on it).
    #[inline]
    pub fn book(&self) -> &L2Book {
        &self.book
    }

    /// The state.
    #[inline]
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// True when the book is joined to a snapshot and the chain has been continuous since:
    /// the gate for signals and order sends.
    #[inline]
    pub fn proven(&self) -> bool {
        self.state == SyncState::Proven
    }

    /// Counters.
    #[inline]
    pub fn stats(&self) -> SyncStats {
        let mut s = self.stats;
        s.buffer_dropped = self.buffer.dropped;
        s
    }

    /// True while a snapshot is needed (awaiting one, or partial).
    #[inline]
    pub fn needs_snapshot(&self) -> bool {
        matches!(self.state, SyncState::AwaitingSnapshot | SyncState::Partial)
    }

    /// Returns true once per snapshot request (the initial one, and one per resync): the feed
    /// then fetches `GET /api/v3/depth` (or `/fapi/v1/depth`, `/dapi/v1/depth`) and feeds the
    /// result back as `FLAG_SNAPSHOT` levels.
    pub fn take_snapshot_request(&mut self) -> bool {
        core::mem::take(&mut self.snapshot_pending)
    }

    /// Forget the stream (after a reconnect): unproven, buffer cleared, chain restarted, a new
    /// snapshot requested. The book's levels are kept for inspection but not trusted.
    pub fn reset(&mut self) {
        self.enter_unsynced();
        self.buffer.clear();
        self.stream_last = None;
        self.cur = None;
        self.loading = None;
        self.snapshot_pending = true;
    }

    /// The oldest synchronisation failure not yet taken, if any. Drain after every
    /// [`on_event`](Self::on_event) and journal each as a Gap record
    /// ([`GapInfo::write_payload`]).
    pub fn pop_gap(&mut self) -> Option<GapInfo> {
        let g = self.gaps[0].take()?;
        self.gaps.rotate_left(1);
        Some(g)
    }

    fn push_gap(&mut self, g: GapInfo) {
        if self.gaps[MAX_PENDING_GAPS - 1].is_some() {
            self.stats.gaps_unreported += 1;
            self.gaps.rotate_left(1);
            self.gaps[MAX_PENDING_GAPS - 1] = None;
        }
        if let Some(slot) = self.gaps.iter_mut().find(|g| g.is_none()) {
            *slot = Some(g);
        }
    }

    /// Process one event of this instrument. Events that are not depth levels are ignored.
    pub fn on_event(&mut self, ev: &MarketEvent) -> SyncEvent {
        if ev.kind != MarketKind::DepthLevel {
            return SyncEvent::Nothing;
        }
        self.price_scale = ev.price_scale;
        if ev.has(MarketEvent::FLAG_SNAPSHOT) {
            self.on_snapshot_level(ev)
        } else {
            self.on_diff_level(ev)
        }
    }

    fn enter_unsynced(&mut self) {
        self.state = match self.cfg.mode {
            SyncMode::Snapshot => SyncState::AwaitingSnapshot,
            SyncMode::FromStream => {
                self.book.clear();
                SyncState::Partial
            }
        };
    }

    fn request_resync(&mut self) {
        self.stats.resyncs += 1;
        self.snapshot_pending = true;
        self.enter_unsynced();
    }

    fn gap(
        &self,
        kind: GapKind,
        action: GapAction,
        state_before: SyncState,
        expected: u64,
        ids: DepthIds,
        venue_ns: u64,
    ) -> GapInfo {
        GapInfo {
            kind,
            action,
            flavor: self.cfg.flavor,
            state_before,
            expected,
            got_first: ids.first_update_id,
            got_final: ids.final_update_id,
            got_prev: ids.prev_final_update_id,
            venue_ns,
            price_scale: self.price_scale,
        }
    }

    // ---- snapshot ----

    fn on_snapshot_level(&mut self, ev: &MarketEvent) -> SyncEvent {
        let id = ev.id;
        if self.loading != Some(id) {
            if self.state == SyncState::Proven {
                // A proven book does not need it; ignoring keeps a stale snapshot from
                // un-proving a good book.
                if ev.is_last() {
                    self.stats.snapshots_ignored += 1;
                }
                return SyncEvent::Nothing;
            }
            self.loading = Some(id);
            self.loading_truncated = false;
            self.book.clear();
            // A diff in progress cannot straddle a snapshot.
            self.cur = None;
        }
        let side = ev.depth_side();
        if !self.book.side_mut(side).push_unsorted(ev.price, ev.qty) {
            self.loading_truncated = true;
            self.stats.capacity_drops += 1;
        }
        if !ev.is_last() {
            return SyncEvent::Nothing;
        }
        self.finish_snapshot(id, ev.stamps.venue_ns)
    }

    /// The last level of a snapshot arrived (or an empty snapshot): sort it, then join it.
    fn finish_snapshot(&mut self, id: u64, venue_ns: u64) -> SyncEvent {
        self.loading = None;
        let truncated = self.loading_truncated;
        self.book.bids.finish_load(truncated);
        self.book.asks.finish_load(truncated);
        self.book.update_id = id;
        self.stats.snapshots += 1;
        self.state = SyncState::AwaitingFirstDiff;
        self.snapshot_pending = false;
        self.replay_buffer(id, venue_ns)
    }

    /// A depth update (or snapshot, `snapshot == true`) that carried **no levels**, so produced
    /// no `DepthLevel` event: its ids still move the `U`/`u`/`pu` chain (the decoder reports
    /// them in `Decoded::depth`). An empty snapshot is an empty book at `lastUpdateId`.
    pub fn on_empty_update(&mut self, ids: DepthIds, snapshot: bool, venue_ns: u64) -> SyncEvent {
        if snapshot {
            if self.state == SyncState::Proven {
                self.stats.snapshots_ignored += 1;
                return SyncEvent::Nothing;
            }
            self.book.clear();
            self.cur = None;
            self.loading_truncated = false;
            return self.finish_snapshot(ids.final_update_id, venue_ns);
        }
        let mut failed = false;
        if self.cur.is_some() {
            self.stats.unterminated += 1;
            failed |= self.finish_update(0) == Some(SyncEvent::Failed);
        }
        let (c, f) = self.begin_update(ids, venue_ns);
        failed |= f;
        self.cur = Some(c);
        let o = self.finish_update(venue_ns);
        if failed {
            SyncEvent::Failed
        } else {
            o.unwrap_or(SyncEvent::Nothing)
        }
    }

    /// Is a diff with `ids` entirely older than the snapshot `last`?
    fn is_stale(&self, ids: DepthIds, last: u64) -> bool {
        match self.cfg.flavor {
            Flavor::Spot => ids.final_update_id <= last,
            Flavor::Futures => ids.final_update_id < last,
        }
    }

    /// Does the first diff `ids` bridge the snapshot `last`? Returns the id that must lie in
    /// `[U, u]` and the verdict.
    fn bridges(&self, ids: DepthIds, last: u64) -> (u64, bool) {
        let need = match self.cfg.flavor {
            Flavor::Spot => last + 1,
            Flavor::Futures => last,
        };
        (
            need,
            ids.first_update_id <= need && need <= ids.final_update_id,
        )
    }

    /// After loading a snapshot: drop stale buffered diffs, join with the first, apply the rest.
    fn replay_buffer(&mut self, last: u64, venue_ns: u64) -> SyncEvent {
        let mut offset = 0usize;
        let mut replayed = 0u32;
        for ui in 0..self.buffer.updates.len() {
            let u = self.buffer.updates[ui];
            let n = u.levels as usize;
            let start = offset;
            offset += n;
            if self.state == SyncState::AwaitingFirstDiff {
                if self.is_stale(u.ids, last) {
                    self.stats.stale_dropped += 1;
                    continue;
                }
                let (need, ok) = self.bridges(u.ids, last);
                if !ok {
                    let g = self.gap(
                        GapKind::SnapshotMismatch,
                        GapAction::Resync,
                        SyncState::AwaitingFirstDiff,
                        need,
                        u.ids,
                        u.venue_ns,
                    );
                    self.request_resync();
                    // Keep this update and the rest: they are valid for the next snapshot.
                    self.trim_buffer_front(ui, start);
                    if self.state == SyncState::Partial {
                        self.apply_buffer_to_partial();
                    }
                    self.push_gap(g);
                    return SyncEvent::Failed;
                }
            }
            for li in start..start + n {
                let l = self.buffer.levels[li];
                let side = if l.bid { Side::Buy } else { Side::Sell };
                if self.book.set_level(side, l.price, l.qty) == LevelChange::DroppedBeyondCapacity {
                    self.stats.capacity_drops += 1;
                }
            }
            self.book.update_id = u.ids.final_update_id;
            self.stats.updates_applied += 1;
            replayed += 1;
            if self.state == SyncState::AwaitingFirstDiff {
                self.state = SyncState::Proven;
                self.stats.syncs += 1;
            }
        }
        self.buffer.clear();
        if self.state == SyncState::Proven {
            if self.check_crossed(SyncState::Proven, venue_ns) {
                return SyncEvent::Failed;
            }
            SyncEvent::Synced {
                update_id: self.book.update_id,
                replayed,
            }
        } else {
            SyncEvent::SnapshotLoaded {
                last_update_id: last,
            }
        }
    }

    /// Drop the buffered updates before update `ui`, whose levels start at `li`.
    fn trim_buffer_front(&mut self, ui: usize, li: usize) {
        self.buffer.updates.drain(..ui);
        self.buffer.levels.drain(..li);
    }

    /// Rebuild a partial book from the buffer (after a failed join in `FromStream` mode).
    fn apply_buffer_to_partial(&mut self) {
        for l in &self.buffer.levels {
            let side = if l.bid { Side::Buy } else { Side::Sell };
            let _ = self.book.side_mut(side).set(l.price, l.qty);
        }
        if let Some(u) = self.buffer.updates.back() {
            self.book.update_id = u.ids.final_update_id;
        }
    }

    /// Crossed-book check after an applied update; on failure queue the gap, un-prove and
    /// request a resync (or restart a partial book), and return true.
    fn check_crossed(&mut self, state_before: SyncState, venue_ns: u64) -> bool {
        if !self.book.is_crossed() {
            return false;
        }
        let bid = self.book.best_bid().map_or(0, |b| b.0 .0);
        let ask = self.book.best_ask().map_or(0, |a| a.0 .0);
        self.stats.crossed += 1;
        let action = if state_before == SyncState::Partial {
            GapAction::Restart
        } else {
            GapAction::Resync
        };
        let g = GapInfo {
            kind: GapKind::Crossed,
            action,
            flavor: self.cfg.flavor,
            state_before,
            expected: ask as u64,
            got_first: bid as u64,
            got_final: self.book.update_id,
            got_prev: None,
            venue_ns,
            price_scale: self.price_scale,
        };
        if action == GapAction::Restart {
            self.book.clear();
            self.buffer.clear();
        } else {
            self.request_resync();
        }
        self.push_gap(g);
        true
    }

    // ---- diffs ----

    fn on_diff_level(&mut self, ev: &MarketEvent) -> SyncEvent {
        let ids = ev.depth_ids();
        let mut outcome = SyncEvent::Nothing;
        let cur = match self.cur {
            Some(c) if c.ids == ids => c,
            prev => {
                if prev.is_some() {
                    // The previous update never saw FLAG_LAST: close it here.
                    self.stats.unterminated += 1;
                    if let Some(SyncEvent::Failed) = self.finish_update(0) {
                        outcome = SyncEvent::Failed;
                    }
                }
                let (c, failed) = self.begin_update(ids, ev.stamps.venue_ns);
                if failed {
                    outcome = SyncEvent::Failed;
                }
                self.cur = Some(c);
                c
            }
        };
        let side = ev.depth_side();
        match cur.disposition {
            Disposition::Apply => {
                if self.book.set_level(side, ev.price, ev.qty) == LevelChange::DroppedBeyondCapacity
                {
                    self.stats.capacity_drops += 1;
                }
            }
            Disposition::Buffer => self.buffer.push(BufLevel {
                price: ev.price,
                qty: ev.qty,
                bid: side == Side::Buy,
            }),
            Disposition::BufferAndApply => {
                self.buffer.push(BufLevel {
                    price: ev.price,
                    qty: ev.qty,
                    bid: side == Side::Buy,
                });
                let _ = self.book.set_level(side, ev.price, ev.qty);
            }
            Disposition::Drop => {}
        }
        if ev.is_last() {
            if let Some(o) = self.finish_update(ev.stamps.venue_ns) {
                if outcome != SyncEvent::Failed {
                    outcome = o;
                }
            }
        }
        outcome
    }

    /// Decide what to do with a new diff update (chain check first). The flag is true when a
    /// failure made the book or loaded snapshot unusable.
    fn begin_update(&mut self, ids: DepthIds, venue_ns: u64) -> (CurrentUpdate, bool) {
        let mut c = CurrentUpdate {
            ids,
            disposition: Disposition::Drop,
            joins: false,
        };
        let mut failed = false;
        if let Some(prev) = self.stream_last {
            if ids.final_update_id <= prev {
                // Not newer than what the stream already delivered: a duplicate.
                self.stats.stale_dropped += 1;
                return (c, false);
            }
            let (expected, ok) = match (self.cfg.flavor, ids.prev_final_update_id) {
                (Flavor::Futures, Some(pu)) => (prev, pu == prev),
                _ => (prev + 1, ids.first_update_id <= prev + 1),
            };
            if !ok {
                self.stats.gaps += 1;
                let before = self.state;
                let action = match before {
                    SyncState::Proven => {
                        self.request_resync();
                        self.buffer.clear();
                        failed = true;
                        GapAction::Resync
                    }
                    SyncState::AwaitingSnapshot => {
                        self.buffer.clear();
                        GapAction::Rebuffer
                    }
                    SyncState::Partial => {
                        self.buffer.clear();
                        self.book.clear();
                        GapAction::Restart
                    }
                    SyncState::AwaitingFirstDiff => GapAction::Ignored,
                };
                let g = self.gap(GapKind::Sequence, action, before, expected, ids, venue_ns);
                self.push_gap(g);
            }
        }
        self.stream_last = Some(ids.final_update_id);
        match self.state {
            SyncState::AwaitingSnapshot => {
                self.buffer.begin(ids, venue_ns);
                c.disposition = Disposition::Buffer;
            }
            SyncState::Partial => {
                self.buffer.begin(ids, venue_ns);
                c.disposition = Disposition::BufferAndApply;
            }
            SyncState::Proven => c.disposition = Disposition::Apply,
            SyncState::AwaitingFirstDiff => {
                let last = self.book.update_id;
                if self.is_stale(ids, last) {
                    self.stats.stale_dropped += 1;
                } else {
                    let (need, ok) = self.bridges(ids, last);
                    if ok {
                        c.disposition = Disposition::Apply;
                        c.joins = true;
                    } else {
                        let g = self.gap(
                            GapKind::SnapshotMismatch,
                            GapAction::Resync,
                            SyncState::AwaitingFirstDiff,
                            need,
                            ids,
                            venue_ns,
                        );
                        self.push_gap(g);
                        self.request_resync();
                        failed = true;
                        self.buffer.clear();
                        self.buffer.begin(ids, venue_ns);
                        c.disposition = if self.state == SyncState::Partial {
                            Disposition::BufferAndApply
                        } else {
                            Disposition::Buffer
                        };
                    }
                }
            }
        }
        (c, failed)
    }

    /// The last level of the current update arrived.
    fn finish_update(&mut self, venue_ns: u64) -> Option<SyncEvent> {
        let c = self.cur.take()?;
        let u = c.ids.final_update_id;
        match c.disposition {
            Disposition::Apply => {
                self.book.update_id = u;
                self.stats.updates_applied += 1;
                let before = if c.joins {
                    SyncState::AwaitingFirstDiff
                } else {
                    SyncState::Proven
                };
                if c.joins {
                    self.state = SyncState::Proven;
                    self.stats.syncs += 1;
                }
                if self.check_crossed(before, venue_ns) {
                    return Some(SyncEvent::Failed);
                }
                Some(if c.joins {
                    SyncEvent::Synced {
                        update_id: u,
                        replayed: 0,
                    }
                } else {
                    SyncEvent::Updated { update_id: u }
                })
            }
            Disposition::BufferAndApply => {
                self.book.update_id = u;
                self.stats.partial_updates += 1;
                if self.check_crossed(SyncState::Partial, venue_ns) {
                    return Some(SyncEvent::Failed);
                }
                Some(SyncEvent::PartialUpdated { update_id: u })
            }
            Disposition::Buffer | Disposition::Drop => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(book: &mut L2Book, side: Side, p: i64, q: i64) -> LevelChange {
        book.set_level(side, Price(p), Qty(q))
    }

    #[test]
    fn sides_sorted_best_last_and_queries() {
        let mut book = L2Book::new(8);
        for (p, q) in [(100, 1), (98, 2), (99, 3), (101, 4)] {
            assert_eq!(b(&mut book, Side::Buy, p, q), LevelChange::Inserted);
        }
        for (p, q) in [(103, 5), (102, 6), (105, 7)] {
            b(&mut book, Side::Sell, p, q);
        }
        assert_eq!(book.best_bid(), Some((Price(101), Qty(4))));
        assert_eq!(book.best_ask(), Some((Price(102), Qty(6))));
        assert_eq!(book.spread(), Some(Price(1)));
        let bids: Vec<_> = book.levels(Side::Buy).map(|(p, _)| p.0).collect();
        assert_eq!(bids, [101, 100, 99, 98]);
        let asks: Vec<_> = book.levels(Side::Sell).map(|(p, _)| p.0).collect();
        assert_eq!(asks, [102, 103, 105]);
        assert_eq!(book.level(Side::Sell, 2), Some((Price(105), Qty(7))));
        assert_eq!(b(&mut book, Side::Buy, 100, 0), LevelChange::Removed);
        assert_eq!(b(&mut book, Side::Buy, 100, 0), LevelChange::AbsentRemoved);
        assert_eq!(b(&mut book, Side::Buy, 99, 9), LevelChange::Updated);
        assert_eq!(book.depth_within(Side::Buy, Price(99)), Qty(4 + 9));
        assert_eq!(book.depth_within(Side::Sell, Price(103)), Qty(11));
        // Buy 10 takes 6 @102 and 4 @103.
        let f = book.estimate_fill(Side::Buy, Qty(10));
        assert_eq!(f.filled, Qty(10));
        assert_eq!(f.notional, 6 * 102 + 4 * 103);
        assert_eq!(f.worst_price, Some(Price(103)));
        assert_eq!(f.levels, 2);
        assert!(!f.complete, "no snapshot: horizon unknown");
        // 1024/10 = 102.4 -> at scale 0 half-even 102, at scale +1 1024.
        assert_eq!(f.vwap(0, 0, Rounding::HalfEven), Some(Ok(Price(102))));
        assert_eq!(f.vwap(0, 1, Rounding::Exact), Some(Ok(Price(1024))));
        let all = book.estimate_fill(Side::Sell, Qty(100));
        assert_eq!(all.filled, Qty(4 + 9 + 2));
        assert!(!all.complete);
        assert!(!book.is_crossed());
        b(&mut book, Side::Buy, 102, 1);
        assert!(book.is_crossed());
    }

    #[test]
    fn capacity_evicts_worst_and_moves_horizon() {
        let mut book = L2Book::new(3);
        for p in [10, 11, 12] {
            b(&mut book, Side::Buy, p, 1);
        }
        book.bids.horizon = book.bids.keys[0]; // as after a snapshot
        assert_eq!(book.horizon(Side::Buy), Some(Price(10)));
        assert_eq!(
            b(&mut book, Side::Buy, 9, 1),
            LevelChange::DroppedBeyondCapacity
        );
        assert_eq!(book.horizon(Side::Buy), Some(Price(10)));
        assert_eq!(b(&mut book, Side::Buy, 13, 1), LevelChange::Inserted);
        let bids: Vec<_> = book.levels(Side::Buy).map(|(p, _)| p.0).collect();
        assert_eq!(bids, [13, 12, 11]);
        assert_eq!(book.horizon(Side::Buy), Some(Price(11)));
        assert!(book.estimate_fill(Side::Sell, Qty(3)).complete);
        assert!(!book.estimate_fill(Side::Sell, Qty(4)).complete);
    }

    #[test]
    fn gap_payload_round_trips() {
        let g = GapInfo {
            kind: GapKind::Sequence,
            action: GapAction::Resync,
            flavor: Flavor::Futures,
            state_before: SyncState::Proven,
            expected: 9,
            got_first: 12,
            got_final: 15,
            got_prev: Some(10),
            venue_ns: 7,
            price_scale: 2,
        };
        let mut buf = [0u8; MAX_GAP_PAYLOAD];
        let n = g.write_payload(InstrumentId(3), &mut buf);
        let s = core::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            s,
            "book_gap inst=3 kind=sequence rule=futures action=resync state=proven expected=9 got_U=12 got_u=15 got_pu=10 venue_ns=7"
        );
        assert_eq!(
            GapRecord::parse(&buf[..n]),
            Some(GapRecord {
                instrument: InstrumentId(3),
                kind: GapKind::Sequence,
                action: GapAction::Resync
            })
        );
        assert!(g.to_string().contains("expected pu=9"));
        let c = GapInfo {
            kind: GapKind::Crossed,
            expected: 10_050,
            got_first: 10_100,
            ..g
        };
        let n = c.write_payload(InstrumentId(0), &mut buf);
        let s = core::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.contains("bid=101.00 ask=100.50 u=15"), "{s}");
        assert_eq!(GapRecord::parse(b"something else"), None);
    }
}

/// One [`BookSync`] per instrument, indexed by [`InstrumentId`]: the books of a feed (or of an
/// import). The feed builds every book up front with [`BookSet::for_table`], so the hot path
/// never allocates; [`BookSet::ensure`] creates one lazily for tools that discover instruments
/// as they go.
#[derive(Debug, Clone, Default)]
pub struct BookSet {
    books: Vec<Option<BookSync>>,
    mode: Option<SyncMode>,
}

impl BookSet {
    /// An empty set whose books will use `mode`.
    pub fn new(mode: SyncMode) -> Self {
        BookSet {
            books: Vec::new(),
            mode: Some(mode),
        }
    }

    /// A book for every instrument of `table`, allocated now.
    pub fn for_table(table: &crate::instrument::InstrumentTable, mode: SyncMode) -> Self {
        let mut set = BookSet::new(mode);
        for (id, _) in table.iter() {
            set.ensure(table, id);
        }
        set
    }

    /// The book of `id`, created (allocating) if it does not exist yet.
    pub fn ensure(
        &mut self,
        table: &crate::instrument::InstrumentTable,
        id: InstrumentId,
    ) -> &mut BookSync {
        let i = id.0 as usize;
        if i >= self.books.len() {
            self.books.resize_with(i + 1, || None);
        }
        let mode = self.mode.unwrap_or(SyncMode::Snapshot);
        self.books[i].get_or_insert_with(|| {
            BookSync::new(
                id,
                BookConfig::for_venue(table.get(id).venue).with_mode(mode),
            )
        })
    }

    /// The book of `id`, if it exists.
    #[inline]
    pub fn get(&self, id: InstrumentId) -> Option<&BookSync> {
        self.books.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// The book of `id`, mutably, if it exists.
    #[inline]
    pub fn get_mut(&mut self, id: InstrumentId) -> Option<&mut BookSync> {
        self.books.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// True when `id` has a book and it is proven (signals and orders are gated on this).
    #[inline]
    pub fn proven(&self, id: InstrumentId) -> bool {
        self.get(id).is_some_and(BookSync::proven)
    }

    /// Runs a `DepthLevel` event through its instrument's book (other kinds are ignored) and
    /// hands every gap the book reports to `on_gap`. Returns what the book did, or `None` when
    /// the event is not a depth level or its instrument has no book.
    #[inline]
    pub fn on_event(
        &mut self,
        ev: &MarketEvent,
        mut on_gap: impl FnMut(InstrumentId, &GapInfo),
    ) -> Option<SyncEvent> {
        if ev.kind != MarketKind::DepthLevel {
            return None;
        }
        let book = self.get_mut(ev.instrument)?;
        let r = book.on_event(ev);
        while let Some(g) = book.pop_gap() {
            on_gap(ev.instrument, &g);
        }
        Some(r)
    }

    /// A depth update (or snapshot) without levels: its ids still move the chain.
    pub fn on_empty_update(
        &mut self,
        id: InstrumentId,
        ids: DepthIds,
        snapshot: bool,
        venue_ns: u64,
        mut on_gap: impl FnMut(InstrumentId, &GapInfo),
    ) -> Option<SyncEvent> {
        let book = self.get_mut(id)?;
        let r = book.on_empty_update(ids, snapshot, venue_ns);
        while let Some(g) = book.pop_gap() {
            on_gap(id, &g);
        }
        Some(r)
    }

    /// A new market-data session: every diff chain restarts, every book is unproven until its
    /// next snapshot.
    pub fn reset_all(&mut self) {
        for b in self.books.iter_mut().flatten() {
            b.reset();
        }
    }

    /// Every book, in instrument order.
    pub fn iter(&self) -> impl Iterator<Item = &BookSync> + '_ {
        self.books.iter().flatten()
    }
}
