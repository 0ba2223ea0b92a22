//! The simulator's matching core: orders, balances, books and the user-stream events they
//! cause.
//!
//! Why a module of its own: REST order entry (`rest`), the market driver (`venue`, applying
//! each tape frame) and the user data stream all act on one account and one set of books; this
//! is that shared state, kept behind the REST server's mutex, with no I/O of its own.
//!
//! Matching rules:
//!
//! * **Taker**: `MARKET` (base `quantity`) and marketable `LIMIT` orders walk the opposite side
//!   of the replayed book level by level (partial fills per level). `IOC` and `MARKET`
//!   remainders expire (`EXPIRED`); `FOK` fills completely or expires with no fill; a `GTC`
//!   remainder rests. Own fills do not deplete the replayed book (the book stays the one the
//!   stream describes, so REST `depth` and the stream agree).
//! * **Maker**: a resting order records the displayed quantity at its price on its side when it
//!   arrives (its queue position). A later trade printing through its price (below a buy,
//!   above a sell) fills it at its price; a trade at its price by an aggressor from the other
//!   side first consumes the queue ahead, and only the excess fills it. Fills are limited by
//!   the trade's quantity, shared among the resting orders in id order.
//! * `LIMIT_MAKER` that would cross is rejected (`-2010` "Order would immediately match and
//!   take.").
//! * **USD-M**: with a futures account (`futures`) a fill moves a position and the margin wallet
//!   instead of balances, nothing is locked, and the reports are USD-M's (`ORDER_TRADE_UPDATE`,
//!   `ACCOUNT_UPDATE`); matching is the same.
//! * **Fees**: maker/taker rates at scale 8 (Binance spot default 0.1 % both). Commission is
//!   always charged in the **quote** asset (USDT), on both sides: `commission = ceil(quoteQty *
//!   rate)` to 1e-8. Binance charges a buyer in the base asset by default; charging the quote
//!   asset keeps the base position exactly the traded quantity, which is what the engine's
//!   position keeping expects, and the `N`/`commissionAsset` fields say so on every fill.
//! * **Balances**: a `LIMIT` buy locks `price * qty` (as Binance does) and its commission is
//!   taken from the free quote balance at each fill; a sell locks the quantity. Fills move locked to free and settle both assets; the leftover lock
//!   is released when the order closes.
//! * **Time stamps**: everything the exchange reports (order responses' `transactTime` and
//!   `workingTime`, queries' `time`/`updateTime`, the user stream's `E`, `T`, `O`, `W`) is on
//!   the **market's clock** whenever a market plays ([`Exchange::stamp_ms`]): the replayed or
//!   generated event time, as Binance stamps its executions with the same clock as its market
//!   data. A replay of an old capture at full speed therefore fills in the capture's day, and a
//!   backtest's positions open and close on the tape's clock rather than today's. Only a bare
//!   REST server with no market (its fixed ladder) falls back to the server's wall clock.
//!   Request authentication (`timestamp`, `recvWindow`, `serverTime`) stays on the wall clock:
//!   that is the client's clock, not the market's.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::Sender;

use serde_json::{json, Value};

use super::futures::{self, Futures};
use super::klines::Klines;
use super::market::{Book, Event, TapeFrame};
use super::rest::{dec, err, market, ApiError, Market, ONE};

/// Maker and taker fee rates at scale 8 (`100_000` = 0.1 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    /// Rate charged on maker fills.
    pub maker: i64,
    /// Rate charged on taker fills.
    pub taker: i64,
}

impl Fees {
    /// Binance USD-M's base tier: 0.02 % maker, 0.05 % taker.
    pub const USDM: Fees = Fees {
        maker: 20_000,
        taker: 50_000,
    };
}

impl Default for Fees {
    /// Binance spot's base tier: 0.1 % maker, 0.1 % taker.
    fn default() -> Self {
        Fees {
            maker: 100_000,
            taker: 100_000,
        }
    }
}

