//! Instruments from Binance `exchangeInfo` (`/api/v3/exchangeInfo`, `/fapi/v1/exchangeInfo`,
//! `/dapi/v1/exchangeInfo`), for the instrument table filled during warm-up.
//!
//! This is cold-path code (it allocates freely): it runs once at start-up and after a
//! reconnect, never per message. Each symbol becomes an [`InstrumentSpec`] with its tick, step,
//! minimum quantity and notional, contract size and kind; a symbol whose filters cannot be used
//! is reported with its reason instead of failing the whole response.
//!
//! # Which scales
//!
//! The decoders parse every price and quantity exactly at the instrument's scales and reject a
//! value with more decimals. The tick and step sizes alone are not enough for that: Binance
//! changes them over time, and resting orders placed under an older, finer step stay in the
//! book. The real spot capture of 2024-08-08 has BTCUSDT depth levels like `"25.42618900"`
//! (six decimals) while the step size is `0.00001`, so a table built from the step would reject
//! real messages. [`ScalePolicy::Venue`] (the default) therefore uses the precision Binance
//! formats numbers with (spot: `quoteAssetPrecision`/`baseAssetPrecision`, 8 for most pairs;
//! futures: `pricePrecision`/`quantityPrecision`), which by construction covers everything the
//! venue sends; [`ScalePolicy::Filters`] uses the tick and step (compact mantissas, but it
//! rejects such legacy levels as too precise).

use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::fixed::{Decimal, Price, Qty, MAX_SCALE};
use crate::instrument::{
    InstrumentError, InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable, Symbol, Venue,
};

/// How instrument scales are chosen (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalePolicy {
    /// Price scale: the larger of the tick size's decimals and the venue's price precision;
    /// quantity scale: the larger of the step size's decimals and the venue's quantity
    /// precision. Every number Binance sends for the symbol fits exactly.
    #[default]
    Venue,
    /// Price scale from the tick size, quantity scale from the step size
    /// ([`InstrumentSpec::from_filters`]): smallest mantissas; quantities from orders placed
    /// under an older, finer step are rejected as too precise.
    Filters,
}

/// Why `exchangeInfo` (or one of its symbols) could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeInfoError {
    /// The body is not JSON.
    #[error("exchangeInfo is not valid JSON: {0}")]
    Json(String),
    /// The body has no `symbols` array.
    #[error("exchangeInfo has no \"symbols\" array")]
    NoSymbols,
    /// The venue is not a Binance venue.
    #[error("{0} is not a Binance venue")]
    NotBinance(Venue),
    /// One symbol's entry is unusable.
    #[error("symbol {symbol}: {reason}")]
    Symbol {
        /// The symbol (empty if it had none).
        symbol: String,
        /// Why.
        reason: String,
    },
}

/// One symbol of an `exchangeInfo` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolInfo {
    /// The symbol (`BTCUSDT`, `BTCUSD_PERP`).
    pub symbol: String,
    /// `status` (spot, USD-M) or `contractStatus` (COIN-M), e.g. `TRADING`; empty if absent.
    pub status: String,
    /// The instrument, or why the entry cannot be used.
    pub spec: Result<InstrumentSpec, ExchangeInfoError>,
}

/// A parsed `exchangeInfo` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeInfo {
    /// The venue it was fetched from.
    pub venue: Venue,
    /// Every symbol, in response order.
    pub symbols: Vec<SymbolInfo>,
}

impl ExchangeInfo {
    /// Parse a response body (modified in place: simd-json unescapes strings) from `venue`.
    pub fn parse(
        body: &mut [u8],
        venue: Venue,
        policy: ScalePolicy,
    ) -> Result<ExchangeInfo, ExchangeInfoError> {
        if !matches!(
            venue,
            Venue::BinanceSpot | Venue::BinanceUsdM | Venue::BinanceCoinM
        ) {
            return Err(ExchangeInfoError::NotBinance(venue));
        }
        let root = simd_json::to_borrowed_value(body)
            .map_err(|e| ExchangeInfoError::Json(e.to_string()))?;
        let symbols = root
            .get("symbols")
            .and_then(|s| s.as_array())
            .ok_or(ExchangeInfoError::NoSymbols)?;
        let symbols = symbols
            .iter()
            .map(|s| {
                let symbol = s.get_str("symbol").unwrap_or_default().to_string();
                let status = s
                    .get_str("status")
                    .or_else(|| s.get_str("contractStatus"))
                    .unwrap_or_default()
                    .to_string();
                let spec =
                    build_spec(s, venue, policy).map_err(|reason| ExchangeInfoError::Symbol {
                        symbol: symbol.clone(),
                        reason,
                    });
                SymbolInfo {
                    symbol,
                    status,
                    spec,
                }
            })
            .collect();
        Ok(ExchangeInfo { venue, symbols })
    }

    /// The entry for `symbol` (ASCII case-insensitive).
    pub fn get(&self, symbol: &str) -> Option<&SymbolInfo> {
        self.symbols
            .iter()
            .find(|s| s.symbol.eq_ignore_ascii_case(symbol))
    }

