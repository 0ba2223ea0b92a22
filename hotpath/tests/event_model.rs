//! Event model tests: exact decimal parsing against real Binance captures and a reference
//! implementation, and the journal codec of every event type.
//!
//! Captures are read from `$ALGO_DATA_DIR` (relative paths are taken from the workspace root;
//! default `../shared/data`). When they are missing the capture tests skip with a message, or
//! fail if `ALGO_REQUIRE_DATA=1`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use hotpath::codec::{
    access, access_journal, access_record, append, append_bytes, decode, deserialize, encode_into,
    encoded_len, fnv1a64, journal_config, open_tailer, summarize, view, view_journal, CodecError,
    Journaled, RecordKind, RecordView, MAX_ENCODED_LEN, SCHEMA_DESCRIPTION, SCHEMA_HASH,
    SCHEMA_VERSION,
};
use hotpath::event::{
    AggTradeIds, Aggressor, Control, ControlKind, DepthIds, ExecEvent, ExecKind, IntentAction,
    Kline, MarketEvent, MarketKind, OrderIntent, OrderType, ReasonCode, Side, Stage, Stamps,
    TimeInForce,
};
use hotpath::fixed::{
    format_decimal, notional, parse_mantissa, write_decimal, Decimal, ParseError, Price, Qty,
    Rounding, MAX_DECIMAL_LEN,
};
use hotpath::instrument::{
    InstrumentId, InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Venue,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Capture access
// ---------------------------------------------------------------------------------------------

use hotpath::datadir::capture;

/// `(receive ns, json)` lines of an hftbacktest `.gz` capture.
fn capture_lines(path: &Path) -> Vec<(u64, String)> {
    let reader = BufReader::new(flate2::read::GzDecoder::new(
        File::open(path).expect("open capture"),
    ));
    reader
        .lines()
        .map(|l| {
            let l = l.expect("read capture line");
            let (ns, json) = l.split_once(' ').expect("'<ns> <json>' line");
            (ns.parse().expect("receive ns"), json.to_string())
        })
        .collect()
}

/// The string value of `"key":"..."` in `json` (first occurrence).
fn json_str<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat)? + pat.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

/// The raw scalar value of `"key":<value>` (number or literal) in `json`.
fn json_raw<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = json.find(&pat)? + pat.len();
    let len = json[start..].find([',', '}'])?;
    Some(&json[start..start + len])
}

/// Every quoted string in `json` that looks like a decimal number (`[0-9.-]` with a digit).
fn decimal_strings(json: &str) -> impl Iterator<Item = &str> {
    json.split('"').skip(1).step_by(2).filter(|s| {
        !s.is_empty()
            && s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    })
}

