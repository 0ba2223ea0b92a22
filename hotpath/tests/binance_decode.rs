//! Binance decoders against real captures and bad input.
//!
//! * every line of every capture in `$ALGO_DATA_DIR/binance` decodes, and the hot-path
//!   [`Scanner`] produces exactly the events of the simd-json [`SimdDecoder`];
//! * the events agree, per symbol and kind, with aggregates computed independently from
//!   `serde_json::Value` and a string-based decimal conversion: counts, quantity sums by
//!   aggressor side / book side, min/max price, id and time sums, to the last unit;
//! * the first messages of each capture are checked field by field against values read off
//!   the raw JSON by hand;
//! * bad input (malformed JSON, every truncation of real messages, unknown `e`, unknown
//!   symbol, too many decimals, oversized, wrong types) is rejected by both decoders, without a
//!   panic and without emitting anything.
//!
//! Captures: hftbacktest's `binance/{spot,usdm}/*.gz` (`<recv ns> <json>` per line, REST
//! snapshots inline) and cryptofeed's `binance/cryptofeed/*.ws.1.0` (a URL line, then
//! `<recv s.frac>: <json>`) with the REST snapshots of the same sessions in `*.http.0.0`
//! (`<url> -> <recv>: <body>`). The captures hold no `exchangeInfo`, so the instruments come
//! from the `exchangeInfo` fixtures below, written in Binance's format with the filters those
//! symbols had.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

use hotpath::datadir;
use hotpath::event::{Aggressor, DepthIds, MarketEvent, MarketKind, Side};
use hotpath::fixed::{ParseError, Price, Qty};
use hotpath::instrument::{InstrumentId, InstrumentKind, InstrumentTable, Venue};
use hotpath::venue::binance::{
    DecodeError, Decoded, Decoder, DecoderConfig, ErrorKind, ExchangeInfo, ScalePolicy, Scanner,
    SimdDecoder,
};

// ------------------------------------------------------------------------------------------
// exchangeInfo fixtures
// ------------------------------------------------------------------------------------------

/// A spot `exchangeInfo` symbol entry in Binance's format.
fn spot_symbol(
    sym: &str,
    base: &str,
    quote: &str,
    tick: &str,
    step: &str,
    notional: &str,
) -> String {
    format!(
        r#"{{"symbol":"{sym}","status":"TRADING","baseAsset":"{base}","baseAssetPrecision":8,"quoteAsset":"{quote}","quotePrecision":8,"quoteAssetPrecision":8,"baseCommissionPrecision":8,"quoteCommissionPrecision":8,"orderTypes":["LIMIT","LIMIT_MAKER","MARKET","STOP_LOSS_LIMIT","TAKE_PROFIT_LIMIT"],"icebergAllowed":true,"ocoAllowed":true,"isSpotTradingAllowed":true,"isMarginTradingAllowed":true,"filters":[{{"filterType":"PRICE_FILTER","minPrice":"{tick}","maxPrice":"1000000.00000000","tickSize":"{tick}"}},{{"filterType":"LOT_SIZE","minQty":"{step}","maxQty":"9000.00000000","stepSize":"{step}"}},{{"filterType":"ICEBERG_PARTS","limit":10}},{{"filterType":"MARKET_LOT_SIZE","minQty":"0.00000000","maxQty":"100.00000000","stepSize":"0.00000000"}},{{"filterType":"TRAILING_DELTA","minTrailingAboveDelta":10,"maxTrailingAboveDelta":2000,"minTrailingBelowDelta":10,"maxTrailingBelowDelta":2000}},{{"filterType":"NOTIONAL","minNotional":"{notional}","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}},{{"filterType":"MAX_NUM_ORDERS","maxNumOrders":200}}],"permissions":[],"permissionSets":[["SPOT","MARGIN"]],"defaultSelfTradePreventionMode":"EXPIRE_MAKER"}}"#
    )
}

/// A USD-M `exchangeInfo` symbol entry.
fn usdm_symbol(sym: &str, pp: u8, qp: u8, tick: &str, step: &str, notional: &str) -> String {
    format!(
        r#"{{"symbol":"{sym}","pair":"{sym}","contractType":"PERPETUAL","deliveryDate":4133404800000,"onboardDate":1569398400000,"status":"TRADING","maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000","baseAsset":"BTC","quoteAsset":"USDT","marginAsset":"USDT","pricePrecision":{pp},"quantityPrecision":{qp},"baseAssetPrecision":8,"quotePrecision":8,"underlyingType":"COIN","underlyingSubType":["PoW"],"triggerProtect":"0.0500","liquidationFee":"0.012500","marketTakeBound":"0.05","maxMoveOrderLimit":10000,"filters":[{{"minPrice":"556.80","maxPrice":"4529764","filterType":"PRICE_FILTER","tickSize":"{tick}"}},{{"stepSize":"{step}","filterType":"LOT_SIZE","maxQty":"1000","minQty":"{step}"}},{{"stepSize":"{step}","filterType":"MARKET_LOT_SIZE","maxQty":"120","minQty":"{step}"}},{{"limit":200,"filterType":"MAX_NUM_ORDERS"}},{{"notional":"{notional}","filterType":"MIN_NOTIONAL"}},{{"multiplierDown":"0.9500","multiplierUp":"1.0500","multiplierDecimal":"4","filterType":"PERCENT_PRICE"}}],"orderTypes":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],"timeInForce":["GTC","IOC","FOK","GTX","GTD"]}}"#
    )
}

/// A COIN-M `exchangeInfo` symbol entry.
fn coinm_symbol(sym: &str, contract_type: &str, size: u32, pp: u8, tick: &str) -> String {
    format!(
        r#"{{"symbol":"{sym}","pair":"{pair}","contractType":"{contract_type}","deliveryDate":1640937600000,"onboardDate":1624608000000,"contractStatus":"TRADING","contractSize":{size},"marginAsset":"BTC","maintMarginPercent":"2.5000","requiredMarginPercent":"5.0000","baseAsset":"BTC","quoteAsset":"USD","pricePrecision":{pp},"quantityPrecision":0,"baseAssetPrecision":8,"quotePrecision":8,"equalQtyPrecision":4,"triggerProtect":"0.0500","maxMoveOrderLimit":10000,"underlyingType":"COIN","underlyingSubType":[],"filters":[{{"minPrice":"{tick}","maxPrice":"200000","filterType":"PRICE_FILTER","tickSize":"{tick}"}},{{"stepSize":"1","filterType":"LOT_SIZE","maxQty":"1000000","minQty":"1"}},{{"stepSize":"1","filterType":"MARKET_LOT_SIZE","maxQty":"60000","minQty":"1"}},{{"limit":200,"filterType":"MAX_NUM_ORDERS"}},{{"multiplierDown":"0.9500","multiplierUp":"1.0500","multiplierDecimal":"4","filterType":"PERCENT_PRICE"}}],"orderTypes":["LIMIT","MARKET","STOP","STOP_MARKET","TAKE_PROFIT","TAKE_PROFIT_MARKET","TRAILING_STOP_MARKET"],"timeInForce":["GTC","IOC","FOK","GTX"],"liquidationFee":"0.010000","marketTakeBound":"0.05"}}"#,
        pair = sym.split('_').next().unwrap_or(sym),
    )
}

fn exchange_info(symbols: &[String]) -> Vec<u8> {
    format!(
        r#"{{"timezone":"UTC","serverTime":1723161250000,"rateLimits":[{{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000}}],"exchangeFilters":[],"symbols":[{}]}}"#,
        symbols.join(",")
    )
    .into_bytes()
}

fn spot_info() -> Vec<u8> {
    exchange_info(&[
        spot_symbol(
            "BTCUSDT",
            "BTC",
            "USDT",
            "0.01000000",
            "0.00001000",
            "5.00000000",
        ),
        spot_symbol(
            "ETHUSDT",
            "ETH",
            "USDT",
            "0.01000000",
            "0.00010000",
            "5.00000000",
        ),
        spot_symbol(
            "NKNUSDT",
            "NKN",
            "USDT",
            "0.00001000",
            "0.10000000",
            "10.00000000",
        ),
        spot_symbol(
            "BLZETH",
            "BLZ",
            "ETH",
            "0.00000001",
            "1.00000000",
            "0.00500000",
        ),
        spot_symbol(
            "LRCBTC",
            "LRC",
            "BTC",
            "0.00000001",
            "1.00000000",
            "0.00010000",
        ),
        spot_symbol(
            "RUNEEUR",
            "RUNE",
            "EUR",
            "0.00100000",
            "0.01000000",
            "10.00000000",
        ),
    ])
}

