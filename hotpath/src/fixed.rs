//! Fixed-point prices and quantities.
//!
//! Venues send prices and quantities as decimal strings (`"61837.63000000"`). `f64` cannot hold
//! most of them exactly (`0.1` has no binary representation), so an engine that keys its book by
//! `f64`, rounds orders to the tick in `f64` or sums fills in `f64` is wrong in the last digit
//! exactly where it matters, and a replay on another machine or compiler may not reproduce it.
//! Here a value is an `i64` **mantissa**; the **scale** (number of decimals) is a property of the
//! instrument ([`InstrumentSpec::price_scale`](crate::instrument::InstrumentSpec::price_scale) and
//! `qty_scale`), not of each value. So a [`Price`] is 8 bytes, two prices of one instrument compare
//! and add as plain integers, and no value ever goes through floating point on its way from the
//! wire to the order book to the order encoder. `f64` is available ([`Price::to_f64`]) for
//! statistics only.
//!
//! Parsing ([`parse_mantissa`]) works on raw bytes straight out of a receive buffer: no UTF-8
//! validation, no allocation, one pass with a digit-accumulating loop. It is exact: trailing zeros
//! beyond the requested scale are accepted (`"61837.63000000"` at scale 2 is `6183763`), a
//! non-zero digit beyond the scale is an error ([`ParseError::TooPrecise`]) rather than a silent
//! rounding, and so is anything that does not fit the mantissa. Exponents (`"1e-5"`) are rejected:
//! Binance never sends them, so one appearing means the input is not what we think it is.
//!
//! Formatting ([`write_decimal`], [`format_decimal`], `Display for` [`Decimal`]) gives back the exact
//! decimal string at a scale, again without allocating, for order encoding and logs.

use core::fmt;
use core::str::FromStr;

use rkyv::{Archive, Deserialize, Serialize};

/// Largest supported scale: `10^18` is the largest power of ten below `i64::MAX`, so a mantissa
/// at scale 18 can still represent values up to about 9.2.
pub const MAX_SCALE: u8 = 18;

/// Longest string [`format_decimal`] produces for a scale up to [`MAX_SCALE`]: a sign, 19 digits
/// and a decimal point (`"-9.223372036854775808"` at scale 18).
pub const MAX_DECIMAL_LEN: usize = 21;

/// `POW10[n] == 10^n` for `n` in `0..=19` (10^19 still fits a `u64`).
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `POW10_F64[n] == 10^n` exactly (every power of ten up to `10^22` is an exact `f64`).
const POW10_F64: [f64; 23] = {
    let mut t = [1.0f64; 23];
    let mut i = 1;
    while i < 23 {
        t[i] = t[i - 1] * 10.0;
        i += 1;
    }
    t
};

/// `10^n` as `i128` for `n <= 38`.
const fn pow10_i128(n: u32) -> i128 {
    let mut r: i128 = 1;
    let mut i = 0;
    while i < n {
        r *= 10;
        i += 1;
    }
    r
}

/// Why a decimal string was rejected.
///
/// Errors are reported in a fixed order so that the same input always gives the same error:
/// a bad scale argument first, then an empty input, then the first syntax error from the left
/// ([`InvalidByte`](Self::InvalidByte), [`MultipleDots`](Self::MultipleDots),
/// [`Exponent`](Self::Exponent)), then [`NoDigits`](Self::NoDigits), then
/// [`TooPrecise`](Self::TooPrecise), and last [`Overflow`](Self::Overflow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    /// The input was empty.
    #[error("empty decimal string")]
    Empty,
    /// The input had no digit at all (`"-"`, `"+"`, `"."`, `"-."`).
    #[error("decimal string has no digits")]
    NoDigits,
    /// A byte that is not a digit, a leading sign or a single decimal point.
    #[error("invalid byte 0x{byte:02x} at position {pos} in decimal string")]
    InvalidByte {
        /// Byte offset in the input.
        pos: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A second decimal point.
    #[error("second decimal point at position {pos} in decimal string")]
    MultipleDots {
        /// Byte offset of the second point.
        pos: usize,
    },
    /// An exponent marker (`e`/`E`): venues send plain decimals, exponents are not accepted.
    #[error("exponent notation at position {pos} is not accepted in a decimal string")]
    Exponent {
        /// Byte offset of the `e`/`E`.
        pos: usize,
    },
    /// A non-zero digit beyond the requested scale: the value cannot be represented exactly.
    #[error("decimal string has a non-zero digit beyond scale {scale}")]
    TooPrecise {
        /// The requested scale.
        scale: u8,
    },
    /// The value does not fit an `i64` mantissa at the requested scale.
    #[error("decimal value does not fit a 64-bit mantissa at scale {scale}")]
    Overflow {
        /// The requested scale.
        scale: u8,
    },
    /// The requested scale is above [`MAX_SCALE`].
    #[error("scale {scale} exceeds the maximum scale of 18")]
    ScaleTooLarge {
        /// The requested scale.
        scale: u8,
    },
}

