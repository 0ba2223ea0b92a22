//! Binance user-data stream events, decoded without allocation: spot `executionReport` and
//! USD-M `ORDER_TRADE_UPDATE` (whose order fields sit in the `o` object under the same
//! one-letter keys), plus `listenKeyExpired`.
//!
//! Why: fills of resting orders arrive only here, and the gateway's order state machine needs
//! every fill with its last price/quantity, cumulative quantity and commission. The frame is
//! walked once with [`for_each_field`](super::orders::for_each_field); decimals become mantissas
//! at the instrument's scales. Which instrument a report belongs to is the gateway's business
//! (it keys by client order id), so `s` is returned as bytes.

use super::orders::{for_each_field, JsonValue, OrderDecodeError, OrderStatus, FEE_SCALE};
use crate::fixed::{Price, Qty};

/// Binance's execution type (`x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecType {
    /// The order was accepted.
    New,
    /// A fill.
    Trade,
    /// Canceled.
    Canceled,
    /// Expired.
    Expired,
    /// Rejected.
    Rejected,
    /// Replaced / amended (`REPLACED`, `AMENDMENT`): reported, not acted on.
    Other,
}

impl ExecType {
    fn parse(s: &[u8]) -> ExecType {
        match s {
            b"NEW" => ExecType::New,
            b"TRADE" => ExecType::Trade,
            b"CANCELED" => ExecType::Canceled,
            b"EXPIRED" | b"TRADE_PREVENTION" => ExecType::Expired,
            b"REJECTED" => ExecType::Rejected,
            _ => ExecType::Other,
        }
    }
}

/// The fields of an execution report the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionReport<'a> {
    /// `s`.
    pub symbol: &'a [u8],
    /// `c`: the client id of the request that caused the report (for a cancel, the cancel's).
    pub client_order_id: &'a [u8],
    /// `C`: the original client id of a canceled order (empty otherwise).
    pub orig_client_order_id: &'a [u8],
    /// `x`.
    pub exec_type: ExecType,
    /// `X`.
    pub status: OrderStatus,
    /// `r` (`NONE` unless rejected).
    pub reject_reason: &'a [u8],
    /// `i`.
    pub order_id: u64,
    /// `q`.
    pub orig_qty: Qty,
    /// `l`.
    pub last_qty: Qty,
    /// `z`.
    pub cum_qty: Qty,
    /// `L`.
    pub last_px: Price,
    /// `n` at [`FEE_SCALE`].
    pub commission: i64,
    /// `T` (transaction time, ms).
    pub time_ms: u64,
    /// `t` (trade id; -1 when not a trade, reported as 0).
    pub trade_id: u64,
    /// `m`.
    pub is_maker: bool,
}

/// One user-data-stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent<'a> {
    /// `executionReport` / `ORDER_TRADE_UPDATE`.
    Execution(ExecutionReport<'a>),
    /// `listenKeyExpired`: the stream is dead, a new listen key is needed.
    ListenKeyExpired,
    /// Any other event (`outboundAccountPosition`, `balanceUpdate`, ...), by its `e`.
    Other(&'a [u8]),
}

/// Decodes one user-data-stream frame at the instrument's scales (`scales` maps the symbol to
/// `(price_scale, qty_scale)`; `None` means unknown, decoded at scale 8).
pub fn decode_user_event<'a>(
    frame: &'a [u8],
    scales: impl Fn(&[u8]) -> Option<(u8, u8)>,
) -> Result<UserEvent<'a>, OrderDecodeError> {
    let mut e: &[u8] = b"";
    let mut inner: Option<&[u8]> = None;
    for_each_field(frame, |k, v| match (k, v) {
        (b"e", v) => e = v.text().unwrap_or(b""),
        (b"o", JsonValue::Object(o)) => inner = Some(o),
        _ => {}
    })?;
    let body = match e {
        b"executionReport" => frame,
        b"ORDER_TRADE_UPDATE" => inner.ok_or(OrderDecodeError::Field("o"))?,
        b"listenKeyExpired" => return Ok(UserEvent::ListenKeyExpired),
        _ => return Ok(UserEvent::Other(e)),
    };
    decode_report(body, scales).map(UserEvent::Execution)
}