fn usdm_info() -> Vec<u8> {
    exchange_info(&[
        usdm_symbol("BTCUSDT", 2, 3, "0.10", "0.001", "100"),
        usdm_symbol("ETHUSDT", 2, 3, "0.01", "0.001", "20"),
    ])
}

fn coinm_info() -> Vec<u8> {
    exchange_info(&[
        coinm_symbol("BTCUSD_211231", "NEXT_QUARTER", 100, 1, "0.1"),
        coinm_symbol("ETHUSD_210924", "CURRENT_QUARTER", 10, 2, "0.01"),
        coinm_symbol("BCHUSD_210924", "CURRENT_QUARTER", 10, 2, "0.01"),
        coinm_symbol("BCHUSD_PERP", "PERPETUAL", 10, 2, "0.01"),
        coinm_symbol("LINKUSD_211231", "NEXT_QUARTER", 10, 3, "0.001"),
        coinm_symbol("LINKUSD_PERP", "PERPETUAL", 10, 3, "0.001"),
        coinm_symbol("EOSUSD_PERP", "PERPETUAL", 10, 3, "0.001"),
        coinm_symbol("ETCUSD_PERP", "PERPETUAL", 10, 3, "0.001"),
        coinm_symbol("XRPUSD_PERP", "PERPETUAL", 10, 4, "0.0001"),
        coinm_symbol("TRXUSD_PERP", "PERPETUAL", 10, 5, "0.00001"),
    ])
}

fn table_with(policy: ScalePolicy) -> InstrumentTable {
    let mut table = InstrumentTable::with_capacity(64);
    for (venue, mut body) in [
        (Venue::BinanceSpot, spot_info()),
        (Venue::BinanceUsdM, usdm_info()),
        (Venue::BinanceCoinM, coinm_info()),
    ] {
        let info = ExchangeInfo::parse(&mut body, venue, policy).expect("fixture parses");
        for s in &info.symbols {
            assert!(s.spec.is_ok(), "{}: {:?}", s.symbol, s.spec);
        }
        let ids = info
            .intern_into(&mut table, |s| s.status == "TRADING")
            .expect("fixture interns");
        assert_eq!(ids.len(), info.symbols.len());
    }
    table
}

fn table() -> InstrumentTable {
    table_with(ScalePolicy::Venue)
}

// ------------------------------------------------------------------------------------------
// Captures
// ------------------------------------------------------------------------------------------

/// One captured message.
struct Line {
    /// Receive time as the capture recorded it (ns), used as the receive TSC.
    recv: u64,
    json: Vec<u8>,
    /// For a REST depth snapshot, the symbol it was requested for.
    snapshot: Option<String>,
}

struct Capture {
    name: &'static str,
    venue: Venue,
    lines: Vec<Line>,
}

fn parse_secs(s: &str) -> u64 {
    (s.trim().parse::<f64>().expect("receive time") * 1e9) as u64
}

/// hftbacktest format: `<recv ns> <json>`; REST snapshots inline, for the file's symbol.
fn load_hftbacktest(rel: &'static str, venue: Venue) -> Option<Capture> {
    let path = datadir::capture(rel)?;
    let symbol = rel
        .rsplit('/')
        .next()
        .and_then(|f| f.split('_').next())
        .expect("symbol in file name")
        .to_ascii_uppercase();
    let file = std::fs::File::open(path).expect("open capture");
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    let mut lines = Vec::new();
    for line in reader.lines() {
        let line = line.expect("read capture");
        let (recv, json) = line.split_once(' ').expect("`<ns> <json>`");
        lines.push(Line {
            recv: recv.parse().expect("receive ns"),
            json: json.as_bytes().to_vec(),
            snapshot: json
                .starts_with("{\"lastUpdateId\"")
                .then(|| symbol.clone()),
        });
    }
    Some(Capture {
        name: rel,
        venue,
        lines,
    })
}

