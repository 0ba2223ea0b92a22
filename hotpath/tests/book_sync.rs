//! The L2 book and Binance depth synchronisation.
//!
//! Synthetic tests cover every sync rule: buffering until the snapshot, stale diffs dropped
//! (`u <= L` spot, `u < L` futures), the first-diff rule (`U <= L+1 <= u` spot,
//! `U <= L <= u` futures), chain continuity (`U <= prev_u + 1` spot, `pu == prev_u` futures),
//! gap → unproven → resync → proven again, crossed-book detection, the pre-snapshot buffer
//! overflowing, level-less updates, and the replay-only `FromStream` mode.
//!
//! The capture tests run the recorded USD-M (and spot) streams through the real decoder and
//! `BookSync`, which must: join the REST snapshot recorded in the capture; stay proven, or
//! report a gap and resync, on every real chain break (counted independently from the raw
//! update ids); and agree with the captured `bookTicker` (best bid/ask price **and** size)
//! every time a bookTicker's `u` equals the `u` of a depth update the book has applied. A
//! counting allocator proves zero allocations while the book processes the whole capture.

// Prices in the synthetic tests are written `<units>_<hundredths>` (`100_50` is 100.50 at
// scale 2), which is clearer here than grouping by thousands.
#![allow(clippy::inconsistent_digit_grouping)]

use hotpath::book::{
    BookConfig, BookSync, Flavor, GapAction, GapInfo, GapKind, L2Book, SyncEvent, SyncMode,
    SyncState,
};
use hotpath::event::{DepthIds, MarketEvent, Side, Stamps};
use hotpath::fixed::{Price, Qty, Rounding};
use hotpath::instrument::{InstrumentId, InstrumentRef, Venue};
use testkit::count_allocations;

// ---------------------------------------------------------------------------------------------
// Counting allocator (counts the current thread's allocations inside `count_allocations`)
// ---------------------------------------------------------------------------------------------

#[global_allocator]
static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

// ---------------------------------------------------------------------------------------------
// Synthetic event builders
// ---------------------------------------------------------------------------------------------

const INST: InstrumentRef = InstrumentRef {
    id: InstrumentId(0),
    price_scale: 2,
    qty_scale: 3,
};

type Levels<'a> = &'a [(i64, i64)];

fn levels(ids: DepthIds, bids: Levels<'_>, asks: Levels<'_>, snapshot: bool) -> Vec<MarketEvent> {
    let n = bids.len() + asks.len();
    let mut out = Vec::with_capacity(n);
    let all = bids
        .iter()
        .map(|l| (Side::Buy, l))
        .chain(asks.iter().map(|l| (Side::Sell, l)));
    for (i, (side, &(p, q))) in all.enumerate() {
        let mut e = MarketEvent::depth_level(
            INST,
            Stamps::new(1_000 + ids.final_update_id, 0),
            side,
            Price(p),
            Qty(q),
            ids,
            i + 1 == n,
        );
        if snapshot {
            e.flags |= MarketEvent::FLAG_SNAPSHOT;
        }
        out.push(e);
    }
    out
}

/// A spot diff `U..=u`.
fn spot(first: u64, last: u64, bids: Levels<'_>, asks: Levels<'_>) -> Vec<MarketEvent> {
    let ids = DepthIds {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: None,
    };
    levels(ids, bids, asks, false)
}

/// A futures diff `U..=u` with `pu`.
fn fut(first: u64, last: u64, pu: u64, bids: Levels<'_>, asks: Levels<'_>) -> Vec<MarketEvent> {
    let ids = DepthIds {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: Some(pu),
    };
    levels(ids, bids, asks, false)
}

/// A REST snapshot at `lastUpdateId`, bids best first, asks best first (as Binance sends).
fn snap(last: u64, bids: Levels<'_>, asks: Levels<'_>) -> Vec<MarketEvent> {
    let ids = DepthIds {
        first_update_id: last,
        final_update_id: last,
        prev_final_update_id: None,
    };
    levels(ids, bids, asks, true)
}

/// Feed events; return the outcome of the last one and every gap reported.
fn feed(sync: &mut BookSync, evs: &[MarketEvent]) -> (SyncEvent, Vec<GapInfo>) {
    let mut last = SyncEvent::Nothing;
    let mut gaps = Vec::new();
    for e in evs {
        last = sync.on_event(e);
        while let Some(g) = sync.pop_gap() {
            gaps.push(g);
        }
    }
    (last, gaps)
}

fn spot_sync() -> BookSync {
    BookSync::new(INST.id, BookConfig::for_venue(Venue::BinanceSpot))
}

fn fut_sync() -> BookSync {
    BookSync::new(INST.id, BookConfig::for_venue(Venue::BinanceUsdM))
}

/// A price level.
type Level = (Price, Qty);

fn top(sync: &BookSync) -> (Option<Level>, Option<Level>) {
    (sync.book().best_bid(), sync.book().best_ask())
}

// ---------------------------------------------------------------------------------------------
// Synthetic rules
// ---------------------------------------------------------------------------------------------

