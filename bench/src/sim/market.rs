//! The simulator's market: the tape of market-data frames it plays and the L2 books it keeps.
//!
//! Why: the market-data WebSocket, REST `depth` and matching must all see the same market. A
//! [`TapeFrame`] carries both the exact bytes that go on the wire (the combined-stream JSON, and
//! inside it the raw `data` object for `/ws/<stream>` clients) and the parsed event the venue
//! applies to its [`Book`]s and matches resting orders against. Frames come from a recorded
//! capture ([`load_capture`], byte-identical to what was recorded) or from the synthetic
//! generator (`synth`). Books start from a REST snapshot (the capture's inline
//! `{"lastUpdateId":...}` line) and apply the `depthUpdate` diffs in stream order, so a REST
//! `depth` answer is always the snapshot plus exactly the diffs already sent.

use std::collections::BTreeMap;
use std::io;
use std::ops::Range;
use std::path::Path;

use hotpath::fixed::parse_mantissa;
use serde_json::Value;

use super::rest::market;

/// One frame of the tape: wire bytes plus the parsed event.
#[derive(Clone, Debug)]
pub struct TapeFrame {
    /// Receive (capture) or event (synthetic) time, ns since the epoch: drives pacing and the
    /// latency model's market clock.
    pub time_ns: u64,
    /// The combined-stream JSON `{"stream":...,"data":...}` exactly as sent on `/stream`.
    pub combined: Vec<u8>,
    /// Where the stream name sits in `combined` (empty for frames that are never sent).
    pub stream: Range<usize>,
    /// Where the `data` object sits in `combined`: what a raw `/ws/<stream>` client gets.
    pub data: Range<usize>,
    /// The parsed event.
    pub event: Event,
}

impl TapeFrame {
    /// The stream name (`btcusdt@trade`).
    pub fn stream_name(&self) -> &[u8] {
        &self.combined[self.stream.clone()]
    }

    /// The `data` object's bytes.
    pub fn data_bytes(&self) -> &[u8] {
        &self.combined[self.data.clone()]
    }

    /// Whether the frame goes on the wire (the inline REST snapshot does not).
    pub fn is_sent(&self) -> bool {
        !matches!(self.event, Event::Snapshot { .. })
    }
}

/// A price level: (price, quantity) at scale 8.
pub type Level = (i64, i64);

/// What a frame means to the venue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A public trade.
    Trade {
        /// Symbol (`BTCUSDT`).
        symbol: &'static str,
        /// Trade id `t`.
        id: u64,
        /// Price, scale 8.
        price: i64,
        /// Quantity, scale 8.
        qty: i64,
        /// `m`: the buyer was the maker (the aggressor sold).
        buyer_maker: bool,
        /// Trade time `T` (venue clock), ms: the kline it counts in.
        time_ms: u64,
    },
    /// Best bid/ask.
    BookTicker {
        /// Symbol.
        symbol: &'static str,
    },
    /// A `depthUpdate` diff.
    Depth {
        /// Symbol.
        symbol: &'static str,
        /// First update id `U`.
        first: u64,
        /// Last update id `u`.
        last: u64,
        /// Changed bids (qty 0 removes).
        bids: Vec<Level>,
        /// Changed asks.
        asks: Vec<Level>,
    },
    /// A REST depth snapshot recorded inline (seeds the book; never sent on the stream).
    Snapshot {
        /// Symbol.
        symbol: &'static str,
        /// `lastUpdateId`.
        last_update_id: u64,
        /// Bids.
        bids: Vec<Level>,
        /// Asks.
        asks: Vec<Level>,
    },
    /// Anything else (sent as recorded, not interpreted).
    Other,
}

/// A per-symbol L2 book.
#[derive(Clone, Debug, Default)]
pub struct Book {
    /// Bids, price -> qty.
    pub bids: BTreeMap<i64, i64>,
    /// Asks, price -> qty.
    pub asks: BTreeMap<i64, i64>,
    /// The last applied update id (`u` of the last diff, or the snapshot's `lastUpdateId`).
    pub last_update_id: u64,
}

impl Book {
    /// Replace the book with a snapshot.
    pub fn reset(&mut self, last_update_id: u64, bids: &[Level], asks: &[Level]) {
        self.bids = bids.iter().copied().filter(|l| l.1 > 0).collect();
        self.asks = asks.iter().copied().filter(|l| l.1 > 0).collect();
        self.last_update_id = last_update_id;
    }

    /// Apply a diff; diffs already covered by the book (`u <= lastUpdateId`) are ignored, as
    /// Binance's sync procedure prescribes.
    pub fn apply(&mut self, last: u64, bids: &[Level], asks: &[Level]) {
        if last <= self.last_update_id {
            return;
        }
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for &(p, q) in levels {
                if q == 0 {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
        self.last_update_id = last;
    }

    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.iter().next_back().map(|(p, q)| (*p, *q))
    }

    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.iter().next().map(|(p, q)| (*p, *q))
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn dec(v: &Value) -> Option<i64> {
    parse_mantissa(v.as_str()?.as_bytes(), 8).ok()
}

fn levels(v: &Value) -> Vec<Level> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| Some((dec(l.get(0)?)?, dec(l.get(1)?)?)))
                .collect()
        })
        .unwrap_or_default()
}

