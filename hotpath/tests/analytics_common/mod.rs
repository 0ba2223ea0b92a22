//! Shared by the `analytics_*` tests: the real captures as `MarketEvent`s.
//!
//! The Lean FX zips are read here with a minimal zip reader (the first entry's deflate stream,
//! which terminates itself), so hotpath's tests need no dependency on coldpath.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use hotpath::datadir;
use hotpath::event::{MarketEvent, Stamps};
use hotpath::fixed::{Price, Qty};
use hotpath::instrument::{
    InstrumentKind, InstrumentRef, InstrumentSpec, InstrumentTable, Symbol, Venue,
};
use hotpath::venue::binance::Scanner;

/// EURUSD quotes have 5 decimals.
pub const FX_SCALE: u8 = 5;

/// The FX instrument (id 0, price scale 5, quantity scale 0).
pub fn fx_instrument() -> InstrumentRef {
    let mut t = InstrumentTable::with_capacity(4);
    let spec = InstrumentSpec::new(
        Venue::Fxcm,
        Symbol::new(b"EURUSD").unwrap(),
        InstrumentKind::Forex,
        FX_SCALE,
        0,
    );
    let id = t.intern(spec).unwrap();
    t.instrument_ref(id)
}

/// Every FX day of the capture set, sorted (empty, after a message, if data is optional and
/// missing).
pub fn fx_days() -> Vec<PathBuf> {
    let Some(first) = datadir::capture("fx/fxcm/eurusd/20140505_quote.zip") else {
        return Vec::new();
    };
    let dir = first.parent().unwrap();
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    v.sort();
    v
}

/// Days since 1970-01-01 of a Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The CSV inside a Lean zip.
pub fn lean_csv(path: &Path) -> String {
    let zip = std::fs::read(path).unwrap();
    assert_eq!(&zip[..4], b"PK\x03\x04", "{}", path.display());
    let method = u16::from_le_bytes([zip[8], zip[9]]);
    let nlen = usize::from(u16::from_le_bytes([zip[26], zip[27]]));
    let elen = usize::from(u16::from_le_bytes([zip[28], zip[29]]));
    let data = &zip[30 + nlen + elen..];
    let mut out = String::new();
    match method {
        8 => {
            flate2::read::DeflateDecoder::new(data)
                .read_to_string(&mut out)
                .unwrap();
        }
        m => panic!("{}: zip method {m}", path.display()),
    }
    out
}

/// One day of FX quotes as `Quote` events, in file order.
pub fn fx_events(path: &Path) -> Vec<MarketEvent> {
    let inst = fx_instrument();
    let name = path.file_name().unwrap().to_str().unwrap();
    let ymd: i64 = name[..8].parse().unwrap();
    let midnight =
        days_from_civil(ymd / 10_000, (ymd / 100) % 100, ymd % 100) as u64 * 86_400_000_000_000;
    lean_csv(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let mut f = l.split(',');
            let ms: u64 = f.next().unwrap().parse().unwrap();
            let bid = Price::parse(f.next().unwrap().as_bytes(), FX_SCALE).unwrap();
            let ask = Price::parse(f.next().unwrap().as_bytes(), FX_SCALE).unwrap();
            MarketEvent::quote(
                inst,
                Stamps::new(midnight + ms * 1_000_000, 0),
                (bid, Qty::ZERO),
                (ask, Qty::ZERO),
                i as u64,
            )
        })
        .collect()
}

/// The raw JSON messages of an hftbacktest capture (`<recv ns> <json>` lines).
pub fn hft_lines(path: &Path) -> Vec<String> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    BufReader::new(gz)
        .lines()
        .map(|l| l.unwrap().split_once(' ').unwrap().1.to_string())
        .collect()
}

/// The Binance spot instrument table of the captures (BTCUSDT and ETHUSDT at 8/8).
pub fn binance_spot_table() -> InstrumentTable {
    let mut t = InstrumentTable::with_capacity(8);
    for s in ["BTCUSDT", "ETHUSDT"] {
        t.intern(InstrumentSpec::new(
            Venue::BinanceSpot,
            Symbol::new(s.as_bytes()).unwrap(),
            InstrumentKind::Spot,
            8,
            8,
        ))
        .unwrap();
    }
    t
}

/// Every event the engine's decoder produces from a Binance spot capture (trades, book
/// tickers, depth levels), in order. Snapshot lines are skipped.
pub fn binance_events(table: &InstrumentTable, lines: &[String]) -> Vec<MarketEvent> {
    let mut sc = Scanner::new(table, Venue::BinanceSpot);
    let mut out = Vec::new();
    for l in lines {
        if l.starts_with("{\"lastUpdateId\"") {
            continue;
        }
        let _ = sc.decode(l.as_bytes(), 0, &mut |e| out.push(e));
    }
    out
}
