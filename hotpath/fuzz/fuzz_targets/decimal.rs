//! The fixed-point decimal parser (`hotpath::fixed::parse_mantissa`, SWAR, 8 bytes at a time)
//! against a plain byte-by-byte reference written from its documentation: the same value or
//! the same error (variant, position and byte), on arbitrary bytes and every scale. Accepted
//! values must also survive a format/parse round trip, and `Decimal::parse` must agree with
//! the reference at the scale it derives.
//!
//! Input: the first byte selects the scale (`% 20`, so the invalid scales 19 are exercised
//! too), the rest is the string.

#![no_main]

use hotpath::fixed::{format_decimal, parse_mantissa, Decimal, ParseError, MAX_DECIMAL_LEN};
use libfuzzer_sys::fuzz_target;

/// Documented behaviour of `parse_mantissa`: a bad scale, then an empty input, then the first
/// syntax error from the left, then "no digits", then "too precise", then "overflow".
fn reference(s: &[u8], scale: u8) -> Result<i64, ParseError> {
    if scale > 18 {
        return Err(ParseError::ScaleTooLarge { scale });
    }
    let Some(&first) = s.first() else {
        return Err(ParseError::Empty);
    };
    let neg = first == b'-';
    let start = usize::from(first == b'-' || first == b'+');
    let (mut int, mut frac) = (Vec::new(), Vec::new());
    let mut dot = false;
    for (pos, &c) in s.iter().enumerate().skip(start) {
        match c {
            b'0'..=b'9' if dot => frac.push(c - b'0'),
            b'0'..=b'9' => int.push(c - b'0'),
            b'.' if !dot => dot = true,
            b'.' => return Err(ParseError::MultipleDots { pos }),
            b'e' | b'E' => return Err(ParseError::Exponent { pos }),
            byte => return Err(ParseError::InvalidByte { pos, byte }),
        }
    }
    if int.is_empty() && frac.is_empty() {
        return Err(ParseError::NoDigits);
    }
    let scale_us = usize::from(scale);
    if frac.iter().skip(scale_us).any(|&d| d != 0) {
        return Err(ParseError::TooPrecise { scale });
    }
    let digits = int
        .iter()
        .copied()
        .chain((0..scale_us).map(|i| frac.get(i).copied().unwrap_or(0)));
    let mut mag: u128 = 0;
    let mut big = false;
    for d in digits {
        mag = mag * 10 + u128::from(d);
        if mag > u128::from(u64::MAX) {
            big = true;
            mag %= 1 << 64; // keep it bounded; the value is already out of range
        }
    }
    let limit = if neg { 1u128 << 63 } else { i64::MAX as u128 };
    if big || mag > limit {
        return Err(ParseError::Overflow { scale });
    }
    Ok(if neg {
        (-(mag as i128)) as i64
    } else {
        mag as i64
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, s)) = data.split_first() else {
        return;
    };
    let scale = sel % 20;
    let got = parse_mantissa(s, scale);
    assert_eq!(
        got,
        reference(s, scale),
        "{:?} at scale {scale}",
        String::from_utf8_lossy(s)
    );

    if let Ok(m) = got {
        let mut buf = [0u8; MAX_DECIMAL_LEN];
        let n = format_decimal(m, scale, &mut buf).expect("scale <= 18 always formats");
        let text = &buf[..n];
        assert_eq!(
            parse_mantissa(text, scale),
            Ok(m),
            "round trip of {m} at {scale}"
        );
        if scale > 0 {
            let dot = text.iter().position(|&c| c == b'.').expect("a point");
            assert_eq!(n - dot - 1, usize::from(scale));
        }
    }

    // `Decimal::parse` keeps the input's own number of decimals (at most 18).
    let derived = match s.iter().position(|&c| c == b'.') {
        Some(dot) => (s.len() - dot - 1).min(18) as u8,
        None => 0,
    };
    let d = Decimal::parse(s);
    assert_eq!(d.map(|d| d.mantissa), reference(s, derived));
    if let Ok(d) = d {
        assert_eq!(d.scale, derived);
    }
});