/// cryptofeed: `<url> <-> <t>` then `<recv s.frac>: <json>` lines (`.ws.1.0`), and
/// `<url> -> <recv>: <body>` lines (`.http.0.0`).
fn load_cryptofeed(ws: &'static str, http: &'static str, venue: Venue) -> Option<Capture> {
    let ws_text = std::fs::read_to_string(datadir::capture(ws)?).expect("read ws capture");
    let mut lines = Vec::new();
    for line in ws_text.lines().skip(1).filter(|l| !l.is_empty()) {
        let (recv, json) = line.split_once(": ").expect("`<t>: <json>`");
        lines.push(Line {
            recv: parse_secs(recv),
            json: json.as_bytes().to_vec(),
            snapshot: None,
        });
    }
    let http_text = std::fs::read_to_string(datadir::capture(http)?).expect("read http capture");
    for line in http_text.lines().filter(|l| !l.is_empty()) {
        let (url, rest) = line.split_once(" -> ").expect("`<url> -> ...`");
        let (recv, body) = rest.split_once(": ").expect("`<t>: <body>`");
        let symbol = url
            .split("symbol=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("symbol in URL");
        lines.push(Line {
            recv: parse_secs(recv),
            json: body.as_bytes().to_vec(),
            snapshot: Some(symbol.to_string()),
        });
    }
    Some(Capture {
        name: ws,
        venue,
        lines,
    })
}

fn captures() -> Vec<Capture> {
    let all: Vec<Capture> = [
        load_hftbacktest("binance/spot/btcusdt_20240808.gz", Venue::BinanceSpot),
        load_hftbacktest("binance/spot/ethusdt_20240808.gz", Venue::BinanceSpot),
        load_hftbacktest("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM),
        load_hftbacktest("binance/usdm/ethusdt_20240808.gz", Venue::BinanceUsdM),
        load_cryptofeed(
            "binance/cryptofeed/BINANCE.ws.1.0",
            "binance/cryptofeed/BINANCE.http.0.0",
            Venue::BinanceSpot,
        ),
        load_cryptofeed(
            "binance/cryptofeed/BINANCE_DELIVERY.ws.1.0",
            "binance/cryptofeed/BINANCE_DELIVERY.http.0.0",
            Venue::BinanceCoinM,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if all.is_empty() {
        eprintln!(
            "skipping: no Binance capture found under {}",
            datadir::data_dir().display()
        );
    }
    all
}

// ------------------------------------------------------------------------------------------
// Running both decoders
// ------------------------------------------------------------------------------------------

type Outcome = Result<(Decoded, Vec<MarketEvent>), DecodeError>;

fn run<D: Decoder>(d: &mut D, table: &InstrumentTable, line: &Line, venue: Venue) -> Outcome {
    let mut buf = line.json.clone();
    let mut events = Vec::new();
    let r = match &line.snapshot {
        None => d.decode(&mut buf, line.recv, &mut |e| events.push(e)),
        Some(sym) => {
            let id = table
                .lookup(venue, sym.as_bytes())
                .unwrap_or_else(|| panic!("fixture lacks {sym}"));
            d.decode_depth_snapshot(&mut buf, id, line.recv, &mut |e| events.push(e))
        }
    };
    match r {
        Ok(d) => {
            assert_eq!(d.events, events.len(), "summary counts the events emitted");
            Ok((d, events))
        }
        Err(e) => {
            assert!(
                events.is_empty(),
                "an error must emit nothing, got {events:?}"
            );
            Err(e)
        }
    }
}

/// Decode `json` with both decoders and assert they agree: the same events, or both errors (of
/// the same kind unless the input is not acceptable JSON, where they may notice different
/// problems first). Returns the scanner's outcome.
fn both(table: &InstrumentTable, venue: Venue, json: &[u8], snapshot: Option<&str>) -> Outcome {
    let line = Line {
        recv: 7,
        json: json.to_vec(),
        snapshot: snapshot.map(str::to_string),
    };
    let mut scanner = Scanner::new(table, venue);
    let mut reference = SimdDecoder::new(table, venue);
    let a = run(&mut scanner, table, &line, venue);
    let b = run(&mut reference, table, &line, venue);
    assert_agree(&a, &b, json);
    a
}

fn assert_agree(a: &Outcome, b: &Outcome, json: &[u8]) {
    let text = String::from_utf8_lossy(json);
    match (a, b) {
        (Ok(x), Ok(y)) => assert_eq!(x, y, "decoders disagree on {text}"),
        (Err(x), Err(y)) => {
            if !(x.kind().is_syntax() && y.kind().is_syntax()) {
                assert_eq!(x.kind(), y.kind(), "scanner {x} vs reference {y} on {text}");
            }
        }
        _ => panic!("scanner {a:?}\nreference {b:?}\non {text}"),
    }
}

// ------------------------------------------------------------------------------------------
// (a) scanner == reference on every captured message
// ------------------------------------------------------------------------------------------

#[test]
fn scanner_matches_reference_on_every_captured_message() {
    let table = table();
    let mut total = 0usize;
    let mut events = 0usize;
    for cap in captures() {
        let mut scanner = Scanner::new(&table, cap.venue);
        let mut reference = SimdDecoder::new(&table, cap.venue);
        for (n, line) in cap.lines.iter().enumerate() {
            let a = run(&mut scanner, &table, line, cap.venue);
            let b = run(&mut reference, &table, line, cap.venue);
            assert_agree(&a, &b, &line.json);
            match a {
                Ok((_, ev)) => events += ev.len(),
                Err(e) => panic!("{} line {}: {e}", cap.name, n + 1),
            }
        }
        assert_eq!(scanner.stats(), reference.stats());
        assert_eq!(scanner.stats().total_errors(), 0);
        eprintln!(
            "{}: {} messages, {}",
            cap.name,
            cap.lines.len(),
            scanner.stats()
        );
        total += cap.lines.len();
    }
    eprintln!("{total} messages, {events} events: scanner == simd-json reference");
}

// ------------------------------------------------------------------------------------------
// (b) independent aggregates from serde_json::Value
// ------------------------------------------------------------------------------------------

/// Per (symbol, kind): counts, sums and extremes, all exact integers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Agg {
    /// Events (levels for depth).
    n: u64,
    /// Messages.
    msgs: u64,
    /// Buy-aggressor qty (trades), bid qty (book ticker, depth), taker-buy volume (kline).
    q_buy: i128,
    /// Sell-aggressor qty, ask qty, volume.
    q_sell: i128,
    /// Minimum trade/level price, best bid, kline low.
    px_min: Option<i128>,
    /// Maximum trade/level price, best ask, kline high.
    px_max: Option<i128>,
    /// Trade/aggregate ids, book-ticker update ids, final update ids per depth message, kline
    /// trade counts.
    id_sum: u128,
    /// Venue nanoseconds, once per message.
    t_sum: u128,
}

impl Agg {
    fn px(&mut self, lo: i128, hi: i128) {
        self.px_min = Some(self.px_min.map_or(lo, |m| m.min(lo)));
        self.px_max = Some(self.px_max.map_or(hi, |m| m.max(hi)));
    }
}

type Aggs = BTreeMap<(String, &'static str), Agg>;

fn aggregate_events(table: &InstrumentTable, events: &[MarketEvent], out: &mut Aggs) {
    for e in events {
        let sym = table.get(e.instrument).symbol.as_str().to_string();
        let kind = match e.kind {
            MarketKind::Trade => "trade",
            MarketKind::AggTrade => "aggTrade",
            MarketKind::BookTicker => "bookTicker",
            MarketKind::DepthLevel if e.has(MarketEvent::FLAG_SNAPSHOT) => "snapshot",
            MarketKind::DepthLevel => "depth",
            MarketKind::Kline => "kline",
            MarketKind::Quote => unreachable!("Binance sends no quotes"),
        };
        let a = out.entry((sym, kind)).or_default();
        a.n += 1;
        let (p, q) = (i128::from(e.price.0), i128::from(e.qty.0));
        match e.kind {
            MarketKind::Trade | MarketKind::AggTrade => {
                a.msgs += 1;
                match e.aggressor {
                    Aggressor::Buy => a.q_buy += q,
                    Aggressor::Sell => a.q_sell += q,
                    Aggressor::Unknown => panic!("trade without aggressor"),
                }
                a.px(p, p);
                a.id_sum += u128::from(e.id);
                a.t_sum += u128::from(e.stamps.venue_ns);
            }
            MarketKind::BookTicker => {
                a.msgs += 1;
                a.q_buy += i128::from(e.bid_qty.0);
                a.q_sell += i128::from(e.ask_qty.0);
                a.px(i128::from(e.bid_px.0), i128::from(e.ask_px.0));
                a.id_sum += u128::from(e.id);
                a.t_sum += u128::from(e.stamps.venue_ns);
            }
            MarketKind::DepthLevel => {
                if e.is_last() {
                    a.msgs += 1;
                    a.id_sum += u128::from(e.id);
                    a.t_sum += u128::from(e.stamps.venue_ns);
                }
                match e.depth_side() {
                    Side::Buy => a.q_buy += q,
                    Side::Sell => a.q_sell += q,
                }
                a.px(p, p);
            }
            MarketKind::Kline => {
                let k = e.as_kline().expect("kline");
                a.msgs += 1;
                a.q_buy += i128::from(k.taker_buy_volume.0);
                a.q_sell += i128::from(k.volume.0);
                a.px(i128::from(k.low.0), i128::from(k.high.0));
                a.id_sum += u128::from(k.trades);
                a.t_sum += u128::from(e.stamps.venue_ns);
            }
            MarketKind::Quote => unreachable!(),
        }
    }
}

/// A decimal string as an integer at `scale`, by string manipulation only (independent of
/// `hotpath::fixed`). Panics if digits beyond the scale are not zeros.
fn dec(s: &str, scale: u8) -> i128 {
    let scale = usize::from(scale);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(
        frac.len() <= scale || frac[scale..].bytes().all(|c| c == b'0'),
        "{s} has more than {scale} decimals"
    );
    let mut digits = String::from(int);
    for i in 0..scale {
        digits.push(frac.as_bytes().get(i).map_or('0', |&c| char::from(c)));
    }
    digits.parse().expect("decimal digits")
}

fn aggregate_json(table: &InstrumentTable, venue: Venue, line: &Line, out: &mut Aggs) {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(&line.json).expect("capture is JSON");
    let d = v.get("data").unwrap_or(&v);
    let str_of = |v: &Value, k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
    let u64_of = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}"));
    let ms =
        |v: &Value, k: &str| u128::from(v.get(k).and_then(Value::as_u64).unwrap_or(0)) * 1_000_000;
    let (sym, kind) = match &line.snapshot {
        Some(sym) => (sym.clone(), "snapshot"),
        None => {
            let kind = match d.get("e").and_then(Value::as_str) {
                None | Some("bookTicker") => "bookTicker",
                Some("trade") => "trade",
                Some("aggTrade") => "aggTrade",
                Some("depthUpdate") => "depth",
                Some("kline") => "kline",
                Some(other) => panic!("unexpected event {other}"),
            };
            (str_of(d, "s"), kind)
        }
    };
    let spec = table.get(
        table
            .lookup(venue, sym.as_bytes())
            .expect("symbol in table"),
    );
    let (ps, qs) = (spec.price_scale, spec.qty_scale);
    let a = out
        .entry((spec.symbol.as_str().to_string(), kind))
        .or_default();
    match kind {
        "trade" | "aggTrade" => {
            a.n += 1;
            a.msgs += 1;
            let q = dec(&str_of(d, "q"), qs);
            if d["m"].as_bool().expect("m") {
                a.q_sell += q;
            } else {
                a.q_buy += q;
            }
            let p = dec(&str_of(d, "p"), ps);
            a.px(p, p);
            a.id_sum += u128::from(u64_of(d, if kind == "trade" { "t" } else { "a" }));
            a.t_sum += ms(d, "T");
        }
        "bookTicker" => {
            a.n += 1;
            a.msgs += 1;
            a.q_buy += dec(&str_of(d, "B"), qs);
            a.q_sell += dec(&str_of(d, "A"), qs);
            a.px(dec(&str_of(d, "b"), ps), dec(&str_of(d, "a"), ps));
            a.id_sum += u128::from(u64_of(d, "u"));
            a.t_sum += ms(d, "E");
        }
        "depth" | "snapshot" => {
            let (bk, ak, idk) = if kind == "depth" {
                ("b", "a", "u")
            } else {
                ("bids", "asks", "lastUpdateId")
            };
            let (bids, asks) = (
                d[bk].as_array().expect("bids"),
                d[ak].as_array().expect("asks"),
            );
            if !bids.is_empty() || !asks.is_empty() {
                a.msgs += 1;
                a.id_sum += u128::from(u64_of(d, idk));
                a.t_sum += ms(d, "E");
            }
            for (levels, bid) in [(bids, true), (asks, false)] {
                for l in levels {
                    a.n += 1;
                    let p = dec(l[0].as_str().expect("price"), ps);
                    let q = dec(l[1].as_str().expect("qty"), qs);
                    if bid {
                        a.q_buy += q;
                    } else {
                        a.q_sell += q;
                    }
                    a.px(p, p);
                }
            }
        }
        "kline" => {
            let k = &d["k"];
            a.n += 1;
            a.msgs += 1;
            a.q_buy += dec(&str_of(k, "V"), qs);
            a.q_sell += dec(&str_of(k, "v"), qs);
            a.px(dec(&str_of(k, "l"), ps), dec(&str_of(k, "h"), ps));
            a.id_sum += u128::from(u64_of(k, "n"));
            a.t_sum += ms(d, "E");
        }
        _ => unreachable!(),
    }
}

#[test]
fn events_match_independent_serde_json_aggregates() {
    let table = table();
    for cap in captures() {
        let mut scanner = Scanner::new(&table, cap.venue);
        let (mut from_events, mut from_json) = (Aggs::new(), Aggs::new());
        for line in &cap.lines {
            let (_, events) = run(&mut scanner, &table, line, cap.venue).expect("decodes");
            aggregate_events(&table, &events, &mut from_events);
            aggregate_json(&table, cap.venue, line, &mut from_json);
        }
        assert_eq!(from_events, from_json, "{}", cap.name);
        for ((sym, kind), a) in &from_events {
            eprintln!(
                "{:<44} {sym:<14} {kind:<10} msgs {:>6} events {:>7} buy/bid qty {} sell/ask qty {}",
                cap.name, a.msgs, a.n, a.q_buy, a.q_sell
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// (c) hand-checked first messages
// ------------------------------------------------------------------------------------------

fn first<'a>(cap: &'a Capture, pat: &str) -> &'a Line {
    cap.lines
        .iter()
        .find(|l| std::str::from_utf8(&l.json).unwrap().contains(pat))
        .unwrap_or_else(|| panic!("{} has no {pat}", cap.name))
}

fn decode_line(table: &InstrumentTable, cap: &Capture, line: &Line) -> (Decoded, Vec<MarketEvent>) {
    let mut scanner = Scanner::new(table, cap.venue);
    run(&mut scanner, table, line, cap.venue).expect("decodes")
}

#[test]
fn spot_first_messages_by_hand() {
    let Some(cap) = load_hftbacktest("binance/spot/btcusdt_20240808.gz", Venue::BinanceSpot) else {
        return;
    };
    let table = table();
    let btc = table.lookup(Venue::BinanceSpot, b"BTCUSDT").unwrap();
    let spec = table.get(btc);
    assert_eq!((spec.price_scale, spec.qty_scale), (8, 8));

    // {"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":50093239189,"u":50093239202,
    //  "b":[["61737.63000000","0.00000000"],["61730.17000000","0.00000000"],
    //       ["56854.58000000","0.00000000"]],
    //  "a":[["61837.64000000","1.54698000"], ... 9 levels ... ["61937.64000000","0.02000000"]]}
    let line = &cap.lines[0];
    assert_eq!(line.recv, 1_723_161_253_937_085_768);
    let (d, ev) = decode_line(&table, &cap, line);
    let ids = DepthIds {
        first_update_id: 50_093_239_189,
        final_update_id: 50_093_239_202,
        prev_final_update_id: None,
    };
    assert_eq!(d.kind, MarketKind::DepthLevel);
    assert_eq!(d.depth, Some(ids));
    assert_eq!(ev.len(), 12);
    assert!(ev
        .iter()
        .all(|e| e.depth_ids() == ids && e.instrument == btc));
    assert!(ev
        .iter()
        .all(|e| e.stamps.venue_ns == 1_723_161_255_208_000_000));
    assert!(ev
        .iter()
        .all(|e| e.stamps.recv_tsc == 1_723_161_253_937_085_768));
    assert_eq!(ev[0].depth_side(), Side::Buy);
    assert_eq!((ev[0].price, ev[0].qty), (Price(6_173_763_000_000), Qty(0)));
    assert_eq!(ev[2].price, Price(5_685_458_000_000));
    assert_eq!(ev[3].depth_side(), Side::Sell);
    assert_eq!(
        (ev[3].price, ev[3].qty),
        (Price(6_183_764_000_000), Qty(154_698_000))
    );
    assert_eq!(
        (ev[11].price, ev[11].qty),
        (Price(6_193_764_000_000), Qty(2_000_000))
    );
    assert!(ev[11].is_last() && !ev[10].is_last());
    assert!(ev.iter().all(|e| !e.has(MarketEvent::FLAG_HAS_PREV_ID)));

    // {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000",
    //  "a":"61837.64000000","A":"1.54698000"}  (spot: no E)
    let (d, ev) = decode_line(&table, &cap, first(&cap, "@bookTicker"));
    assert_eq!((d.kind, d.events), (MarketKind::BookTicker, 1));
    let e = ev[0];
    assert_eq!(e.id, 50_093_239_212);
    assert_eq!(
        (e.bid_px, e.bid_qty),
        (Price(6_183_763_000_000), Qty(378_826_000))
    );
    assert_eq!(
        (e.ask_px, e.ask_qty),
        (Price(6_183_764_000_000), Qty(154_698_000))
    );
    assert_eq!(e.stamps.venue_ns, 0);

    // {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
    //  "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    let (_, ev) = decode_line(&table, &cap, first(&cap, "@trade"));
    let e = ev[0];
    assert_eq!(e.kind, MarketKind::Trade);
    assert_eq!(e.id, 3_735_683_259);
    assert_eq!((e.price, e.qty), (Price(6_183_763_000_000), Qty(2_000_000)));
    assert_eq!(
        e.aggressor,
        Aggressor::Sell,
        "m=true: the buyer was the maker"
    );
    assert_eq!(
        e.stamps.venue_ns, 1_723_161_255_342_000_000,
        "trades use T, not E"
    );
    assert_eq!(e.price_decimal().to_string(), "61837.63000000");

    // REST snapshot {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...
    let snap = cap.lines.iter().find(|l| l.snapshot.is_some()).unwrap();
    let (d, ev) = decode_line(&table, &cap, snap);
    assert_eq!(d.events, ev.len());
    assert!(ev.len() > 1000);
    assert!(ev
        .iter()
        .all(|e| e.has(MarketEvent::FLAG_SNAPSHOT) && e.stamps.venue_ns == 0));
    assert_eq!(ev[0].depth_ids().final_update_id, 50_093_239_218);
    assert_eq!(ev[0].depth_ids().first_update_id, 50_093_239_218);
    assert_eq!(
        (ev[0].price, ev[0].qty),
        (Price(6_183_763_000_000), Qty(378_826_000))
    );
    assert_eq!(ev.iter().filter(|e| e.is_last()).count(), 1);
    assert!(ev.last().unwrap().is_last());
}

#[test]
fn usdm_first_messages_by_hand() {
    let Some(cap) = load_hftbacktest("binance/usdm/btcusdt_20240808.gz", Venue::BinanceUsdM) else {
        return;
    };
    let table = table();
    let btc = table.lookup(Venue::BinanceUsdM, b"BTCUSDT").unwrap();
    let spec = table.get(btc);
    assert_eq!(spec.kind, InstrumentKind::Perp);
    assert_eq!((spec.price_scale, spec.qty_scale), (2, 3));
    assert_eq!((spec.tick, spec.step), (Price(10), Qty(1)));

    // {"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT",
    //  "U":5123107832006,"u":5123107837557,"pu":5123107831937,
    //  "b":[["58710.20","0.014"],["61496.50","0.010"],...
    let (d, ev) = decode_line(&table, &cap, &cap.lines[0]);
    let ids = DepthIds {
        first_update_id: 5_123_107_832_006,
        final_update_id: 5_123_107_837_557,
        prev_final_update_id: Some(5_123_107_831_937),
    };
    assert_eq!(d.depth, Some(ids));
    assert!(ev
        .iter()
        .all(|e| e.depth_ids() == ids && e.has(MarketEvent::FLAG_HAS_PREV_ID)));
    assert!(
        ev.iter()
            .all(|e| e.stamps.venue_ns == 1_723_161_256_299_000_000),
        "E, not T"
    );
    assert_eq!((ev[0].price, ev[0].qty), (Price(5_871_020), Qty(14)));
    assert_eq!((ev[1].price, ev[1].qty), (Price(6_149_650), Qty(10)));

    // {"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507",
    //  "a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}
    let (_, ev) = decode_line(&table, &cap, first(&cap, "@bookTicker"));
    let e = ev[0];
    assert_eq!(e.id, 5_123_107_839_020);
    assert_eq!(
        (e.bid_px, e.bid_qty, e.ask_px, e.ask_qty),
        (Price(6_180_020), Qty(2_507), Price(6_180_030), Qty(2_510))
    );
    assert_eq!(e.stamps.venue_ns, 1_723_161_256_313_000_000);

    // {"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,
    //  "p":"61800.30","q":"0.006","X":"MARKET","m":false}
    let (_, ev) = decode_line(&table, &cap, first(&cap, "@trade"));
    let e = ev[0];
    assert_eq!(
        (e.id, e.price, e.qty),
        (5_266_583_935, Price(6_180_030), Qty(6))
    );
    assert_eq!(e.aggressor, Aggressor::Buy);

    // {"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,
    //  "bids":[["61800.20","2.909"],...
    let snap = cap.lines.iter().find(|l| l.snapshot.is_some()).unwrap();
    let (_, ev) = decode_line(&table, &cap, snap);
    assert_eq!(ev[0].depth_ids().final_update_id, 5_123_107_852_948);
    assert_eq!(ev[0].stamps.venue_ns, 1_723_161_256_501_000_000);
    assert_eq!((ev[0].price, ev[0].qty), (Price(6_180_020), Qty(2_909)));
}

#[test]
fn cryptofeed_first_messages_by_hand() {
    let table = table();
    if let Some(cap) = load_cryptofeed(
        "binance/cryptofeed/BINANCE.ws.1.0",
        "binance/cryptofeed/BINANCE.http.0.0",
        Venue::BinanceSpot,
    ) {
        // {"e":"kline","E":1633998523963,"s":"NKNUSDT","k":{"t":1633998480000,
        //  "T":1633998539999,"s":"NKNUSDT","i":"1m","f":19862761,"L":19862790,
        //  "o":"0.35270000","c":"0.35280000","h":"0.35280000","l":"0.35220000",
        //  "v":"25877.00000000","n":30,"x":false,"q":"9116.04600000","V":"58.00000000",...}}
        let (d, ev) = decode_line(&table, &cap, first(&cap, "\"e\":\"kline\""));
        assert_eq!((d.kind, d.events), (MarketKind::Kline, 1));
        let e = ev[0];
        let k = e.as_kline().unwrap();
        assert_eq!(table.get(e.instrument).symbol.as_str(), "NKNUSDT");
        assert_eq!(k.open, Price(35_270_000));
        assert_eq!(k.close, Price(35_280_000));
        assert_eq!(k.high, Price(35_280_000));
        assert_eq!(k.low, Price(35_220_000));
        assert_eq!(k.volume, Qty(2_587_700_000_000));
        assert_eq!(k.taker_buy_volume, Qty(5_800_000_000));
        assert_eq!((k.trades, k.interval_secs, k.closed), (30, 60, false));
        assert_eq!(k.open_time_ns, 1_633_998_480_000_000_000);
        assert_eq!(k.close_time_ns, 1_633_998_539_999_000_000);
        assert_eq!(e.stamps.venue_ns, 1_633_998_523_963_000_000);
        assert_eq!(e.stamps.recv_tsc, parse_secs("1633998523.9572978"));

        // {"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",
        //  "q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}
        let (_, ev) = decode_line(&table, &cap, first(&cap, "\"e\":\"aggTrade\""));
        let e = ev[0];
        assert_eq!(e.kind, MarketKind::AggTrade);
        assert_eq!((e.price, e.qty), (Price(35_280_000), Qty(5_800_000_000)));
        let ids = e.agg_trade_ids();
        assert_eq!(
            (ids.agg_id, ids.first_trade_id, ids.last_trade_id),
            (15_683_430, 19_862_790, 19_862_790)
        );
        assert_eq!(e.aggressor, Aggressor::Buy);

        // https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000 ->
        //   {"lastUpdateId":499869752,"bids":[["0.35210000","672.00000000"],...
        let snap = cap
            .lines
            .iter()
            .find(|l| l.snapshot.as_deref() == Some("NKNUSDT"))
            .unwrap();
        let (_, ev) = decode_line(&table, &cap, snap);
        assert_eq!(ev[0].depth_ids().final_update_id, 499_869_752);
        assert_eq!(
            (ev[0].price, ev[0].qty),
            (Price(35_210_000), Qty(67_200_000_000))
        );
    }
    if let Some(cap) = load_cryptofeed(
        "binance/cryptofeed/BINANCE_DELIVERY.ws.1.0",
        "binance/cryptofeed/BINANCE_DELIVERY.http.0.0",
        Venue::BinanceCoinM,
    ) {
        let eth = table.lookup(Venue::BinanceCoinM, b"ETHUSD_210924").unwrap();
        let spec = table.get(eth);
        assert_eq!(spec.kind, InstrumentKind::InverseFuture);
        assert_eq!(spec.contract_size.to_string(), "10");
        assert_eq!((spec.price_scale, spec.qty_scale), (2, 0));
        assert_eq!(
            table
                .get(table.lookup(Venue::BinanceCoinM, b"BCHUSD_PERP").unwrap())
                .kind,
            InstrumentKind::InversePerp
        );

        // {"e":"kline","E":1626916405054,"s":"ETHUSD_210924","k":{"t":1626916380000,
        //  "T":1626916439999,"s":"ETHUSD_210924","i":"1m","f":11380855,"L":11380895,
        //  "o":"1992.70","c":"1992.17","h":"1993.71","l":"1992.17","v":"1893","n":41,
        //  "x":false,"q":"9.49653573","V":"1368","Q":"6.86228695","B":"0"}}
        let (_, ev) = decode_line(&table, &cap, first(&cap, "\"e\":\"kline\""));
        let k = ev[0].as_kline().unwrap();
        assert_eq!(ev[0].instrument, eth);
        assert_eq!(
            (k.open, k.close, k.high, k.low),
            (
                Price(199_270),
                Price(199_217),
                Price(199_371),
                Price(199_217)
            )
        );
        assert_eq!(
            (k.volume, k.taker_buy_volume, k.trades),
            (Qty(1893), Qty(1368), 41)
        );

        // {"e":"aggTrade","E":1626916404006,"a":11285749,"s":"BCHUSD_PERP","p":"427.91",
        //  "q":"3","f":16034449,"l":16034449,"T":1626916403852,"m":true}
        let (_, ev) = decode_line(&table, &cap, first(&cap, "\"e\":\"aggTrade\""));
        assert_eq!(
            (ev[0].price, ev[0].qty, ev[0].aggressor),
            (Price(42_791), Qty(3), Aggressor::Sell)
        );
        assert_eq!(ev[0].stamps.venue_ns, 1_626_916_403_852_000_000);

        // {"u":167006084895,"e":"bookTicker","s":"BCHUSD_PERP","ps":"BCHUSD","b":"427.84",
        //  "B":"24","a":"427.90","A":"669","T":1626916403864,"E":1626...}
        let (_, ev) = decode_line(&table, &cap, first(&cap, "@bookTicker"));
        let e = ev[0];
        assert_eq!(
            (e.id, e.bid_px, e.bid_qty, e.ask_px, e.ask_qty),
            (
                167_006_084_895,
                Price(42_784),
                Qty(24),
                Price(42_790),
                Qty(669)
            )
        );

        // dapi snapshot: {"lastUpdateId":167006089178,"E":1626916404580,"T":1626916404574,
        //  "symbol":"BCHUSD_PERP","pair":"BCHUSD","bids":[["427.90","169"],...
        let snap = cap
            .lines
            .iter()
            .find(|l| l.snapshot.as_deref() == Some("BCHUSD_PERP"))
            .unwrap();
        let (_, ev) = decode_line(&table, &cap, snap);
        assert_eq!(ev[0].depth_ids().final_update_id, 167_006_089_178);
        assert_eq!((ev[0].price, ev[0].qty), (Price(42_790), Qty(169)));
        assert_eq!(ev[0].stamps.venue_ns, 1_626_916_404_580_000_000);
    }
}

// ------------------------------------------------------------------------------------------
// exchangeInfo and scale policies
// ------------------------------------------------------------------------------------------

#[test]
fn exchange_info_scales_and_filters() {
    let mut body = spot_info();
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceSpot, ScalePolicy::Filters).unwrap();
    let btc = info.get("btcusdt").unwrap().spec.clone().unwrap();
    assert_eq!((btc.price_scale, btc.qty_scale), (2, 5));
    assert_eq!(
        (btc.tick, btc.step, btc.min_qty),
        (Price(1), Qty(1), Qty(1))
    );
    assert_eq!(btc.min_notional.to_string(), "5");
    let mut body = spot_info();
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceSpot, ScalePolicy::Venue).unwrap();
    let btc = info.get("BTCUSDT").unwrap().spec.clone().unwrap();
    assert_eq!((btc.price_scale, btc.qty_scale), (8, 8));
    assert_eq!((btc.tick, btc.step), (Price(1_000_000), Qty(1_000)));

    let mut body = usdm_info();
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceUsdM, ScalePolicy::Venue).unwrap();
    let btc = info.get("BTCUSDT").unwrap().spec.clone().unwrap();
    assert_eq!(btc.min_notional.to_string(), "100");
    assert_eq!(btc.contract_size.to_string(), "1");

    let mut body = coinm_info();
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceCoinM, ScalePolicy::Venue).unwrap();
    let btc = info.get("BTCUSD_211231").unwrap().spec.clone().unwrap();
    assert_eq!(btc.contract_size.to_string(), "100");
    assert_eq!(info.get("BTCUSD_211231").unwrap().status, "TRADING");
    assert_eq!((btc.price_scale, btc.qty_scale, btc.tick), (1, 0, Price(1)));

    // A broken entry is reported, the rest still load.
    let mut body = exchange_info(&[
        spot_symbol("BTCUSDT", "BTC", "USDT", "0.01000000", "0.00001000", "5.00000000"),
        r#"{"symbol":"BADUSDT","status":"TRADING","filters":[{"filterType":"PRICE_FILTER","tickSize":"0.00000000"}]}"#.to_string(),
    ]);
    let info = ExchangeInfo::parse(&mut body, Venue::BinanceSpot, ScalePolicy::Venue).unwrap();
    assert!(info.get("BTCUSDT").unwrap().spec.is_ok());
    let bad = info.get("BADUSDT").unwrap().spec.clone().unwrap_err();
    assert!(bad.to_string().contains("BADUSDT"), "{bad}");
    let mut t = InstrumentTable::with_capacity(4);
    assert_eq!(info.intern_into(&mut t, |_| true).unwrap().len(), 1);
    assert!(ExchangeInfo::parse(
        &mut b"{\"symbols\":".to_vec(),
        Venue::BinanceSpot,
        ScalePolicy::Venue
    )
    .is_err());
    assert!(
        ExchangeInfo::parse(&mut b"{}".to_vec(), Venue::BinanceSpot, ScalePolicy::Venue).is_err()
    );
    assert!(ExchangeInfo::parse(&mut spot_info(), Venue::Bybit, ScalePolicy::Venue).is_err());
}

/// With tick/step scales, the real spot captures contain depth levels from orders placed under
/// an older, finer step (BTCUSDT `"25.42618900"` with a step of 0.00001): rejected as too
/// precise, by both decoders alike. This is why the default policy is `Venue`.
#[test]
fn filter_scales_reject_legacy_spot_levels() {
    let strict = table_with(ScalePolicy::Filters);
    for (rel, expected) in [
        ("binance/spot/btcusdt_20240808.gz", 3),
        ("binance/spot/ethusdt_20240808.gz", 2),
    ] {
        let Some(cap) = load_hftbacktest(rel, Venue::BinanceSpot) else {
            continue;
        };
        let mut scanner = Scanner::new(&strict, cap.venue);
        let mut reference = SimdDecoder::new(&strict, cap.venue);
        let mut rejected = 0;
        for line in &cap.lines {
            let a = run(&mut scanner, &strict, line, cap.venue);
            let b = run(&mut reference, &strict, line, cap.venue);
            assert_agree(&a, &b, &line.json);
            if let Err(e) = a {
                assert!(
                    matches!(e, DecodeError::TooPrecise { scale: 5 | 4, .. }),
                    "{e}"
                );
                rejected += 1;
            }
        }
        assert_eq!(rejected, expected, "{rel}");
        assert_eq!(scanner.stats().errors(ErrorKind::TooPrecise), expected);
    }
}

// ------------------------------------------------------------------------------------------
// (d) bad input
// ------------------------------------------------------------------------------------------

const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
const BOOK: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
const DEPTH: &str = r#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,"b":[["58710.20","0.014"],["61496.50","0.010"]],"a":[["61800.30","3.330"]]}}"#;
const KLINE: &str = r#"{"stream":"ethusd_210924@kline_1m","data":{"e":"kline","E":1626916405054,"s":"ETHUSD_210924","k":{"t":1626916380000,"T":1626916439999,"s":"ETHUSD_210924","i":"1m","f":11380855,"L":11380895,"o":"1992.70","c":"1992.17","h":"1993.71","l":"1992.17","v":"1893","n":41,"x":false,"q":"9.49653573","V":"1368","Q":"6.86228695","B":"0"}}}"#;
const AGG: &str = r#"{"stream":"bchusd_perp@aggTrade","data":{"e":"aggTrade","E":1626916404006,"a":11285749,"s":"BCHUSD_PERP","p":"427.91","q":"3","f":16034449,"l":16034449,"T":1626916403852,"m":true}}"#;
const SNAPSHOT: &str = r#"{"lastUpdateId":167006089178,"E":1626916404580,"T":1626916404574,"symbol":"BCHUSD_PERP","pair":"BCHUSD","bids":[["427.90","169"],["427.89","515"]],"asks":[["427.91","24"]]}"#;

fn err(table: &InstrumentTable, venue: Venue, json: &str) -> DecodeError {
    both(table, venue, json.as_bytes(), None).expect_err(json)
}

#[test]
fn fixtures_decode() {
    let table = table();
    assert_eq!(
        both(&table, Venue::BinanceSpot, TRADE.as_bytes(), None)
            .unwrap()
            .1
            .len(),
        1
    );
    assert_eq!(
        both(&table, Venue::BinanceSpot, BOOK.as_bytes(), None)
            .unwrap()
            .1
            .len(),
        1
    );
    assert_eq!(
        both(&table, Venue::BinanceUsdM, DEPTH.as_bytes(), None)
            .unwrap()
            .1
            .len(),
        3
    );
    assert_eq!(
        both(&table, Venue::BinanceCoinM, KLINE.as_bytes(), None)
            .unwrap()
            .1
            .len(),
        1
    );
    assert_eq!(
        both(&table, Venue::BinanceCoinM, AGG.as_bytes(), None)
            .unwrap()
            .1
            .len(),
        1
    );
    let (d, ev) = both(
        &table,
        Venue::BinanceCoinM,
        SNAPSHOT.as_bytes(),
        Some("BCHUSD_PERP"),
    )
    .unwrap();
    assert_eq!((d.events, ev.len()), (3, 3));
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let table = table();
    let mut cases: Vec<(Venue, Vec<u8>, Option<&str>)> = vec![
        (Venue::BinanceSpot, TRADE.into(), None),
        (Venue::BinanceSpot, BOOK.into(), None),
        (Venue::BinanceUsdM, DEPTH.into(), None),
        (Venue::BinanceCoinM, KLINE.into(), None),
        (Venue::BinanceCoinM, AGG.into(), None),
        (Venue::BinanceCoinM, SNAPSHOT.into(), Some("BCHUSD_PERP")),
    ];
    // And the first real message of each kind in each capture (of at most 2 KB: every prefix
    // of it is decoded twice).
    for cap in captures() {
        for pat in ["@trade", "@bookTicker", "@depth", "@aggTrade", "@kline"] {
            if let Some(l) = cap.lines.iter().find(|l| {
                l.snapshot.is_none()
                    && l.json.len() <= 2048
                    && std::str::from_utf8(&l.json).unwrap().contains(pat)
            }) {
                cases.push((cap.venue, l.json.clone(), None));
            }
        }
    }
    let mut checked = 0;
    for (venue, msg, snap) in &cases {
        assert!(both(&table, *venue, msg, *snap).is_ok());
        for cut in 0..msg.len() {
            let r = both(&table, *venue, &msg[..cut], *snap);
            let e = r.expect_err("a strict prefix of a message is never a message");
            assert!(e.kind().is_syntax(), "prefix {cut}: {e}");
            checked += 1;
        }
    }
    eprintln!("{checked} truncated messages rejected by both decoders");
}

#[test]
fn malformed_json_is_rejected() {
    let table = table();
    let v = Venue::BinanceSpot;
    for bad in [
        "",
        "   ",
        "{",
        "}",
        "[",
        "nul",
        "{\"stream\":\"x\",\"data\":{\"e\":\"trade\"}",
        "{\"e\":\"trade\",}",
        "{\"e\" \"trade\"}",
        "{\"e\":\"trade\" \"s\":\"BTCUSDT\"}",
        "{\"e\":'trade'}",
        "{e:\"trade\"}",
        "{\"e\":\"tr\nade\"}",
        "{\"e\":\"trade\"}x",
        "{\"e\":\"trade\"}{}",
        "{\"t\":01}",
        "{\"t\":-}",
        "{\"t\":1.5}",
        "{\"t\":1e3}",
        "{\"t\":18446744073709551616}",
        "{\"t\":-9223372036854775809}",
        "{\"t\":1234567890123456789x}",
        "{\"t\":1\u{0}}",
        "{\"t\":tru}",
        "{\"t\":True}",
        "{\"s\":\"\\x\"}",
        "{\"s\":\"\\u12G4\"}",
        "{\"s\":\"\\udc00\"}",
        "{\"s\":\"\\ud800\\u0041\"}",
        "{\"a\":[1,]}",
        "{\"a\":[1 2]}",
        "{\"a\":{\"x\":1,}}",
        "\u{feff}{}",
    ] {
        let e = err(&table, v, bad);
        assert!(e.kind().is_syntax(), "{bad:?}: {e}");
    }
    // Invalid UTF-8 inside a string.
    let e = both(&table, v, b"{\"s\":\"BTC\xffUSDT\"}", None).unwrap_err();
    assert!(e.kind().is_syntax(), "{e}");
    // Nesting: 64 levels are fine, 65 are not.
    let nest = |n: usize| format!("{{\"x\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
    let e = err(&table, v, &nest(64));
    assert_eq!(e.kind(), ErrorKind::MissingField, "{e}");
    let e = err(&table, v, &nest(65));
    assert!(e.kind().is_syntax(), "{e}");
    let e = err(&table, v, &nest(100_000));
    assert!(e.kind().is_syntax(), "{e}");
}

#[test]
fn semantic_errors() {
    let t = table();
    let s = Venue::BinanceSpot;
    let trade = |from: &str, to: &str| TRADE.replacen(from, to, 1);

    let e = err(
        &t,
        s,
        &trade("\"e\":\"trade\"", "\"e\":\"markPriceUpdate\""),
    );
    assert_eq!(e.to_string(), "unknown event type \"markPriceUpdate\"");
    let e = err(&t, s, &trade("BTCUSDT", "DOGEUSDT"));
    assert_eq!(e.to_string(), "unknown symbol \"DOGEUSDT\" on binance_spot");
    let e = err(&t, Venue::BinanceCoinM, TRADE);
    assert_eq!(e.kind(), ErrorKind::UnknownSymbol, "symbols are per venue");
    let e = err(&t, s, &trade("\"0.02000000\"", "\"0.020000001\""));
    assert_eq!(
        e,
        DecodeError::TooPrecise {
            field: "q",
            scale: 8
        }
    );
    let e = err(
        &t,
        Venue::BinanceUsdM,
        &DEPTH.replace("\"61496.50\"", "\"61496.505\""),
    );
    assert_eq!(
        e,
        DecodeError::TooPrecise {
            field: "b",
            scale: 2
        }
    );
    let e = err(&t, s, &trade("\"61837.63000000\"", "\"61,837.63\""));
    assert!(
        matches!(
            e,
            DecodeError::InvalidNumber {
                field: "p",
                error: ParseError::InvalidByte { pos: 2, byte: b',' }
            }
        ),
        "{e}"
    );
    let e = err(&t, s, &trade("\"61837.63000000\"", "\"1e5\""));
    assert!(
        matches!(e, DecodeError::InvalidNumber { field: "p", .. }),
        "{e}"
    );
    let e = err(&t, s, &trade("\"61837.63000000\"", "\"999999999999.0\""));
    assert!(
        matches!(
            e,
            DecodeError::InvalidNumber {
                error: ParseError::Overflow { .. },
                ..
            }
        ),
        "{e}"
    );
    let e = err(&t, s, &trade("\"61837.63000000\"", "61837.63"));
    assert!(e.kind().is_syntax(), "JSON floats are refused: {e}");
    let e = err(&t, s, &trade("\"61837.63000000\"", "61837"));
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "p",
            expected: "a string"
        }
    );
    let e = err(&t, s, &trade(",\"t\":3735683259", ""));
    assert_eq!(e, DecodeError::MissingField { field: "t" });
    let e = err(&t, s, &trade("\"t\":3735683259", "\"t\":-1"));
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "t",
            expected: "a non-negative integer"
        }
    );
    let e = err(&t, s, &trade("\"t\":3735683259", "\"t\":-0"));
    assert_eq!(e.kind(), ErrorKind::WrongType);
    let e = err(&t, s, &trade("\"t\":3735683259", "\"t\":\"3735683259\""));
    assert_eq!(e.kind(), ErrorKind::WrongType);
    let e = err(&t, s, &trade("\"m\":true", "\"m\":1"));
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "m",
            expected: "true or false"
        }
    );
    let e = err(
        &t,
        s,
        &trade("\"T\":1723161255342", "\"T\":18446744073709551615"),
    );
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    let e = err(&t, s, &trade("\"e\":\"trade\"", "\"e\":7"));
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "e",
            expected: "a string"
        }
    );
    let e = err(&t, s, r#"{"stream":"x","data":[1]}"#);
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "data",
            expected: "an object"
        }
    );
    let e = err(&t, s, "[1,2]");
    assert_eq!(e.kind(), ErrorKind::WrongType);
    let e = err(&t, s, r#"{"result":null,"id":1}"#);
    assert_eq!(
        e.kind(),
        ErrorKind::MissingField,
        "a subscription ack is not market data"
    );
    let e = err(
        &t,
        Venue::BinanceCoinM,
        &KLINE.replace("\"i\":\"1m\"", "\"i\":\"7m\""),
    );
    assert_eq!(
        e,
        DecodeError::InvalidValue {
            field: "k.i",
            reason: "unknown kline interval"
        }
    );
    let e = err(
        &t,
        Venue::BinanceCoinM,
        &KLINE.replace("\"k\":{", "\"kk\":{"),
    );
    assert_eq!(e, DecodeError::MissingField { field: "k" });
    let e = err(&t, Venue::BinanceCoinM, &KLINE.replace("\"n\":41,", ""));
    assert_eq!(e, DecodeError::MissingField { field: "k.n" });
    let e = err(
        &t,
        Venue::BinanceUsdM,
        &DEPTH.replace("[\"61496.50\",\"0.010\"]", "[\"61496.50\"]"),
    );
    assert_eq!(
        e,
        DecodeError::WrongType {
            field: "b",
            expected: "an array of [price, quantity] string pairs"
        }
    );
    let e = err(
        &t,
        Venue::BinanceUsdM,
        &DEPTH.replace("\"a\":[[", "\"a\":[3,["),
    );
    assert_eq!(e.kind(), ErrorKind::WrongType);
    let e = err(
        &t,
        Venue::BinanceUsdM,
        &DEPTH.replace("\"b\":[", "\"b\":\"x\",\"bb\":["),
    );
    assert_eq!(e.kind(), ErrorKind::WrongType);

    // Snapshots.
    let coin = Venue::BinanceCoinM;
    let e = both(&t, coin, SNAPSHOT.as_bytes(), Some("BCHUSD_210924")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SymbolMismatch);
    assert!(e.to_string().contains("BCHUSD_PERP"), "{e}");
    let e = both(
        &t,
        coin,
        SNAPSHOT.replace("BCHUSD_PERP", "NOPE").as_bytes(),
        Some("BCHUSD_PERP"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownSymbol);
    let e = both(
        &t,
        coin,
        SNAPSHOT
            .replace("\"lastUpdateId\"", "\"lastUpdate\"")
            .as_bytes(),
        Some("BCHUSD_PERP"),
    )
    .unwrap_err();
    assert_eq!(
        e,
        DecodeError::MissingField {
            field: "lastUpdateId"
        }
    );
    let mut scanner = Scanner::new(&t, coin);
    let r = scanner.decode_depth_snapshot(SNAPSHOT.as_bytes(), InstrumentId(9999), 0, &mut |_| {});
    assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidValue);
}