/// A decimal string without trailing fraction zeros (and without a bare trailing point).
fn trim_decimal(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

fn fmt_decimal(m: i64, scale: u8) -> String {
    let mut s = String::new();
    write_decimal(m, scale, &mut s).unwrap();
    s
}

const CAPTURES: [&str; 4] = [
    "binance/spot/btcusdt_20240808.gz",
    "binance/spot/ethusdt_20240808.gz",
    "binance/usdm/btcusdt_20240808.gz",
    "binance/usdm/ethusdt_20240808.gz",
];

// ---------------------------------------------------------------------------------------------
// Decimal parsing on real data
// ---------------------------------------------------------------------------------------------

#[test]
fn every_trade_price_and_qty_in_the_captures_round_trips_at_scale_8() {
    for rel in CAPTURES {
        let Some(path) = capture(rel) else { continue };
        let mut trades = 0usize;
        for (_, json) in capture_lines(&path) {
            if !json.contains("@trade\"") {
                continue;
            }
            trades += 1;
            for key in ["p", "q"] {
                let s = json_str(&json, key).unwrap_or_else(|| panic!("{key} in {json}"));
                let m = parse_mantissa(s.as_bytes(), 8)
                    .unwrap_or_else(|e| panic!("{rel}: {key}={s:?}: {e}"));
                assert!(m > 0, "{rel}: {key}={s:?} parsed to {m}");
                let back = fmt_decimal(m, 8);
                assert_eq!(trim_decimal(&back), trim_decimal(s), "{rel}: {key}={s:?}");
                if s.split_once('.').is_some_and(|(_, f)| f.len() == 8) {
                    assert_eq!(back, s, "{rel}: exact 8-decimal string");
                }
                assert_eq!(Decimal::parse(s.as_bytes()).unwrap().to_string(), s);
            }
        }
        assert!(trades > 1000, "{rel}: only {trades} trade messages");
        eprintln!("{rel}: {trades} trades round-tripped");
    }
}

#[test]
fn every_decimal_string_in_the_captures_round_trips() {
    for rel in CAPTURES {
        let Some(path) = capture(rel) else { continue };
        let mut n = 0usize;
        for (_, json) in capture_lines(&path) {
            for s in decimal_strings(&json) {
                let d = Decimal::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"));
                assert_eq!(d.to_string(), s);
                let m = parse_mantissa(s.as_bytes(), 8).unwrap();
                assert_eq!(trim_decimal(&fmt_decimal(m, 8)), trim_decimal(s));
                n += 1;
            }
        }
        assert!(n > 10_000, "{rel}: only {n} decimal strings");
        eprintln!("{rel}: {n} decimal strings round-tripped");
    }
}

#[test]
fn hand_computed_values_from_binance_messages() {
    // From btcusdt_20240808.gz, the first trade:
    // {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
    //  "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    assert_eq!(parse_mantissa(b"61837.63000000", 8), Ok(6_183_763_000_000));
    assert_eq!(parse_mantissa(b"61837.63000000", 2), Ok(6_183_763));
    assert_eq!(
        parse_mantissa(b"61837.63000000", 1),
        Err(ParseError::TooPrecise { scale: 1 })
    );
    assert_eq!(parse_mantissa(b"0.02000000", 8), Ok(2_000_000));
    assert_eq!(parse_mantissa(b"0.02000000", 5), Ok(2_000));
    // bookTicker sizes and depth levels.
    assert_eq!(parse_mantissa(b"3.78826000", 5), Ok(378_826));
    assert_eq!(parse_mantissa(b"0.00000000", 8), Ok(0));
    assert_eq!(parse_mantissa(b"0.00012000", 5), Ok(12));
    assert_eq!(
        parse_mantissa(b"0.00012000", 4),
        Err(ParseError::TooPrecise { scale: 4 })
    );
    // USD-M: fewer decimals on the wire, same value at the instrument scale.
    assert_eq!(parse_mantissa(b"58710.20", 2), Ok(5_871_020));
    assert_eq!(parse_mantissa(b"12.111", 3), Ok(12_111));
    assert_eq!(parse_mantissa(b"-1.5", 8), Ok(-150_000_000));
    assert_eq!(parse_mantissa(b"100", 0), Ok(100));
    assert!(matches!(
        parse_mantissa(b"1e-5", 8),
        Err(ParseError::Exponent { pos: 1 })
    ));
    assert_eq!(
        ParseError::Exponent { pos: 1 }.to_string(),
        "exponent notation at position 1 is not accepted in a decimal string"
    );
    // 61837.63 * 0.02 = 1236.7526 exactly.
    assert_eq!(
        notional(Price(6_183_763), 2, Qty(2_000), 5, 4, Rounding::Exact),
        Ok(12_367_526)
    );
    assert_eq!(Price(6_183_763).to_decimal(2).to_string(), "61837.63");
}

fn btcusdt_spot() -> (InstrumentTable, InstrumentRef) {
    let mut table = InstrumentTable::with_capacity(16);
    let spec = InstrumentSpec::from_filters(
        Venue::BinanceSpot,
        b"BTCUSDT",
        InstrumentKind::Spot,
        b"0.01000000",
        b"0.00001000",
        b"0.00001000",
        b"5.00000000",
    )
    .unwrap();
    let id = table.intern(spec).unwrap();
    let r = table.instrument_ref(id);
    (table, r)
}

#[test]
fn first_trade_and_depth_update_of_the_spot_capture_become_exact_events() {
    let Some(path) = capture("binance/spot/btcusdt_20240808.gz") else {
        return;
    };
    let (table, btc) = btcusdt_spot();
    let lines = capture_lines(&path);

    let (recv_ns, json) = lines
        .iter()
        .find(|(_, j)| j.contains("@trade\""))
        .expect("a trade");
    // Stream name is lowercase, payload symbol uppercase: both find the instrument.
    assert_eq!(table.lookup(Venue::BinanceSpot, b"btcusdt"), Some(btc.id));
    let sym = json_str(json, "s").unwrap();
    let id = table.lookup(Venue::BinanceSpot, sym.as_bytes()).unwrap();
    assert_eq!(id, btc.id);
    let price = Price::parse(json_str(json, "p").unwrap().as_bytes(), btc.price_scale).unwrap();
    let qty = Qty::parse(json_str(json, "q").unwrap().as_bytes(), btc.qty_scale).unwrap();
    let m = json_raw(json, "m").unwrap() == "true";
    let t: u64 = json_raw(json, "t").unwrap().parse().unwrap();
    let event_ms: u64 = json_raw(json, "E").unwrap().parse().unwrap();
    let ev = MarketEvent::trade(
        btc,
        Stamps::new(event_ms * 1_000_000, *recv_ns),
        price,
        qty,
        Aggressor::from_buyer_is_maker(m),
        t,
    );
    assert_eq!(ev.price, Price(6_183_763));
    assert_eq!(ev.qty, Qty(2_000));
    // "m": true -> the buyer was the maker -> a seller hit the bid.
    assert_eq!(ev.aggressor, Aggressor::Sell);
    assert_eq!(ev.id, 3_735_683_259);
    assert_eq!(ev.stamps.venue_ns, 1_723_161_255_343_000_000);
    assert_eq!(ev.price_decimal().to_string(), "61837.63");
    assert_eq!(ev.qty_decimal().to_string(), "0.02000");

    // The first depth update: 3 bids, 9 asks -> 12 DepthLevel events, LAST on the 12th.
    let (recv_ns, json) = lines
        .iter()
        .find(|(_, j)| j.contains("depthUpdate"))
        .expect("a depth update");
    let ids = DepthIds {
        first_update_id: json_raw(json, "U").unwrap().parse().unwrap(),
        final_update_id: json_raw(json, "u").unwrap().parse().unwrap(),
        prev_final_update_id: None,
    };
    let levels = |side: &str| -> Vec<(String, String)> {
        let start = json.find(&format!("\"{side}\":[")).unwrap() + 5;
        let end = start + json[start..].find("]]").map_or(0, |i| i + 1);
        json[start..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| (c[0].to_string(), c[1].to_string()))
            .collect()
    };
    let (bids, asks) = (levels("b"), levels("a"));
    assert_eq!((bids.len(), asks.len()), (3, 9));
    let total = bids.len() + asks.len();
    let mut events = Vec::new();
    for (i, (side, (p, q))) in bids
        .iter()
        .map(|l| (Side::Buy, l))
        .chain(asks.iter().map(|l| (Side::Sell, l)))
        .enumerate()
    {
        events.push(MarketEvent::depth_level(
            btc,
            Stamps::new(0, *recv_ns),
            side,
            Price::parse(p.as_bytes(), btc.price_scale).unwrap(),
            Qty::parse(q.as_bytes(), btc.qty_scale).unwrap(),
            ids,
            i + 1 == total,
        ));
    }
    assert_eq!(events[0].price, Price(6_173_763));
    assert_eq!(events[0].qty, Qty::ZERO);
    assert_eq!(events[0].depth_side(), Side::Buy);
    assert_eq!(events[3].price, Price(6_183_764));
    assert_eq!(events[3].qty, Qty(154_698));
    assert_eq!(events[3].depth_side(), Side::Sell);
    assert!(events[..11].iter().all(|e| !e.is_last()));
    assert!(events[11].is_last());
    assert!(events.iter().all(|e| e.depth_ids() == ids
        && ids.first_update_id == 50_093_239_189
        && ids.final_update_id == 50_093_239_202));
}

// ---------------------------------------------------------------------------------------------
// Decimal parsing: properties and a reference implementation
// ---------------------------------------------------------------------------------------------

/// Reference parser: validate character by character, then build the scaled digit string and
/// let the standard library parse it as an `i128`. Same error order as the real parser: syntax
/// errors first (leftmost), then no digits, then precision, then range.
fn reference_parse(s: &[u8], scale: u8) -> Result<i64, ParseError> {
    if scale > 18 {
        return Err(ParseError::ScaleTooLarge { scale });
    }
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    let (neg, body_start) = match s[0] {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut dot = None;
    for (i, &c) in s.iter().enumerate().skip(body_start) {
        match c {
            b'0'..=b'9' => {}
            b'.' if dot.is_none() => dot = Some(i),
            b'.' => return Err(ParseError::MultipleDots { pos: i }),
            b'e' | b'E' => return Err(ParseError::Exponent { pos: i }),
            byte => return Err(ParseError::InvalidByte { pos: i, byte }),
        }
    }
    let body = std::str::from_utf8(&s[body_start..]).unwrap();
    let (int, frac) = match dot {
        Some(d) => (&body[..d - body_start], &body[d - body_start + 1..]),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(ParseError::NoDigits);
    }
    let scale_us = usize::from(scale);
    if frac.len() > scale_us && frac[scale_us..].bytes().any(|b| b != b'0') {
        return Err(ParseError::TooPrecise { scale });
    }
    let kept = &frac[..frac.len().min(scale_us)];
    let digits = format!("{int}{kept}{}", "0".repeat(scale_us - kept.len()));
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(ParseError::Overflow { scale });
    }
    let mag: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().unwrap()
    };
    let v = if neg { -mag } else { mag };
    i64::try_from(v).map_err(|_| ParseError::Overflow { scale })
}