#[test]
fn spot_buffers_until_snapshot_drops_stale_and_joins() {
    let mut s = spot_sync();
    assert!(
        s.take_snapshot_request(),
        "first snapshot requested at start"
    );
    assert!(!s.take_snapshot_request(), "only once");
    // Diffs 90..=95 (stale against L=100), 96..=102 (bridges 101), 103..=104.
    assert_eq!(
        feed(&mut s, &spot(90, 95, &[(100_00, 1)], &[])).0,
        SyncEvent::Nothing
    );
    assert_eq!(
        feed(&mut s, &spot(96, 102, &[(100_50, 2)], &[(101_00, 0)])).0,
        SyncEvent::Nothing
    );
    assert_eq!(
        feed(&mut s, &spot(103, 104, &[], &[(101_50, 7)])).0,
        SyncEvent::Nothing
    );
    assert_eq!(s.state(), SyncState::AwaitingSnapshot);
    assert!(!s.proven());
    assert_eq!(
        s.book().depth(Side::Buy),
        0,
        "nothing applied before the snapshot"
    );
    let (out, gaps) = feed(
        &mut s,
        &snap(100, &[(100_10, 5), (99_00, 1)], &[(101_00, 3), (102_00, 4)]),
    );
    assert!(gaps.is_empty());
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 104,
            replayed: 2
        }
    );
    assert!(s.proven());
    // 90..=95 dropped (stale); 96..=102 removed the 101.00 ask and added a 100.50 bid.
    assert_eq!(
        top(&s),
        (Some((Price(100_50), Qty(2))), Some((Price(101_50), Qty(7))))
    );
    assert_eq!(s.book().update_id(), 104);
    assert_eq!(s.stats().stale_dropped, 1);
    // Live continuation.
    let (out, _) = feed(&mut s, &spot(105, 110, &[(100_50, 0)], &[]));
    assert_eq!(out, SyncEvent::Updated { update_id: 110 });
    assert_eq!(s.book().best_bid(), Some((Price(100_10), Qty(5))));
}

#[test]
fn spot_first_diff_rule_boundaries() {
    // U <= L+1 <= u: U == L+1 joins; U == L+2 does not.
    let mut ok = spot_sync();
    feed(&mut ok, &snap(100, &[(10_00, 1)], &[(11_00, 1)]));
    assert_eq!(ok.state(), SyncState::AwaitingFirstDiff);
    // u == L is stale for spot.
    assert_eq!(
        feed(&mut ok, &spot(99, 100, &[(10_50, 1)], &[])).0,
        SyncEvent::Nothing
    );
    assert_eq!(
        ok.book().best_bid(),
        Some((Price(10_00), Qty(1))),
        "stale diff not applied"
    );
    assert_eq!(
        feed(&mut ok, &spot(101, 101, &[(10_20, 1)], &[])).0,
        SyncEvent::Synced {
            update_id: 101,
            replayed: 0
        }
    );

    let mut bad = spot_sync();
    feed(&mut bad, &snap(100, &[(10_00, 1)], &[(11_00, 1)]));
    let (out, gaps) = feed(&mut bad, &spot(102, 105, &[(10_20, 1)], &[]));
    assert_eq!(out, SyncEvent::Failed);
    assert_eq!(gaps.len(), 1);
    let g = gaps[0];
    assert_eq!(
        (g.kind, g.action),
        (GapKind::SnapshotMismatch, GapAction::Resync)
    );
    assert_eq!((g.expected, g.got_first, g.got_final), (101, 102, 105));
    assert!(
        g.to_string()
            .contains("lastUpdateId+1 = 101 must lie in [U, u], got U=102 u=105"),
        "{g}"
    );
    assert_eq!(bad.state(), SyncState::AwaitingSnapshot);
    assert!(bad.take_snapshot_request(), "a new snapshot is requested");
    // The failed diff stays buffered: a newer snapshot joins it.
    let (out, _) = feed(&mut bad, &snap(103, &[(10_10, 2)], &[(11_00, 1)]));
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 105,
            replayed: 1
        }
    );
    assert_eq!(bad.book().best_bid(), Some((Price(10_20), Qty(1))));
}

#[test]
fn futures_rules_stale_is_strict_and_first_diff_contains_l() {
    // Recorded USD-M ETHUSDT has the bridging diff with u == lastUpdateId: it must be applied.
    let mut s = fut_sync();
    feed(&mut s, &fut(50, 60, 40, &[(1_00, 1)], &[]));
    feed(&mut s, &fut(70, 100, 60, &[(2_00, 2)], &[(3_00, 1)]));
    let (out, gaps) = feed(&mut s, &snap(100, &[(1_50, 9)], &[(3_00, 5)]));
    assert!(gaps.is_empty(), "{gaps:?}");
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 100,
            replayed: 1
        }
    );
    assert_eq!(
        top(&s),
        (Some((Price(2_00), Qty(2))), Some((Price(3_00), Qty(1))))
    );
    // pu chain continues.
    assert_eq!(
        feed(&mut s, &fut(130, 150, 100, &[(2_00, 0)], &[])).0,
        SyncEvent::Updated { update_id: 150 }
    );
    // Futures U is not prev + 1: only pu matters.
    assert_eq!(s.stats().gaps, 0);

    // A diff that ends before L is stale; one with U > L fails.
    let mut f = fut_sync();
    feed(&mut f, &snap(100, &[(1_00, 1)], &[(2_00, 1)]));
    assert_eq!(
        feed(&mut f, &fut(80, 99, 70, &[(1_50, 1)], &[])).0,
        SyncEvent::Nothing
    );
    let (out, gaps) = feed(&mut f, &fut(101, 120, 99, &[(1_50, 1)], &[]));
    assert_eq!(out, SyncEvent::Failed);
    assert_eq!(gaps[0].kind, GapKind::SnapshotMismatch);
    assert_eq!(gaps[0].expected, 100);
}