#[test]
fn oversized_messages_and_levels() {
    let t = table();
    let v = Venue::BinanceUsdM;
    let config = DecoderConfig {
        max_message_len: 200,
        max_levels: 2,
    };
    let mut scanner = Scanner::with_config(&t, v, config);
    let mut reference = SimdDecoder::with_config(&t, v, config);
    let long = DEPTH.replace("\"T\":", &format!("\"pad\":\"{}\",\"T\":", "x".repeat(200)));
    for msg in [long.as_str(), DEPTH] {
        let a = scanner.decode(msg.as_bytes(), 0, &mut |_| panic!("no events"));
        let b = reference.decode(&mut msg.as_bytes().to_vec(), 0, &mut |_| {
            panic!("no events")
        });
        assert_eq!(a, b);
        assert_eq!(a.unwrap_err().kind(), ErrorKind::Oversized);
    }
    assert_eq!(scanner.stats().errors(ErrorKind::Oversized), 2);
    let e = scanner.decode(long.as_bytes(), 0, &mut |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("oversized message: {} bytes, the limit is 200", long.len())
    );
    let e = Scanner::with_config(
        &t,
        v,
        DecoderConfig {
            max_message_len: 1 << 20,
            max_levels: 2,
        },
    )
    .decode(DEPTH.as_bytes(), 0, &mut |_| {})
    .unwrap_err();
    assert_eq!(
        e,
        DecodeError::Oversized {
            what: "depth levels",
            len: 3,
            max: 2
        }
    );
}

