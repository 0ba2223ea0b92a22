//! Binance request signing: API credentials, the HMAC-SHA256 signature of a `SIGNED` request and
//! an allocation-free builder for order parameters.
//!
//! # Why it looks like this
//!
//! Binance authenticates every order with `signature = hex(HMAC-SHA256(secret, totalParams))`,
//! where `totalParams` is the query string followed directly (no separator) by the request
//! body, and the API key travels in the `X-MBX-APIKEY` header. The gateway signs on the hot
//! path, so:
//!
//! * [`Signer`] keys the HMAC once (the secret is hashed into the inner/outer pads at
//!   construction) and signs each request by copying that keyed state on the stack: `hmac` and
//!   `sha2` keep all state in fixed-size arrays, so `update`/`finalize` never touch the heap.
//!   The hex signature is written into a caller-provided `[u8; 64]`.
//! * [`QueryBuf`] formats order parameters (symbol, side, type, timeInForce, quantity, price from
//!   fixed-point mantissas via [`format_decimal`], newClientOrderId, recvWindow, timestamp) into
//!   a fixed array and appends `&signature=…`, refusing (never truncating, never allocating) when
//!   the buffer is full. Values are validated against Binance's character sets rather than
//!   percent-encoded, so the signed bytes are exactly the bytes sent.
//!
//! The venue simulator (`bench::sim`) verifies signatures with the same [`Signer`]
//! ([`Signer::verify_hex`], constant-time), so both ends of the loopback agree by construction
//! and the unit tests below pin them to Binance's documented example.
//!
//! # Secrets
//!
//! [`ApiKey`] and [`ApiSecret`] never print their contents: `Debug` and `Display` show a
//! redacted form, so a credential cannot leak through a log line or a panic message. They are
//! loaded from the environment (`BINANCE_API_KEY` / `BINANCE_API_SECRET`,
//! [`Credentials::from_env`]) or from a file that only its owner can read
//! ([`Credentials::from_file`]; mode `0600` or stricter, anything else is refused). The secret's
//! bytes are overwritten when it is dropped.

use core::fmt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::{OrderType, Side, TimeInForce};
use crate::fixed::{format_decimal, MAX_DECIMAL_LEN, MAX_SCALE};

type HmacSha256 = Hmac<Sha256>;

/// Length of a hex HMAC-SHA256 signature.
pub const SIGNATURE_HEX_LEN: usize = 64;

/// Environment variable holding the API key.
pub const ENV_API_KEY: &str = "BINANCE_API_KEY";
/// Environment variable holding the API secret.
pub const ENV_API_SECRET: &str = "BINANCE_API_SECRET";

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// An environment variable is not set (or not valid Unicode).
    #[error("environment variable {0} is not set")]
    MissingEnv(&'static str),
    /// The file is readable or writable by group or others.
    #[error(
        "refusing to read credentials from {path}: mode {mode:04o} lets group or others access \
         it; run `chmod 600 {path}`",
        path = .path.display()
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a regular file.
    #[error("credentials path {} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// Reading the file failed.
    #[error("cannot read credentials file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file lacks a key or a secret.
    #[error("credentials file {} has no {field}", .path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// `BINANCE_API_KEY` or `BINANCE_API_SECRET`.
        field: &'static str,
    },
    /// A key or secret is empty or contains bytes outside printable ASCII (it goes into an
    /// HTTP header or an HMAC key, so whitespace or control characters are always a mistake).
    #[error("{0} is empty or contains characters other than printable ASCII")]
    Malformed(&'static str),
}

fn check_printable(s: &str, what: &'static str) -> Result<(), CredentialsError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialsError::Malformed(what));
    }
    Ok(())
}

/// A Binance API key (sent in the `X-MBX-APIKEY` header). Not as sensitive as the secret, but it
/// identifies the account, so `Debug`/`Display` show only its first four characters.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key from its text; must be non-empty printable ASCII.
    pub fn new(key: impl Into<String>) -> Result<Self, CredentialsError> {
        let key = key.into();
        check_printable(&key, "API key")?;
        Ok(ApiKey(key))
    }

    /// The key, for the `X-MBX-APIKEY` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({self})")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.0.get(..4).unwrap_or("");
        write!(f, "{head}…(redacted)")
    }
}