/// Why a fixed-point computation (rescale, notional, rounding to a tick) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ArithError {
    /// The result does not fit an `i64` mantissa.
    #[error("fixed-point result does not fit a 64-bit mantissa")]
    Overflow,
    /// [`Rounding::Exact`] was requested and the result is not exact.
    #[error("fixed-point result is not exact and exact rounding was requested")]
    Inexact,
    /// A scale above [`MAX_SCALE`] was given.
    #[error("scale exceeds the maximum scale of 18")]
    ScaleTooLarge,
    /// Rounding to a multiple of a zero or negative increment (tick/step).
    #[error("rounding increment (tick or step) must be positive")]
    BadIncrement,
}

/// How to round when a result has more precision than its target scale or increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rounding {
    /// Fail with [`ArithError::Inexact`] unless the result is exact.
    #[default]
    Exact,
    /// Truncate toward zero.
    TowardZero,
    /// Round toward negative infinity (a buy limit price rounded to the tick).
    Floor,
    /// Round toward positive infinity (a sell limit price rounded to the tick).
    Ceil,
    /// Round to nearest, ties to even (banker's rounding; fees, statistics).
    HalfEven,
}

/// `n / d` rounded as asked; `d > 0`.
fn div_round(n: i128, d: i128, mode: Rounding) -> Result<i128, ArithError> {
    debug_assert!(d > 0);
    let q = n / d;
    let r = n % d;
    if r == 0 {
        return Ok(q);
    }
    // `r` has the sign of `n` and is non-zero here.
    Ok(match mode {
        Rounding::Exact => return Err(ArithError::Inexact),
        Rounding::TowardZero => q,
        Rounding::Floor => {
            if r < 0 {
                q - 1
            } else {
                q
            }
        }
        Rounding::Ceil => {
            if r > 0 {
                q + 1
            } else {
                q
            }
        }
        Rounding::HalfEven => {
            let twice = r.unsigned_abs() * 2;
            let d = d.unsigned_abs();
            if twice > d || (twice == d && q % 2 != 0) {
                q + n.signum()
            } else {
                q
            }
        }
    })
}

/// Re-express `mantissa` (at scale `from`) at scale `to`, rounding as asked when `to < from`.
///
/// Both scales must be at most [`MAX_SCALE`].
pub fn rescale(mantissa: i64, from: u8, to: u8, rounding: Rounding) -> Result<i64, ArithError> {
    if from > MAX_SCALE || to > MAX_SCALE {
        return Err(ArithError::ScaleTooLarge);
    }
    if to >= from {
        mantissa
            .checked_mul(POW10[usize::from(to - from)] as i64)
            .ok_or(ArithError::Overflow)
    } else {
        let d = POW10[usize::from(from - to)] as i128;
        let q = div_round(i128::from(mantissa), d, rounding)?;
        i64::try_from(q).map_err(|_| ArithError::Overflow)
    }
}

/// Notional `price * qty` as a mantissa at `out_scale`, computed exactly in `i128` and rounded
/// once at the end.
///
/// `price_scale`, `qty_scale` and `out_scale` must each be at most [`MAX_SCALE`]. For a linear
/// instrument with `price_scale = 2`, `qty_scale = 5`, `61837.63 * 0.02000 = 1236.7526`, which at
/// `out_scale = 4` is `12367526`.
pub fn notional(
    price: Price,
    price_scale: u8,
    qty: Qty,
    qty_scale: u8,
    out_scale: u8,
    rounding: Rounding,
) -> Result<i64, ArithError> {
    if price_scale > MAX_SCALE || qty_scale > MAX_SCALE || out_scale > MAX_SCALE {
        return Err(ArithError::ScaleTooLarge);
    }
    let prod = i128::from(price.0) * i128::from(qty.0);
    let prod_scale = u32::from(price_scale) + u32::from(qty_scale);
    let out = u32::from(out_scale);
    let v = if out >= prod_scale {
        prod.checked_mul(pow10_i128(out - prod_scale))
            .ok_or(ArithError::Overflow)?
    } else {
        div_round(prod, pow10_i128(prod_scale - out), rounding)?
    };
    i64::try_from(v).map_err(|_| ArithError::Overflow)
}