    /// Intern every usable symbol that `keep` accepts (e.g. `|s| s.status == "TRADING"`, or a
    /// watchlist) into `table`; returns their ids in response order. Unusable entries are
    /// skipped (they are listed in [`symbols`](Self::symbols) with their reason); a table
    /// error (full, conflicting definition) stops and is returned.
    pub fn intern_into(
        &self,
        table: &mut InstrumentTable,
        mut keep: impl FnMut(&SymbolInfo) -> bool,
    ) -> Result<Vec<InstrumentId>, InstrumentError> {
        let mut ids = Vec::new();
        for s in &self.symbols {
            if let Ok(spec) = &s.spec {
                if keep(s) {
                    ids.push(table.intern(*spec)?);
                }
            }
        }
        Ok(ids)
    }
}

/// A string or an integer field as decimal text.
fn text_field(v: &BorrowedValue<'_>, key: &str) -> Option<String> {
    let f = v.get(key)?;
    if let Some(s) = f.as_str() {
        return Some(s.to_string());
    }
    f.as_u64().map(|n| n.to_string())
}

/// The value of `field` in the first filter of type `filter_type`.
fn filter(v: &BorrowedValue<'_>, filter_type: &str, field: &str) -> Option<String> {
    v.get("filters")?
        .as_array()?
        .iter()
        .find(|f| f.get_str("filterType") == Some(filter_type))
        .and_then(|f| text_field(f, field))
}

fn precision(v: &BorrowedValue<'_>, keys: &[&str]) -> Option<u8> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(|p| p.as_u64()))
        .map(|p| p.min(u64::from(u8::MAX)) as u8)
}

fn build_spec(
    v: &BorrowedValue<'_>,
    venue: Venue,
    policy: ScalePolicy,
) -> Result<InstrumentSpec, String> {
    let symbol = v.get_str("symbol").ok_or("no \"symbol\"")?;
    let contract_type = v.get_str("contractType").unwrap_or_default();
    let perpetual = contract_type.starts_with("PERPETUAL");
    let kind = match venue {
        Venue::BinanceSpot => InstrumentKind::Spot,
        Venue::BinanceUsdM if perpetual => InstrumentKind::Perp,
        Venue::BinanceUsdM => InstrumentKind::Future,
        Venue::BinanceCoinM if perpetual => InstrumentKind::InversePerp,
        _ => InstrumentKind::InverseFuture,
    };
    let tick_size = filter(v, "PRICE_FILTER", "tickSize").ok_or("no PRICE_FILTER.tickSize")?;
    let step_size = filter(v, "LOT_SIZE", "stepSize").ok_or("no LOT_SIZE.stepSize")?;
    let min_qty = filter(v, "LOT_SIZE", "minQty").unwrap_or_else(|| "0".into());
    let min_notional = filter(v, "NOTIONAL", "minNotional")
        .or_else(|| filter(v, "MIN_NOTIONAL", "minNotional"))
        .or_else(|| filter(v, "MIN_NOTIONAL", "notional"))
        .unwrap_or_else(|| "0".into());
    let tick = Decimal::parse(tick_size.as_bytes()).map_err(|e| format!("tick size: {e}"))?;
    let step = Decimal::parse(step_size.as_bytes()).map_err(|e| format!("step size: {e}"))?;
    let (mut price_scale, mut qty_scale) = (tick.min_scale(), step.min_scale());
    if policy == ScalePolicy::Venue {
        let (price_keys, qty_keys): (&[&str], &[&str]) = match venue {
            Venue::BinanceSpot => (
                &["quoteAssetPrecision", "quotePrecision"],
                &["baseAssetPrecision"],
            ),
            _ => (&["pricePrecision"], &["quantityPrecision"]),
        };
        price_scale = price_scale.max(precision(v, price_keys).unwrap_or(0));
        qty_scale = qty_scale.max(precision(v, qty_keys).unwrap_or(0));
    }
    if price_scale > MAX_SCALE || qty_scale > MAX_SCALE {
        return Err(format!(
            "scales {price_scale}/{qty_scale} exceed the maximum of {MAX_SCALE}"
        ));
    }
    let sym = Symbol::new(symbol.as_bytes()).map_err(|e| e.to_string())?;
    let mut spec = InstrumentSpec::new(venue, sym, kind, price_scale, qty_scale);
    spec.tick =
        Price::parse(tick_size.as_bytes(), price_scale).map_err(|e| format!("tick size: {e}"))?;
    spec.step =
        Qty::parse(step_size.as_bytes(), qty_scale).map_err(|e| format!("step size: {e}"))?;
    spec.min_qty =
        Qty::parse(min_qty.as_bytes(), qty_scale).map_err(|e| format!("min qty: {e}"))?;
    spec.min_notional = Decimal::parse(min_notional.as_bytes())
        .map_err(|e| format!("min notional: {e}"))?
        .normalize();
    if venue == Venue::BinanceCoinM {
        let size = text_field(v, "contractSize").ok_or("no contractSize")?;
        spec.contract_size = Decimal::parse(size.as_bytes())
            .map_err(|e| format!("contract size: {e}"))?
            .normalize();
    }
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}