/// A depth update whose last level is bad emits nothing at all: the levels before it must not
/// reach the book.
#[test]
fn a_rejected_depth_update_emits_nothing() {
    let t = table();
    let bad = DEPTH.replace("\"3.330\"", "\"3.3301\"");
    let mut scanner = Scanner::new(&t, Venue::BinanceUsdM);
    let mut n = 0;
    let e = scanner
        .decode(bad.as_bytes(), 0, &mut |_| n += 1)
        .unwrap_err();
    assert_eq!((e.kind(), n), (ErrorKind::TooPrecise, 0));
    // And an update without levels still reports its ids.
    let empty = DEPTH
        .replace("[[\"58710.20\",\"0.014\"],[\"61496.50\",\"0.010\"]]", "[]")
        .replace("[[\"61800.30\",\"3.330\"]]", "[]");
    let (d, ev) = both(&t, Venue::BinanceUsdM, empty.as_bytes(), None).unwrap();
    assert!(ev.is_empty());
    assert_eq!(
        d.depth.unwrap().prev_final_update_id,
        Some(5_123_107_831_937)
    );
}

/// Inputs that are easy to get wrong: both decoders must agree on each.
#[test]
fn tricky_inputs_agree() {
    let t = table();
    let s = Venue::BinanceSpot;
    let ok: &[&str] = &[
        // Whitespace everywhere, keys reordered, bare payload.
        " \r\n\t{ \"m\" : true , \"T\" : 1723161255342 , \"q\" : \"0.02\" , \"p\" : \"61837.63\" , \"t\" : 1 , \"s\" : \"btcusdt\" , \"e\" : \"trade\" } \n",
        // `data` first, `stream` last; unknown keys with nested values of every type.
        r#"{"data":{"x":[{"y":[null,true,false,-5,"\u00e9\ud83d\ude00"]},[]],"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false},"stream":"x","z":{}}"#,
        // Escapes in keys and values.
        r#"{"\u0065":"\u0074rade","s":"BTC\u0055SDT","t":1,"p":"6\u0031837.63","q":"0.0\u0032","T":1,"m":false}"#,
        // Duplicate keys: the first wins, later ones need only be valid JSON.
        r#"{"e":"trade","s":"BTCUSDT","t":1,"t":[1],"p":"1","p":"x","q":"1","T":1,"m":false,"m":null}"#,
        // Duplicate `data`: the first wins.
        r#"{"data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"},"data":5}"#,
        // Root payload keys before `data` are ignored.
        r#"{"e":"kline","s":"NOPE","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"},"e":"x"}"#,
        // Extra elements in a level are ignored.
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1","2",[]],["3","4",{"x":[1]}]],"a":[]}"#,
        // Lone high surrogate (simd-json decodes it as U+0000) in an ignored field.
        r#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1","x":"\ud800"}"#,
        r#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1","x":"\ud800\ue000"}"#,
        // Extreme integers in ignored fields.
        r#"{"u":18446744073709551615,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1","x":-9223372036854775808,"y":0,"z":-0}"#,
    ];
    for msg in ok {
        both(&t, s, msg.as_bytes(), None).unwrap_or_else(|e| panic!("{msg}: {e}"));
    }
    let bad: &[&str] = &[
        r#"{"e":"trade","s":"BTC\ud800USDT","t":1,"p":"1","q":"1","T":1,"m":false}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1\u0000","q":"1","T":1,"m":false}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false,"x":1.0}"#,
        r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,"m":false,"x":[1e5]}"#,
        r#"{"e":"trad\u0065 ","s":"BTCUSDT"}"#,
        r#"{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1","x":"\ud800\udbff"}"#,
        r#"{"data":{},"stream":"x"}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1"]],"a":[]}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1",2]],"a":[]}"#,
        r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":{},"a":[]}"#,
    ];
    for msg in bad {
        assert!(both(&t, s, msg.as_bytes(), None).is_err(), "{msg}");
    }
}