fn symbol_of(s: &str) -> Option<&'static str> {
    market(&s.to_ascii_uppercase()).map(|m| m.symbol)
}

/// Interpret a `data` object of stream `stream`. Unknown shapes are [`Event::Other`].
pub fn parse_event(stream: &str, data: &Value) -> Event {
    let Some(symbol) = stream.split('@').next().and_then(symbol_of) else {
        return Event::Other;
    };
    if stream.ends_with("@trade") {
        match (data["t"].as_u64(), dec(&data["p"]), dec(&data["q"])) {
            (Some(id), Some(price), Some(qty)) => Event::Trade {
                symbol,
                id,
                price,
                qty,
                buyer_maker: data["m"].as_bool().unwrap_or(false),
                time_ms: data["T"].as_u64().or(data["E"].as_u64()).unwrap_or(0),
            },
            _ => Event::Other,
        }
    } else if stream.ends_with("@bookTicker") {
        Event::BookTicker { symbol }
    } else if stream.contains("@depth") && data["e"] == "depthUpdate" {
        match (data["U"].as_u64(), data["u"].as_u64()) {
            (Some(first), Some(last)) => Event::Depth {
                symbol,
                first,
                last,
                bids: levels(&data["b"]),
                asks: levels(&data["a"]),
            },
            _ => Event::Other,
        }
    } else {
        Event::Other
    }
}

/// Find `"stream":"<name>"` and `"data":<object>` in a combined-stream line without
/// re-serialising it, so the bytes sent are the recorded ones.
fn locate(line: &[u8]) -> Option<(Range<usize>, Range<usize>)> {
    let find = |pat: &[u8]| line.windows(pat.len()).position(|w| w == pat);
    let s = find(b"\"stream\":\"")? + 10;
    let e = s + line[s..].iter().position(|&b| b == b'"')?;
    let d = find(b"\"data\":")? + 7;
    let end = line.iter().rposition(|&b| b == b'}')?;
    (d < end).then_some((s..e, d..end))
}

/// Turn one recorded line into a tape frame; `snapshot_symbol` names the symbol of inline REST
/// snapshots (the capture's own symbol).
pub fn frame_from_line(
    time_ns: u64,
    line: &[u8],
    snapshot_symbol: Option<&'static str>,
) -> TapeFrame {
    let parsed: Option<Value> = serde_json::from_slice(line).ok();
    if let (Some(v), Some(symbol)) = (&parsed, snapshot_symbol) {
        if let Some(id) = v.get("lastUpdateId").and_then(Value::as_u64) {
            return TapeFrame {
                time_ns,
                combined: line.to_vec(),
                stream: 0..0,
                data: 0..line.len(),
                event: Event::Snapshot {
                    symbol,
                    last_update_id: id,
                    bids: levels(&v["bids"]),
                    asks: levels(&v["asks"]),
                },
            };
        }
    }
    match (parsed, locate(line)) {
        (Some(v), Some((stream, data))) => {
            let name = std::str::from_utf8(&line[stream.clone()]).unwrap_or("");
            let event = parse_event(name, &v["data"]);
            TapeFrame {
                time_ns,
                combined: line.to_vec(),
                stream,
                data,
                event,
            }
        }
        // Not combined-stream JSON: sent as is to combined clients, never interpreted.
        _ => TapeFrame {
            time_ns,
            combined: line.to_vec(),
            stream: 0..0,
            data: 0..line.len(),
            event: Event::Other,
        },
    }
}

/// Load an hftbacktest capture (`<recv_ns> <combined JSON>` lines) as a tape, at most `limit`
/// frames.
pub fn load_capture(path: &Path, limit: Option<usize>) -> io::Result<Vec<TapeFrame>> {
    let input = coldpath::replay::load_hftbacktest(path, limit)
        .map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let symbol = symbol_of(&input.symbol);
    Ok(input
        .frames
        .iter()
        .map(|(ns, line)| frame_from_line(*ns, line, symbol))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_stream_and_data() {
        let line =
            br#"{"stream":"btcusdt@trade","data":{"e":"trade","t":5,"p":"1.5","q":"2","T":9,"m":true}}"#;
        let f = frame_from_line(7, line, None);
        assert_eq!(f.stream_name(), b"btcusdt@trade");
        assert_eq!(
            f.data_bytes(),
            br#"{"e":"trade","t":5,"p":"1.5","q":"2","T":9,"m":true}"#
        );
        assert_eq!(
            f.event,
            Event::Trade {
                symbol: "BTCUSDT",
                id: 5,
                price: 150_000_000,
                qty: 200_000_000,
                buyer_maker: true,
                time_ms: 9,
            }
        );
    }

    #[test]
    fn book_ignores_old_diffs() {
        let mut b = Book::default();
        b.reset(10, &[(100, 5)], &[(101, 5)]);
        b.apply(9, &[(100, 0)], &[]);
        assert_eq!(b.best_bid(), Some((100, 5)));
        b.apply(11, &[(100, 0), (99, 1)], &[(101, 7)]);
        assert_eq!(b.best_bid(), Some((99, 1)));
        assert_eq!(b.best_ask(), Some((101, 7)));
        assert_eq!(b.last_update_id, 11);
    }
}