#[test]
fn exhaustive_short_strings_match_the_reference() {
    const ALPHABET: &[u8] = b"0159.-+e x";
    let mut buf = Vec::new();
    let mut checked = 0u64;
    for len in 0..=5u32 {
        for mut code in 0..(ALPHABET.len() as u64).pow(len) {
            buf.clear();
            for _ in 0..len {
                buf.push(ALPHABET[(code % ALPHABET.len() as u64) as usize]);
                code /= ALPHABET.len() as u64;
            }
            for scale in [0u8, 1, 2, 3, 18] {
                assert_eq!(
                    parse_mantissa(&buf, scale),
                    reference_parse(&buf, scale),
                    "{:?} at scale {scale}",
                    String::from_utf8_lossy(&buf)
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 500_000);
}

/// The parser reads 8 bytes at a time: put every possible byte at every position of long
/// inputs (integer part, point, fraction) to check its in-register digit detection.
#[test]
fn every_byte_at_every_position_of_long_inputs_matches_the_reference() {
    let bases: [&[u8]; 4] = [
        b"1234567890123456",
        b"61837.63000000",
        b"0.00012000000000000",
        b"-92233720368.54775807",
    ];
    for base in bases {
        for pos in 0..base.len() {
            for byte in 0..=255u8 {
                let mut s = base.to_vec();
                s[pos] = byte;
                for scale in [0u8, 2, 5, 8, 18] {
                    assert_eq!(
                        parse_mantissa(&s, scale),
                        reference_parse(&s, scale),
                        "{:?} at scale {scale}",
                        String::from_utf8_lossy(&s)
                    );
                }
            }
        }
    }
}

#[test]
fn range_boundaries_at_every_scale() {
    for scale in 0..=18u8 {
        for m in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX] {
            let s = fmt_decimal(m, scale);
            assert_eq!(parse_mantissa(s.as_bytes(), scale), Ok(m), "{s}");
        }
        // One unit beyond each end.
        let above = (i128::from(i64::MAX) + 1).to_string();
        let below = (i128::from(i64::MIN) - 1).to_string();
        for digits in [above, below] {
            let (sign, mag) = match digits.strip_prefix('-') {
                Some(m) => ("-", m),
                None => ("", digits.as_str()),
            };
            let split = mag.len() - usize::from(scale);
            let s = if scale == 0 {
                digits.clone()
            } else {
                format!("{sign}{}.{}", &mag[..split], &mag[split..])
            };
            assert_eq!(
                parse_mantissa(s.as_bytes(), scale),
                Err(ParseError::Overflow { scale }),
                "{s}"
            );
            assert_eq!(
                reference_parse(s.as_bytes(), scale),
                Err(ParseError::Overflow { scale })
            );
        }
    }
}

/// Proptest settings: `cases` cases, no failure-persistence files (integration tests have no
/// `lib.rs` next to them for proptest to anchor them to).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    #[test]
    fn format_then_parse_is_identity(m in any::<i64>(), scale in 0u8..=18) {
        let s = fmt_decimal(m, scale);
        prop_assert_eq!(parse_mantissa(s.as_bytes(), scale), Ok(m));
        let d = Decimal::parse(s.as_bytes()).unwrap();
        prop_assert_eq!(d, Decimal::new(m, scale));
        prop_assert_eq!(d.to_string(), s.clone());
        let mut buf = [0u8; MAX_DECIMAL_LEN];
        let n = format_decimal(m, scale, &mut buf).unwrap();
        prop_assert_eq!(&buf[..n], s.as_bytes());
    }

    #[test]
    fn parsing_at_a_larger_scale_multiplies_or_overflows(
        m in any::<i64>(), scale in 0u8..=18, extra in 0u8..=18,
    ) {
        let target = scale.saturating_add(extra).min(18);
        let s = fmt_decimal(m, scale);
        let expected = m
            .checked_mul(10i64.pow(u32::from(target - scale)))
            .ok_or(ParseError::Overflow { scale: target });
        prop_assert_eq!(parse_mantissa(s.as_bytes(), target), expected);
    }

    #[test]
    fn too_precise_inputs_are_rejected(q in any::<i64>(), d in 1i64..=9, scale in 1u8..=18) {
        // A mantissa whose last digit is non-zero.
        let base = (q / 10) * 10;
        let m = base.checked_add(d).unwrap_or(base - d);
        prop_assert_ne!(m % 10, 0);
        let s = fmt_decimal(m, scale);
        for lower in 0..scale {
            prop_assert_eq!(
                parse_mantissa(s.as_bytes(), lower),
                Err(ParseError::TooPrecise { scale: lower })
            );
        }
    }

    #[test]
    fn numeric_looking_strings_match_the_reference(
        s in "[-+]?[0-9]{0,24}(\\.[0-9]{0,24})?(0{0,20})?",
        scale in 0u8..=18,
    ) {
        prop_assert_eq!(parse_mantissa(s.as_bytes(), scale), reference_parse(s.as_bytes(), scale));
    }

    #[test]
    fn arbitrary_strings_match_the_reference(
        s in "[-+0-9.eE x]{0,30}",
        scale in 0u8..=19,
    ) {
        prop_assert_eq!(parse_mantissa(s.as_bytes(), scale), reference_parse(s.as_bytes(), scale));
    }

    #[test]
    fn long_digit_strings_with_odd_bytes_match_the_reference(
        int in "[0-9]{0,22}",
        frac in proptest::option::of("[0-9]{0,26}"),
        odd in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        sign in proptest::option::of(prop_oneof![Just(b'-'), Just(b'+')]),
        scale in 0u8..=18,
    ) {
        let mut s: Vec<u8> = sign.into_iter().collect();
        s.extend_from_slice(int.as_bytes());
        if let Some(f) = frac {
            s.push(b'.');
            s.extend_from_slice(f.as_bytes());
        }
        for (pos, byte) in odd {
            if !s.is_empty() {
                let p = pos % s.len();
                s[p] = byte;
            }
        }
        prop_assert_eq!(parse_mantissa(&s, scale), reference_parse(&s, scale));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40), scale in 0u8..=18) {
        let _ = parse_mantissa(&bytes, scale);
        let _ = Decimal::parse(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Events and the codec
// ---------------------------------------------------------------------------------------------

/// A payload buffer aligned like a journal payload.
#[repr(C, align(16))]
struct Aligned([u8; 512]);

fn inst() -> InstrumentRef {
    InstrumentRef {
        id: InstrumentId(7),
        price_scale: 2,
        qty_scale: 5,
    }
}

fn stamps(seed: u64) -> Stamps {
    let mut s = Stamps::new(1_723_161_255_343_000_000 + seed, 10_000 + seed);
    s.stamp(Stage::Decoded, 10_100 + seed);
    s.stamp(Stage::StrategyIn, 10_200 + seed);
    s.stamp(Stage::StrategyOut, 10_300 + seed);
    s.stamp(Stage::GatewaySend, 10_400 + seed);
    s
}

fn sample_market_events() -> Vec<MarketEvent> {
    let i = inst();
    vec![
        MarketEvent::trade(
            i,
            stamps(1),
            Price(6_183_763),
            Qty(2_000),
            Aggressor::Sell,
            3_735_683_259,
        ),
        MarketEvent::agg_trade(
            i,
            stamps(2),
            Price(6_183_764),
            Qty(1),
            Aggressor::Buy,
            AggTradeIds {
                agg_id: 9,
                first_trade_id: 100,
                last_trade_id: 104,
            },
        ),
        MarketEvent::book_ticker(
            i,
            stamps(3),
            (Price(6_183_763), Qty(378_826)),
            (Price(6_183_764), Qty(154_698)),
            50_093_239_212,
        ),
        MarketEvent::depth_level(
            i,
            stamps(4),
            Side::Buy,
            Price(5_871_020),
            Qty(1_400),
            DepthIds {
                first_update_id: 5_123_107_832_006,
                final_update_id: 5_123_107_837_557,
                prev_final_update_id: Some(5_123_107_831_937),
            },
            true,
        ),
        MarketEvent::kline(
            i,
            stamps(5),
            Kline {
                open: Price(100),
                high: Price(120),
                low: Price(90),
                close: Price(110),
                volume: Qty(5_000),
                taker_buy_volume: Qty(3_000),
                trades: 42,
                open_time_ns: 1_633_998_480_000_000_000,
                close_time_ns: 1_633_998_539_999_000_000,
                interval_secs: 60,
                closed: true,
            },
        ),
        MarketEvent::quote(
            i,
            stamps(6),
            (Price(137_151), Qty::ZERO),
            (Price(137_153), Qty::ZERO),
            0,
        ),
    ]
}

fn sample_intent() -> OrderIntent {
    let mut i = OrderIntent::new_order(
        inst(),
        Side::Buy,
        OrderType::LimitMaker,
        TimeInForce::Gtc,
        Price(6_183_700),
        Qty(150),
        0x0123_4567_89ab_cdef,
    )
    .because(ReasonCode::ENTRY_LONG, 77)
    .with_stamps(stamps(7));
    i.reduce_only = true;
    i
}

fn sample_exec() -> ExecEvent {
    ExecEvent::new(inst(), ExecKind::PartialFill, Side::Sell, 11, 22, stamps(8))
        .with_fill(Price(6_183_763), Qty(50), Qty(50), Qty(100), 3_735_683_300)
        .with_fee(Decimal::new(-12_345, 8), true)
        .with_venue_error(-2010)
}

fn sample_control() -> Control {
    Control::new(
        ControlKind::WatchlistAdd,
        InstrumentId(3),
        1_723_247_655_000_000_000,
        1_723_161_255_000_000_000,
        stamps(9),
    )
}

fn round_trip<E>(event: &E) -> E
where
    E: Journaled + PartialEq + std::fmt::Debug,
    E::Archived: PartialEq<E>,
{
    let mut buf = Aligned([0xAA; 512]);
    let n = encode_into(event, &mut buf.0).unwrap();
    assert_eq!(n, encoded_len::<E>());
    assert_eq!(n, std::mem::size_of::<E>());
    let archived = access::<E>(&buf.0[..n]).unwrap();
    assert!(*archived == *event, "archived differs from {event:?}");
    let back = decode::<E>(&buf.0[..n]).unwrap();
    assert_eq!(back, *event);
    // Deterministic: encoding twice gives the same bytes, whatever was in the buffer before.
    let mut again = Aligned([0x55; 512]);
    encode_into(event, &mut again.0).unwrap();
    assert_eq!(buf.0[..n], again.0[..n]);
    back
}

#[test]
fn every_event_type_round_trips_through_the_codec() {
    for e in sample_market_events() {
        round_trip(&e);
    }
    round_trip(&sample_intent());
    round_trip(&sample_exec());
    round_trip(&sample_control());

    // Archived field access, zero-copy.
    let e = &sample_market_events()[3];
    let mut buf = Aligned([0; 512]);
    let n = encode_into(e, &mut buf.0).unwrap();
    let a = access::<MarketEvent>(&buf.0[..n]).unwrap();
    assert_eq!(a.kind.to_native(), MarketKind::DepthLevel);
    assert_eq!(a.price.to_native(), Price(5_871_020));
    assert_eq!(a.instrument.to_native(), InstrumentId(7));
    assert_eq!(a.stamps.to_native(), stamps(4));
    assert_eq!(a.aux_id.to_native(), 5_123_107_831_937);
    match view(RecordKind::Market.as_u16(), &buf.0[..n]).unwrap() {
        RecordView::Market(m) => assert_eq!(m.id.to_native(), 5_123_107_837_557),
        other => panic!("wrong view {other:?}"),
    }
}

#[test]
fn event_accessors_agree_with_constructors() {
    let evs = sample_market_events();
    assert_eq!(evs[0].aggressor.side(), Some(Side::Sell));
    assert_eq!(
        evs[1].agg_trade_ids(),
        AggTradeIds {
            agg_id: 9,
            first_trade_id: 100,
            last_trade_id: 104
        }
    );
    assert_eq!(evs[3].depth_side(), Side::Buy);
    assert!(evs[3].is_last());
    assert_eq!(
        evs[3].depth_ids().prev_final_update_id,
        Some(5_123_107_831_937)
    );
    let k = evs[4].as_kline().unwrap();
    assert_eq!(
        (k.open, k.high, k.low, k.close),
        (Price(100), Price(120), Price(90), Price(110))
    );
    assert!(k.closed && k.interval_secs == 60 && k.trades == 42);
    assert!(evs[0].as_kline().is_none());
    assert_eq!(evs[5].kind, MarketKind::Quote);
    assert_eq!(Aggressor::from_buyer_is_maker(true), Aggressor::Sell);
    assert_eq!(Aggressor::from_buyer_is_maker(false), Aggressor::Buy);
    let s = stamps(0);
    assert_eq!(s.since_recv(Stage::GatewaySend), Some(400));
    assert_eq!(s.between(Stage::StrategyIn, Stage::StrategyOut), Some(100));
    assert_eq!(Stamps::new(1, 2).at(Stage::Decoded), None);
    let x = sample_exec();
    assert_eq!(x.fee_decimal().to_string(), "-0.00012345");
    assert!(!x.is_terminal());
    assert_eq!(sample_intent().reason.to_string(), "entry_long");
    assert_eq!(ReasonCode(4242).to_string(), "reason_4242");
    let c = OrderIntent::cancel(inst(), Side::Buy, 5);
    assert_eq!((c.action, c.client_order_id), (IntentAction::Cancel, 5));
}

#[test]
fn corrupted_payloads_are_errors_not_panics() {
    let e = sample_market_events()[0];
    let mut buf = Aligned([0; 512]);
    let n = encode_into(&e, &mut buf.0).unwrap();

    // Wrong lengths.
    for len in [0, 1, 8, n - 8, n - 1, n + 1, n + 8] {
        assert_eq!(
            access::<MarketEvent>(&buf.0[..len]).unwrap_err(),
            CodecError::Length {
                kind: RecordKind::Market,
                expected: n,
                actual: len
            }
        );
        assert!(matches!(
            decode::<MarketEvent>(&buf.0[..len]),
            Err(CodecError::Length { .. })
        ));
    }
    // Too small an output buffer.
    assert!(matches!(
        encode_into(&e, &mut [0u8; 100]),
        Err(CodecError::BufferTooSmall {
            needed: 144,
            available: 100,
            ..
        })
    ));
    // Misaligned: access refuses, decode copies.
    buf.0.copy_within(0..n, 1);
    assert!(matches!(
        access::<MarketEvent>(&buf.0[1..1 + n]),
        Err(CodecError::Misaligned { align: 8, .. })
    ));
    assert_eq!(decode::<MarketEvent>(&buf.0[1..1 + n]), Ok(e));
    let n = encode_into(&e, &mut buf.0).unwrap();

    // Bad enum discriminants and bools.
    for (offset, byte) in [(4usize, 0u8), (4, 7), (4, 0xff), (5, 3)] {
        let mut bad = Aligned(buf.0);
        bad.0[offset] = byte;
        assert_eq!(
            access::<MarketEvent>(&bad.0[..n]).unwrap_err(),
            CodecError::Invalid {
                kind: RecordKind::Market
            },
            "byte {byte} at {offset}"
        );
        assert!(decode::<MarketEvent>(&bad.0[..n]).is_err());
    }
    let intent = sample_intent();
    let mut ibuf = Aligned([0; 512]);
    let ni = encode_into(&intent, &mut ibuf.0).unwrap();
    ibuf.0[12] = 2; // reduce_only: bool
    assert!(matches!(
        access::<OrderIntent>(&ibuf.0[..ni]),
        Err(CodecError::Invalid { .. })
    ));
    // An all-zero payload is never a valid event.
    let zero = Aligned([0; 512]);
    assert!(access::<MarketEvent>(&zero.0[..144]).is_err());
    assert!(access::<OrderIntent>(&zero.0[..96]).is_err());
    assert!(access::<ExecEvent>(&zero.0[..128]).is_err());
    assert!(access::<Control>(&zero.0[..72]).is_err());

    // Kind checks.
    assert_eq!(
        access_record::<OrderIntent>(RecordKind::Market.as_u16(), &buf.0[..n]).unwrap_err(),
        CodecError::KindMismatch {
            expected: RecordKind::Intent,
            actual: 2
        }
    );
    assert_eq!(
        view(999, &buf.0[..n]).unwrap_err(),
        CodecError::UnknownKind(999)
    );
    // Variable-length kinds pass through.
    assert!(matches!(
        view(RecordKind::RawFrame.as_u16(), b"{}"),
        Ok(RecordView::Bytes {
            kind: RecordKind::RawFrame,
            payload: b"{}"
        })
    ));
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn random_bytes_never_panic_and_valid_ones_round_trip(
        bytes in proptest::collection::vec(any::<u8>(), 144),
    ) {
        let mut buf = Aligned([0; 512]);
        buf.0[..144].copy_from_slice(&bytes);
        for (kind, len) in [(2u16, 144usize), (3, 96), (5, 128), (6, 72)] {
            let _ = view(kind, &buf.0[..len]);
        }
        // Make the discriminants valid so that the round-trip branch is exercised too.
        buf.0[4] = 1 + bytes[4] % 6;
        buf.0[5] = bytes[5] % 3;
        let e = decode::<MarketEvent>(&buf.0[..144]).unwrap();
        let mut out = Aligned([0; 512]);
        encode_into(&e, &mut out.0).unwrap();
        prop_assert_eq!(&out.0[..144], &buf.0[..144]);
        if let Ok(e) = decode::<MarketEvent>(&bytes) {
            let mut out = Aligned([0; 512]);
            encode_into(&e, &mut out.0).unwrap();
            prop_assert_eq!(&out.0[..144], &bytes[..]);
        }
    }

    #[test]
    fn arbitrary_market_events_round_trip(
        vals in proptest::array::uniform16(any::<u64>()),
        kind in 1u8..=6, aggr in 0u8..=2, flags in any::<u32>(), interval in any::<u32>(),
        scales in (0u8..=18, 0u8..=18),
    ) {
        let mut e = sample_market_events()[0];
        e.kind = MarketKind::from_u8(kind).unwrap();
        e.aggressor = Aggressor::from_u8(aggr).unwrap();
        e.flags = flags;
        e.interval_secs = interval;
        (e.price_scale, e.qty_scale) = scales;
        e.instrument = InstrumentId(vals[0] as u32);
        e.price = Price(vals[1] as i64);
        e.qty = Qty(vals[2] as i64);
        e.bid_px = Price(vals[3] as i64);
        e.bid_qty = Qty(vals[4] as i64);
        e.ask_px = Price(vals[5] as i64);
        e.ask_qty = Qty(vals[6] as i64);
        e.aux_px = Price(vals[7] as i64);
        e.id = vals[8];
        e.first_id = vals[9];
        e.aux_id = vals[10];
        e.stamps = Stamps { venue_ns: vals[11], recv_tsc: vals[12], stage_tsc: [vals[13], vals[14], vals[15], vals[0]] };
        prop_assert_eq!(round_trip(&e), e);
    }
}

#[test]
fn schema_hash_and_description_are_consistent() {
    assert_eq!(SCHEMA_HASH, fnv1a64(SCHEMA_DESCRIPTION.as_bytes()));
    assert_ne!(SCHEMA_HASH, 0);
    // FNV-1a 64 reference vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    assert!(
        SCHEMA_DESCRIPTION.starts_with(&format!("algo-engine journal schema v{SCHEMA_VERSION}\n"))
    );

    // The sizes written in the description are the real ones.
    let real: BTreeMap<&str, usize> = [
        ("Stamps", std::mem::size_of::<Stamps>()),
        ("MarketEvent", std::mem::size_of::<MarketEvent>()),
        ("OrderIntent", std::mem::size_of::<OrderIntent>()),
        ("ExecEvent", std::mem::size_of::<ExecEvent>()),
        ("Control", std::mem::size_of::<Control>()),
        ("Decision", std::mem::size_of::<hotpath::event::Decision>()),
        (
            "OrderUpdate",
            std::mem::size_of::<hotpath::gateway::OrderUpdate>(),
        ),
        (
            "RiskReject",
            std::mem::size_of::<hotpath::risk::RiskReject>(),
        ),
        (
            "TradeClose",
            std::mem::size_of::<hotpath::risk::TradeClose>(),
        ),
    ]
    .into_iter()
    .collect();
    let mut described = BTreeMap::new();
    let mut fields_of = BTreeMap::<String, Vec<(String, usize)>>::new();
    let mut current = None;
    for line in SCHEMA_DESCRIPTION.lines() {
        if let Some(rest) = line.strip_prefix("struct ") {
            let (name, size) = rest.split_once(" size ").expect("struct line");
            described.insert(name.to_string(), size.parse::<usize>().unwrap());
            current = Some(name.to_string());
        } else if line.starts_with("enum ") || line.starts_with("newtype ") {
            current = None;
        } else if let (Some(s), Some((field, off))) = (&current, line.trim().split_once(" @")) {
            fields_of
                .entry(s.clone())
                .or_default()
                .push((field.to_string(), off.parse().unwrap()));
        }
    }
    assert_eq!(described.len(), real.len(), "{described:?}");
    for (name, size) in &real {
        assert_eq!(described.get(*name), Some(size), "{name}");
        let fields = &fields_of[*name];
        assert!(
            fields.windows(2).all(|w| w[0].1 < w[1].1),
            "{name}: offsets ascend"
        );
        assert!(fields.last().unwrap().1 < *size);
    }
    assert_eq!(MAX_ENCODED_LEN, 256);
    assert!(SCHEMA_DESCRIPTION.contains("enum RecordKind: u16\n  RawFrame = 1\n"));
    assert!(SCHEMA_DESCRIPTION.contains("  stamps: Stamps @96\n"));
}

#[test]
fn record_kinds_have_stable_numbers_and_names() {
    for (i, k) in RecordKind::ALL.iter().enumerate() {
        assert_eq!(k.as_u16() as usize, i + 1);
        assert_eq!(RecordKind::from_u16(k.as_u16()), Some(*k));
    }
    assert_eq!(RecordKind::from_u16(0), None);
    assert_eq!(RecordKind::from_u16(RecordKind::ALL.len() as u16 + 1), None);
    let names: Vec<&str> = RecordKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "raw_frame",
            "market",
            "intent",
            "outbound_bytes",
            "exec",
            "control",
            "decision",
            "feed_error",
            "gap",
            "reconcile",
            "order_update",
            "risk_reject",
            "trade_close",
            "applied"
        ]
    );
    assert_eq!(RecordKind::Market.fixed_len(), Some(144));
    assert_eq!(RecordKind::RawFrame.fixed_len(), None);
    assert_eq!(<MarketEvent as Journaled>::KIND, RecordKind::Market);
    assert_eq!(<Control as Journaled>::KIND, RecordKind::Control);
}

