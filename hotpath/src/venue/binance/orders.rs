//! Binance order-entry responses, decoded without allocation: new/cancel/query order bodies,
//! the `fills` of a `FULL` response, error bodies (`{"code":-1013,"msg":"..."}`) and
//! `GET /api/v3/time`.
//!
//! Why a scanner of its own: the market-data [`Scanner`](super::Scanner) is specialised for
//! stream shapes, and order responses are small flat objects read once per order, so a generic
//! single-pass walker over one object's top-level fields ([`for_each_field`]) is all that is
//! needed. It yields each key with its value as a borrowed [`JsonValue`] (strings unescaped
//! only by the caller: Binance's order fields never contain escapes); nested values are skipped
//! whole and can be walked again ([`for_each_element`] for the `fills` array). Decimals go
//! straight to mantissas with [`parse_mantissa`] at the instrument's scales; a field that does
//! not parse is an [`OrderDecodeError`], never a guess.
//!
//! The user-data stream's `executionReport` is decoded in [`super::user_stream`] with the same
//! walker; the gateway (`crate::gateway`) turns both into `ExecEvent`s and order-state
//! transitions.

use crate::fixed::{parse_mantissa, Price, Qty};

/// Binance prints commissions with 8 decimals; fees are kept at this scale.
pub const FEE_SCALE: u8 = 8;

