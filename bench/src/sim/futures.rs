//! The USD-M futures account of the simulator: a USDT margin wallet and one-way-mode positions
//! instead of spot balances, and the USD-M wire shapes of orders and account events.
//!
//! Why a module of its own: matching (taker sweeps, maker fills, fees) is the same on both
//! markets and stays in `exchange`; what a fill *does* to the account differs. On USD-M a fill
//! moves a signed position (`positionAmt`) and its average `entryPrice`, realizes profit when it
//! reduces or flips the position, and takes the commission (in USDT) from the wallet; nothing is
//! locked, an order needs initial margin instead.
//!
//! Rules (Binance's one-way mode, cross margin, simplified where noted):
//!
//! * **Entry price**: on an increase the quantity-weighted average of the old entry and the fill
//!   price; unchanged on a decrease; the fill price for what is left after a flip; 0 when flat.
//! * **Realized PnL** of a fill that reduces: `closed * (price - entry)` for a long,
//!   `closed * (entry - price)` for a short (`closed` = the part of the fill that closes).
//!   It goes into the wallet with the commission taken out (`walletBalance`).
//! * **Margin**: the initial margin of a position or an open order is its notional divided by
//!   the leverage (one leverage for every symbol, [`RestConfig::leverage`](super::RestConfig)).
//!   `availableBalance = walletBalance + unrealizedProfit - positionInitialMargin -
//!   openOrderInitialMargin`, unrealized profit marked at the book's mid (the simulator has no
//!   mark-price stream). An order whose position-increasing part needs more initial margin than
//!   is available is refused with `-2019` "Margin is insufficient.".
//! * **reduceOnly**: refused with `-2022` "ReduceOnly Order is rejected." when it would not
//!   reduce the position (flat, or on the position's side); otherwise its fills are capped at
//!   the position, and once the position is flat what is left of it expires, as on Binance.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::exchange::{quote_of, Order};
use super::rest::{dec, ONE};

/// One symbol's position in one-way mode (`positionSide` `BOTH`), scale 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    /// `positionAmt`: signed, negative for a short.
    pub amt: i64,
    /// `entryPrice` (0 when flat).
    pub entry: i64,
    /// Realized profit accumulated over the position's life (`cr` of `ACCOUNT_UPDATE`).
    pub realized: i64,
}

impl Position {
    /// Applies a fill of signed quantity `d` (buy > 0) at `price`; returns the realized profit.
    pub fn apply(&mut self, d: i64, price: i64) -> i64 {
        let a = self.amt;
        if a == 0 || (a > 0) == (d > 0) {
            let na = a + d;
            let cost = i128::from(a.abs()) * i128::from(self.entry)
                + i128::from(d.abs()) * i128::from(price);
            self.entry = i64::try_from(cost / i128::from(na.abs())).unwrap_or(i64::MAX);
            self.amt = na;
            return 0;
        }
        let closed = a.abs().min(d.abs());
        let per_unit = if a > 0 {
            price - self.entry
        } else {
            self.entry - price
        };
        let realized =
            i64::try_from(i128::from(per_unit) * i128::from(closed) / i128::from(ONE)).unwrap_or(0);
        self.amt = a + d;
        if self.amt == 0 {
            self.entry = 0;
        } else if (self.amt > 0) != (a > 0) {
            self.entry = price;
        }
        self.realized += realized;
        realized
    }

    /// Unrealized profit at `mark`.
    fn unrealized(&self, mark: i64) -> i64 {
        if self.amt == 0 {
            return 0;
        }
        i64::try_from(i128::from(mark - self.entry) * i128::from(self.amt) / i128::from(ONE))
            .unwrap_or(0)
    }
}

/// The USD-M account: the USDT wallet, leverage and positions.
#[derive(Clone, Debug)]
pub(crate) struct Futures {
    /// `walletBalance` of USDT, scale 8.
    pub wallet: i64,
    /// The leverage of every symbol.
    pub leverage: i64,
    /// Positions by symbol (a symbol never traded has none).
    pub positions: BTreeMap<&'static str, Position>,
}

/// What the margin arithmetic needs to know about the market: a mark price per symbol.
pub(crate) type Marks<'a> = &'a dyn Fn(&str) -> Option<i64>;

impl Futures {
    pub fn new(wallet: i64, leverage: u32) -> Futures {
        Futures {
            wallet,
            leverage: i64::from(leverage.max(1)),
            positions: BTreeMap::new(),
        }
    }

    /// The position of `symbol` (flat if never traded).
    pub fn position(&self, symbol: &str) -> Position {
        self.positions.get(symbol).copied().unwrap_or_default()
    }

    /// Initial margin of a notional.
    pub fn margin_of(&self, notional: i64) -> i64 {
        (notional.max(0) + self.leverage - 1) / self.leverage
    }

    fn position_margin(&self, symbol: &str, p: &Position, marks: Marks<'_>) -> i64 {
        let mark = marks(symbol).unwrap_or(p.entry);
        self.margin_of(quote_of(mark, p.amt.abs()))
    }

