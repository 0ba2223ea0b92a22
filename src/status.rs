//! The one-screen live status of `algo-engine run`, built by tailing the run's journals.
//!
//! Why from the journals: the hot threads must not be asked for anything while they run (no
//! locks, no shared mutable state). Everything the status shows is already journaled with its
//! stamps: market events (with the feed's book-proven flag and the receive/decode clock
//! readings), decisions and intents (with the strategy's stamps), and, when the gateway runs,
//! order updates and executions. A cold tailer reads them as they are committed and keeps the
//! counters and latency histograms the screen prints; the hot path cannot tell it is there.

use hdrhistogram::Histogram;
use hotpath::codec::{decode, open_tailer, RecordKind};
use hotpath::event::{MarketEvent, OrderIntent, Stage as StampStage};
use hotpath::instrument::InstrumentTable;
use ringbuffers::journal::Tailer;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Per-symbol state seen in the journals.
#[derive(Debug, Clone, Default)]
pub struct SymbolStatus {
    /// Market events.
    pub events: u64,
    /// Last trade price mantissa and scale.
    pub last_price: Option<(i64, u8)>,
    /// Whether the last event carried the feed's book-proven flag.
    pub book_proven: bool,
    /// Decisions evaluated.
    pub decisions: u64,
    /// Entry intents emitted.
    pub intents: u64,
}

/// Aggregates of the run's journals.
pub struct StatusTail {
    dirs: Vec<(PathBuf, Option<Tailer>)>,
    clock: quanta::Clock,
    /// Per instrument id.
    pub symbols: BTreeMap<u32, SymbolStatus>,
    /// Records read, by kind name.
    pub records: BTreeMap<&'static str, u64>,
    /// Receive -> decoded (feed), ns.
    pub decode_ns: Histogram<u64>,
    /// Receive -> strategy out (intents), ns.
    pub tick_to_intent_ns: Histogram<u64>,
    /// `active` or `halted`, from the last Halt/Resume command journaled.
    pub trading_state: &'static str,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds")
}

impl StatusTail {
    /// Tails the journals in `dirs` (opened lazily: a stage creates its journal when it starts).
    pub fn new(dirs: &[PathBuf]) -> StatusTail {
        StatusTail {
            dirs: dirs.iter().map(|d| (d.clone(), None)).collect(),
            clock: quanta::Clock::new(),
            symbols: BTreeMap::new(),
            records: BTreeMap::new(),
            decode_ns: hist(),
            tick_to_intent_ns: hist(),
            trading_state: "active",
        }
    }

    /// Reads everything committed since the last call.
    pub fn poll(&mut self) {
        for i in 0..self.dirs.len() {
            if self.dirs[i].1.is_none() {
                self.dirs[i].1 = open_tailer(&self.dirs[i].0).ok();
            }
            let Some(mut t) = self.dirs[i].1.take() else {
                continue;
            };
            while let Ok(Some(r)) = t.next() {
                let Some(kind) = RecordKind::from_u16(r.kind) else {
                    *self.records.entry("unknown").or_default() += 1;
                    continue;
                };
                *self.records.entry(kind.name()).or_default() += 1;
                match kind {
                    RecordKind::Market => {
                        if let Ok(e) = decode::<MarketEvent>(r.payload) {
                            self.on_market(&e);
                        }
                    }
                    RecordKind::Decision => {
                        if let Ok(d) = decode::<hotpath::event::Decision>(r.payload) {
                            self.symbols.entry(d.instrument.0).or_default().decisions += 1;
                        }
                    }
                    RecordKind::Intent => {
                        if let Ok(o) = decode::<OrderIntent>(r.payload) {
                            self.symbols.entry(o.instrument.0).or_default().intents += 1;
                            if let Some(t) = o.stamps.since_recv(StampStage::StrategyOut) {
                                let _ = self
                                    .tick_to_intent_ns
                                    .record(self.clock.delta_as_nanos(0, t).max(1));
                            }
                        }
                    }
                    RecordKind::Control => {
                        if let Ok(c) = decode::<hotpath::event::Control>(r.payload) {
                            match c.kind {
                                hotpath::event::ControlKind::Halt => self.trading_state = "halted",
                                hotpath::event::ControlKind::Resume => {
                                    self.trading_state = "active"
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            self.dirs[i].1 = Some(t);
        }
    }

    fn on_market(&mut self, e: &MarketEvent) {
        let s = self.symbols.entry(e.instrument.0).or_default();
        s.events += 1;
        s.book_proven = e.flags & MarketEvent::FLAG_BOOK_PROVEN != 0;
        if e.kind == hotpath::event::MarketKind::Trade
            || e.kind == hotpath::event::MarketKind::AggTrade
        {
            s.last_price = Some((e.price.0, e.price_scale));
        }
        if let Some(t) = e.stamps.since_recv(StampStage::Decoded) {
            let _ = self
                .decode_ns
                .record(self.clock.delta_as_nanos(0, t).max(1));
        }
    }

    /// The status the admin API serves: trading state from the last operator command seen,
    /// and the record counts.
    pub fn snapshot(
        &self,
        instruments: usize,
        started_unix_ns: u64,
    ) -> coldpath::admin::StatusSnapshot {
        coldpath::admin::StatusSnapshot {
            trading_state: self.trading_state.to_string(),
            started_unix_ns,
            instruments,
            counters: self
                .records
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
        }
    }

    /// The status block: one line per symbol, the record counts, latency percentiles.
    pub fn render(&self, table: &InstrumentTable, extra: &[String]) -> String {
        let mut s = String::new();
        for (id, st) in &self.symbols {
            let name = table
                .try_get(hotpath::instrument::InstrumentId(*id))
                .map(|sp| sp.symbol.as_str().to_string())
                .unwrap_or_else(|| format!("#{id}"));
            let px = st
                .last_price
                .map(|(m, sc)| hotpath::fixed::Decimal::new(m, sc).to_string())
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "  {name:<10} last {px:>14}  book {:<8} events {:>9}  decisions {:>5}  intents {:>4}",
                if st.book_proven { "proven" } else { "unproven" },
                st.events,
                st.decisions,
                st.intents
            );
        }
        let pct = |h: &Histogram<u64>| {
            if h.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "p50 {} ns p99 {} ns",
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.99)
                )
            }
        };
        let _ = writeln!(s, "  latency receive->decoded {}", pct(&self.decode_ns));
        let _ = writeln!(
            s,
            "  latency receive->intent  {}",
            pct(&self.tick_to_intent_ns)
        );
        let n = |k: &str| self.records.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "  orders: {} intents, {} order updates, {} executions, {} risk rejects, {} closed trades",
            n("intent"),
            n("order_update"),
            n("exec"),
            n("risk_reject"),
            n("trade_close")
        );
        for line in extra {
            let _ = writeln!(s, "  {line}");
        }
        s
    }
}

/// The journal directories of a run rooted at `journal`.
pub fn run_journals(journal: &Path) -> Vec<PathBuf> {
    vec![
        journal.to_path_buf(),
        journal.join("strategy"),
        journal.join("gateway"),
        journal.join(coldpath::admin::ADMIN_JOURNAL_DIR),
        journal.join("reconcile"),
    ]
}