/// A JSON value as borrowed bytes of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonValue<'a> {
    /// A string's bytes between the quotes, escapes left as they are.
    Str(&'a [u8]),
    /// A number's bytes.
    Num(&'a [u8]),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A whole object, braces included.
    Object(&'a [u8]),
    /// A whole array, brackets included.
    Array(&'a [u8]),
}

impl<'a> JsonValue<'a> {
    /// The bytes of a string or number (Binance quotes decimals but not integers).
    #[inline]
    pub fn text(self) -> Option<&'a [u8]> {
        match self {
            JsonValue::Str(s) | JsonValue::Num(s) => Some(s),
            _ => None,
        }
    }

    /// An unsigned integer (number or quoted digits).
    #[inline]
    pub fn as_u64(self) -> Option<u64> {
        parse_u64(self.text()?)
    }

    /// A signed integer.
    #[inline]
    pub fn as_i64(self) -> Option<i64> {
        let t = self.text()?;
        match t.split_first() {
            Some((b'-', rest)) => parse_u64(rest)
                .and_then(|v| i64::try_from(v).ok())
                .map(|v| -v),
            _ => parse_u64(t).and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// A decimal as a mantissa at `scale`.
    #[inline]
    pub fn as_mantissa(self, scale: u8) -> Option<i64> {
        parse_mantissa(self.text()?, scale).ok()
    }
}

fn parse_u64(t: &[u8]) -> Option<u64> {
    if t.is_empty() || t.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in t {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Malformed JSON, with the byte offset where the walker gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed JSON at byte {at}: {what}")]
pub struct JsonError {
    /// Offset into the input.
    pub at: usize,
    /// What was expected.
    pub what: &'static str,
}

fn jerr(at: usize, what: &'static str) -> JsonError {
    JsonError { at, what }
}

#[inline]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// End (exclusive, after the closing quote) of the string starting at `s[i] == '"'`.
fn string_end(s: &[u8], i: usize) -> Result<usize, JsonError> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Ok(j + 1),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    Err(jerr(i, "unterminated string"))
}

/// Parses the value at `s[i]` (no leading whitespace); returns it and the offset after it.
fn value_at(s: &[u8], i: usize) -> Result<(JsonValue<'_>, usize), JsonError> {
    match s.get(i) {
        Some(b'"') => {
            let end = string_end(s, i)?;
            Ok((JsonValue::Str(&s[i + 1..end - 1]), end))
        }
        Some(b'{') | Some(b'[') => {
            // Skip the nested value by depth, aware of strings.
            let mut depth = 0usize;
            let mut j = i;
            while j < s.len() {
                match s[j] {
                    b'"' => {
                        j = string_end(s, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            let v = &s[i..=j];
                            return Ok((
                                if s[i] == b'{' {
                                    JsonValue::Object(v)
                                } else {
                                    JsonValue::Array(v)
                                },
                                j + 1,
                            ));
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(jerr(i, "unterminated object or array"))
        }
        Some(b't') if s[i..].starts_with(b"true") => Ok((JsonValue::Bool(true), i + 4)),
        Some(b'f') if s[i..].starts_with(b"false") => Ok((JsonValue::Bool(false), i + 5)),
        Some(b'n') if s[i..].starts_with(b"null") => Ok((JsonValue::Null, i + 4)),
        Some(b) if b.is_ascii_digit() || *b == b'-' => {
            let mut j = i + 1;
            while j < s.len() && matches!(s[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                j += 1;
            }
            Ok((JsonValue::Num(&s[i..j]), j))
        }
        _ => Err(jerr(i, "a value")),
    }
}

/// Calls `f(key, value)` for each top-level field of the JSON object `obj` (surrounding
/// whitespace allowed), in input order.
pub fn for_each_field<'a>(
    obj: &'a [u8],
    mut f: impl FnMut(&'a [u8], JsonValue<'a>),
) -> Result<(), JsonError> {
    let mut i = skip_ws(obj, 0);
    if obj.get(i) != Some(&b'{') {
        return Err(jerr(i, "'{'"));
    }
    i = skip_ws(obj, i + 1);
    if obj.get(i) == Some(&b'}') {
        return Ok(());
    }
    loop {
        if obj.get(i) != Some(&b'"') {
            return Err(jerr(i, "a key"));
        }
        let kend = string_end(obj, i)?;
        let key = &obj[i + 1..kend - 1];
        i = skip_ws(obj, kend);
        if obj.get(i) != Some(&b':') {
            return Err(jerr(i, "':'"));
        }
        i = skip_ws(obj, i + 1);
        let (v, next) = value_at(obj, i)?;
        f(key, v);
        i = skip_ws(obj, next);
        match obj.get(i) {
            Some(b',') => i = skip_ws(obj, i + 1),
            Some(b'}') => return Ok(()),
            _ => return Err(jerr(i, "',' or '}'")),
        }
    }
}

/// Calls `f(value)` for each element of the JSON array `arr`.
pub fn for_each_element<'a>(
    arr: &'a [u8],
    mut f: impl FnMut(JsonValue<'a>),
) -> Result<(), JsonError> {
    let mut i = skip_ws(arr, 0);
    if arr.get(i) != Some(&b'[') {
        return Err(jerr(i, "'['"));
    }
    i = skip_ws(arr, i + 1);
    if arr.get(i) == Some(&b']') {
        return Ok(());
    }
    loop {
        let (v, next) = value_at(arr, i)?;
        f(v);
        i = skip_ws(arr, next);
        match arr.get(i) {
            Some(b',') => i = skip_ws(arr, i + 1),
            Some(b']') => return Ok(()),
            _ => return Err(jerr(i, "',' or ']'")),
        }
    }
}

/// Binance's order status (`X` in the user stream, `status` in REST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Accepted, resting.
    New,
    /// Partly filled, rest still open.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Canceled.
    Canceled,
    /// Cancel in progress (not used by Binance spot today).
    PendingCancel,
    /// Rejected by the engine.
    Rejected,
    /// Expired (IOC/FOK remainder, GTX that would take, self-trade prevention).
    Expired,
}

impl OrderStatus {
    /// The status from Binance's spelling (`EXPIRED_IN_MATCH` is an expiry).
    pub fn parse(s: &[u8]) -> Option<OrderStatus> {
        Some(match s {
            b"NEW" => OrderStatus::New,
            b"PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            b"FILLED" => OrderStatus::Filled,
            b"CANCELED" => OrderStatus::Canceled,
            b"PENDING_CANCEL" => OrderStatus::PendingCancel,
            b"REJECTED" => OrderStatus::Rejected,
            b"EXPIRED" | b"EXPIRED_IN_MATCH" => OrderStatus::Expired,
            _ => return None,
        })
    }
}

/// Why an order response could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderDecodeError {
    /// Not a JSON object.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A field is missing or does not parse (decimals with more places than the scale, ...).
    #[error("field '{0}' is missing or malformed")]
    Field(&'static str),
}

/// The fields of a new-order, cancel or query-order response that the gateway uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderResponse<'a> {
    /// `orderId`.
    pub order_id: u64,
    /// `clientOrderId` (for a cancel: the cancel request's own id).
    pub client_order_id: &'a [u8],
    /// `origClientOrderId` (cancel responses): the canceled order's id.
    pub orig_client_order_id: &'a [u8],
    /// `status`, if present (absent in `ACK` responses).
    pub status: Option<OrderStatus>,
    /// `executedQty` at the instrument's quantity scale.
    pub executed_qty: Qty,
    /// `cummulativeQuoteQty` at price scale + quantity scale would overflow easily: kept at
    /// [`FEE_SCALE`] (quote asset, 8 decimals as Binance prints it).
    pub cum_quote: i64,
    /// `origQty` at the quantity scale (0 if absent).
    pub orig_qty: Qty,
    /// `transactTime` (new/cancel) or `updateTime` (query), ms since the epoch; 0 if absent.
    pub time_ms: u64,
    /// The raw `fills` array of a `FULL` response (empty if absent); see [`for_each_fill`].
    pub fills: &'a [u8],
}

/// Decodes an order response body at the instrument's scales.
pub fn decode_order_response(
    body: &[u8],
    price_scale: u8,
    qty_scale: u8,
) -> Result<OrderResponse<'_>, OrderDecodeError> {
    let _ = price_scale;
    let mut r = OrderResponse::default();
    let mut bad: Option<&'static str> = None;
    let mut has_id = false;
    for_each_field(body, |k, v| {
        let mut check = |ok: bool, name: &'static str| {
            if !ok && bad.is_none() {
                bad = Some(name);
            }
        };
        match k {
            b"orderId" => {
                let x = v.as_u64();
                has_id = x.is_some();
                r.order_id = x.unwrap_or(0);
                check(has_id, "orderId");
            }
            b"clientOrderId" => {
                r.client_order_id = v.text().unwrap_or(b"");
            }
            b"origClientOrderId" => r.orig_client_order_id = v.text().unwrap_or(b""),
            b"status" => {
                r.status = v.text().and_then(OrderStatus::parse);
                check(r.status.is_some(), "status");
            }
            b"executedQty" => {
                let x = v.as_mantissa(qty_scale);
                r.executed_qty = Qty(x.unwrap_or(0));
                check(x.is_some(), "executedQty");
            }
            b"origQty" => {
                let x = v.as_mantissa(qty_scale);
                r.orig_qty = Qty(x.unwrap_or(0));
                check(x.is_some(), "origQty");
            }
            // `cumQuote` is USD-M's name for it.
            b"cummulativeQuoteQty" | b"cumQuote" => {
                let x = v.as_mantissa(FEE_SCALE);
                r.cum_quote = x.unwrap_or(0);
                check(x.is_some(), "cummulativeQuoteQty");
            }
            b"transactTime" | b"updateTime" => {
                if let Some(t) = v.as_u64() {
                    r.time_ms = r.time_ms.max(t);
                }
            }
            b"fills" => {
                if let JsonValue::Array(a) = v {
                    r.fills = a;
                }
            }
            _ => {}
        }
    })?;
    if let Some(name) = bad {
        return Err(OrderDecodeError::Field(name));
    }
    if !has_id {
        return Err(OrderDecodeError::Field("orderId"));
    }
    Ok(r)
}

/// One element of a `FULL` response's `fills`, or one trade of an account trade list (spot
/// `GET /api/v3/myTrades`, USD-M `GET /fapi/v1/userTrades`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fill {
    /// `price` at the instrument's price scale.
    pub price: Price,
    /// `qty` at the quantity scale.
    pub qty: Qty,
    /// `commission` at [`FEE_SCALE`].
    pub commission: i64,
    /// `tradeId` (a `fills` element) or `id` (a trade list's).
    pub trade_id: u64,
    /// `isMaker` (spot) or `maker` (USD-M); false in `fills`, which only takers get.
    pub maker: bool,
    /// `time`, ms; 0 in `fills`, which have none.
    pub time_ms: u64,
}

/// Calls `f` for each fill of a `fills` array or each trade of a trade list; stops at the
/// first malformed one.
pub fn for_each_fill(
    fills: &[u8],
    price_scale: u8,
    qty_scale: u8,
    mut f: impl FnMut(Fill),
) -> Result<(), OrderDecodeError> {
    if fills.is_empty() {
        return Ok(());
    }
    let mut bad = None;
    for_each_element(fills, |el| {
        if bad.is_some() {
            return;
        }
        let JsonValue::Object(o) = el else {
            bad = Some(OrderDecodeError::Field("fills"));
            return;
        };
        let mut fill = Fill::default();
        let (mut px, mut qty) = (false, false);
        let r = for_each_field(o, |k, v| match k {
            b"price" => {
                if let Some(m) = v.as_mantissa(price_scale) {
                    fill.price = Price(m);
                    px = true;
                }
            }
            b"qty" => {
                if let Some(m) = v.as_mantissa(qty_scale) {
                    fill.qty = Qty(m);
                    qty = true;
                }
            }
            b"commission" => fill.commission = v.as_mantissa(FEE_SCALE).unwrap_or(0),
            b"tradeId" | b"id" => fill.trade_id = v.as_u64().unwrap_or(0),
            b"isMaker" | b"maker" => fill.maker = v == JsonValue::Bool(true),
            b"time" => fill.time_ms = v.as_u64().unwrap_or(0),
            _ => {}
        });
        match r {
            Err(e) => bad = Some(e.into()),
            Ok(()) if !(px && qty) => bad = Some(OrderDecodeError::Field("fills.price/qty")),
            Ok(()) => f(fill),
        }
    })?;
    bad.map_or(Ok(()), Err)
}

/// A Binance error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiErrorBody<'a> {
    /// `code` (negative).
    pub code: i32,
    /// `msg`, raw.
    pub msg: &'a [u8],
}

/// The error body `{"code":..,"msg":..}`, if `body` is one.
pub fn decode_error(body: &[u8]) -> Option<ApiErrorBody<'_>> {
    let (mut code, mut msg) = (None, &b""[..]);
    for_each_field(body, |k, v| match k {
        b"code" => code = v.as_i64().and_then(|c| i32::try_from(c).ok()),
        b"msg" => msg = v.text().unwrap_or(b""),
        _ => {}
    })
    .ok()?;
    Some(ApiErrorBody { code: code?, msg })
}

/// `serverTime` of a `GET /api/v3/time` (or `/fapi/v1/time`) response.
pub fn decode_server_time(body: &[u8]) -> Option<u64> {
    let mut t = None;
    for_each_field(body, |k, v| {
        if k == b"serverTime" {
            t = v.as_u64();
        }
    })
    .ok()?;
    t
}

/// `listenKey` of a `POST /api/v3/userDataStream` response.
pub fn decode_listen_key(body: &[u8]) -> Option<&[u8]> {
    let mut t = None;
    for_each_field(body, |k, v| {
        if k == b"listenKey" {
            t = v.text();
        }
    })
    .ok()?;
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    // Binance's documented FULL response for POST /api/v3/order.
    const FULL: &str = r#"{
      "symbol": "BTCUSDT", "orderId": 28, "orderListId": -1,
      "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP", "transactTime": 1507725176595,
      "price": "0.00000000", "origQty": "10.00000000", "executedQty": "10.00000000",
      "origQuoteOrderQty": "0.000000", "cummulativeQuoteQty": "10.00000000",
      "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "SELL",
      "workingTime": 1507725176595, "selfTradePreventionMode": "NONE",
      "fills": [
        {"price": "4000.00000000", "qty": "1.00000000", "commission": "4.00000000",
         "commissionAsset": "USDT", "tradeId": 56},
        {"price": "3999.00000000", "qty": "5.00000000", "commission": "19.99500000",
         "commissionAsset": "USDT", "tradeId": 57},
        {"price": "3998.00000000", "qty": "2.00000000", "commission": "7.99600000",
         "commissionAsset": "USDT", "tradeId": 58}
      ]
    }"#;

    #[test]
    fn documented_full_response() {
        let r = decode_order_response(FULL.as_bytes(), 2, 5).unwrap();
        assert_eq!(r.order_id, 28);
        assert_eq!(r.client_order_id, b"6gCrw2kRUAF9CvJDGP16IP");
        assert_eq!(r.status, Some(OrderStatus::Filled));
        assert_eq!(r.executed_qty, Qty(1_000_000));
        assert_eq!(r.orig_qty, Qty(1_000_000));
        assert_eq!(r.cum_quote, 1_000_000_000);
        assert_eq!(r.time_ms, 1_507_725_176_595);
        let mut fills = Vec::new();
        for_each_fill(r.fills, 2, 5, |f| fills.push(f)).unwrap();
        assert_eq!(fills.len(), 3);
        assert_eq!(fills[1].price, Price(399_900));
        assert_eq!(fills[1].qty, Qty(500_000));
        assert_eq!(fills[1].commission, 1_999_500_000);
        assert_eq!(fills[2].trade_id, 58);
    }

    /// Trade lists as Binance documents them (spot `myTrades`, USD-M `userTrades`): trade id,
    /// maker flag and time read; an element without a price is an error, not a fill of zero.
    #[test]
    fn trade_lists_of_spot_and_usdm() {
        let spot = br#"[{"symbol":"BNBBTC","id":28457,"orderId":100234,"orderListId":-1,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","commission":"10.10000000","commissionAsset":"BNB","time":1499865549590,"isBuyer":true,"isMaker":false,"isBestMatch":true}]"#;
        let mut fills = Vec::new();
        for_each_fill(spot, 8, 8, |f| fills.push(f)).unwrap();
        assert_eq!(fills.len(), 1);
        let f = fills[0];
        assert_eq!((f.price, f.qty), (Price(400_000_100), Qty(1_200_000_000)));
        assert_eq!((f.commission, f.trade_id), (1_010_000_000, 28457));
        assert_eq!((f.maker, f.time_ms), (false, 1_499_865_549_590));
        let usdm = br#"[{"buyer":false,"commission":"-0.07819010","commissionAsset":"USDT","id":698759,"maker":true,"orderId":25851813,"price":"7819.01","qty":"0.002","quoteQty":"15.63802","realizedPnl":"-0.91539999","side":"SELL","positionSide":"SHORT","symbol":"BTCUSDT","time":1569514978020}]"#;
        fills.clear();
        for_each_fill(usdm, 2, 3, |f| fills.push(f)).unwrap();
        assert_eq!((fills[0].trade_id, fills[0].maker), (698759, true));
        assert_eq!((fills[0].price, fills[0].qty), (Price(781_901), Qty(2)));
        assert_eq!(fills[0].commission, -7_819_010);
        let broken = br#"[{"id":1,"qty":"1.0","commission":"0"}]"#;
        assert!(for_each_fill(broken, 2, 3, |_| {}).is_err());
    }

    #[test]
    fn errors_times_and_malformed_input() {
        let e = decode_error(br#"{"code":-1013,"msg":"Filter failure: LOT_SIZE"}"#).unwrap();
        assert_eq!(e.code, -1013);
        assert_eq!(e.msg, b"Filter failure: LOT_SIZE");
        assert!(decode_error(br#"{"orderId":1}"#).is_none());
        assert_eq!(
            decode_server_time(br#"{"serverTime":1499827319559}"#),
            Some(1_499_827_319_559)
        );
        assert_eq!(
            decode_listen_key(br#"{"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}"#)
                .map(<[u8]>::len),
            Some(64)
        );
        // Too precise for the scale: an error, never rounded.
        let body = br#"{"orderId":1,"executedQty":"0.00000001","status":"NEW"}"#;
        assert_eq!(
            decode_order_response(body, 2, 5),
            Err(OrderDecodeError::Field("executedQty"))
        );
        for bad in [
            &b"{"[..],
            b"",
            b"[1]",
            br#"{"a" 1}"#,
            br#"{"a":"x}"#,
            br#"{"a":1,}"#,
        ] {
            assert!(decode_order_response(bad, 2, 5).is_err(), "{:?}", bad);
        }
        let mut seen = 0;
        for_each_field(
            br#" { "a" : [1,{"b":"]"}] , "c":null,"d":true } "#,
            |_, _| seen += 1,
        )
        .unwrap();
        assert_eq!(seen, 3);
    }
}
