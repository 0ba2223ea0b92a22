//! The axum router of the admin API: authentication, the handlers and JSON errors.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hotpath::event::{Control, ControlKind, Stamps};
use hotpath::instrument::InstrumentId;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminConfig, AdminCounters, AdminState, AdminToken, ControlError, NS_PER_HOUR};

/// What the router's state holds.
pub(super) struct Shared {
    pub(super) state: Arc<AdminState>,
    pub(super) config: AdminConfig,
    pub(super) token: AdminToken,
}

type S = State<Arc<Shared>>;

/// An error answered as `{"error": code, "message": text}`.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            _ => "malformed_json",
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "control_busy",
                e.to_string(),
            ),
            ControlError::Journal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "journal", e.to_string())
            }
        }
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The router with every route, the body limit and the auth layer (outermost, so that even
/// unknown paths need the token).
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let max_body = shared.config.max_body;
    Router::new()
        .route("/api/v1/watchlist", get(list))
        .route("/api/v1/watchlist/add", post(add))
        .route("/api/v1/watchlist/remove", post(remove).delete(remove))
        .route("/api/v1/watchlist/renew", post(renew))
        .route("/api/v1/watchlist/top-liquid", get(top_liquid))
        .route("/api/v1/status", get(status))
        .route("/api/v1/positions", get(positions))
        .route("/api/v1/halt", post(halt))
        .route("/api/v1/resume", post(resume))
        .route("/api/v1/config/reload", post(reload))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(shared.clone(), auth))
        .with_state(shared)
}

/// Bearer-token check, then counting of the outcome.
async fn auth(State(sh): S, req: Request, next: Next) -> Response {
    let c: &AdminCounters = &sh.state.counters;
    AdminCounters::bump(&c.requests);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let ok = presented.is_some_and(|t| sh.token.matches(t));
    if !ok {
        AdminCounters::bump(&c.unauthorized);
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let resp = next.run(req).await;
    if resp.status().is_client_error() || resp.status().is_server_error() {
        AdminCounters::bump(&c.rejected);
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Body of add / remove / renew (the seed's fields; `exchange` and `market_type` are accepted
/// and echoed, the instrument table decides what a symbol is).
#[derive(Debug, Deserialize)]
struct WatchReq {
    symbol: String,
    #[serde(default)]
    duration_hours: Option<u64>,
    #[serde(default)]
    priority: Option<u8>,
    #[serde(default)]
    exchange: Option<String>,
    #[serde(default)]
    market_type: Option<String>,
}

/// The symbol's upper-case name and id, or 422.
fn resolve(sh: &Shared, symbol: &str) -> Result<(String, InstrumentId), ApiError> {
    let sym = symbol.trim().to_ascii_uppercase();
    match sh.state.instrument(&sym) {
        Some(id) => Ok((sym, id)),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_symbol",
            format!("unknown symbol {:?}", symbol.trim()),
        )),
    }
}

/// `duration_hours` (default: the configured TTL) as ns, within 1 h ..= the configured maximum.
fn duration_ns(sh: &Shared, hours: Option<u64>) -> Result<u64, ApiError> {
    let max = u64::try_from(sh.config.max_watchlist_ttl.as_nanos()).unwrap_or(u64::MAX);
    match hours {
        None => Ok(u64::try_from(sh.config.watchlist_ttl.as_nanos()).unwrap_or(u64::MAX)),
        Some(h) if h >= 1 && h.saturating_mul(NS_PER_HOUR) <= max => Ok(h * NS_PER_HOUR),
        Some(h) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            format!("duration_hours {h} outside 1..={}", max / NS_PER_HOUR),
        )),
    }
}

/// Build, send and count a command.
fn command(
    sh: &Shared,
    kind: ControlKind,
    inst: InstrumentId,
    arg: u64,
    now: u64,
) -> Result<u64, ApiError> {
    let cmd = Control::new(kind, inst, arg, now, Stamps::new(0, 0));
    let seq = sh.state.control.send(cmd)?;
    AdminCounters::bump(&sh.state.counters.commands);
    tracing::info!(
        command = kind.name(),
        instrument = inst.0,
        arg,
        seq,
        "admin command"
    );
    Ok(seq)
}

async fn list(State(sh): S) -> ApiResult {
    let now = (sh.state.clock)();
    let entries = sh.state.lock_watchlist().active(now);
    Ok(Json(
        json!({ "now_unix_ns": now, "count": entries.len(), "entries": entries }),
    ))
}

async fn add(State(sh): S, body: Result<Json<WatchReq>, JsonRejection>) -> ApiResult {
    let Json(req) = body?;
    let (sym, id) = resolve(&sh, &req.symbol)?;
    let dur = duration_ns(&sh, req.duration_hours)?;
    let priority = req.priority.unwrap_or(3);
    if !(1..=5).contains(&priority) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "priority must be 1..=5",
        ));
    }
    let now = (sh.state.clock)();
    let expires = now.saturating_add(dur);
    let mut wl = sh.state.lock_watchlist();
    let seq = command(&sh, ControlKind::WatchlistAdd, id, expires, now)?;
    let entry = wl.add(&sym, id, priority, now, expires);
    Ok(Json(json!({
        "added": entry,
        "exchange": req.exchange,
        "market_type": req.market_type,
        "journal_seq": seq,
    })))
}