/// `price * qty` at scale 8, rounded down (the quote value of a fill).
pub(crate) fn quote_of(price: i64, qty: i64) -> i64 {
    i64::try_from(i128::from(price) * i128::from(qty) / i128::from(ONE)).unwrap_or(i64::MAX)
}

/// `price * qty` at scale 8, rounded up (what a buy locks).
pub(crate) fn notional_up(price: i64, qty: i64) -> i64 {
    let p = i128::from(price) * i128::from(qty);
    i64::try_from((p + i128::from(ONE) - 1) / i128::from(ONE)).unwrap_or(i64::MAX)
}

/// Commission on a quote amount: `ceil(quote * rate)` at scale 8.
pub fn commission(quote: i64, rate: i64) -> i64 {
    notional_up(quote, rate)
}

/// One fill of an order.
#[derive(Clone, Debug)]
pub(crate) struct Fill {
    pub price: i64,
    pub qty: i64,
    pub commission: i64,
    pub trade_id: u64,
    /// Venue time of the trade, ms.
    pub time_ms: u64,
    /// This order was the resting side.
    pub maker: bool,
    /// Profit the fill realized (USD-M; 0 on spot).
    pub realized: i64,
}

/// One order, open or closed.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub symbol: &'static str,
    pub order_id: u64,
    pub client_order_id: String,
    pub price: i64,
    pub orig_qty: i64,
    pub executed: i64,
    pub cum_quote: i64,
    pub status: &'static str,
    pub time_in_force: &'static str,
    pub order_type: &'static str,
    pub side: &'static str,
    pub time_ms: u64,
    pub update_ms: u64,
    /// What is still locked for this order.
    pub locked_left: i64,
    /// Displayed quantity ahead of it at its price.
    pub queue_ahead: i64,
    pub fills: Vec<Fill>,
    /// USD-M `reduceOnly` (always false on spot).
    pub reduce_only: bool,
}

