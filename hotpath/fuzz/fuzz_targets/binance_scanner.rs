//! Differential fuzzing of the Binance decoders: on arbitrary bytes, the hot-path `Scanner` and
//! the simd-json reference `SimdDecoder` must never panic and must agree: the same events (and
//! summary), or both an error (of the same kind, unless the input is not acceptable JSON, where
//! they may report different problems first). An error must emit nothing.
//!
//! Each input is decoded as a WebSocket message and as a REST depth snapshot, on each of the
//! three Binance venues, and once more with tiny limits (to reach the size checks).

#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use hotpath::event::MarketEvent;
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::venue::binance::{DecodeError, Decoded, Decoder, DecoderConfig, Scanner, SimdDecoder};
use libfuzzer_sys::fuzz_target;

const VENUES: [Venue; 3] = [Venue::BinanceSpot, Venue::BinanceUsdM, Venue::BinanceCoinM];

fn table() -> &'static InstrumentTable {
    static TABLE: OnceLock<InstrumentTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        use InstrumentKind::*;
        let mut t = InstrumentTable::with_capacity(64);
        let mut add = |v: Venue, s: &str, k: InstrumentKind, ps: u8, qs: u8| {
            let spec = InstrumentSpec::new(v, Symbol::new(s.as_bytes()).unwrap(), k, ps, qs);
            t.intern(spec).unwrap();
        };
        for s in [
            "BTCUSDT", "ETHUSDT", "NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR",
        ] {
            add(Venue::BinanceSpot, s, Spot, 8, 8);
        }
        add(Venue::BinanceUsdM, "BTCUSDT", Perp, 2, 3);
        add(Venue::BinanceUsdM, "ETHUSDT", Perp, 2, 3);
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
            add(Venue::BinanceCoinM, s, InversePerp, ps, 0);
        }
        t
    })
}

/// The instrument a snapshot on `venue` is requested for.
fn snapshot_instrument(venue: Venue) -> InstrumentId {
    let sym: &[u8] = match venue {
        Venue::BinanceCoinM => b"BCHUSD_PERP",
        _ => b"BTCUSDT",
    };
    table().lookup(venue, sym).unwrap()
}

struct Pair {
    scanner: Scanner<'static>,
    reference: SimdDecoder<'static>,
}

thread_local! {
    /// Decoders are reused across inputs (as in production); their buffers hold no state
    /// between messages.
    static PAIRS: RefCell<Vec<Pair>> = RefCell::new({
        let tiny = DecoderConfig { max_message_len: 300, max_levels: 3 };
        VENUES
            .iter()
            .map(|&v| Pair {
                scanner: Scanner::new(table(), v),
                reference: SimdDecoder::new(table(), v),
            })
            .chain(std::iter::once(Pair {
                scanner: Scanner::with_config(table(), Venue::BinanceUsdM, tiny),
                reference: SimdDecoder::with_config(table(), Venue::BinanceUsdM, tiny),
            }))
            .collect()
    });
}

type Outcome = Result<(Decoded, Vec<MarketEvent>), DecodeError>;

fn run<D: Decoder>(d: &mut D, data: &[u8], snapshot: Option<InstrumentId>) -> Outcome {
    let mut buf = data.to_vec();
    let mut events = Vec::new();
    let r = match snapshot {
        None => d.decode(&mut buf, 42, &mut |e| events.push(e)),
        Some(id) => d.decode_depth_snapshot(&mut buf, id, 42, &mut |e| events.push(e)),
    };
    match r {
        Ok(done) => {
            assert_eq!(done.events, events.len());
            Ok((done, events))
        }
        Err(e) => {
            assert!(
                events.is_empty(),
                "{e} after emitting {} events",
                events.len()
            );
            Err(e)
        }
    }
}

fn agree(a: &Outcome, b: &Outcome, data: &[u8]) {
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(
            x,
            y,
            "different events for {:?}",
            String::from_utf8_lossy(data)
        ),
        (Err(x), Err(y)) => {
            if !(x.kind().is_syntax() && y.kind().is_syntax()) {
                assert_eq!(
                    x.kind(),
                    y.kind(),
                    "scanner: {x}; reference: {y}; input {:?}",
                    String::from_utf8_lossy(data)
                );
            }
        }
        _ => panic!(
            "scanner {a:?}\nreference {b:?}\ninput {:?}",
            String::from_utf8_lossy(data)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    PAIRS.with(|pairs| {
        let mut pairs = pairs.borrow_mut();
        for p in pairs.iter_mut() {
            let venue = p.scanner.venue();
            for snapshot in [None, Some(snapshot_instrument(venue))] {
                let a = run(&mut p.scanner, data, snapshot);
                let b = run(&mut p.reference, data, snapshot);
                agree(&a, &b, data);
            }
        }
    });
});
