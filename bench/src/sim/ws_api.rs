//! The simulator's Binance WebSocket API (`/ws-api/v3` on the WebSocket server): the same
//! requests as REST, one JSON request per text frame and one JSON response per text frame.
//!
//! Why: the WebSocket API is Binance's second order-entry transport (one persistent
//! connection instead of an HTTP request per order), and the gateway can use it instead of
//! REST. The simulator answers it with the REST server's own request handling
//! ([`rest::execute`]: weights and bans, endpoints, matching), so the two transports can only
//! differ in framing and authentication, which is what Binance documents:
//!
//! * **Request** `{"id":…,"method":"order.place","params":{…}}`; `id` is an integer, a string
//!   or `null` and is echoed back; `method` may carry a `v3/` prefix. Methods: `ping`, `time`,
//!   `exchangeInfo`, `depth`, `klines`, `order.place`, `order.cancel`, `order.status`,
//!   `openOrders.status`, `allOrders`, `account.status`, `userDataStream.start|ping|stop`.
//! * **Authentication**: `apiKey` is a parameter (`-2014`/`-2015` as REST's header); a signed
//!   request's `signature` is HMAC-SHA256 over every other parameter sorted by name and joined
//!   as `name=value&…` (string values as sent, numbers and booleans as their JSON text), checked
//!   with the gateway's own `Signer` (`-1022`); then `timestamp`/`recvWindow` exactly as REST
//!   (`-1021`).
//! * **Response** `{"id":…,"status":200,"result":…,"rateLimits":[…]}` or
//!   `{"id":…,"status":4xx,"error":{"code":…,"msg":…},"rateLimits":[…]}`; `status` is the HTTP
//!   status REST would have answered. `rateLimits` carries `REQUEST_WEIGHT` (1 minute) and, for
//!   orders, the `ORDERS` counts (10 seconds, 1 day); a 429 or 418 error carries
//!   `data: {serverTime, retryAfter}` (epoch ms), Binance's `Retry-After`.
//! * **Malformed requests**: invalid JSON or a non-object `params` get status 400 with `-1135`,
//!   an unknown method `-1020`; the connection stays open.
//!
//! `"returnRateLimits": false` leaves `rateLimits` out of that response.
//!
//! Not simulated: `session.logon` (every signed request carries its own signature here),
//! the connection-wide `returnRateLimits` URL parameter, and the 2 weight Binance charges for
//! opening the connection.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::rest::{
    check_api_key, check_recv_window, err, execute, mandatory, timestamp_param, verify_signature,
    ApiError, Endpoint, Params, Shared, ORDER_COUNT_10S_HEADER, ORDER_COUNT_1D_HEADER,
    ORDER_LIMIT_10S, ORDER_LIMIT_1D, USED_WEIGHT_HEADER,
};
use super::stamps::WireLog;

/// Answers one request frame; returns the response frame's text.
pub(crate) fn handle(
    shared: &Shared,
    peer: IpAddr,
    payload: &[u8],
    stamps: Option<&WireLog>,
) -> String {
    let tsc = stamps.map(WireLog::now);
    let Ok(req) = serde_json::from_slice::<Value>(payload) else {
        return error_frame(
            shared,
            &Value::Null,
            &err(400, -1135, "Invalid JSON request."),
        );
    };
    let id = match req.get("id") {
        Some(v @ (Value::Number(_) | Value::String(_) | Value::Null)) => v.clone(),
        None => Value::Null,
        Some(_) => {
            return error_frame(
                shared,
                &Value::Null,
                &err(400, -1135, "Invalid 'id' in JSON request."),
            )
        }
    };
    let empty = Map::new();
    let obj = match req.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(_) => {
            return error_frame(
                shared,
                &id,
                &err(
                    400,
                    -1135,
                    "Invalid 'params' in JSON request; expected an object.",
                ),
            )
        }
    };
    let Some(ep) = req
        .get("method")
        .and_then(Value::as_str)
        .and_then(Endpoint::ws_method)
    else {
        return error_frame(
            shared,
            &id,
            &err(400, -1020, "This operation is not supported."),
        );
    };
    let pairs: Vec<(String, String)> = obj.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    if let (Some(log), Some(tsc), Endpoint::NewOrder) = (stamps, tsc, ep) {
        let cid = pairs
            .iter()
            .find(|(k, _)| k == "newClientOrderId")
            .map_or(&b""[..], |(_, v)| v.as_bytes());
        log.order(tsc, cid);
    }
    let params = Params::from_pairs(pairs);
    let (result, headers) = execute(shared, peer, ep, &params, || {
        if ep.key_only() || ep.signed() {
            check_api_key(shared, params.require("apiKey")?)?;
        }
        if ep.signed() {
            authenticate(shared, &params)?;
        }
        Ok(())
    });
    let show_limits = params.get("returnRateLimits") != Some("false");
    // Written with `Display` rather than `json!`: the macro would copy the whole result
    // through the serializer (tens of microseconds per order, all of it simulator overhead
    // in the order-transport benchmark).
    let limits = if show_limits {
        format!(",\"rateLimits\":{}", rate_limits(shared, &headers))
    } else {
        String::new()
    };
    match result {
        Ok(v) => format!("{{\"id\":{id},\"status\":200,\"result\":{v}{limits}}}"),
        Err(e) => {
            let error = error_object(shared, &e, &headers);
            format!(
                "{{\"id\":{id},\"status\":{},\"error\":{error}{limits}}}",
                e.status
            )
        }
    }
}