/// A mantissa as `f64` (`mantissa / 10^scale`), for statistics only: never feed it back into
/// prices or order sizes.
#[inline]
pub fn mantissa_to_f64(mantissa: i64, scale: u8) -> f64 {
    let s = usize::from(scale);
    if s < POW10_F64.len() {
        mantissa as f64 / POW10_F64[s]
    } else {
        mantissa as f64 / 10f64.powi(i32::from(scale))
    }
}

/// Classify the byte at `pos` that ended a digit run.
#[cold]
fn syntax_error(s: &[u8], pos: usize, seen_dot: bool) -> ParseError {
    match s[pos] {
        b'.' if seen_dot => ParseError::MultipleDots { pos },
        b'e' | b'E' => ParseError::Exponent { pos },
        byte => ParseError::InvalidByte { pos, byte },
    }
}

/// Eight bytes starting at `i`, little-endian (byte `i` in the low byte), if available.
#[inline(always)]
fn load8(s: &[u8], i: usize) -> Option<u64> {
    match s.get(i..) {
        Some(rest) => rest.first_chunk::<8>().map(|c| u64::from_le_bytes(*c)),
        None => None,
    }
}

/// `x << (8 * n)`, zero for `n >= 8`.
#[inline(always)]
const fn shl_bytes(x: u64, n: usize) -> u64 {
    if n >= 8 {
        0
    } else {
        x << (8 * n)
    }
}

/// `x >> (8 * n)`, zero for `n >= 8`.
#[inline(always)]
const fn shr_bytes(x: u64, n: usize) -> u64 {
    if n >= 8 {
        0
    } else {
        x >> (8 * n)
    }
}

/// Per-byte digit values (`chunk ^ '0'` in every byte) and the number of leading bytes (in
/// string order) that are ASCII digits.
#[inline(always)]
const fn digit_run(chunk: u64) -> (u64, usize) {
    const LANES_0: u64 = 0x3030_3030_3030_3030;
    const LANES_7F: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const LANES_76: u64 = 0x7676_7676_7676_7676;
    const LANES_80: u64 = 0x8080_8080_8080_8080;
    let x = chunk ^ LANES_0;
    // A byte is a digit iff x < 10. `(x & 0x7f) + 0x76` cannot carry out of its byte and has the
    // high bit set iff `x & 0x7f >= 10`; `| x` flags bytes whose own high bit is set.
    let non_digit = (((x & LANES_7F) + LANES_76) | x) & LANES_80;
    let run = if non_digit == 0 {
        8
    } else {
        (non_digit.trailing_zeros() / 8) as usize
    };
    (x, run)
}

/// The number formed by the 8 digit values in `v` (byte 0 = most significant digit).
#[inline(always)]
const fn combine8(v: u64) -> u64 {
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xffff_ffff
}

/// The number formed by the first `n` (`1..=8`) digit values of `x` (string order).
#[inline(always)]
const fn leading_digits(x: u64, n: usize) -> u64 {
    // Shift the n digits to the top: the vacated low bytes are zeros, i.e. leading zeros.
    combine8(shl_bytes(x, 8 - n))
}

/// `acc * 10^n + v` with a sticky overflow flag (`n <= 8`).
#[inline(always)]
fn push_digits(acc: u64, n: usize, v: u64, overflow: &mut bool) -> u64 {
    let (m, o1) = acc.overflowing_mul(POW10[n]);
    let (a, o2) = m.overflowing_add(v);
    *overflow |= o1 | o2;
    a
}