    /// Initial margin held by the open orders (reduce-only ones hold none).
    pub fn open_order_margin(&self, orders: &[Order]) -> i64 {
        orders
            .iter()
            .filter(|o| o.is_open() && !o.reduce_only)
            .map(|o| self.margin_of(quote_of(o.price, o.orig_qty - o.executed)))
            .sum()
    }

    /// `(unrealizedProfit, positionInitialMargin)` of every position.
    fn totals(&self, marks: Marks<'_>) -> (i64, i64) {
        self.positions.iter().fold((0, 0), |(u, m), (s, p)| {
            (
                u + p.unrealized(marks(s).unwrap_or(p.entry)),
                m + self.position_margin(s, p, marks),
            )
        })
    }

    /// `availableBalance`.
    pub fn available(&self, orders: &[Order], marks: Marks<'_>) -> i64 {
        let (unrealized, position_margin) = self.totals(marks);
        self.wallet + unrealized - position_margin - self.open_order_margin(orders)
    }

    /// `GET /fapi/v2/account` (and `v3`, which has the same fields the engine and ccxt read).
    pub fn account_json(&self, orders: &[Order], marks: Marks<'_>, now_ms: u64) -> Value {
        let (unrealized, position_margin) = self.totals(marks);
        let order_margin = self.open_order_margin(orders);
        let available = self.wallet + unrealized - position_margin - order_margin;
        let margin_balance = self.wallet + unrealized;
        let initial = position_margin + order_margin;
        let positions: Vec<Value> = self
            .positions
            .iter()
            .map(|(s, p)| {
                let mark = marks(s).unwrap_or(p.entry);
                let margin = self.position_margin(s, p, marks);
                json!({
                    "symbol": s,
                    "initialMargin": dec(margin),
                    "maintMargin": "0",
                    "unrealizedProfit": dec(p.unrealized(mark)),
                    "positionInitialMargin": dec(margin),
                    "openOrderInitialMargin": "0",
                    "leverage": self.leverage.to_string(),
                    "isolated": false,
                    "entryPrice": dec(p.entry),
                    "breakEvenPrice": dec(p.entry),
                    "maxNotional": "250000000",
                    "bidNotional": "0",
                    "askNotional": "0",
                    "positionSide": "BOTH",
                    "positionAmt": dec(p.amt),
                    "notional": dec(quote_of(mark, p.amt.abs()) * p.amt.signum()),
                    "isolatedWallet": "0",
                    "updateTime": now_ms,
                })
            })
            .collect();
        json!({
            "feeTier": 0,
            "feeBurn": false,
            "canTrade": true,
            "canDeposit": true,
            "canWithdraw": true,
            "updateTime": 0,
            "multiAssetsMargin": false,
            "tradeGroupId": -1,
            "totalInitialMargin": dec(initial),
            "totalMaintMargin": "0.00000000",
            "totalWalletBalance": dec(self.wallet),
            "totalUnrealizedProfit": dec(unrealized),
            "totalMarginBalance": dec(margin_balance),
            "totalPositionInitialMargin": dec(position_margin),
            "totalOpenOrderInitialMargin": dec(order_margin),
            "totalCrossWalletBalance": dec(self.wallet),
            "totalCrossUnPnl": dec(unrealized),
            "availableBalance": dec(available),
            "maxWithdrawAmount": dec(available.max(0)),
            "assets": [{
                "asset": "USDT",
                "walletBalance": dec(self.wallet),
                "unrealizedProfit": dec(unrealized),
                "marginBalance": dec(margin_balance),
                "maintMargin": "0.00000000",
                "initialMargin": dec(initial),
                "positionInitialMargin": dec(position_margin),
                "openOrderInitialMargin": dec(order_margin),
                "crossWalletBalance": dec(self.wallet),
                "crossUnPnl": dec(unrealized),
                "availableBalance": dec(available),
                "maxWithdrawAmount": dec(available.max(0)),
                "marginAvailable": true,
                "updateTime": now_ms,
            }],
            "positions": positions,
        })
    }

    /// `GET /fapi/v2/positionRisk` (`v3` has the same fields ccxt reads): every position, or
    /// `symbol`'s.
    pub fn position_risk_json(&self, symbol: Option<&str>, marks: Marks<'_>, now_ms: u64) -> Value {
        Value::Array(
            self.positions
                .iter()
                .filter(|(s, _)| symbol.is_none_or(|x| x == **s))
                .map(|(s, p)| {
                    let mark = marks(s).unwrap_or(p.entry);
                    json!({
                        "symbol": s,
                        "positionSide": "BOTH",
                        "positionAmt": dec(p.amt),
                        "entryPrice": dec(p.entry),
                        "breakEvenPrice": dec(p.entry),
                        "markPrice": dec(mark),
                        "unRealizedProfit": dec(p.unrealized(mark)),
                        "liquidationPrice": "0",
                        "isolatedMargin": "0",
                        "notional": dec(quote_of(mark, p.amt.abs()) * p.amt.signum()),
                        "marginAsset": "USDT",
                        "isolatedWallet": "0",
                        "initialMargin": dec(self.position_margin(s, p, marks)),
                        "maintMargin": "0",
                        "positionInitialMargin": dec(self.position_margin(s, p, marks)),
                        "openOrderInitialMargin": "0",
                        "adl": 0,
                        "bidNotional": "0",
                        "askNotional": "0",
                        "leverage": self.leverage.to_string(),
                        "marginType": "cross",
                        "isAutoAddMargin": "false",
                        "maxNotionalValue": "250000000",
                        "updateTime": now_ms,
                    })
                })
                .collect(),
        )
    }