impl Order {
    /// The order's trades as `GET /api/v3/myTrades` (spot) or `GET /fapi/v1/userTrades`
    /// (`usdm`) lists them, oldest first.
    pub fn trades_json(&self, usdm: bool) -> impl Iterator<Item = Value> + '_ {
        let quote = market(self.symbol).map_or("", |m| m.quote);
        self.fills.iter().map(move |f| {
            let mut t = json!({
                "symbol": self.symbol,
                "id": f.trade_id,
                "orderId": self.order_id,
                "price": dec(f.price),
                "qty": dec(f.qty),
                "quoteQty": dec(quote_of(f.price, f.qty)),
                "commission": dec(f.commission),
                "commissionAsset": quote,
                "time": f.time_ms,
            });
            let extra = if usdm {
                json!({
                    "side": self.side,
                    "positionSide": "BOTH",
                    "buyer": self.is_buy(),
                    "maker": f.maker,
                    "realizedPnl": dec(f.realized),
                })
            } else {
                json!({
                    "orderListId": -1,
                    "isBuyer": self.is_buy(),
                    "isMaker": f.maker,
                    "isBestMatch": true,
                })
            };
            if let (Some(t), Value::Object(e)) = (t.as_object_mut(), extra) {
                t.extend(e);
            }
            t
        })
    }

    pub fn is_open(&self) -> bool {
        matches!(self.status, "NEW" | "PARTIALLY_FILLED")
    }

    fn is_buy(&self) -> bool {
        self.side == "BUY"
    }

    /// The order as `GET /api/v3/order` and `openOrders` show it.
    pub fn query_json(&self) -> Value {
        json!({
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": dec(self.price),
            "origQty": dec(self.orig_qty),
            "executedQty": dec(self.executed),
            "cummulativeQuoteQty": dec(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.order_type,
            "side": self.side,
            "stopPrice": dec(0),
            "icebergQty": dec(0),
            "time": self.time_ms,
            "updateTime": self.update_ms,
            "isWorking": true,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": dec(0),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        })
    }
}

/// A validated new-order request, before it reaches the matching engine.
#[derive(Clone, Debug)]
pub(crate) struct NewOrder {
    pub market: &'static Market,
    pub side: &'static str,
    pub order_type: &'static str,
    pub time_in_force: &'static str,
    /// 0 for `MARKET`.
    pub price: i64,
    pub qty: i64,
    pub client_order_id: String,
    pub resp_type: &'static str,
    /// USD-M `reduceOnly`.
    pub reduce_only: bool,
}

/// The account, the books and the order list.
pub(crate) struct Exchange {
    pub orders: Vec<Order>,
    pub next_order_id: u64,
    pub next_trade_id: u64,
    /// (free, locked) per asset.
    pub balances: BTreeMap<String, (i64, i64)>,
    pub books: HashMap<&'static str, Book>,
    pub fees: Fees,
    /// Where user-stream events go (in the order they happen), when a stream server runs.
    pub events: Option<Sender<Vec<u8>>>,
    /// Market time of the last frame applied, ns, on the tape's own clock (a capture's receive
    /// times): the latency model's clock.
    pub market_ns: u64,
    /// Candles: the history plus every trade applied, for REST `klines`.
    pub klines: Klines,
    /// The USD-M account (margin wallet and positions) instead of `balances`, in USD-M mode.
    pub futures: Option<Futures>,
}

impl Exchange {
    pub fn new(balances: BTreeMap<String, (i64, i64)>, fees: Fees) -> Exchange {
        Exchange {
            orders: Vec::new(),
            next_order_id: 1,
            next_trade_id: 1,
            balances,
            books: HashMap::new(),
            fees,
            events: None,
            market_ns: 0,
            klines: Klines::default(),
            futures: None,
        }
    }

    /// The mark price of `symbol` for margin and unrealized profit: the book's mid.
    pub(crate) fn mark(&self, symbol: &str) -> Option<i64> {
        let b = self.books.get(symbol)?;
        Some((b.best_bid()?.0 + b.best_ask()?.0) / 2)
    }

    /// Order `o` as `GET order`/`openOrders`/`allOrders` show it on this market.
    pub(crate) fn order_view(&self, o: &Order) -> Value {
        if self.futures.is_some() {
            futures::order_json(o, true)
        } else {
            o.query_json()
        }
    }

    /// The time to stamp on a report now, ms: the market's event clock (the candle clock: the
    /// history's end before the tape, then the latest trade time or frame time shifted onto
    /// the venue's event clock) when a market plays, else `wall_ms` (the server's clock).
    pub fn stamp_ms(&self, wall_ms: u64) -> u64 {
        match self.klines.clock_ms() {
            0 => wall_ms,
            market => market,
        }
    }

    /// A tape time (`market_ns`'s clock, ns) on the venue's event clock, ms.
    pub(crate) fn event_ms(&self, tape_ns: u64) -> u64 {
        self.klines.event_ms(tape_ns)
    }

    fn emit(&self, v: Value) {
        if let Some(tx) = &self.events {
            let _ = tx.send(v.to_string().into_bytes());
        }
    }

    fn emit_position(&self, assets: &[&str], now_ms: u64) {
        // USD-M reports the account with each fill (`ACCOUNT_UPDATE`, see `fill`).
        if self.events.is_none() || self.futures.is_some() {
            return;
        }
        let b: Vec<Value> = assets
            .iter()
            .map(|a| {
                let (f, l) = self.balances.get(*a).copied().unwrap_or((0, 0));
                json!({"a": a, "f": dec(f), "l": dec(l)})
            })
            .collect();
        self.emit(json!({"e": "outboundAccountPosition", "E": now_ms, "u": now_ms, "B": b}));
    }

    /// An `executionReport` for order `idx`: `x` the execution type, the last fill if any.
    fn report(
        &self,
        idx: usize,
        x: &str,
        last: Option<&Fill>,
        maker: bool,
        c: Option<&str>,
        now_ms: u64,
    ) {
        if self.events.is_none() {
            return;
        }
        let o = &self.orders[idx];
        if self.futures.is_some() {
            let last = last.map(|f| (f.price, f.qty, f.commission, f.trade_id, f.realized));
            self.emit(futures::order_trade_update(o, x, last, maker, now_ms));
            return;
        }
        let m = market(o.symbol);
        let (l, lp, n, t) = match last {
            Some(f) => (f.qty, f.price, f.commission, f.trade_id as i64),
            None => (0, 0, 0, -1),
        };
        let (cid, orig) = match c {
            Some(cancel_id) => (cancel_id.to_owned(), o.client_order_id.clone()),
            None => (o.client_order_id.clone(), String::new()),
        };
        self.emit(json!({
            "e": "executionReport",
            "E": now_ms,
            "s": o.symbol,
            "c": cid,
            "S": o.side,
            "o": o.order_type,
            "f": o.time_in_force,
            "q": dec(o.orig_qty),
            "p": dec(o.price),
            "P": dec(0),
            "F": dec(0),
            "g": -1,
            "C": orig,
            "x": x,
            "X": o.status,
            "r": "NONE",
            "i": o.order_id,
            "l": dec(l),
            "z": dec(o.executed),
            "L": dec(lp),
            "n": dec(n),
            "N": if last.is_some() { m.map(|m| m.quote) } else { None },
            "T": now_ms,
            "t": t,
            "I": o.order_id * 2 + u64::from(last.is_some()),
            "w": o.is_open(),
            "m": maker,
            "M": false,
            "O": o.time_ms,
            "Z": dec(o.cum_quote),
            "Y": dec(if last.is_some() { quote_of(lp, l) } else { 0 }),
            "Q": dec(0),
            "W": o.time_ms,
            "V": "EXPIRE_MAKER",
        }));
    }

    /// Fills a taker of `side` gets from `book` up to `qty` (limit `price`, 0 = none).
    fn sweep(book: Option<&Book>, buy: bool, price: i64, qty: i64) -> Vec<(i64, i64)> {
        let Some(book) = book else { return Vec::new() };
        let mut left = qty;
        let mut out = Vec::new();
        let levels: Box<dyn Iterator<Item = (&i64, &i64)>> = if buy {
            Box::new(book.asks.iter())
        } else {
            Box::new(book.bids.iter().rev())
        };
        for (&p, &q) in levels {
            if left == 0 || (price > 0 && if buy { p > price } else { p < price }) {
                break;
            }
            let f = q.min(left);
            out.push((p, f));
            left -= f;
        }
        out
    }

    /// Settle one fill of order `idx` and report it.
    fn fill(&mut self, idx: usize, price: i64, qty: i64, maker: bool, now_ms: u64) {
        let rate = if maker {
            self.fees.maker
        } else {
            self.fees.taker
        };
        let quote = quote_of(price, qty);
        let fee = commission(quote, rate);
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let (release, realized) = match &mut self.futures {
            Some(fut) => {
                let o = &self.orders[idx];
                let d = if o.is_buy() { qty } else { -qty };
                let realized = fut.positions.entry(o.symbol).or_default().apply(d, price);
                fut.wallet += realized - fee;
                (0, realized)
            }
            None => match self.settle_spot(idx, qty, quote, fee) {
                Some(release) => (release, 0),
                None => return,
            },
        };
        let f = Fill {
            price,
            qty,
            commission: fee,
            trade_id,
            time_ms: now_ms,
            maker,
            realized,
        };
        let o = &mut self.orders[idx];
        o.locked_left -= release;
        o.executed += qty;
        o.cum_quote += quote;
        o.update_ms = now_ms;
        o.status = if o.executed >= o.orig_qty {
            "FILLED"
        } else {
            "PARTIALLY_FILLED"
        };
        o.fills.push(f.clone());
        if o.status == "FILLED" {
            self.release_rest(idx);
        }
        self.report(idx, "TRADE", Some(&f), maker, None, now_ms);
        if let Some(fut) = &self.futures {
            let symbol = self.orders[idx].symbol;
            self.emit(fut.account_update(symbol, self.mark(symbol), now_ms));
            self.expire_reduce_only(symbol, now_ms);
        }
    }

    /// USD-M: reduce-only orders of `symbol` that can no longer reduce the position (it is flat
    /// or on their side now) expire, as Binance cancels them when the position closes.
    fn expire_reduce_only(&mut self, symbol: &str, now_ms: u64) {
        let Some(fut) = &self.futures else { return };
        let position = fut.position(symbol).amt;
        for idx in 0..self.orders.len() {
            let o = &self.orders[idx];
            let reduces = position != 0 && (position > 0) != o.is_buy();
            if o.reduce_only && o.symbol == symbol && o.is_open() && !reduces {
                let o = &mut self.orders[idx];
                o.status = "EXPIRED";
                o.update_ms = now_ms;
                self.report(idx, "EXPIRED", None, false, None, now_ms);
            }
        }
    }

    /// Spot settlement of a fill of order `idx`: both assets, the lock released; returns the
    /// amount released (`None` for a symbol the venue does not list).
    fn settle_spot(&mut self, idx: usize, qty: i64, quote: i64, fee: i64) -> Option<i64> {
        let o = &self.orders[idx];
        let m = market(o.symbol)?;
        let (buy, limit, locked_left) = (o.is_buy(), o.order_type != "MARKET", o.locked_left);
        let mut release = 0;
        if buy {
            if limit {
                release = notional_up(o.price, qty).min(locked_left);
                let q = self.balances.entry(m.quote.into()).or_insert((0, 0));
                q.1 -= release;
                q.0 += release - quote - fee;
            } else {
                let q = self.balances.entry(m.quote.into()).or_insert((0, 0));
                q.0 -= quote + fee;
            }
            self.balances.entry(m.base.into()).or_insert((0, 0)).0 += qty;
        } else {
            let b = self.balances.entry(m.base.into()).or_insert((0, 0));
            if limit {
                release = qty.min(locked_left);
                b.1 -= release;
            } else {
                b.0 -= qty;
            }
            self.balances.entry(m.quote.into()).or_insert((0, 0)).0 += quote - fee;
        }
        Some(release)
    }

    /// Give back whatever order `idx` still locks.
    fn release_rest(&mut self, idx: usize) {
        let o = &mut self.orders[idx];
        let left = std::mem::take(&mut o.locked_left);
        if left == 0 {
            return;
        }
        let Some(m) = market(o.symbol) else { return };
        let asset = if o.side == "BUY" { m.quote } else { m.base };
        if let Some(b) = self.balances.get_mut(asset) {
            b.0 += left;
            b.1 -= left;
        }
    }

    /// Accept (or reject) a new order now, against the current book. Returns the REST answer.
    /// `wall_ms` is the server's clock, used only when no market plays (see
    /// [`stamp_ms`](Self::stamp_ms)).
    pub fn place(&mut self, req: NewOrder, wall_ms: u64) -> Result<Value, ApiError> {
        self.place_at(req, wall_ms, 0)
    }

    /// [`place`](Self::place) for an order that reached the matching engine at event time
    /// `arrived_ms` (after its latency, between two frames): stamped no earlier than that.
    pub(crate) fn place_at(
        &mut self,
        req: NewOrder,
        wall_ms: u64,
        arrived_ms: u64,
    ) -> Result<Value, ApiError> {
        let now_ms = self.stamp_ms(wall_ms).max(arrived_ms);
        let m = req.market;
        let buy = req.side == "BUY";
        let book = self.books.get(m.symbol);
        // Spot's LIMIT_MAKER and USD-M's GTX are the same post-only order.
        let post_only = req.order_type == "LIMIT_MAKER" || req.time_in_force == "GTX";
        if post_only {
            let crosses = match book {
                Some(b) if buy => b.best_ask().is_some_and(|(p, _)| p <= req.price),
                Some(b) => b.best_bid().is_some_and(|(p, _)| p >= req.price),
                None => false,
            };
            if crosses && self.futures.is_some() {
                return Err(err(
                    400,
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order will be rejected.",
                ));
            }
            if crosses {
                return Err(err(400, -2010, "Order would immediately match and take."));
            }
        }
        // A reduce-only order takes at most the position (it never flips it).
        let position = self
            .futures
            .as_ref()
            .map_or(0, |f| f.position(m.symbol).amt);
        let take = if req.reduce_only {
            req.qty.min(position.abs())
        } else {
            req.qty
        };
        let mut fills = if post_only {
            Vec::new()
        } else {
            Self::sweep(book, buy, req.price, take)
        };
        let swept: i64 = fills.iter().map(|f| f.1).sum();
        if req.time_in_force == "FOK" && swept < req.qty {
            fills.clear();
        }
        let queue_ahead = book
            .and_then(|b| {
                if buy {
                    b.bids.get(&req.price)
                } else {
                    b.asks.get(&req.price)
                }
            })
            .copied()
            .unwrap_or(0);
        let lock = if self.futures.is_some() {
            self.check_margin(&req, position, &fills)?;
            0
        } else {
            self.lock_spot(&req, &fills)?
        };
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        self.orders.push(Order {
            symbol: m.symbol,
            order_id,
            client_order_id: req.client_order_id,
            price: req.price,
            orig_qty: req.qty,
            executed: 0,
            cum_quote: 0,
            status: "NEW",
            time_in_force: req.time_in_force,
            order_type: req.order_type,
            side: req.side,
            time_ms: now_ms,
            update_ms: now_ms,
            locked_left: lock,
            queue_ahead,
            fills: Vec::new(),
            reduce_only: req.reduce_only,
        });
        let idx = self.orders.len() - 1;
        // USD-M's `ACK` is the order as accepted, before it matched.
        let ack = (self.futures.is_some() && req.resp_type == "ACK")
            .then(|| futures::order_json(&self.orders[idx], false));
        self.report(idx, "NEW", None, false, None, now_ms);
        for (p, q) in fills {
            self.fill(idx, p, q, false, now_ms);
        }
        let o = &self.orders[idx];
        if o.is_open() && (o.order_type == "MARKET" || matches!(o.time_in_force, "IOC" | "FOK")) {
            self.orders[idx].status = "EXPIRED";
            self.release_rest(idx);
            self.report(idx, "EXPIRED", None, false, None, now_ms);
        }
        self.emit_position(&[m.base, m.quote], now_ms);
        Ok(ack.unwrap_or_else(|| self.response(idx, req.resp_type, now_ms)))
    }

    /// USD-M's order checks: `reduceOnly` must reduce (`-2022`), and the part of the order that
    /// opens or increases the position needs its initial margin available (`-2019`).
    fn check_margin(
        &self,
        req: &NewOrder,
        position: i64,
        fills: &[(i64, i64)],
    ) -> Result<(), ApiError> {
        let Some(fut) = &self.futures else {
            return Ok(());
        };
        let buy = req.side == "BUY";
        let reduces = position != 0 && (position > 0) != buy;
        if req.reduce_only {
            return if reduces {
                Ok(())
            } else {
                Err(err(400, -2022, "ReduceOnly Order is rejected."))
            };
        }
        let opens = if reduces {
            (req.qty - position.abs()).max(0)
        } else {
            req.qty
        };
        let price = match req.order_type {
            "MARKET" => fills
                .last()
                .map(|f| f.0)
                .or_else(|| self.mark(req.market.symbol))
                .unwrap_or(0),
            _ => req.price,
        };
        let need = fut.margin_of(quote_of(price, opens));
        let marks = |s: &str| self.mark(s);
        if need > fut.available(&self.orders, &marks) {
            return Err(err(400, -2019, "Margin is insufficient."));
        }
        Ok(())
    }

    /// Spot's balance check: the order's cost must be free; a limit order locks it (returned).
    fn lock_spot(&mut self, req: &NewOrder, fills: &[(i64, i64)]) -> Result<i64, ApiError> {
        let (m, buy) = (req.market, req.side == "BUY");
        let (asset, need, lock) = if req.order_type == "MARKET" {
            if buy {
                let cost: i64 = fills.iter().map(|&(p, q)| quote_of(p, q)).sum();
                (m.quote, cost + commission(cost, self.fees.taker), 0)
            } else {
                (m.base, req.qty, 0)
            }
        } else if buy {
            // Binance locks exactly `price * qty`; the commission comes out of free.
            let n = notional_up(req.price, req.qty);
            (m.quote, n, n)
        } else {
            (m.base, req.qty, req.qty)
        };
        let bal = self.balances.entry(asset.to_owned()).or_insert((0, 0));
        if bal.0 < need {
            return Err(err(
                400,
                -2010,
                "Account has insufficient balance for requested action.",
            ));
        }
        bal.0 -= lock;
        bal.1 += lock;
        Ok(lock)
    }

    fn response(&self, idx: usize, resp_type: &str, now_ms: u64) -> Value {
        let o = &self.orders[idx];
        if self.futures.is_some() {
            return futures::order_json(o, false);
        }
        let mut v = json!({
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": o.client_order_id,
            "transactTime": now_ms,
        });
        if resp_type == "ACK" {
            return v;
        }
        let quote = market(o.symbol).map(|m| m.quote).unwrap_or("USDT");
        let extra = json!({
            "price": dec(o.price),
            "origQty": dec(o.orig_qty),
            "executedQty": dec(o.executed),
            "origQuoteOrderQty": dec(0),
            "cummulativeQuoteQty": dec(o.cum_quote),
            "status": o.status,
            "timeInForce": o.time_in_force,
            "type": o.order_type,
            "side": o.side,
            "workingTime": o.time_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        });
        if let (Some(obj), Value::Object(e)) = (v.as_object_mut(), extra) {
            obj.extend(e);
            if resp_type == "FULL" {
                let fills: Vec<Value> = o
                    .fills
                    .iter()
                    .map(|f| {
                        json!({
                            "price": dec(f.price),
                            "qty": dec(f.qty),
                            "commission": dec(f.commission),
                            "commissionAsset": quote,
                            "tradeId": f.trade_id,
                        })
                    })
                    .collect();
                obj.insert("fills".into(), Value::Array(fills));
            }
        }
        v
    }

    /// Cancel open order `idx`; `cancel_id` is the cancel request's client id; `wall_ms` as
    /// for [`place`](Self::place).
    pub fn cancel(&mut self, idx: usize, cancel_id: &str, wall_ms: u64) -> Value {
        let now_ms = self.stamp_ms(wall_ms);
        self.release_rest(idx);
        let o = &mut self.orders[idx];
        o.status = "CANCELED";
        o.update_ms = now_ms;
        let o = &self.orders[idx];
        if self.futures.is_some() {
            let out = futures::order_json(o, false);
            self.report(idx, "CANCELED", None, false, None, now_ms);
            return out;
        }
        let out = json!({
            "symbol": o.symbol,
            "origClientOrderId": o.client_order_id,
            "orderId": o.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_id,
            "transactTime": now_ms,
            "price": dec(o.price),
            "origQty": dec(o.orig_qty),
            "executedQty": dec(o.executed),
            "origQuoteOrderQty": dec(0),
            "cummulativeQuoteQty": dec(o.cum_quote),
            "status": o.status,
            "timeInForce": o.time_in_force,
            "type": o.order_type,
            "side": o.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        });
        self.report(idx, "CANCELED", None, false, Some(cancel_id), now_ms);
        if let Some(m) = market(o.symbol) {
            self.emit_position(&[m.base, m.quote], now_ms);
        }
        out
    }

    /// Apply one tape frame: book diffs and snapshots, fills of resting orders by trades, and
    /// the trade's kline. Fills are stamped with the frame's event time (a trade's `T`);
    /// `wall_ms` as for [`place`](Self::place).
    pub fn apply(&mut self, frame: &TapeFrame, wall_ms: u64) {
        self.market_ns = self.market_ns.max(frame.time_ns);
        self.klines.on_frame(frame);
        let now_ms = self.stamp_ms(wall_ms);
        match &frame.event {
            Event::Depth {
                symbol,
                last,
                bids,
                asks,
                ..
            } => self
                .books
                .entry(symbol)
                .or_default()
                .apply(*last, bids, asks),
            Event::Snapshot {
                symbol,
                last_update_id,
                bids,
                asks,
            } => {
                let b = self.books.entry(symbol).or_default();
                if b.last_update_id < *last_update_id {
                    b.reset(*last_update_id, bids, asks);
                }
            }
            Event::Trade {
                symbol,
                price,
                qty,
                buyer_maker,
                ..
            } => self.on_trade(symbol, *price, *qty, *buyer_maker, now_ms),
            _ => {}
        }
    }

    fn on_trade(&mut self, symbol: &str, price: i64, qty: i64, buyer_maker: bool, now_ms: u64) {
        let mut avail = qty;
        let mut touched = None;
        for idx in 0..self.orders.len() {
            if avail == 0 {
                break;
            }
            // A reduce-only order fills at most the position.
            let cap = match (&self.futures, &self.orders[idx]) {
                (Some(f), o) if o.reduce_only => f.position(o.symbol).amt.abs(),
                _ => i64::MAX,
            };
            let o = &mut self.orders[idx];
            if o.symbol != symbol || !o.is_open() {
                continue;
            }
            let buy = o.side == "BUY";
            let through = if buy {
                price < o.price
            } else {
                price > o.price
            };
            // At its price, only the other side's aggression reaches it, after its queue.
            let at = price == o.price && (buy == buyer_maker);
            let can = if through {
                avail
            } else if at {
                let eaten = o.queue_ahead.min(avail);
                o.queue_ahead -= eaten;
                avail - eaten
            } else {
                0
            };
            let q = can.min(o.orig_qty - o.executed).min(cap);
            if q > 0 {
                let px = o.price;
                avail -= q;
                self.fill(idx, px, q, true, now_ms);
                touched = market(symbol);
            }
        }
        if let Some(m) = touched {
            self.emit_position(&[m.base, m.quote], now_ms);
        }
    }
}

/// How long an order takes to reach the matching engine, in market time.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum LatencyModel {
    /// Orders take effect at once.
    #[default]
    Zero,
    /// Every order takes this long.
    Fixed(std::time::Duration),
    /// Each order takes a delay drawn uniformly from these samples (e.g. measured round
    /// trips), with a seeded RNG so runs repeat.
    Empirical {
        /// The observed delays.
        samples: Vec<std::time::Duration>,
        /// RNG seed.
        seed: u64,
    },
}

impl LatencyModel {
    /// The delay of the next order, in ns; `rng` is the caller's SplitMix64 state.
    pub(crate) fn sample_ns(&self, rng: &mut u64) -> u64 {
        match self {
            LatencyModel::Zero => 0,
            LatencyModel::Fixed(d) => d.as_nanos() as u64,
            LatencyModel::Empirical { samples, .. } if samples.is_empty() => 0,
            LatencyModel::Empirical { samples, .. } => {
                *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = *rng;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                samples[(z % samples.len() as u64) as usize].as_nanos() as u64
            }
        }
    }

    pub(crate) fn seed(&self) -> u64 {
        match self {
            LatencyModel::Empirical { seed, .. } => *seed,
            _ => 0,
        }
    }
}