/// A parameter's value as it is signed: a string's contents, any other value's JSON text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The signature payload of a WebSocket API request: every parameter but `signature`, sorted
/// by name, as `name=value` pairs joined with `&`.
pub(crate) fn signature_payload(params: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = params.pairs().filter(|(k, _)| *k != "signature").collect();
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// Signature (`-1102` when absent, `-1022` when wrong), then timing (`-1021`), as REST.
fn authenticate(shared: &Shared, params: &Params) -> Result<(), ApiError> {
    let ts = timestamp_param(params)?;
    let sig = params
        .get("signature")
        .ok_or_else(|| mandatory("signature"))?;
    let payload = signature_payload(params);
    verify_signature(shared, &[payload.as_bytes()], sig.as_bytes())?;
    check_recv_window(shared, params, ts)
}

/// `rateLimits` from the rate-limit facts REST sends as headers.
fn rate_limits(shared: &Shared, headers: &[(&'static str, String)]) -> Value {
    let count = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let mut out = Vec::new();
    if let Some(n) = count(ORDER_COUNT_10S_HEADER) {
        out.push(json!({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": ORDER_LIMIT_10S, "count": n}));
    }
    if let Some(n) = count(ORDER_COUNT_1D_HEADER) {
        out.push(json!({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": ORDER_LIMIT_1D, "count": n}));
    }
    if let Some(n) = count(USED_WEIGHT_HEADER) {
        out.push(json!({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": shared.cfg.weight_limit, "count": n}));
    }
    Value::Array(out)
}

/// The `error` object; 429 and 418 carry `data: {serverTime, retryAfter}` (epoch ms), from
/// `Retry-After`.
fn error_object(shared: &Shared, e: &ApiError, headers: &[(&'static str, String)]) -> Value {
    let mut error = json!({"code": e.code, "msg": e.msg});
    let retry_s = headers
        .iter()
        .find(|(n, _)| *n == "Retry-After")
        .and_then(|(_, v)| v.parse::<u64>().ok());
    if let Some(s) = retry_s {
        let now = shared.now_ms();
        error["data"] = json!({"serverTime": now, "retryAfter": now + s * 1000});
    }
    error
}

/// The response to a request that never reached the endpoints (no rate limits to report).
fn error_frame(shared: &Shared, id: &Value, e: &ApiError) -> String {
    let error = error_object(shared, e, &[]);
    format!("{{\"id\":{id},\"status\":{},\"error\":{error}}}", e.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotpath::venue::binance::sign::Signer;

    /// Binance's documented WebSocket API signing example (HMAC): the payload and signature.
    #[test]
    fn signature_payload_matches_binances_example() {
        let pairs = [
            ("symbol", "BTCUSDT"),
            ("side", "SELL"),
            ("type", "LIMIT"),
            ("timeInForce", "GTC"),
            ("quantity", "0.01000000"),
            ("price", "52000.00"),
            ("newOrderRespType", "ACK"),
            ("recvWindow", "100"),
            ("timestamp", "1645423376532"),
            (
                "apiKey",
                "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A",
            ),
            ("signature", "ignored"),
        ];
        let p = Params::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let payload = signature_payload(&p);
        assert_eq!(
            payload,
            "apiKey=vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A&newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
        );
        let signer = Signer::from_secret_bytes(
            b"NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        );
        assert!(signer.verify_hex(
            &[payload.as_bytes()],
            b"cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
        ));
    }

    #[test]
    fn parameter_values_are_signed_as_sent() {
        assert_eq!(text(&json!("0.10")), "0.10");
        assert_eq!(text(&json!(5000)), "5000");
        assert_eq!(text(&json!(true)), "true");
    }
}