    /// The `ACCOUNT_UPDATE` event after a fill of `symbol` (reason `ORDER`).
    pub fn account_update(&self, symbol: &'static str, mark: Option<i64>, now_ms: u64) -> Value {
        let p = self.position(symbol);
        json!({
            "e": "ACCOUNT_UPDATE",
            "E": now_ms,
            "T": now_ms,
            "a": {
                "m": "ORDER",
                "B": [{"a": "USDT", "wb": dec(self.wallet), "cw": dec(self.wallet), "bc": "0"}],
                "P": [{
                    "s": symbol,
                    "pa": dec(p.amt),
                    "ep": dec(p.entry),
                    "bep": dec(p.entry),
                    "cr": dec(p.realized),
                    "up": dec(p.unrealized(mark.unwrap_or(p.entry))),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                }],
            },
        })
    }
}

/// Average fill price of an order (`avgPrice`), 0 before the first fill.
fn avg_price(o: &Order) -> i64 {
    if o.executed == 0 {
        return 0;
    }
    i64::try_from(i128::from(o.cum_quote) * i128::from(ONE) / i128::from(o.executed)).unwrap_or(0)
}

/// An order in USD-M's shape: the new-order (`RESULT`/`ACK`) and cancel responses and the
/// order query (`time` is only in the query).
pub(crate) fn order_json(o: &Order, query: bool) -> Value {
    let mut v = json!({
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": dec(o.price),
        "avgPrice": dec(avg_price(o)),
        "origQty": dec(o.orig_qty),
        "executedQty": dec(o.executed),
        "cumQty": dec(o.executed),
        "cumQuote": dec(o.cum_quote),
        "timeInForce": o.time_in_force,
        "type": o.order_type,
        "reduceOnly": o.reduce_only,
        "closePosition": false,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": false,
        "origType": o.order_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.update_ms,
    });
    if query {
        if let Some(obj) = v.as_object_mut() {
            obj.remove("cumQty");
            obj.insert("time".into(), json!(o.time_ms));
        }
    }
    v
}

/// The `ORDER_TRADE_UPDATE` event for order `o`: `x` the execution type, `last` the fill
/// (price, qty, commission, trade id, realized profit) if any.
pub(crate) fn order_trade_update(
    o: &Order,
    x: &str,
    last: Option<(i64, i64, i64, u64, i64)>,
    maker: bool,
    now_ms: u64,
) -> Value {
    let (lp, l, n, t, rp) = last.unwrap_or((0, 0, 0, 0, 0));
    json!({
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "o": {
            "s": o.symbol,
            "c": o.client_order_id,
            "S": o.side,
            "o": o.order_type,
            "f": o.time_in_force,
            "q": dec(o.orig_qty),
            "p": dec(o.price),
            "ap": dec(avg_price(o)),
            "sp": "0",
            "x": x,
            "X": o.status,
            "i": o.order_id,
            "l": dec(l),
            "z": dec(o.executed),
            "L": dec(lp),
            "N": "USDT",
            "n": dec(n),
            "T": now_ms,
            "t": t,
            "b": "0",
            "a": "0",
            "m": maker,
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": o.order_type,
            "ps": "BOTH",
            "cp": false,
            "rp": dec(rp),
            "pP": false,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: i64 = ONE / 1000;

    #[test]
    fn entry_averages_on_increase_and_realizes_on_decrease_and_flip() {
        let mut p = Position::default();
        assert_eq!(p.apply(2 * Q, 60_000 * ONE), 0);
        assert_eq!(p.apply(2 * Q, 60_010 * ONE), 0);
        assert_eq!((p.amt, p.entry), (4 * Q, 60_005 * ONE));
        // Sell 0.003 at 60020: realizes 0.003 * 15.
        assert_eq!(p.apply(-3 * Q, 60_020 * ONE), 45 * ONE / 1000);
        assert_eq!((p.amt, p.entry), (Q, 60_005 * ONE));
        // Sell 0.003 at 59990: closes 0.001 at -15, then 0.002 short at 59990.
        assert_eq!(p.apply(-3 * Q, 59_990 * ONE), -15 * ONE / 1000);
        assert_eq!((p.amt, p.entry), (-2 * Q, 59_990 * ONE));
        assert_eq!(p.apply(2 * Q, 59_980 * ONE), 20 * ONE / 1000);
        assert_eq!(
            p,
            Position {
                amt: 0,
                entry: 0,
                realized: 50 * ONE / 1000
            }
        );
    }
}
