//! Proves the hot-path Binance decoder allocates nothing after warm-up: decoding every message
//! of the real captures (trades, book tickers, depth updates, REST snapshots, and in the
//! cryptofeed sessions aggregated trades and klines) with the [`Scanner`], and rejecting
//! malformed and truncated frames, makes zero heap allocations.
//!
//! A counting `#[global_allocator]` counts allocations made by the *current thread* while
//! counting is switched on, so the test harness's own threads cannot disturb the result. The
//! simd-json reference decoder's count is printed for comparison, not asserted (it validates
//! with serde_json first, which allocates for nested containers).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::io::{BufRead, BufReader};

use hotpath::datadir;
use hotpath::event::MarketEvent;
use hotpath::instrument::{InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue};
use hotpath::venue::binance::{Scanner, SimdDecoder};

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct CountingAllocator;

impl CountingAllocator {
    #[inline]
    fn note() {
        // `try_with`: the thread-locals are const-initialised without destructors, so this
        // never allocates and never fails, but stay safe during thread teardown anyway.
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            }
        });
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the only addition is bumping a thread-local counter, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: forwarded with the caller's guarantees (non-zero-size layout).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (i.e. by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Run `f` and return its result with the number of allocations this thread made meanwhile.
fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

/// One message: its venue, the symbol of a REST snapshot (else `None`), the bytes.
struct Msg {
    venue: Venue,
    snapshot: Option<String>,
    json: Vec<u8>,
}

fn spec(venue: Venue, sym: &str, kind: InstrumentKind, ps: u8, qs: u8) -> InstrumentSpec {
    InstrumentSpec::new(venue, Symbol::new(sym.as_bytes()).unwrap(), kind, ps, qs)
}

/// The instruments of the captures, at the scales Binance formats them with.
fn table() -> InstrumentTable {
    use InstrumentKind::*;
    let mut t = InstrumentTable::with_capacity(64);
    let spot = [
        "BTCUSDT", "ETHUSDT", "NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR",
    ];
    for s in spot {
        t.intern(spec(Venue::BinanceSpot, s, Spot, 8, 8)).unwrap();
    }
    for s in ["BTCUSDT", "ETHUSDT"] {
        t.intern(spec(Venue::BinanceUsdM, s, Perp, 2, 3)).unwrap();
    }
    for (s, ps) in [
        ("BTCUSD_211231", 1),
        ("ETHUSD_210924", 2),
        ("BCHUSD_210924", 2),
        ("BCHUSD_PERP", 2),
        ("LINKUSD_211231", 3),
        ("LINKUSD_PERP", 3),
        ("EOSUSD_PERP", 3),
        ("ETCUSD_PERP", 3),
        ("XRPUSD_PERP", 4),
        ("TRXUSD_PERP", 5),
    ] {
        t.intern(spec(Venue::BinanceCoinM, s, InversePerp, ps, 0))
            .unwrap();
    }
    t
}