#[test]
fn gap_unproves_requests_resync_and_recovers() {
    for flavor in [Flavor::Spot, Flavor::Futures] {
        let venue = if flavor == Flavor::Spot {
            Venue::BinanceSpot
        } else {
            Venue::BinanceUsdM
        };
        let mut s = BookSync::new(INST.id, BookConfig::for_venue(venue));
        let d = |a: u64, b: u64, pu: u64, bids: Levels<'_>| match flavor {
            Flavor::Spot => spot(a, b, bids, &[]),
            Flavor::Futures => fut(a, b, pu, bids, &[]),
        };
        s.take_snapshot_request();
        feed(&mut s, &snap(10, &[(5_00, 1)], &[(6_00, 1)]));
        // 10..=12 bridges both L + 1 (spot) and L (futures).
        assert!(matches!(
            feed(&mut s, &d(10, 12, 9, &[(5_10, 1)])).0,
            SyncEvent::Synced { .. }
        ));
        assert!(s.proven());
        // 13..=14 is lost; 15..=16 arrives (pu 14 != 12).
        let (out, gaps) = feed(&mut s, &d(15, 16, 14, &[(5_20, 1)]));
        assert_eq!(out, SyncEvent::Failed, "{flavor:?}");
        assert!(!s.proven(), "a gap un-proves the book");
        assert_eq!(gaps.len(), 1);
        let g = gaps[0];
        assert_eq!(
            (g.kind, g.action, g.state_before),
            (GapKind::Sequence, GapAction::Resync, SyncState::Proven)
        );
        match flavor {
            Flavor::Spot => assert_eq!((g.expected, g.got_first), (13, 15)),
            Flavor::Futures => assert_eq!((g.expected, g.got_prev), (12, Some(14))),
        }
        assert!(s.take_snapshot_request(), "resync requested");
        assert_eq!(s.stats().resyncs, 1);
        // Diffs keep being buffered; the new snapshot joins them.
        feed(&mut s, &d(17, 18, 16, &[(5_30, 1)]));
        let (out, gaps) = feed(&mut s, &snap(17, &[(5_25, 4)], &[(6_00, 1)]));
        assert!(gaps.is_empty());
        assert_eq!(
            out,
            SyncEvent::Synced {
                update_id: 18,
                replayed: 1
            },
            "{flavor:?}"
        );
        assert_eq!(s.book().best_bid(), Some((Price(5_30), Qty(1))));
        assert_eq!(s.stats().syncs, 2);
        assert_eq!(s.stats().gaps, 1);
    }
}

#[test]
fn duplicates_are_ignored_and_gaps_while_buffering_discard_the_buffer() {
    let mut s = spot_sync();
    feed(&mut s, &spot(1, 5, &[(1_00, 1)], &[]));
    // A replayed (duplicate) diff: not a gap.
    let (_, gaps) = feed(&mut s, &spot(3, 5, &[(1_00, 1)], &[]));
    assert!(gaps.is_empty());
    assert_eq!(s.stats().stale_dropped, 1);
    // A break while buffering: the buffer cannot be replayed across it.
    let (_, gaps) = feed(&mut s, &spot(8, 9, &[(2_00, 1)], &[]));
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].action, GapAction::Rebuffer);
    assert_eq!(s.stats().resyncs, 0, "nothing was proven");
    // A snapshot at 5 cannot be joined (the buffer now starts at 8): mismatch, resync.
    let (out, gaps) = feed(&mut s, &snap(5, &[(1_00, 1)], &[(3_00, 1)]));
    assert_eq!(out, SyncEvent::Failed);
    assert_eq!(gaps[0].kind, GapKind::SnapshotMismatch);
    // A snapshot at 7 is joined by the buffered 8..=9.
    let (out, _) = feed(&mut s, &snap(7, &[(1_00, 1)], &[(3_00, 1)]));
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 9,
            replayed: 1
        }
    );
}

#[test]
fn gap_between_snapshot_and_first_diff_is_reported_but_ignored() {
    let mut s = spot_sync();
    feed(&mut s, &snap(100, &[(1_00, 1)], &[(2_00, 1)]));
    feed(&mut s, &spot(90, 95, &[(1_10, 1)], &[])); // stale
                                                    // 96..=97 lost; 98..=101 arrives: a stream gap, but before the first applied diff, and
                                                    // 98..=101 bridges L+1 = 101.
    let (out, gaps) = feed(&mut s, &spot(98, 101, &[(1_20, 1)], &[]));
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].action, GapAction::Ignored);
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 101,
            replayed: 0
        }
    );
    assert!(s.proven());
}