/// A Binance API secret (the HMAC key). Never printed; overwritten with zeros on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(Box<[u8]>);

impl ApiSecret {
    /// A secret from its text; must be non-empty printable ASCII.
    pub fn new(secret: impl Into<String>) -> Result<Self, CredentialsError> {
        let secret = secret.into();
        check_printable(&secret, "API secret")?;
        Ok(ApiSecret(secret.into_bytes().into_boxed_slice()))
    }

    /// The secret's bytes, for keying an HMAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for ApiSecret {
    fn drop(&mut self) {
        self.0.fill(0);
        // Keep the zeroing from being optimised away as a dead store before the free.
        core::hint::black_box(&self.0);
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(<redacted>)")
    }
}

impl fmt::Display for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An API key with its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The key (`X-MBX-APIKEY`).
    pub key: ApiKey,
    /// The secret (HMAC key).
    pub secret: ApiSecret,
}

impl Credentials {
    /// Credentials from a key and a secret.
    pub fn new(
        key: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, CredentialsError> {
        Ok(Credentials {
            key: ApiKey::new(key)?,
            secret: ApiSecret::new(secret)?,
        })
    }

    /// From `BINANCE_API_KEY` and `BINANCE_API_SECRET` (surrounding whitespace is trimmed).
    pub fn from_env() -> Result<Self, CredentialsError> {
        Credentials::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading the variables through `lookup` (tests, or a
    /// configuration layer that owns the environment).
    pub fn from_lookup(
        mut lookup: impl FnMut(&'static str) -> Option<String>,
    ) -> Result<Self, CredentialsError> {
        let key = lookup(ENV_API_KEY).ok_or(CredentialsError::MissingEnv(ENV_API_KEY))?;
        let secret = lookup(ENV_API_SECRET).ok_or(CredentialsError::MissingEnv(ENV_API_SECRET))?;
        Credentials::new(key.trim(), secret.trim())
    }

    /// From a file of `NAME=value` lines (`BINANCE_API_KEY=…`, `BINANCE_API_SECRET=…`; also
    /// `api_key`/`api_secret`, an optional `export ` prefix, optional quotes, `#` comments),
    /// which must be a regular file with no permission bits for group or others (`chmod 600`).
    /// The permission check comes before the file is read.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CredentialsError> {
        let path = path.as_ref();
        let io = |source| CredentialsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if !meta.is_file() {
            return Err(CredentialsError::NotAFile(path.to_path_buf()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(CredentialsError::InsecurePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let (mut key, mut secret) = (None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            match name.trim() {
                "BINANCE_API_KEY" | "api_key" => key = Some(value.to_owned()),
                "BINANCE_API_SECRET" | "api_secret" => secret = Some(value.to_owned()),
                _ => {}
            }
        }
        let missing = |field| CredentialsError::MissingField {
            path: path.to_path_buf(),
            field,
        };
        let key = key.ok_or_else(|| missing(ENV_API_KEY))?;
        let secret = secret.ok_or_else(|| missing(ENV_API_SECRET))?;
        Credentials::new(key, secret)
    }
}

/// Lowercase hex of `bytes` into `out` (which must be twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
}

fn unhex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// HMAC-SHA256 keyed once with the API secret. Signing copies the keyed state (a few hundred
/// bytes on the stack) and never allocates.
#[derive(Clone)]
pub struct Signer {
    keyed: HmacSha256,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<keyed>)")
    }
}

impl Signer {
    /// A signer keyed with `secret`.
    pub fn new(secret: &ApiSecret) -> Self {
        Signer::from_secret_bytes(secret.expose())
    }

    /// A signer keyed with raw secret bytes (tests, the simulator).
    pub fn from_secret_bytes(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let keyed = match HmacSha256::new_from_slice(secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
        };
        Signer { keyed }
    }

    /// The raw 32-byte MAC of the concatenation of `parts` (Binance's `totalParams` is the query
    /// string followed directly by the body: pass `&[query, body]`).
    #[inline]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// Sign the concatenation of `parts` into `out` as 64 lowercase hex digits.
    #[inline]
    pub fn sign_into(&self, parts: &[&[u8]], out: &mut [u8; SIGNATURE_HEX_LEN]) {
        hex_into(&self.mac(parts), out);
    }

    /// True if `hex` (64 hex digits, either case) is the signature of the concatenation of
    /// `parts`; the comparison is constant-time.
    pub fn verify_hex(&self, parts: &[&[u8]], hex: &[u8]) -> bool {
        if hex.len() != SIGNATURE_HEX_LEN {
            return false;
        }
        let mut raw = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            match (unhex(pair[0]), unhex(pair[1])) {
                (Some(h), Some(l)) => raw[i] = h << 4 | l,
                _ => return false,
            }
        }
        let mut mac = self.keyed.clone();
        for p in parts {
            mac.update(p);
        }
        mac.verify_slice(&raw).is_ok()
    }
}

/// Why a query could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The buffer is full; nothing past the last whole parameter was kept.
    #[error("query buffer of {capacity} bytes is full")]
    Full {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// A value has characters Binance does not accept for that parameter (values are sent
    /// unencoded, so only the parameter's legal character set is allowed).
    #[error("parameter {0} is empty or has characters outside its legal set")]
    BadValue(&'static str),
    /// A decimal could not be formatted (scale above 18).
    #[error("parameter {0} has a scale above 18")]
    BadScale(&'static str),
}

/// Binance's `newClientOrderId` set: `^[\.A-Z\:/a-z0-9_-]{1,36}$`.
pub fn valid_client_order_id(id: &[u8]) -> bool {
    (1..=36).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
}

/// Binance's symbol set: `^[A-Z0-9-_.]{1,20}$`.
pub fn valid_symbol(symbol: &[u8]) -> bool {
    (1..=20).contains(&symbol.len())
        && symbol.iter().all(|&b| {
            b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Binance's spelling of a side.
pub const fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Binance spot's spelling of an order type ([`OrderType::StopMarket`] is `STOP_LOSS`, whose
/// trigger goes in `stopPrice`).
pub const fn order_type_str(t: OrderType) -> &'static str {
    match t {
        OrderType::Market => "MARKET",
        OrderType::Limit => "LIMIT",
        OrderType::LimitMaker => "LIMIT_MAKER",
        OrderType::StopMarket => "STOP_LOSS",
    }
}

/// Binance's spelling of a time in force (`GTX` exists on futures only).
pub const fn time_in_force_str(t: TimeInForce) -> &'static str {
    match t {
        TimeInForce::Gtc => "GTC",
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
        TimeInForce::Gtx => "GTX",
    }
}

/// A fixed-point value: mantissa at a scale (see [`crate::fixed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    /// The mantissa.
    pub mantissa: i64,
    /// Decimals.
    pub scale: u8,
}

/// The parameters of a new order, borrowed for the time it takes to encode them.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder<'a> {
    /// `symbol`, e.g. `BTCUSDT`.
    pub symbol: &'a [u8],
    /// `side`.
    pub side: Side,
    /// `type`.
    pub order_type: OrderType,
    /// `timeInForce` (required by Binance for `LIMIT`; omitted when `None`).
    pub time_in_force: Option<TimeInForce>,
    /// `quantity`.
    pub quantity: Fixed,
    /// `price` for limit orders, `stopPrice` for [`OrderType::StopMarket`]; omitted when `None`.
    pub price: Option<Fixed>,
    /// `newClientOrderId` (idempotency key; Binance rejects a duplicate of an open order).
    pub client_order_id: &'a [u8],
    /// `recvWindow` in milliseconds; omitted when `None` (Binance's default is 5000).
    pub recv_window_ms: Option<u32>,
    /// `timestamp`, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A query string under construction in a fixed `N`-byte array. Every push either appends a
/// whole `name=value` pair or leaves the buffer unchanged and fails.
#[derive(Clone)]
pub struct QueryBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for QueryBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for QueryBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueryBuf")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl<const N: usize> QueryBuf<N> {
    /// An empty query.
    pub const fn new() -> Self {
        QueryBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// Forget the contents.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The query so far.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The query as text (always ASCII).
    #[inline]
    pub fn as_str(&self) -> &str {
        // Every push writes ASCII only; a failure would be a bug, shown as an empty string.
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `name=value` (with a leading `&` unless first), all or nothing.
    fn push_raw(&mut self, name: &str, value: &[u8]) -> Result<(), QueryError> {
        let sep = usize::from(self.len > 0);
        let need = sep + name.len() + 1 + value.len();
        if self.len + need > N {
            return Err(QueryError::Full { capacity: N });
        }
        let mut at = self.len;
        if sep == 1 {
            self.buf[at] = b'&';
            at += 1;
        }
        self.buf[at..at + name.len()].copy_from_slice(name.as_bytes());
        at += name.len();
        self.buf[at] = b'=';
        at += 1;
        self.buf[at..at + value.len()].copy_from_slice(value);
        self.len = at + value.len();
        Ok(())
    }

    /// Append a parameter whose value is sent unencoded: it must be non-empty and consist of
    /// RFC 3986 unreserved characters or `:` and `/` (legal unencoded in a query).
    pub fn push(&mut self, name: &'static str, value: &[u8]) -> Result<(), QueryError> {
        let ok = !value.is_empty()
            && value.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/')
            });
        if !ok {
            return Err(QueryError::BadValue(name));
        }
        self.push_raw(name, value)
    }

    /// Append an unsigned integer parameter.
    pub fn push_u64(&mut self, name: &'static str, value: u64) -> Result<(), QueryError> {
        let mut digits = [0u8; 20];
        self.push_raw(name, u64_digits(value, &mut digits))
    }

    /// Append a fixed-point decimal parameter, formatted exactly (`format_decimal`).
    pub fn push_decimal(&mut self, name: &'static str, value: Fixed) -> Result<(), QueryError> {
        if value.scale > MAX_SCALE {
            return Err(QueryError::BadScale(name));
        }
        let mut tmp = [0u8; MAX_DECIMAL_LEN];
        let n = format_decimal(value.mantissa, value.scale, &mut tmp)
            .ok_or(QueryError::BadScale(name))?;
        self.push_raw(name, &tmp[..n])
    }

    /// Replace the contents with the parameters of `order`, in Binance's documented order:
    /// `symbol, side, type, timeInForce, quantity, price|stopPrice, newClientOrderId,
    /// recvWindow, timestamp`. On error the buffer is left empty.
    pub fn new_order(&mut self, order: &NewOrder<'_>) -> Result<(), QueryError> {
        self.clear();
        let r = self.new_order_inner(order);
        if r.is_err() {
            self.clear();
        }
        r
    }

    fn new_order_inner(&mut self, o: &NewOrder<'_>) -> Result<(), QueryError> {
        if !valid_symbol(o.symbol) {
            return Err(QueryError::BadValue("symbol"));
        }
        if !valid_client_order_id(o.client_order_id) {
            return Err(QueryError::BadValue("newClientOrderId"));
        }
        self.push_raw("symbol", o.symbol)?;
        self.push_raw("side", side_str(o.side).as_bytes())?;
        self.push_raw("type", order_type_str(o.order_type).as_bytes())?;
        if let Some(tif) = o.time_in_force {
            self.push_raw("timeInForce", time_in_force_str(tif).as_bytes())?;
        }
        self.push_decimal("quantity", o.quantity)?;
        if let Some(p) = o.price {
            let name = if o.order_type == OrderType::StopMarket {
                "stopPrice"
            } else {
                "price"
            };
            self.push_decimal(name, p)?;
        }
        self.push_raw("newClientOrderId", o.client_order_id)?;
        if let Some(w) = o.recv_window_ms {
            self.push_u64("recvWindow", u64::from(w))?;
        }
        self.push_u64("timestamp", o.timestamp_ms)
    }

    /// Append `&signature=<hex>` signed over the current contents followed by `body` (pass an
    /// empty body when every parameter is in the query). All or nothing.
    pub fn sign(&mut self, signer: &Signer, body: &[u8]) -> Result<(), QueryError> {
        let mut sig = [0u8; SIGNATURE_HEX_LEN];
        signer.sign_into(&[self.as_bytes(), body], &mut sig);
        self.push_raw("signature", &sig)
    }
}

/// The decimal digits of `v`, written into the end of `buf` (20 digits hold any `u64`): the
/// allocation-free integer formatting every signed request (REST query or WebSocket API
/// params) uses.
#[inline]
pub fn u64_digits(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const QUERY: &str = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    const SIG: &str = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";

    fn signer() -> Signer {
        Signer::new(&ApiSecret::new(SECRET).unwrap())
    }

    fn example_order() -> NewOrder<'static> {
        NewOrder {
            symbol: b"LTCBTC",
            side: Side::Buy,
            order_type: OrderType::Limit,
            time_in_force: Some(TimeInForce::Gtc),
            quantity: Fixed {
                mantissa: 1,
                scale: 0,
            },
            price: Some(Fixed {
                mantissa: 1,
                scale: 1,
            }),
            client_order_id: b"my_order-1",
            recv_window_ms: Some(5000),
            timestamp_ms: 1_499_827_319_559,
        }
    }

    #[test]
    fn binance_documented_example_query_string() {
        let mut out = [0u8; 64];
        signer().sign_into(&[QUERY.as_bytes()], &mut out);
        assert_eq!(core::str::from_utf8(&out).unwrap(), SIG);
        assert!(signer().verify_hex(&[QUERY.as_bytes()], SIG.as_bytes()));
        assert!(signer().verify_hex(&[QUERY.as_bytes()], SIG.to_uppercase().as_bytes()));
        let mut bad = SIG.as_bytes().to_vec();
        bad[0] = b'd';
        assert!(!signer().verify_hex(&[QUERY.as_bytes()], &bad));
        assert!(!signer().verify_hex(&[QUERY.as_bytes()], &SIG.as_bytes()[..63]));
    }

    #[test]
    fn binance_documented_example_query_plus_body() {
        // Binance's "mixed query string and request body" example: totalParams is the query
        // followed directly by the body, with no `&` between them.
        let q = b"symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC";
        let body = b"quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let mut out = [0u8; 64];
        signer().sign_into(&[q, body], &mut out);
        assert_eq!(
            core::str::from_utf8(&out).unwrap(),
            "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
        );
        // The whole example in one part equals the split version.
        signer().sign_into(&[body], &mut out);
        let mut out2 = [0u8; 64];
        signer().sign_into(&[&body[..10], &body[10..]], &mut out2);
        assert_eq!(out, out2);
    }

    #[test]
    fn query_builder_reproduces_the_documented_request() {
        let mut q = QueryBuf::<512>::new();
        let mut o = example_order();
        q.new_order(&o).unwrap();
        assert_eq!(
            q.as_str(),
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1\
             &newClientOrderId=my_order-1&recvWindow=5000&timestamp=1499827319559"
        );
        // Fixed-point formatting keeps the instrument's scale.
        o.quantity = Fixed {
            mantissa: 150,
            scale: 5,
        };
        o.price = Some(Fixed {
            mantissa: 6_183_763,
            scale: 2,
        });
        o.order_type = OrderType::StopMarket;
        o.time_in_force = None;
        o.recv_window_ms = None;
        q.new_order(&o).unwrap();
        assert_eq!(
            q.as_str(),
            "symbol=LTCBTC&side=BUY&type=STOP_LOSS&quantity=0.00150&stopPrice=61837.63\
             &newClientOrderId=my_order-1&timestamp=1499827319559"
        );
    }

    #[test]
    fn signed_query_matches_documented_signature() {
        // Build exactly the documented query through the builder's primitives, then sign it.
        let mut q = QueryBuf::<256>::new();
        q.push("symbol", b"LTCBTC").unwrap();
        q.push("side", b"BUY").unwrap();
        q.push("type", b"LIMIT").unwrap();
        q.push("timeInForce", b"GTC").unwrap();
        q.push_decimal(
            "quantity",
            Fixed {
                mantissa: 1,
                scale: 0,
            },
        )
        .unwrap();
        q.push_decimal(
            "price",
            Fixed {
                mantissa: 1,
                scale: 1,
            },
        )
        .unwrap();
        q.push_u64("recvWindow", 5000).unwrap();
        q.push_u64("timestamp", 1_499_827_319_559).unwrap();
        assert_eq!(q.as_str(), QUERY);
        q.sign(&signer(), b"").unwrap();
        assert_eq!(q.as_str(), format!("{QUERY}&signature={SIG}"));
    }

    #[test]
    fn builder_refuses_bad_values_and_overflow_without_partial_output() {
        let mut q = QueryBuf::<512>::new();
        let mut o = example_order();
        o.client_order_id = b"has space";
        assert_eq!(
            q.new_order(&o),
            Err(QueryError::BadValue("newClientOrderId"))
        );
        assert!(q.is_empty());
        o.client_order_id = b"0123456789012345678901234567890123456"; // 37 bytes
        assert_eq!(
            q.new_order(&o),
            Err(QueryError::BadValue("newClientOrderId"))
        );
        o.client_order_id = b"ok";
        o.symbol = b"btcusdt";
        assert_eq!(q.new_order(&o), Err(QueryError::BadValue("symbol")));
        assert_eq!(q.push("x", b"a&b"), Err(QueryError::BadValue("x")));

        let mut small = QueryBuf::<40>::new();
        small.push("symbol", b"LTCBTC").unwrap();
        let before = small.as_str().to_owned();
        assert_eq!(
            small.sign(&signer(), b""),
            Err(QueryError::Full { capacity: 40 })
        );
        assert_eq!(small.as_str(), before);
        assert_eq!(
            small.new_order(&example_order()),
            Err(QueryError::Full { capacity: 40 })
        );
        assert!(small.is_empty());
        assert_eq!(
            q.push_decimal(
                "price",
                Fixed {
                    mantissa: 1,
                    scale: 19
                }
            ),
            Err(QueryError::BadScale("price"))
        );
    }

    // The hotpath unit-test binary's allocator: forwards to the system allocator and counts per
    // thread, so only the code inside `count_allocations` is measured.
    #[global_allocator]
    static GLOBAL: testkit::CountingAllocator = testkit::CountingAllocator;

    #[test]
    fn signing_an_order_does_not_allocate() {
        let signer = signer();
        let mut q = QueryBuf::<512>::new();
        let mut order = example_order();
        let mut sig = [0u8; SIGNATURE_HEX_LEN];
        // Warm-up.
        q.new_order(&order).unwrap();
        q.sign(&signer, b"").unwrap();
        let (total_len, count) = testkit::count_allocations(|| {
            let mut total = 0usize;
            for i in 0..10_000u64 {
                order.timestamp_ms = 1_499_827_319_559 + i;
                order.price = Some(Fixed {
                    mantissa: 6_183_763 + i as i64,
                    scale: 2,
                });
                q.new_order(&order).unwrap();
                q.sign(&signer, b"").unwrap();
                signer.sign_into(&[q.as_bytes(), b"body"], &mut sig);
                assert!(signer.verify_hex(&[q.as_bytes(), b"body"], &sig));
                total += q.len();
            }
            total
        });
        assert!(total_len > 0);
        assert_eq!(count.allocations, 0, "allocations while signing: {count:?}");
        assert_eq!(
            count.deallocations, 0,
            "deallocations while signing: {count:?}"
        );
    }

    #[test]
    fn push_u64_edges() {
        let mut q = QueryBuf::<64>::new();
        q.push_u64("a", 0).unwrap();
        q.push_u64("b", u64::MAX).unwrap();
        assert_eq!(q.as_str(), "a=0&b=18446744073709551615");
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials::new(KEY, SECRET).unwrap();
        for s in [
            format!("{c:?}"),
            format!("{:?}", c.secret),
            format!("{}", c.secret),
            format!("{:?}", c.key),
            format!("{}", c.key),
            format!("{:#?}", c),
            format!("{:?}", Signer::new(&c.secret)),
        ] {
            assert!(!s.contains(SECRET), "secret leaked: {s}");
            assert!(!s.contains(&SECRET[..8]), "secret prefix leaked: {s}");
            assert!(!s.contains(KEY), "key leaked: {s}");
        }
        assert_eq!(format!("{:?}", c.secret), "ApiSecret(<redacted>)");
        assert_eq!(format!("{}", c.key), "vmPU…(redacted)");
        assert_eq!(c.key.expose(), KEY);
        assert_eq!(c.secret.expose(), SECRET.as_bytes());
        assert!(matches!(
            Credentials::new("a b", SECRET),
            Err(CredentialsError::Malformed("API key"))
        ));
        assert!(matches!(
            Credentials::new(KEY, ""),
            Err(CredentialsError::Malformed("API secret"))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn secrets_file_must_be_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binance.env");
        std::fs::write(
            &path,
            format!("# test credentials\nexport BINANCE_API_KEY={KEY}\nBINANCE_API_SECRET=\"{SECRET}\"\n"),
        )
        .unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660, 0o666] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = Credentials::from_file(&path).unwrap_err();
            assert!(
                matches!(err, CredentialsError::InsecurePermissions { mode: m, .. } if m == mode),
                "{mode:o}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("chmod 600") && msg.contains(&format!("{mode:04o}")),
                "{msg}"
            );
            assert!(!msg.contains(SECRET));
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let c = Credentials::from_file(&path).unwrap();
            assert_eq!(c.key.expose(), KEY);
            assert_eq!(c.secret.expose(), SECRET.as_bytes());
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, format!("api_key={KEY}\n")).unwrap();
        assert!(matches!(
            Credentials::from_file(&path),
            Err(CredentialsError::MissingField {
                field: ENV_API_SECRET,
                ..
            })
        ));
        assert!(matches!(
            Credentials::from_file(dir.path()),
            Err(CredentialsError::NotAFile(_))
        ));
        assert!(matches!(
            Credentials::from_file(dir.path().join("absent")),
            Err(CredentialsError::Io { .. })
        ));
    }

    #[test]
    fn credentials_from_env() {
        // Through the lookup hook: mutating the real environment would race with other tests.
        let env = |secret: Option<&str>| {
            let secret = secret.map(str::to_owned);
            move |name: &'static str| match name {
                ENV_API_KEY => Some(KEY.to_owned()),
                ENV_API_SECRET => secret.clone(),
                _ => None,
            }
        };
        let c = Credentials::from_lookup(env(Some(&format!("{SECRET}\n")))).unwrap();
        assert_eq!(c.key.expose(), KEY);
        assert_eq!(c.secret.expose(), SECRET.as_bytes());
        let err = Credentials::from_lookup(env(None)).unwrap_err();
        assert!(matches!(err, CredentialsError::MissingEnv(ENV_API_SECRET)));
        assert_eq!(
            err.to_string(),
            "environment variable BINANCE_API_SECRET is not set"
        );
        // The real environment: whatever it holds, this neither panics nor prints a secret.
        if let Err(e) = Credentials::from_env() {
            assert!(matches!(
                e,
                CredentialsError::MissingEnv(_) | CredentialsError::Malformed(_)
            ));
        }
    }
}