#[test]
fn events_survive_a_journal_round_trip_zero_copy() {
    use ringbuffers::journal::{Appender, Tailer};

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = journal_config();
    cfg.segment_size = 64 << 10; // small segments: the events span several
    let markets = sample_market_events();
    let mut appended = Vec::new();
    {
        let mut app = Appender::open(dir.path(), cfg).unwrap();
        for round in 0..200u64 {
            for (i, e) in markets.iter().enumerate() {
                let mut e = *e;
                e.id = round * 10 + i as u64;
                appended.push(append(&mut app, &e, 1, round).unwrap());
            }
            append(&mut app, &sample_intent(), 0, round).unwrap();
            append(&mut app, &sample_exec(), 0, round).unwrap();
            append(&mut app, &sample_control(), 0, round).unwrap();
            append_bytes(
                &mut app,
                RecordKind::RawFrame,
                0,
                round,
                b"{\"e\":\"trade\"}",
            )
            .unwrap();
        }
        app.close().unwrap();
    }
    assert_eq!(appended.len(), 1200);

    let mut tailer = open_tailer(dir.path()).unwrap();
    let mut counts = BTreeMap::<&str, usize>::new();
    let mut market_index = 0u64;
    while let Some(rec) = tailer.next().unwrap() {
        let view = view_journal(&rec).unwrap();
        *counts.entry(view.kind().name()).or_default() += 1;
        match view {
            RecordView::Market(m) => {
                let round = market_index / 6;
                let i = (market_index % 6) as usize;
                let mut expected = markets[i];
                expected.id = round * 10 + i as u64;
                assert!(*m == expected);
                assert_eq!(rec.flags, 1);
                assert_eq!(rec.timestamp, round);
                market_index += 1;
            }
            RecordView::Intent(a) => assert_eq!(deserialize::<OrderIntent>(a), Ok(sample_intent())),
            RecordView::Exec(a) => assert!(*a == sample_exec()),
            RecordView::Control(_) => {
                let a = access_journal::<Control>(&rec).unwrap();
                assert_eq!(a.kind.to_native(), ControlKind::WatchlistAdd);
            }
            RecordView::Bytes { kind, payload } => {
                assert_eq!(kind, RecordKind::RawFrame);
                assert_eq!(payload, b"{\"e\":\"trade\"}");
            }
        }
    }
    assert_eq!(
        counts,
        [
            ("control", 200),
            ("exec", 200),
            ("intent", 200),
            ("market", 1200),
            ("raw_frame", 200)
        ]
        .into_iter()
        .collect()
    );
    // A tailer expecting another schema refuses the journal.
    assert!(Tailer::open(dir.path(), Some(SCHEMA_HASH ^ 1)).is_err());
}