#[test]
fn crossed_book_is_detected_and_resynced() {
    let mut s = spot_sync();
    feed(&mut s, &snap(10, &[(5_00, 1)], &[(6_00, 1)]));
    feed(&mut s, &spot(11, 11, &[(5_10, 1)], &[]));
    assert!(s.proven());
    // A bid at 6.00 without removing the 6.00 ask: corrupt.
    let (out, gaps) = feed(&mut s, &spot(12, 12, &[(6_00, 1)], &[]));
    assert_eq!(out, SyncEvent::Failed);
    assert_eq!(gaps.len(), 1);
    let g = gaps[0];
    assert_eq!(g.kind, GapKind::Crossed);
    assert_eq!(g.action, GapAction::Resync);
    assert!(
        g.to_string().contains("best bid 6.00 >= best ask 6.00"),
        "{g}"
    );
    assert!(!s.proven());
    assert_eq!(s.stats().crossed, 1);
    assert!(s.take_snapshot_request());
}

#[test]
fn proven_book_ignores_unsolicited_snapshots() {
    let mut s = spot_sync();
    feed(&mut s, &snap(10, &[(5_00, 1)], &[(6_00, 1)]));
    feed(&mut s, &spot(11, 11, &[(5_10, 1)], &[]));
    feed(&mut s, &snap(5, &[(1_00, 1)], &[(9_00, 1)]));
    assert!(s.proven());
    assert_eq!(s.book().best_bid(), Some((Price(5_10), Qty(1))));
    assert_eq!(s.stats().snapshots_ignored, 1);
}

#[test]
fn level_less_updates_move_the_chain() {
    let mut s = spot_sync();
    feed(&mut s, &snap(10, &[(5_00, 1)], &[(6_00, 1)]));
    let ids = |a, b| DepthIds {
        first_update_id: a,
        final_update_id: b,
        prev_final_update_id: None,
    };
    assert_eq!(
        s.on_empty_update(ids(11, 12), false, 0),
        SyncEvent::Synced {
            update_id: 12,
            replayed: 0
        }
    );
    // 13..=14 has levels and continues the chain of the empty update.
    assert_eq!(
        feed(&mut s, &spot(13, 14, &[(5_10, 1)], &[])).0,
        SyncEvent::Updated { update_id: 14 }
    );
    assert_eq!(
        s.on_empty_update(ids(15, 15), false, 0),
        SyncEvent::Updated { update_id: 15 }
    );
    assert_eq!(s.on_empty_update(ids(17, 17), false, 0), SyncEvent::Failed);
    // An empty snapshot is an empty, complete book.
    let mut e = spot_sync();
    assert_eq!(
        e.on_empty_update(ids(7, 7), true, 0),
        SyncEvent::SnapshotLoaded { last_update_id: 7 }
    );
    assert_eq!(e.book().horizon(Side::Buy), Some(Price::MIN));
}

#[test]
fn buffer_overflow_keeps_the_newest_updates() {
    let mut cfg = BookConfig::for_venue(Venue::BinanceSpot);
    cfg.buffer_updates = 4;
    cfg.buffer_levels = 16;
    let mut s = BookSync::new(INST.id, cfg);
    for u in 1..=10u64 {
        feed(&mut s, &spot(u, u, &[(100 + u as i64, 1)], &[]));
    }
    assert_eq!(s.stats().buffer_dropped, 6);
    // Snapshot at 3: the oldest kept diff is 7, so it cannot be joined.
    let (out, _) = feed(&mut s, &snap(3, &[(1, 1)], &[(1_000, 1)]));
    assert_eq!(out, SyncEvent::Failed);
    // Snapshot at 6 joins 7..=10.
    let (out, _) = feed(&mut s, &snap(6, &[(1, 1)], &[(1_000, 1)]));
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 10,
            replayed: 4
        }
    );
    // One update larger than the whole buffer is discarded entirely.
    let mut s = BookSync::new(INST.id, cfg);
    let many: Vec<(i64, i64)> = (0..20).map(|i| (1_000 + i, 1)).collect();
    feed(&mut s, &spot(1, 1, &many, &[]));
    feed(&mut s, &spot(2, 2, &[(5, 1)], &[(2_000, 1)]));
    let (out, _) = feed(&mut s, &snap(0, &[], &[(3_000, 1)]));
    assert_eq!(
        out,
        SyncEvent::Failed,
        "the first buffered diff (2) does not bridge L+1 = 1"
    );
}