/// Parse a decimal string into an `i64` mantissa at `scale`, exactly.
///
/// Accepted syntax: an optional leading `-` or `+`, digits, optionally one `.` followed by
/// digits; at least one digit overall (`"5."` and `".5"` are accepted, `"."` is not). No
/// whitespace, no exponent, no thousands separators. Digits beyond `scale` must be zeros.
///
/// Works on raw bytes (no UTF-8 validation), does not allocate, and reads each byte once:
/// eight bytes at a time where the input allows (digit detection and conversion in a `u64`),
/// byte by byte for the tail.
///
/// ```
/// use hotpath::fixed::{parse_mantissa, ParseError};
/// assert_eq!(parse_mantissa(b"61837.63000000", 8), Ok(6_183_763_000_000));
/// assert_eq!(parse_mantissa(b"61837.63000000", 2), Ok(6_183_763));
/// assert_eq!(parse_mantissa(b"0.00012000", 4), Err(ParseError::TooPrecise { scale: 4 }));
/// assert_eq!(parse_mantissa(b"-1.5", 1), Ok(-15));
/// assert!(matches!(parse_mantissa(b"1e-5", 8), Err(ParseError::Exponent { pos: 1 })));
/// ```
#[inline]
pub fn parse_mantissa(s: &[u8], scale: u8) -> Result<i64, ParseError> {
    if scale > MAX_SCALE {
        return Err(ParseError::ScaleTooLarge { scale });
    }
    let len = s.len();
    let Some(&first) = s.first() else {
        return Err(ParseError::Empty);
    };
    let neg = first == b'-';
    let mut i = usize::from(neg || first == b'+');
    let int_start = i;
    // Magnitude accumulates in a u64 (|i64::MIN| = 2^63 fits); overflow is sticky and reported
    // after the syntax has been checked, so the error does not depend on where it happened.
    let mut acc: u64 = 0;
    let mut overflow = false;

    // Integer digits.
    while let Some(chunk) = load8(s, i) {
        let (x, run) = digit_run(chunk);
        if run > 0 {
            acc = push_digits(acc, run, leading_digits(x, run), &mut overflow);
            i += run;
        }
        if run < 8 {
            break;
        }
    }
    while i < len {
        let d = s[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        acc = push_digits(acc, 1, u64::from(d), &mut overflow);
        i += 1;
    }
    let mut ndigits = i - int_start;

    // Fraction digits: the first `scale` are accumulated, the rest must be zeros.
    let scale_us = usize::from(scale);
    let mut frac = 0usize;
    let mut too_precise = false;
    if i < len {
        if s[i] != b'.' {
            return Err(syntax_error(s, i, false));
        }
        i += 1;
        let frac_start = i;
        while let Some(chunk) = load8(s, i) {
            let (x, run) = digit_run(chunk);
            let take = run.min(scale_us - frac);
            if take > 0 {
                acc = push_digits(acc, take, leading_digits(x, take), &mut overflow);
                frac += take;
            }
            // Digits `take..run` of the chunk are beyond the scale: they must be zeros.
            too_precise |= shl_bytes(shr_bytes(x, take), 8 - (run - take)) != 0;
            i += run;
            if run < 8 {
                break;
            }
        }
        while i < len {
            let d = s[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            if frac < scale_us {
                acc = push_digits(acc, 1, u64::from(d), &mut overflow);
                frac += 1;
            } else {
                too_precise |= d != 0;
            }
            i += 1;
        }
        if i < len {
            return Err(syntax_error(s, i, true));
        }
        ndigits += i - frac_start;
    }

    if ndigits == 0 {
        return Err(ParseError::NoDigits);
    }
    if too_precise {
        return Err(ParseError::TooPrecise { scale });
    }
    let (m, o) = acc.overflowing_mul(POW10[scale_us - frac]);
    let limit = if neg { 1u64 << 63 } else { i64::MAX as u64 };
    if overflow || o || m > limit {
        return Err(ParseError::Overflow { scale });
    }
    // `m <= 2^63` when negative: `0 - m` in two's complement is exactly `-m` (and `i64::MIN` for 2^63).
    Ok(if neg {
        0u64.wrapping_sub(m) as i64
    } else {
        m as i64
    })
}

/// `"00" "01" ... "99"`: two digits per table lookup when formatting.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The decimal digits of `mag` at the end of `buf`; returns the index of the first digit.
#[inline]
fn digits_of(mut mag: u64, buf: &mut [u8; 20]) -> usize {
    let mut pos = buf.len();
    while mag >= 100 {
        let r = (mag % 100) as usize * 2;
        mag /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[r..r + 2]);
    }
    if mag >= 10 {
        let r = mag as usize * 2;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[r..r + 2]);
    } else {
        pos -= 1;
        buf[pos] = b'0' + mag as u8;
    }
    pos
}

/// ASCII digits as `&str` (always valid; a failure would be a bug, reported as `fmt::Error`).
#[inline]
fn ascii(b: &[u8]) -> Result<&str, fmt::Error> {
    core::str::from_utf8(b).map_err(|_| fmt::Error)
}