fn load() -> Vec<Msg> {
    let mut msgs = Vec::new();
    for (rel, venue) in [
        ("binance/spot/btcusdt_20240808.gz", Venue::BinanceSpot),
        ("binance/spot/ethusdt_20240808.gz", Venue::BinanceSpot),
        ("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM),
        ("binance/usdm/ethusdt_20240808.gz", Venue::BinanceUsdM),
    ] {
        let Some(path) = datadir::capture(rel) else {
            continue;
        };
        let sym = rel
            .rsplit('/')
            .next()
            .unwrap()
            .split('_')
            .next()
            .unwrap()
            .to_uppercase();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
        for line in BufReader::new(gz).lines() {
            let line = line.unwrap();
            let (_, json) = line.split_once(' ').unwrap();
            msgs.push(Msg {
                venue,
                snapshot: json.starts_with("{\"lastUpdateId\"").then(|| sym.clone()),
                json: json.as_bytes().to_vec(),
            });
        }
    }
    for (ws, http, venue) in [
        ("BINANCE.ws.1.0", "BINANCE.http.0.0", Venue::BinanceSpot),
        (
            "BINANCE_DELIVERY.ws.1.0",
            "BINANCE_DELIVERY.http.0.0",
            Venue::BinanceCoinM,
        ),
    ] {
        let (Some(ws), Some(http)) = (
            datadir::capture(&format!("binance/cryptofeed/{ws}")),
            datadir::capture(&format!("binance/cryptofeed/{http}")),
        ) else {
            continue;
        };
        for line in std::fs::read_to_string(ws).unwrap().lines().skip(1) {
            if let Some((_, json)) = line.split_once(": ") {
                msgs.push(Msg {
                    venue,
                    snapshot: None,
                    json: json.as_bytes().to_vec(),
                });
            }
        }
        for line in std::fs::read_to_string(http).unwrap().lines() {
            if let Some((url, rest)) = line.split_once(" -> ") {
                let sym = url
                    .split("symbol=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap();
                msgs.push(Msg {
                    venue,
                    snapshot: Some(sym.to_string()),
                    json: rest.split_once(": ").unwrap().1.as_bytes().to_vec(),
                });
            }
        }
    }
    // Bad frames too (rejecting must not allocate either), and one with escapes (unescaped
    // into the preallocated scratch).
    let good = msgs
        .iter()
        .find(|m| m.snapshot.is_none())
        .map(|m| (m.venue, m.json.clone()));
    if let Some((venue, json)) = good {
        for cut in 0..json.len() {
            msgs.push(Msg {
                venue,
                snapshot: None,
                json: json[..cut].to_vec(),
            });
        }
        for bad in [
            &br#"{"e":"markPriceUpdate","s":"BTCUSDT"}"#[..],
            br#"{"e":"trade","s":"DOGEUSDT","t":1,"p":"1","q":"1","T":1,"m":true}"#,
            br#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1.000000001","q":"1","T":1,"m":true}"#,
            br#"{"e":"trade","s":"BTC\u0055SDT","t":1,"p":"1","q":"1","T":1,"m":true,"x":"\ud83d\ude00"}"#,
            br#"{"e":"trade","x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            br#"{"e":"trade","x":1.5}"#,
        ] {
            msgs.push(Msg {
                venue,
                snapshot: None,
                json: bad.to_vec(),
            });
        }
    }
    msgs
}

/// Decode every message with one scanner per venue; returns (ok, rejected, events).
fn scan_all(
    scanners: &mut [Scanner<'_>; 3],
    table: &InstrumentTable,
    msgs: &[Msg],
) -> (u64, u64, u64) {
    let (mut ok, mut bad, mut events) = (0u64, 0u64, 0u64);
    let mut sink = |e: MarketEvent| {
        events += 1;
        black_box(e);
    };
    for m in msgs {
        let s = &mut scanners[venue_index(m.venue)];
        let r = match &m.snapshot {
            None => s.decode(&m.json, 1, &mut sink),
            Some(sym) => {
                let id = table.lookup(m.venue, sym.as_bytes()).unwrap();
                s.decode_depth_snapshot(&m.json, id, 1, &mut sink)
            }
        };
        match black_box(r) {
            Ok(_) => ok += 1,
            Err(_) => bad += 1,
        }
    }
    (ok, bad, events)
}

fn venue_index(v: Venue) -> usize {
    match v {
        Venue::BinanceSpot => 0,
        Venue::BinanceUsdM => 1,
        _ => 2,
    }
}

#[test]
fn scanner_decodes_real_captures_without_allocating() {
    let msgs = load();
    if msgs.is_empty() {
        eprintln!("skipping: no Binance capture found");
        return;
    }
    let table = table();
    let mut scanners = [
        Scanner::new(&table, Venue::BinanceSpot),
        Scanner::new(&table, Venue::BinanceUsdM),
        Scanner::new(&table, Venue::BinanceCoinM),
    ];
    // Warm-up: one full pass (touches every buffer page the scanners will use).
    let warm = scan_all(&mut scanners, &table, &msgs);
    let (counted, allocations) = count_allocations(|| scan_all(&mut scanners, &table, &msgs));
    assert_eq!(warm, counted);
    let (ok, bad, events) = counted;
    eprintln!(
        "scanner: {ok} messages decoded, {bad} rejected, {events} events, {allocations} allocations"
    );
    assert!(ok > 0 && bad > 0);
    assert_eq!(allocations, 0, "the scanner allocated on the hot path");

    // For comparison only: the reference decoder on the same messages.
    let mut refs = [
        SimdDecoder::new(&table, Venue::BinanceSpot),
        SimdDecoder::new(&table, Venue::BinanceUsdM),
        SimdDecoder::new(&table, Venue::BinanceCoinM),
    ];
    let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|m| m.json.clone()).collect();
    let pass = |refs: &mut [SimdDecoder<'_>; 3], bufs: &mut [Vec<u8>]| {
        for (m, buf) in msgs.iter().zip(bufs.iter_mut()) {
            buf.clear();
            buf.extend_from_slice(&m.json);
            let d = &mut refs[venue_index(m.venue)];
            let _ = black_box(match &m.snapshot {
                None => d.decode(buf, 1, &mut |e| {
                    black_box(e);
                }),
                Some(sym) => {
                    let id = table.lookup(m.venue, sym.as_bytes()).unwrap();
                    d.decode_depth_snapshot(buf, id, 1, &mut |e| {
                        black_box(e);
                    })
                }
            });
        }
    };
    pass(&mut refs, &mut bufs);
    let ((), ref_allocations) = count_allocations(|| pass(&mut refs, &mut bufs));
    eprintln!(
        "reference (serde_json check + simd-json tape): {ref_allocations} allocations for {} messages",
        msgs.len()
    );
}