#[test]
fn from_stream_mode_builds_a_partial_book_that_is_never_proven() {
    let cfg = BookConfig::for_venue(Venue::BinanceUsdM).with_mode(SyncMode::FromStream);
    let mut s = BookSync::new(INST.id, cfg);
    assert_eq!(s.state(), SyncState::Partial);
    let (out, _) = feed(&mut s, &fut(10, 20, 5, &[(5_00, 1)], &[(6_00, 2)]));
    assert_eq!(out, SyncEvent::PartialUpdated { update_id: 20 });
    assert_eq!(
        top(&s),
        (Some((Price(5_00), Qty(1))), Some((Price(6_00), Qty(2))))
    );
    assert!(!s.proven(), "a book without a snapshot is never proven");
    assert_eq!(
        s.book().horizon(Side::Buy),
        None,
        "nothing is known to be complete"
    );
    // A gap clears the partial book and starts again.
    let (_, gaps) = feed(&mut s, &fut(30, 40, 25, &[(5_10, 1)], &[]));
    assert_eq!(gaps[0].action, GapAction::Restart);
    assert_eq!(top(&s), (Some((Price(5_10), Qty(1))), None));
    // A snapshot still upgrades it to a proven book, joined with the buffered diffs.
    feed(&mut s, &fut(45, 50, 40, &[], &[(6_10, 3)]));
    let (out, _) = feed(&mut s, &snap(46, &[(4_00, 1)], &[(7_00, 1)]));
    assert_eq!(
        out,
        SyncEvent::Synced {
            update_id: 50,
            replayed: 1
        }
    );
    assert!(s.proven());
    assert_eq!(
        top(&s),
        (Some((Price(4_00), Qty(1))), Some((Price(6_10), Qty(3))))
    );
}

#[test]
fn slippage_estimate_on_a_synced_book() {
    let mut s = spot_sync();
    feed(
        &mut s,
        &snap(
            1,
            &[(100_00, 1_000), (99_90, 2_000)],
            &[(100_10, 500), (100_20, 1_500), (100_50, 10_000)],
        ),
    );
    let b: &L2Book = s.book();
    // Buy 1.000: 0.500 @ 100.10 + 0.500 @ 100.20 = 100.15 average.
    let f = b.estimate_fill(Side::Buy, Qty(1_000));
    assert!(f.complete);
    assert_eq!(f.levels, 2);
    assert_eq!(f.vwap(2, 2, Rounding::Exact), Some(Ok(Price(100_15))));
    // Sell 5.000 exhausts the bids: incomplete.
    let f = b.estimate_fill(Side::Sell, Qty(5_000));
    assert_eq!(f.filled, Qty(3_000));
    assert!(!f.complete);
    assert_eq!(b.depth_within(Side::Sell, Price(100_20)), Qty(2_000));
    assert_eq!(b.horizon(Side::Sell), Some(Price(100_50)));
}

#[test]
fn book_processing_is_allocation_free_after_construction() {
    let mut s = fut_sync();
    let mut events = Vec::new();
    let mut pu = 0;
    for i in 0..2_000u64 {
        let (a, b) = (i * 10 + 1, i * 10 + 10);
        // Bids in 500.00..=500.96, asks in 502.00..=502.96: never crossed.
        let px = 50_000 + (i % 97) as i64;
        let bids = [(px, 1 + (i % 5) as i64), (px - 3, 0)];
        events.extend(fut(a, b, pu, &bids, &[(px + 200, 2), (px + 197, 0)]));
        pu = b;
        if i == 100 {
            events.extend(snap(500, &[(49_000, 1)], &[(60_000, 1)]));
        }
    }
    let (gaps, allocs) = count_allocations(|| {
        let mut gaps = 0;
        for e in &events {
            s.on_event(e);
            while s.pop_gap().is_some() {
                gaps += 1;
            }
        }
        gaps
    });
    assert_eq!(allocs.allocations, 0, "BookSync allocated while processing");
    assert_eq!(gaps, 0);
    assert!(s.proven());
    assert_eq!(s.stats().updates_applied, 2_000 - 49);
}

// ---------------------------------------------------------------------------------------------
// Recorded captures
// ---------------------------------------------------------------------------------------------