fn decode_report<'a>(
    body: &'a [u8],
    scales: impl Fn(&[u8]) -> Option<(u8, u8)>,
) -> Result<ExecutionReport<'a>, OrderDecodeError> {
    // The symbol is needed before the decimals can be parsed: find it first.
    let mut symbol: &[u8] = b"";
    for_each_field(body, |k, v| {
        if k == b"s" {
            symbol = v.text().unwrap_or(b"");
        }
    })?;
    let (ps, qs) = scales(symbol).unwrap_or((FEE_SCALE, FEE_SCALE));
    let mut r = ExecutionReport {
        symbol,
        client_order_id: b"",
        orig_client_order_id: b"",
        exec_type: ExecType::Other,
        status: OrderStatus::New,
        reject_reason: b"",
        order_id: 0,
        orig_qty: Qty(0),
        last_qty: Qty(0),
        cum_qty: Qty(0),
        last_px: Price(0),
        commission: 0,
        time_ms: 0,
        trade_id: 0,
        is_maker: false,
    };
    let mut bad: Option<&'static str> = None;
    let mut status = false;
    for_each_field(body, |k, v| {
        let mut dec = |scale: u8, name: &'static str| {
            let m = v.as_mantissa(scale);
            if m.is_none() && bad.is_none() {
                bad = Some(name);
            }
            m.unwrap_or(0)
        };
        match k {
            b"c" => r.client_order_id = v.text().unwrap_or(b""),
            b"C" => r.orig_client_order_id = v.text().unwrap_or(b""),
            b"x" => r.exec_type = ExecType::parse(v.text().unwrap_or(b"")),
            b"X" => match v.text().and_then(OrderStatus::parse) {
                Some(s) => {
                    r.status = s;
                    status = true;
                }
                None => bad = bad.or(Some("X")),
            },
            b"r" => r.reject_reason = v.text().unwrap_or(b""),
            b"i" => match v.as_u64() {
                Some(i) => r.order_id = i,
                None => bad = bad.or(Some("i")),
            },
            b"q" => r.orig_qty = Qty(dec(qs, "q")),
            b"l" => r.last_qty = Qty(dec(qs, "l")),
            b"z" => r.cum_qty = Qty(dec(qs, "z")),
            b"L" => r.last_px = Price(dec(ps, "L")),
            // `n` is null on spot reports without a commission.
            b"n" if !matches!(v, JsonValue::Null) => r.commission = dec(FEE_SCALE, "n"),
            b"T" => r.time_ms = v.as_u64().unwrap_or(0),
            b"t" => r.trade_id = v.as_u64().unwrap_or(0),
            b"m" => r.is_maker = matches!(v, JsonValue::Bool(true)),
            _ => {}
        }
    })?;
    if let Some(name) = bad {
        return Err(OrderDecodeError::Field(name));
    }
    if !status {
        return Err(OrderDecodeError::Field("X"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Binance's documented spot executionReport (a TRADE), with the fields it shows.
    const TRADE: &str = r#"{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.40000000","z":"0.40000000","L":"0.10264410","n":"0.00004000","N":"ETH","T":1499405658657,"t":1234,"I":8641984,"w":true,"m":false,"M":false,"O":1499405658657,"Z":"0.04105764","Y":"0.04105764","Q":"0.00000000","W":1499405658657,"V":"NONE"}"#;

    #[test]
    fn documented_execution_report() {
        let ev =
            decode_user_event(TRADE.as_bytes(), |s| (s == b"ETHBTC").then_some((8, 3))).unwrap();
        let UserEvent::Execution(r) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(r.symbol, b"ETHBTC");
        assert_eq!(r.client_order_id, b"mUvoqJxFIILMdfAW5iGSOW");
        assert_eq!(r.exec_type, ExecType::Trade);
        assert_eq!(r.status, OrderStatus::PartiallyFilled);
        assert_eq!(r.order_id, 4_293_153);
        assert_eq!(r.orig_qty, Qty(1000));
        assert_eq!(r.last_qty, Qty(400));
        assert_eq!(r.cum_qty, Qty(400));
        assert_eq!(r.last_px, Price(10_264_410));
        assert_eq!(r.commission, 4000);
        assert_eq!(r.trade_id, 1234);
        assert_eq!(r.time_ms, 1_499_405_658_657);
    }

    #[test]
    fn futures_update_expiry_and_other_events() {
        let f = br#"{"e":"ORDER_TRADE_UPDATE","E":1568879465651,"T":1568879465650,"o":{"s":"BTCUSDT","c":"TEST","S":"SELL","o":"TRAILING_STOP_MARKET","f":"GTC","q":"0.001","p":"0","ap":"0","sp":"7103.04","x":"NEW","X":"NEW","i":8886774,"l":"0","z":"0","L":"0","N":"USDT","n":"0","T":1568879465650,"t":0,"b":"0","a":"9.91","m":false,"R":false,"wt":"CONTRACT_PRICE","ot":"TRAILING_STOP_MARKET","ps":"LONG","cp":false,"rp":"0"}}"#;
        let UserEvent::Execution(r) = decode_user_event(f, |_| Some((2, 3))).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.exec_type, r.status, r.order_id),
            (ExecType::New, OrderStatus::New, 8_886_774)
        );
        assert_eq!(r.orig_qty, Qty(1));
        assert_eq!(
            decode_user_event(br#"{"e":"listenKeyExpired","E":1576653824250}"#, |_| None),
            Ok(UserEvent::ListenKeyExpired)
        );
        assert_eq!(
            decode_user_event(br#"{"e":"balanceUpdate","a":"BTC"}"#, |_| None),
            Ok(UserEvent::Other(b"balanceUpdate"))
        );
        let bad = TRADE.replace(r#""z":"0.40000000""#, r#""z":"x""#);
        assert!(decode_user_event(bad.as_bytes(), |_| Some((8, 3))).is_err());
    }
}