async fn remove(State(sh): S, body: Result<Json<WatchReq>, JsonRejection>) -> ApiResult {
    let Json(req) = body?;
    let (sym, id) = resolve(&sh, &req.symbol)?;
    let now = (sh.state.clock)();
    let mut wl = sh.state.lock_watchlist();
    if !wl.contains(&sym, now) {
        return Err(not_listed(&sym));
    }
    let seq = command(&sh, ControlKind::WatchlistRemove, id, 0, now)?;
    let entry = wl.remove(&sym, now);
    Ok(Json(json!({ "removed": entry, "journal_seq": seq })))
}

async fn renew(State(sh): S, body: Result<Json<WatchReq>, JsonRejection>) -> ApiResult {
    let Json(req) = body?;
    let (sym, id) = resolve(&sh, &req.symbol)?;
    let dur = duration_ns(&sh, req.duration_hours)?;
    let now = (sh.state.clock)();
    // Renewing restarts the lifetime from now (it does not stack), so an entry can never be
    // pushed further out than one lifetime.
    let expires = now.saturating_add(dur);
    let mut wl = sh.state.lock_watchlist();
    if !wl.contains(&sym, now) {
        return Err(not_listed(&sym));
    }
    let seq = command(&sh, ControlKind::WatchlistRenew, id, expires, now)?;
    let entry = wl.renew(&sym, now, expires);
    Ok(Json(json!({ "renewed": entry, "journal_seq": seq })))
}

fn not_listed(sym: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_on_watchlist",
        format!("{sym} is not on the watchlist (or has expired)"),
    )
}

async fn halt(State(sh): S) -> ApiResult {
    let now = (sh.state.clock)();
    let seq = command(&sh, ControlKind::Halt, InstrumentId::NONE, 0, now)?;
    Ok(Json(json!({ "accepted": "halt", "journal_seq": seq })))
}

async fn resume(State(sh): S) -> ApiResult {
    let now = (sh.state.clock)();
    let seq = command(&sh, ControlKind::Resume, InstrumentId::NONE, 0, now)?;
    Ok(Json(json!({ "accepted": "resume", "journal_seq": seq })))
}

async fn reload(State(sh): S) -> ApiResult {
    let Some(r) = sh.state.reloader.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_configured",
            "configuration reload is not configured",
        ));
    };
    let generation = tokio::task::spawn_blocking(move || r.reload())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", e))?;
    let now = (sh.state.clock)();
    let seq = command(
        &sh,
        ControlKind::ConfigReload,
        InstrumentId::NONE,
        generation,
        now,
    )?;
    Ok(Json(
        json!({ "accepted": "config_reload", "generation": generation, "journal_seq": seq }),
    ))
}

async fn status(State(sh): S) -> ApiResult {
    let now = (sh.state.clock)();
    let watch = sh.state.lock_watchlist().active(now).len();
    Ok(Json(json!({
        "engine": sh.state.status.status(),
        "admin": {
            "now_unix_ns": now,
            "watchlist_entries": watch,
            "counters": sh.state.counters.to_json(),
        },
    })))
}

async fn positions(State(sh): S) -> ApiResult {
    Ok(Json(sh.state.status.positions()))
}

/// One element of Binance's `GET /api/v3/ticker/24hr` array (fields the ranking reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticker24h {
    symbol: String,
    #[serde(default)]
    quote_volume: Option<String>,
    #[serde(default)]
    volume: Option<String>,
    #[serde(default)]
    last_price: Option<String>,
    #[serde(default)]
    price_change_percent: Option<String>,
    #[serde(default)]
    count: Option<u64>,
}

async fn top_liquid(State(sh): S) -> ApiResult {
    let url = format!(
        "{}/api/v3/ticker/24hr",
        sh.config.venue_rest_url.trim_end_matches('/')
    );
    let timeout = sh.config.venue_timeout;
    let fetch_url = url.clone();
    let body = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut resp = agent.get(&fetch_url).call().map_err(|e| e.to_string())?;
        resp.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "venue_error",
            format!("{url}: {e}"),
        )
    })?;
    let tickers: Vec<Ticker24h> = serde_json::from_str(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "venue_error",
            format!("{url}: unexpected 24hr ticker payload: {e}"),
        )
    })?;
    let total = tickers.len();
    // Ranking only: f64 is exact enough to order volumes (the values are reported verbatim).
    let mut ranked: Vec<(f64, Ticker24h)> = tickers
        .into_iter()
        .filter_map(|t| {
            let v: f64 = t.quote_volume.as_deref()?.parse().ok()?;
            v.is_finite().then_some((v, t))
        })
        .collect();
    let skipped = total - ranked.len();
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| a.1.symbol.cmp(&b.1.symbol))
    });
    ranked.truncate(sh.config.top_liquid_count);
    let symbols: Vec<Value> = ranked
        .iter()
        .enumerate()
        .map(|(i, (_, t))| {
            json!({
                "rank": i + 1,
                "symbol": t.symbol,
                "quote_volume": t.quote_volume,
                "volume": t.volume,
                "last_price": t.last_price,
                "price_change_percent": t.price_change_percent,
                "trades": t.count,
                "instrument": sh.state.instrument(&t.symbol).map(|id| id.0),
            })
        })
        .collect();
    Ok(Json(json!({
        "source": url,
        "tickers": total,
        "skipped": skipped,
        "count": symbols.len(),
        "symbols": symbols,
    })))
}