mod capture {
    use super::*;
    use hotpath::event::MarketKind;
    use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol};
    use hotpath::venue::binance::Scanner;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};

    /// Top of book: best bid price and size, best ask price and size.
    pub type Top = (Price, Qty, Price, Qty);

    /// One decoded message of a capture.
    pub struct Msg {
        /// Its events (a depth message: its levels; a snapshot: its levels, flagged).
        pub events: Vec<MarketEvent>,
        /// True for the inline REST snapshot.
        pub snapshot: bool,
    }

    /// Decode a hftbacktest capture with the real decoder; the instrument's scales are the
    /// import's (spot 8/8, USD-M 2/3).
    pub fn load(rel: &str, venue: Venue) -> Option<(InstrumentTable, Vec<Msg>)> {
        let path = hotpath::datadir::capture(rel)?;
        let sym = path
            .file_name()?
            .to_str()?
            .split('_')
            .next()?
            .to_ascii_uppercase();
        let (kind, ps, qs) = match venue {
            Venue::BinanceSpot => (InstrumentKind::Spot, 8, 8),
            _ => (InstrumentKind::Perp, 2, 3),
        };
        let mut table = InstrumentTable::with_capacity(4);
        let id = table
            .intern(InstrumentSpec::new(
                venue,
                Symbol::new(sym.as_bytes()).unwrap(),
                kind,
                ps,
                qs,
            ))
            .unwrap();
        let mut msgs = Vec::new();
        {
            let mut scanner = Scanner::new(&table, venue);
            let gz = flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap());
            for line in BufReader::new(gz).split(b'\n') {
                let line = line.unwrap();
                let sp = line.iter().position(|&b| b == b' ').unwrap();
                let body = &line[sp + 1..];
                let snapshot = body.starts_with(b"{\"lastUpdateId\"");
                let mut events = Vec::new();
                let mut push = |e: MarketEvent| events.push(e);
                let r = if snapshot {
                    scanner.decode_depth_snapshot(body, id, 0, &mut push)
                } else {
                    scanner.decode(body, 0, &mut push)
                };
                let d = r.unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert!(d.events > 0, "{rel}: a message without events");
                msgs.push(Msg { events, snapshot });
            }
        }
        Some((table, msgs))
    }

    /// Chain breaks counted straight from the decoded depth ids, independently of `BookSync`.
    pub fn chain_breaks(msgs: &[Msg], futures: bool) -> u64 {
        let mut prev: Option<u64> = None;
        let mut breaks = 0;
        for m in msgs.iter().filter(|m| !m.snapshot) {
            let e = &m.events[0];
            if e.kind != MarketKind::DepthLevel {
                continue;
            }
            let ids = e.depth_ids();
            if let Some(p) = prev {
                let ok = if futures {
                    ids.prev_final_update_id == Some(p)
                } else {
                    ids.first_update_id <= p + 1
                };
                breaks += u64::from(!ok);
            }
            prev = Some(ids.final_update_id);
        }
        breaks
    }

    /// Best bid/ask after every applied update while proven, by `u`.
    pub struct Run {
        pub tops: HashMap<u64, Top>,
        pub tickers: HashMap<u64, Top>,
        pub gaps: Vec<GapInfo>,
        pub sync: BookSync,
    }

    pub fn top_of(b: &L2Book) -> Option<Top> {
        let (bid, ask) = (b.best_bid()?, b.best_ask()?);
        Some((bid.0, bid.1, ask.0, ask.1))
    }

    /// Run every message through `sync`, skipping the message at index `skip` (to make a gap).
    pub fn run(msgs: &[Msg], mut sync: BookSync, skip: Option<usize>) -> Run {
        let mut r = Run {
            tops: HashMap::new(),
            tickers: HashMap::new(),
            gaps: Vec::new(),
            sync: BookSync::new(InstrumentId(0), BookConfig::for_venue(Venue::Simulator)),
        };
        for (i, m) in msgs.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            for e in &m.events {
                if e.kind == MarketKind::BookTicker {
                    r.tickers
                        .insert(e.id, (e.bid_px, e.bid_qty, e.ask_px, e.ask_qty));
                    continue;
                }
                match sync.on_event(e) {
                    SyncEvent::Updated { update_id } | SyncEvent::Synced { update_id, .. } => {
                        if let Some(t) = top_of(sync.book()) {
                            r.tops.insert(update_id, t);
                        }
                    }
                    _ => {}
                }
                while let Some(g) = sync.pop_gap() {
                    r.gaps.push(g);
                }
            }
        }
        r.sync = sync;
        r
    }

    /// `(matches, mismatches)` of book tops against bookTickers with the same `u`.
    pub fn agreement(r: &Run) -> (usize, Vec<(u64, Top, Top)>) {
        let mut ok = 0;
        let mut bad = Vec::new();
        for (u, t) in &r.tops {
            if let Some(k) = r.tickers.get(u) {
                if k == t {
                    ok += 1;
                } else {
                    bad.push((*u, *t, *k));
                }
            }
        }
        (ok, bad)
    }
}