/// Format `mantissa / 10^scale` into the front of `out` as an exact decimal string with exactly
/// `scale` fraction digits (`6183763` at scale 2 is `"61837.63"`, `5` at scale 3 is `"0.005"`,
/// scale 0 writes no point) and return its length, or `None` if `out` is too short.
/// [`MAX_DECIMAL_LEN`] bytes always suffice for scales up to [`MAX_SCALE`].
///
/// Byte-level and allocation-free: this is what an order encoder uses to write a price into a
/// preallocated request buffer.
#[inline]
pub fn format_decimal(mantissa: i64, scale: u8, out: &mut [u8]) -> Option<usize> {
    let mut digits = [0u8; 20];
    let first = digits_of(mantissa.unsigned_abs(), &mut digits);
    let ds = &digits[first..];
    let scale = usize::from(scale);
    let sign = usize::from(mantissa < 0);
    let total = if scale == 0 {
        sign + ds.len()
    } else if ds.len() > scale {
        sign + ds.len() + 1
    } else {
        sign + 2 + scale
    };
    let out = out.get_mut(..total)?;
    if sign == 1 {
        out[0] = b'-';
    }
    let body = &mut out[sign..];
    if scale == 0 {
        body.copy_from_slice(ds);
    } else if ds.len() > scale {
        let split = ds.len() - scale;
        body[..split].copy_from_slice(&ds[..split]);
        body[split] = b'.';
        body[split + 1..].copy_from_slice(&ds[split..]);
    } else {
        let zeros = scale - ds.len();
        body[0] = b'0';
        body[1] = b'.';
        body[2..2 + zeros].fill(b'0');
        body[2 + zeros..].copy_from_slice(ds);
    }
    Some(total)
}

/// Write `mantissa / 10^scale` as an exact decimal string (as [`format_decimal`]) to a
/// formatter or any [`fmt::Write`]. Works for any `u8` scale and does not allocate.
pub fn write_decimal<W: fmt::Write + ?Sized>(mantissa: i64, scale: u8, w: &mut W) -> fmt::Result {
    let mut buf = [0u8; MAX_DECIMAL_LEN];
    if let Some(n) = format_decimal(mantissa, scale, &mut buf) {
        return w.write_str(ascii(&buf[..n])?);
    }
    // Only scales above MAX_SCALE get here; the value is then below 1 in magnitude:
    // "0." followed by zeros and the digits.
    const ZEROS: &str = "00000000000000000000000000000000";
    let mut digits = [0u8; 20];
    let first = digits_of(mantissa.unsigned_abs(), &mut digits);
    let ds = &digits[first..];
    let scale = usize::from(scale);
    if mantissa < 0 {
        w.write_char('-')?;
    }
    w.write_str("0.")?;
    let mut zeros = scale.saturating_sub(ds.len());
    while zeros > 0 {
        let n = zeros.min(ZEROS.len());
        w.write_str(&ZEROS[..n])?;
        zeros -= n;
    }
    w.write_str(ascii(ds)?)
}

/// A decimal number with its own scale, for parsing and printing values whose scale is not
/// known in advance (exchange filters, configuration, logs).
///
/// Equality is by representation: `1.50` (`mantissa 150, scale 2`) and `1.5` (`15, 1`) are
/// different `Decimal`s; use [`Decimal::normalize`] or [`Decimal::cmp_value`] to compare values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Decimal {
    /// The integer mantissa: the value is `mantissa / 10^scale`.
    pub mantissa: i64,
    /// Number of decimals.
    pub scale: u8,
}

impl Decimal {
    /// Zero at scale 0.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// A decimal from its parts.
    #[inline]
    pub const fn new(mantissa: i64, scale: u8) -> Self {
        Decimal { mantissa, scale }
    }

    /// Parse keeping the input's own number of fraction digits as the scale (`"1.500"` is
    /// `1500` at scale 3), so that `Display` reproduces the input. More than [`MAX_SCALE`]
    /// fraction digits are accepted only if the excess digits are zeros (the scale is then 18).
    pub fn parse(s: &[u8]) -> Result<Self, ParseError> {
        let scale = match s.iter().position(|&b| b == b'.') {
            Some(dot) => (s.len() - dot - 1).min(usize::from(MAX_SCALE)) as u8,
            None => 0,
        };
        Ok(Decimal {
            mantissa: parse_mantissa(s, scale)?,
            scale,
        })
    }