#[test]
fn stats_count_by_kind() {
    let t = table();
    let mut scanner = Scanner::new(&t, Venue::BinanceSpot);
    for msg in [TRADE, TRADE, BOOK, "{", r#"{"e":"x"}"#] {
        let _ = scanner.decode(msg.as_bytes(), 0, &mut |_| {});
    }
    let st = scanner.stats();
    assert_eq!(
        (
            st.messages(MarketKind::Trade),
            st.messages(MarketKind::BookTicker)
        ),
        (2, 1)
    );
    assert_eq!(
        (st.total_messages(), st.events(), st.total_errors()),
        (3, 3, 2)
    );
    assert_eq!(
        (
            st.errors(ErrorKind::Truncated),
            st.errors(ErrorKind::UnknownEvent)
        ),
        (1, 1)
    );
    assert_eq!(
        st.to_string(),
        "messages trade=2 book_ticker=1; events 3; errors truncated=1 unknown_event=1"
    );
    scanner.reset_stats();
    assert_eq!(scanner.stats().total_messages(), 0);
}

/// The scanner has a fast path for the exact layouts of spot and USD-M trades and book tickers,
/// falling back to its general scan on any deviation. Every one-byte edit of those layouts
/// (deleted, replaced, or a space or quote inserted) must still give the reference's answer.
#[test]
fn edits_of_the_fast_path_layouts_agree() {
    let t = table();
    let usdm_trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
    let usdm_book = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#;
    let mut checked = 0;
    for (venue, msg) in [
        (Venue::BinanceSpot, TRADE),
        (Venue::BinanceSpot, BOOK),
        (Venue::BinanceUsdM, usdm_trade),
        (Venue::BinanceUsdM, usdm_book),
    ] {
        let msg = msg.as_bytes();
        assert!(both(&t, venue, msg, None).is_ok());
        for pos in 0..msg.len() {
            let mut edits = vec![[&msg[..pos], &msg[pos + 1..]].concat()];
            for c in [b' ', b'"', b'x', b'1', b'\\'] {
                edits.push([&msg[..pos], &[c], &msg[pos..]].concat());
                edits.push([&msg[..pos], &[c], &msg[pos + 1..]].concat());
            }
            for e in &edits {
                let _ = both(&t, venue, e, None);
                checked += 1;
            }
        }
    }
    eprintln!("{checked} edited messages: scanner == reference");
}