fn check_recorded(rel: &str, venue: Venue) {
    let Some((_table, msgs)) = capture::load(rel, venue) else {
        return;
    };
    let started = std::time::Instant::now();
    let futures = venue != Venue::BinanceSpot;
    let breaks = capture::chain_breaks(&msgs, futures);
    let sync = BookSync::new(InstrumentId(0), BookConfig::for_venue(venue));
    let r = capture::run(&msgs, sync, None);
    let st = r.sync.stats();
    // Every real gap is reported; a proven book resyncs on each (these captures have none, so
    // the book must end proven after exactly one sync).
    assert_eq!(
        st.gaps, breaks,
        "{rel}: gaps reported vs chain breaks in the data"
    );
    let sequence = r
        .gaps
        .iter()
        .filter(|g| g.kind == GapKind::Sequence)
        .count() as u64;
    assert_eq!(
        sequence, st.gaps,
        "{rel}: every gap was reported as a Gap record"
    );
    if breaks == 0 {
        assert!(
            r.sync.proven(),
            "{rel}: book not proven at the end: {:?}",
            r.sync.state()
        );
        assert_eq!(
            (st.syncs, st.resyncs, st.crossed),
            (1, 0, 0),
            "{rel}: {st:?}"
        );
    } else {
        assert_eq!(st.resyncs, breaks, "{rel}: one resync per gap");
    }
    let (ok, bad) = capture::agreement(&r);
    assert!(
        bad.is_empty(),
        "{rel}: book top differs from bookTicker at the same u: {:?}",
        &bad[..bad.len().min(5)]
    );
    assert!(
        ok >= 500,
        "{rel}: only {ok} bookTickers share a u with an applied depth update"
    );
    eprintln!(
        "{rel}: {} depth updates applied, {} stale dropped, {breaks} chain breaks, top of book equals bookTicker at all {ok} shared update ids ({:.2} s)",
        st.updates_applied,
        st.stale_dropped,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn usdm_btcusdt_book_matches_book_ticker() {
    check_recorded("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM);
}

#[test]
fn usdm_ethusdt_book_matches_book_ticker() {
    // The bridging diff of this capture has u == lastUpdateId (futures: not stale).
    check_recorded("binance/usdm/ethusdt_20240808.gz", Venue::BinanceUsdM);
}

#[test]
fn spot_btcusdt_book_matches_book_ticker() {
    check_recorded("binance/spot/btcusdt_20240808.gz", Venue::BinanceSpot);
}

#[test]
fn spot_ethusdt_book_matches_book_ticker() {
    check_recorded("binance/spot/ethusdt_20240808.gz", Venue::BinanceSpot);
}

/// Drop one depth message from the USD-M capture: the book must report exactly that gap
/// (expected `pu` vs got), become unproven, request a snapshot; a snapshot taken from a
/// reference book (what the REST call would return a little later) re-syncs it with the
/// buffered diffs, and from then on it agrees with the reference book and the bookTickers.
#[test]
fn usdm_gap_resyncs_from_a_later_snapshot() {
    let Some((_t, msgs)) = capture::load("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM)
    else {
        return;
    };
    let depth_idx: Vec<usize> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.snapshot && m.events[0].kind == hotpath::event::MarketKind::DepthLevel)
        .map(|(i, _)| i)
        .collect();
    let drop_at = depth_idx[depth_idx.len() / 2];
    let resync_at = depth_idx[depth_idx.len() / 2 + 20]; // the "REST response" arrives 20 diffs later
    let dropped = msgs[drop_at].events[0].depth_ids();

    let cfg = BookConfig::for_venue(Venue::BinanceUsdM);
    let mut reference = BookSync::new(InstrumentId(0), cfg);
    let mut gapped = BookSync::new(InstrumentId(0), cfg);
    let mut gaps = Vec::new();
    let mut tickers = std::collections::HashMap::new();
    let mut tops_after = std::collections::HashMap::new();
    let mut resynced = None;
    for (i, m) in msgs.iter().enumerate() {
        for e in &m.events {
            if e.kind == hotpath::event::MarketKind::BookTicker {
                tickers.insert(e.id, (e.bid_px, e.bid_qty, e.ask_px, e.ask_qty));
                continue;
            }
            reference.on_event(e);
            if i != drop_at {
                let out = gapped.on_event(e);
                if resynced.is_some() {
                    if let SyncEvent::Updated { update_id } = out {
                        tops_after.insert(update_id, capture::top_of(gapped.book()).unwrap());
                    }
                }
            }
            while let Some(g) = gapped.pop_gap() {
                gaps.push(g);
            }
        }
        if i == resync_at {
            assert!(!gapped.proven());
            assert!(gapped.take_snapshot_request(), "resync requested");
            // The "REST snapshot": the reference book's levels at its current update id.
            let b = reference.book();
            let last = b.update_id();
            let ids = DepthIds {
                first_update_id: last,
                final_update_id: last,
                prev_final_update_id: None,
            };
            let bids: Vec<(i64, i64)> = b.levels(Side::Buy).map(|(p, q)| (p.0, q.0)).collect();
            let asks: Vec<(i64, i64)> = b.levels(Side::Sell).map(|(p, q)| (p.0, q.0)).collect();
            let mut snap_events = levels(ids, &bids, &asks, true);
            for e in &mut snap_events {
                e.price_scale = 2;
                e.qty_scale = 3;
            }
            let (out, g) = feed(&mut gapped, &snap_events);
            assert!(g.is_empty(), "{g:?}");
            // The diffs buffered since the gap end at the snapshot's id: all but the last are
            // stale; the last has u == lastUpdateId, which futures do not drop, and it bridges
            // (U <= L <= u), so the book is proven at once.
            assert_eq!(
                out,
                SyncEvent::Synced {
                    update_id: last,
                    replayed: 1
                }
            );
            resynced = Some(last);
        }
    }
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    let g = gaps[0];
    assert_eq!(
        (g.kind, g.action, g.state_before),
        (GapKind::Sequence, GapAction::Resync, SyncState::Proven)
    );
    assert_eq!(
        g.expected,
        dropped.prev_final_update_id.unwrap(),
        "expected pu = u before the lost diff"
    );
    assert_eq!(
        g.got_prev,
        Some(dropped.final_update_id),
        "got pu = u of the lost diff"
    );
    assert!(gapped.proven(), "re-synced");
    assert_eq!(gapped.stats().syncs, 2);
    // Same levels as the reference book at the end, and the same tops as the bookTickers.
    let lv = |s: &BookSync, side| s.book().levels(side).collect::<Vec<_>>();
    assert_eq!(lv(&gapped, Side::Buy), lv(&reference, Side::Buy));
    assert_eq!(lv(&gapped, Side::Sell), lv(&reference, Side::Sell));
    let shared = tops_after
        .iter()
        .filter(|(u, _)| tickers.contains_key(u))
        .count();
    assert!(shared > 50, "{shared}");
    for (u, t) in &tops_after {
        if let Some(k) = tickers.get(u) {
            assert_eq!(t, k, "after the resync, u={u}");
        }
    }
    eprintln!(
        "gap: {g}; re-synced at lastUpdateId {}; {shared} bookTickers agree after",
        resynced.unwrap()
    );
}

/// The replay-only mode on a capture whose REST snapshot is withheld. What is asserted:
/// the book is never proven; the chain has no breaks (no gap reported); every level the
/// partial book holds has exactly the quantity the proven book (fed the same stream plus the
/// snapshot) has at that price, whenever the price is inside the proven book's horizon (levels
/// outside the 1000-level snapshot are unknown to the proven book too); and the partial top of
/// book agrees with the bookTicker at every shared update id once its best levels have been
/// touched by a diff, which the test measures and requires for the last 90% of them.
#[test]
fn usdm_from_stream_mode_is_exact_but_unproven() {
    let Some((_t, msgs)) = capture::load("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM)
    else {
        return;
    };
    let cfg = BookConfig::for_venue(Venue::BinanceUsdM);
    let mut proven = BookSync::new(InstrumentId(0), cfg);
    let mut partial = BookSync::new(InstrumentId(0), cfg.with_mode(SyncMode::FromStream));
    let mut tickers = std::collections::HashMap::new();
    let mut partial_tops = Vec::new();
    let mut checked_levels = 0u64;
    for m in &msgs {
        for e in &m.events {
            if e.kind == hotpath::event::MarketKind::BookTicker {
                tickers.insert(e.id, (e.bid_px, e.bid_qty, e.ask_px, e.ask_qty));
                continue;
            }
            proven.on_event(e);
            if m.snapshot {
                continue; // withheld from the partial book
            }
            if let SyncEvent::PartialUpdated { update_id } = partial.on_event(e) {
                assert!(partial.pop_gap().is_none());
                partial_tops.push((update_id, capture::top_of(partial.book())));
                if proven.proven() && proven.book().update_id() == update_id {
                    for side in [Side::Buy, Side::Sell] {
                        let h = proven.book().horizon(side).unwrap();
                        let inside = |p: Price| if side == Side::Buy { p >= h } else { p <= h };
                        let full: std::collections::HashMap<i64, i64> = proven
                            .book()
                            .levels(side)
                            .map(|(p, q)| (p.0, q.0))
                            .collect();
                        for (p, q) in partial.book().levels(side).filter(|(p, _)| inside(*p)) {
                            assert_eq!(full.get(&p.0), Some(&q.0), "u={update_id} {side:?} {p:?}");
                            checked_levels += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(!partial.proven());
    assert_eq!(partial.state(), SyncState::Partial);
    assert_eq!(partial.stats().gaps, 0);
    let shared: Vec<bool> = partial_tops
        .iter()
        .filter_map(|(u, t)| tickers.get(u).map(|k| Some(*k) == *t))
        .collect();
    let first_agree = shared.iter().position(|&a| a).unwrap_or(shared.len());
    let tail = &shared[shared.len() / 10..];
    assert!(
        tail.iter().all(|&a| a),
        "partial top disagrees late in the capture"
    );
    eprintln!(
        "from-stream: {} shared update ids, first agreement at #{first_agree}, {} of them agree; {checked_levels} partial levels checked against the proven book",
        shared.len(),
        shared.iter().filter(|&&a| a).count()
    );
}

/// A whole real capture through `BookSync` (decoded beforehand) without one allocation.
#[test]
fn usdm_capture_book_processing_allocates_nothing() {
    let Some((_t, msgs)) = capture::load("binance/usdm/ethusdt_20240808.gz", Venue::BinanceUsdM)
    else {
        return;
    };
    let events: Vec<MarketEvent> = msgs
        .iter()
        .flat_map(|m| m.events.iter().copied())
        .filter(|e| e.kind == hotpath::event::MarketKind::DepthLevel)
        .collect();
    let mut sync = BookSync::new(InstrumentId(0), BookConfig::for_venue(Venue::BinanceUsdM));
    let ((proven, best), allocs) = count_allocations(|| {
        let mut best = 0i64;
        for e in &events {
            sync.on_event(e);
            while sync.pop_gap().is_some() {}
            if let Some((p, _)) = sync.book().best_bid() {
                best = best.max(p.0);
            }
            let _ = sync.book().estimate_fill(Side::Buy, Qty(10_000));
        }
        (sync.proven(), best)
    });
    assert_eq!(
        allocs.allocations,
        0,
        "allocations while processing {} depth levels",
        events.len()
    );
    assert!(proven && best > 0);
}