    /// Parse at a fixed `scale` (see [`parse_mantissa`]).
    #[inline]
    pub fn parse_at(s: &[u8], scale: u8) -> Result<Self, ParseError> {
        Ok(Decimal {
            mantissa: parse_mantissa(s, scale)?,
            scale,
        })
    }

    /// The same value at scale `to`.
    pub fn rescale(self, to: u8, rounding: Rounding) -> Result<Self, ArithError> {
        Ok(Decimal {
            mantissa: rescale(self.mantissa, self.scale, to, rounding)?,
            scale: to,
        })
    }

    /// The same value with trailing fraction zeros removed (`1.500` becomes `1.5`, `2.00`
    /// becomes `2`).
    pub fn normalize(self) -> Self {
        let mut d = self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Number of fraction digits after [`normalize`](Self::normalize): the smallest scale at
    /// which this value is exact (`0.01000` gives 2). Used to derive an instrument's scale from
    /// its tick size.
    pub fn min_scale(self) -> u8 {
        self.normalize().scale
    }

    /// Compare values regardless of scale (exact, via `i128`).
    pub fn cmp_value(self, other: Decimal) -> core::cmp::Ordering {
        let s = self.scale.max(other.scale);
        let widen = |d: Decimal| {
            let k = u32::from(s - d.scale);
            // Only the operand with the smaller scale is widened, and |mantissa| < 10^19: once
            // widened by 10^19 or more it outweighs the other operand, so saturating (or
            // replacing by a signed maximum beyond 10^38) keeps the comparison exact.
            if k > 38 {
                i128::from(d.mantissa.signum()) * i128::MAX
            } else {
                i128::from(d.mantissa).saturating_mul(pow10_i128(k))
            }
        };
        widen(self).cmp(&widen(other))
    }

    /// The value as `f64`, for statistics only.
    #[inline]
    pub fn to_f64(self) -> f64 {
        mantissa_to_f64(self.mantissa, self.scale)
    }
}

impl fmt::Display for Decimal {
    /// Exact decimal string with `scale` fraction digits; honours width/fill/alignment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_none() {
            return write_decimal(self.mantissa, self.scale, f);
        }
        let mut buf = [0u8; 64];
        match format_decimal(self.mantissa, self.scale, &mut buf) {
            Some(n) => f.pad(core::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?),
            None => write_decimal(self.mantissa, self.scale, f),
        }
    }
}

impl FromStr for Decimal {
    type Err = ParseError;

    /// Same as [`Decimal::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s.as_bytes())
    }
}

macro_rules! fixed_newtype {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            Archive, Serialize, Deserialize,
        )]
        #[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash), compare(PartialEq))]
        #[repr(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0);
            /// Largest representable value.
            pub const MAX: $name = $name(i64::MAX);
            /// Smallest representable value.
            pub const MIN: $name = $name(i64::MIN);

            #[doc = concat!("A ", $what, " from its mantissa at the instrument's scale.")]
            #[inline]
            pub const fn from_mantissa(mantissa: i64) -> Self {
                $name(mantissa)
            }

            /// The raw mantissa.
            #[inline]
            pub const fn mantissa(self) -> i64 {
                self.0
            }

            #[doc = concat!("Parse a ", $what, " from a venue decimal string at `scale` (see [`parse_mantissa`]).")]
            #[inline]
            pub fn parse(s: &[u8], scale: u8) -> Result<Self, ParseError> {
                parse_mantissa(s, scale).map($name)
            }

            /// True if zero.
            #[inline]
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            /// True if strictly positive.
            #[inline]
            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }

            /// True if strictly negative.
            #[inline]
            pub const fn is_negative(self) -> bool {
                self.0 < 0
            }

            /// Checked addition (same scale).
            #[inline]
            pub const fn checked_add(self, rhs: Self) -> Option<Self> {
                match self.0.checked_add(rhs.0) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }

            /// Checked subtraction (same scale).
            #[inline]
            pub const fn checked_sub(self, rhs: Self) -> Option<Self> {
                match self.0.checked_sub(rhs.0) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }

            /// Checked multiplication by an integer count.
            #[inline]
            pub const fn checked_mul_int(self, n: i64) -> Option<Self> {
                match self.0.checked_mul(n) {
                    Some(v) => Some($name(v)),
                    None => None,
                }
            }

            /// The value as a [`Decimal`] at `scale` (for printing: `p.to_decimal(2).to_string()`).
            #[inline]
            pub const fn to_decimal(self, scale: u8) -> Decimal {
                Decimal::new(self.0, scale)
            }

            /// The value as `f64` at `scale`, for statistics only.
            #[inline]
            pub fn to_f64(self, scale: u8) -> f64 {
                mantissa_to_f64(self.0, scale)
            }

            /// The same value re-expressed from scale `from` to scale `to`.
            #[inline]
            pub fn rescale(self, from: u8, to: u8, rounding: Rounding) -> Result<Self, ArithError> {
                rescale(self.0, from, to, rounding).map($name)
            }

            /// True if this is an integer multiple of `increment` (a tick or a step).
            #[inline]
            pub const fn is_multiple_of(self, increment: Self) -> bool {
                increment.0 > 0 && self.0 % increment.0 == 0
            }

            /// Round to a multiple of `increment` (a tick or a step), which must be positive.
            pub fn round_to(self, increment: Self, rounding: Rounding) -> Result<Self, ArithError> {
                if increment.0 <= 0 {
                    return Err(ArithError::BadIncrement);
                }
                let inc = i128::from(increment.0);
                let n = div_round(i128::from(self.0), inc, rounding)?;
                i64::try_from(n * inc).map($name).map_err(|_| ArithError::Overflow)
            }
        }
    };
}