#[test]
fn summaries_print_exact_values() {
    let mut buf = Aligned([0; 512]);
    let mut line = |kind: RecordKind, f: &dyn Fn(&mut [u8]) -> usize| {
        let n = f(&mut buf.0);
        summarize(kind.as_u16(), &buf.0[..n])
    };
    let evs = sample_market_events();
    assert_eq!(
        line(RecordKind::Market, &|b| encode_into(&evs[0], b).unwrap()),
        "trade inst=#7 px=61837.63 qty=0.02000 aggr=sell id=3735683259"
    );
    assert_eq!(
        line(RecordKind::Market, &|b| encode_into(&evs[3], b).unwrap()),
        "depth_level inst=#7 bid px=58710.20 qty=0.01400 U=5123107832006 u=5123107837557 \
         pu=5123107831937 last"
    );
    assert_eq!(
        line(RecordKind::Intent, &|b| encode_into(&sample_intent(), b)
            .unwrap()),
        "new buy limit_maker gtc px=61837.00 qty=0.00150 cid=81985529216486895 \
         reason=entry_long decision=77 reduce_only"
    );
    assert!(line(RecordKind::Exec, &|b| encode_into(&sample_exec(), b)
        .unwrap())
    .ends_with("fee=-0.00012345 maker err=-2010"));
    assert_eq!(
        summarize(RecordKind::RawFrame.as_u16(), b"{\"e\":\"trade\"}\n"),
        "14 bytes: \"{\\\"e\\\":\\\"trade\\\"}\\n\""
    );
    assert!(summarize(RecordKind::Market.as_u16(), &[0u8; 10]).starts_with("invalid: "));
    assert_eq!(summarize(99, b"xy"), "unknown kind 99, 2 bytes");
}