fixed_newtype!(
    /// A price: an `i64` mantissa at the instrument's `price_scale`
    /// (`Price(6183763)` is `61837.63` when the scale is 2).
    ///
    /// Prices of one instrument share a scale, so they compare, add and subtract as integers.
    Price,
    "price"
);

fixed_newtype!(
    /// A quantity: an `i64` mantissa at the instrument's `qty_scale`
    /// (`Qty(2000)` is `0.02000` when the scale is 5). Zero in a depth update means "remove the
    /// level".
    Qty,
    "quantity"
);

impl Price {
    /// Notional `self * qty` at `out_scale` (see [`notional`]).
    #[inline]
    pub fn notional(
        self,
        price_scale: u8,
        qty: Qty,
        qty_scale: u8,
        out_scale: u8,
        rounding: Rounding,
    ) -> Result<i64, ArithError> {
        notional(self, price_scale, qty, qty_scale, out_scale, rounding)
    }
}

impl ArchivedPrice {
    /// The native [`Price`] (a zero-cost load from the mapped journal).
    #[inline]
    pub fn to_native(&self) -> Price {
        Price(self.0.to_native())
    }
}

impl ArchivedQty {
    /// The native [`Qty`] (a zero-cost load from the mapped journal).
    #[inline]
    pub fn to_native(&self) -> Qty {
        Qty(self.0.to_native())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(m: i64, s: u8) -> String {
        let mut out = String::new();
        write_decimal(m, s, &mut out).unwrap();
        out
    }

    #[test]
    fn parses_venue_strings() {
        assert_eq!(parse_mantissa(b"61837.63000000", 8), Ok(6_183_763_000_000));
        assert_eq!(parse_mantissa(b"0.00012000", 8), Ok(12_000));
        assert_eq!(parse_mantissa(b"0.00012000", 5), Ok(12));
        assert_eq!(parse_mantissa(b"-1.5", 3), Ok(-1500));
        assert_eq!(parse_mantissa(b"100", 0), Ok(100));
        assert_eq!(parse_mantissa(b"+7", 2), Ok(700));
        assert_eq!(parse_mantissa(b"5.", 1), Ok(50));
        assert_eq!(parse_mantissa(b".5", 1), Ok(5));
        assert_eq!(parse_mantissa(b"-0", 4), Ok(0));
    }

    #[test]
    fn rejects_garbage() {
        use ParseError::*;
        assert_eq!(parse_mantissa(b"", 2), Err(Empty));
        assert_eq!(parse_mantissa(b"-", 2), Err(NoDigits));
        assert_eq!(parse_mantissa(b".", 2), Err(NoDigits));
        assert_eq!(parse_mantissa(b"1e-5", 8), Err(Exponent { pos: 1 }));
        assert_eq!(parse_mantissa(b"1.2.3", 8), Err(MultipleDots { pos: 3 }));
        assert_eq!(
            parse_mantissa(b" 1", 8),
            Err(InvalidByte { pos: 0, byte: b' ' })
        );
        assert_eq!(
            parse_mantissa(b"1-", 8),
            Err(InvalidByte { pos: 1, byte: b'-' })
        );
        assert_eq!(parse_mantissa(b"0.001", 2), Err(TooPrecise { scale: 2 }));
        assert_eq!(
            parse_mantissa(b"9223372036854775808", 0),
            Err(Overflow { scale: 0 })
        );
        assert_eq!(parse_mantissa(b"1", 19), Err(ScaleTooLarge { scale: 19 }));
        assert_eq!(parse_mantissa(b"-9223372036854775808", 0), Ok(i64::MIN));
        assert_eq!(parse_mantissa(b"92233720368.54775807", 8), Ok(i64::MAX));
        assert_eq!(
            parse_mantissa(b"92233720368.54775808", 8),
            Err(Overflow { scale: 8 })
        );
        // Syntax errors win over precision and range errors, wherever they are.
        assert_eq!(
            parse_mantissa(b"99999999999999999999.001x", 2),
            Err(InvalidByte {
                pos: 24,
                byte: b'x'
            })
        );
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(fmt(6_183_763, 2), "61837.63");
        assert_eq!(fmt(5, 3), "0.005");
        assert_eq!(fmt(-5, 3), "-0.005");
        assert_eq!(fmt(0, 2), "0.00");
        assert_eq!(fmt(42, 0), "42");
        assert_eq!(fmt(i64::MIN, 18), "-9.223372036854775808");
        assert_eq!(fmt(1, 40), format!("0.{}1", "0".repeat(39)));
        let mut buf = [0u8; MAX_DECIMAL_LEN];
        let n = format_decimal(i64::MIN, 18, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"-9.223372036854775808");
        assert_eq!(format_decimal(12345, 2, &mut [0u8; 5]), None);
        assert_eq!(format!("{:>8}", Decimal::new(15, 1)), "     1.5");
    }

    #[test]
    fn decimal_parse_keeps_scale() {
        let d: Decimal = "1.500".parse().unwrap();
        assert_eq!(d, Decimal::new(1500, 3));
        assert_eq!(d.to_string(), "1.500");
        assert_eq!(d.normalize(), Decimal::new(15, 1));
        assert_eq!(Decimal::parse(b"0.01000000").unwrap().min_scale(), 2);
        assert_eq!(
            Decimal::parse(b"1.0000000000000000000000").unwrap(),
            Decimal::new(10i64.pow(18), 18)
        );
        assert_eq!(
            Decimal::new(15, 1).cmp_value(Decimal::new(150, 2)),
            core::cmp::Ordering::Equal
        );
    }

    #[test]
    fn arithmetic() {
        assert_eq!(
            rescale(6_183_763, 2, 8, Rounding::Exact),
            Ok(6_183_763_000_000)
        );
        assert_eq!(rescale(15, 1, 0, Rounding::Exact), Err(ArithError::Inexact));
        assert_eq!(rescale(15, 1, 0, Rounding::HalfEven), Ok(2));
        assert_eq!(rescale(25, 1, 0, Rounding::HalfEven), Ok(2));
        assert_eq!(rescale(-25, 1, 0, Rounding::HalfEven), Ok(-2));
        assert_eq!(rescale(-15, 1, 0, Rounding::Floor), Ok(-2));
        assert_eq!(rescale(-15, 1, 0, Rounding::Ceil), Ok(-1));
        assert_eq!(rescale(-15, 1, 0, Rounding::TowardZero), Ok(-1));
        assert_eq!(
            rescale(i64::MAX, 0, 1, Rounding::Exact),
            Err(ArithError::Overflow)
        );
        assert_eq!(
            notional(Price(6_183_763), 2, Qty(2_000), 5, 4, Rounding::Exact),
            Ok(12_367_526)
        );
        assert_eq!(
            notional(Price(6_183_763), 2, Qty(2_000), 5, 2, Rounding::Exact),
            Err(ArithError::Inexact)
        );
        assert_eq!(
            notional(Price(6_183_763), 2, Qty(2_000), 5, 2, Rounding::Floor),
            Ok(123_675)
        );
        assert_eq!(
            notional(Price(i64::MAX), 0, Qty(2), 0, 0, Rounding::Exact),
            Err(ArithError::Overflow)
        );
        assert_eq!(
            Price(1234).round_to(Price(5), Rounding::Floor),
            Ok(Price(1230))
        );
        assert_eq!(
            Price(1234).round_to(Price(5), Rounding::Ceil),
            Ok(Price(1235))
        );
        assert_eq!(
            Price(1).round_to(Price(0), Rounding::Ceil),
            Err(ArithError::BadIncrement)
        );
        assert!(Price(1235).is_multiple_of(Price(5)));
        assert_eq!(Price(6_183_763).to_f64(2), 61837.63);
    }
}
