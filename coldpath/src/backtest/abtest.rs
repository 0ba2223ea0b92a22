//! A/B comparison of two configurations' per-trade returns: Welch's t-test and a seeded
//! bootstrap of the difference of the means.
//!
//! Why both: Welch's test is the seed's `perform_ttest` without its equal-variance assumption
//! (two strategy variants rarely have the same spread), but it leans on normality of the means,
//! which a handful of fat-tailed trade returns does not give. The bootstrap makes no such
//! assumption; when the two disagree, there are too few trades to conclude. The bootstrap is
//! seeded (SplitMix64) so a report can be reproduced exactly.
//!
//! The Student t distribution is computed here rather than taken from a crate: its CDF is the
//! regularised incomplete beta function `I_x(v/2, 1/2)` with `x = v / (v + t^2)`, evaluated by
//! the continued fraction of Numerical Recipes (modified Lentz) with a Lanczos log-gamma. The
//! tests pin it to SciPy's values (`scipy.stats.t.cdf`, `scipy.stats.ttest_ind(...,
//! equal_var=False)` on the three worked examples of Wikipedia's "Welch's t-test" article).

use serde::Serialize;

use super::metrics::{mean, percentile, sample_variance};

/// Natural log of the gamma function for `x > 0` (Lanczos, g = 7, 9 terms; ~15 digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (Numerical Recipes `betacf`).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const MAX_ITER: usize = 500;
    const EPS: f64 = 1e-16;
    const FPMIN: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < FPMIN {
        d = FPMIN;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = 1.0 + aa / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < FPMIN {
            d = FPMIN;
        }
        c = 1.0 + aa / c;
        if c.abs() < FPMIN {
            c = FPMIN;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function `I_x(a, b)` for `a, b > 0`, `0 <= x <= 1`.
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    inc_beta_xy(a, b, x, 1.0 - x)
}

/// `I_x(a, b)` with `y = 1 - x` given separately: near `x = 1` the caller often knows `y`
/// more precisely than `1.0 - x` could give it (the t distribution near its centre).
fn inc_beta_xy(a: f64, b: f64, x: f64, y: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if y <= 0.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * y.ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 - I_y(b, a) on the other side.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, y) / b
    }
}

/// `P(|T| > |t|)` for Student's t with `df` degrees of freedom: `I_x(df/2, 1/2)` with
/// `x = df / (df + t^2)` and `1 - x = t^2 / (df + t^2)` computed apart.
fn t_two_tail(t: f64, df: f64) -> f64 {
    let d = df + t * t;
    inc_beta_xy(df / 2.0, 0.5, df / d, t * t / d)
}

/// CDF of Student's t distribution with `df > 0` degrees of freedom (real-valued: Welch's
/// degrees of freedom are not integers).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return if t > 0.0 { 1.0 } else { 0.0 };
    }
    let tail = 0.5 * t_two_tail(t, df);
    if t > 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// Two-sided p-value of `t` under Student's t with `df` degrees of freedom.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    t_two_tail(t, df).min(1.0)
}

/// The `p`-quantile (`0 < p < 1`) of Student's t with `df` degrees of freedom, by bisection on
/// [`t_cdf`] (monotone, so bisection cannot miss; 200 halvings reach f64 resolution).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    let (mut lo, mut hi) = (-1.0, 1.0);
    while t_cdf(lo, df) > p {
        lo *= 2.0;
    }
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= f64::EPSILON * mid.abs().max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// Welch's unequal-variances t-test of `a` against `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Welch {
    /// `(mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)`.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// `mean(a) - mean(b)`.
    pub diff: f64,
    /// 95 % confidence interval of `mean(a) - mean(b)` (t quantile at `df`).
    pub ci95: (f64, f64),
}

/// Welch's t-test; `None` when either sample has fewer than two values or both have zero
/// variance (the statistic is undefined).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    let (va, vb) = (sample_variance(a)?, sample_variance(b)?);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (sa, sb) = (va / na, vb / nb);
    let se2 = sa + sb;
    if se2 <= 0.0 {
        return None;
    }
    let diff = mean(a)? - mean(b)?;
    let t = diff / se2.sqrt();
    let df = se2 * se2 / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    let half = t_quantile(0.975, df) * se2.sqrt();
    Some(Welch {
        t,
        df,
        p: t_two_sided_p(t, df),
        diff,
        ci95: (diff - half, diff + half),
    })
}

/// SplitMix64: a tiny, well-mixed generator fully determined by its seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by Lemire's multiply-shift (bias below 2^-64 * n).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// A bootstrap of `mean(b) - mean(a)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bootstrap {
    /// Observed `mean(b) - mean(a)`.
    pub diff: f64,
    /// 2.5th and 97.5th percentiles of the resampled differences (percentile interval).
    pub ci95: (f64, f64),
    /// Two-sided p-value: twice the smaller share of resampled differences on either side of
    /// zero (at most 1); the share at or beyond zero estimates how often a difference of the
    /// other sign would have been seen.
    pub p: f64,
    /// Resamples drawn.
    pub resamples: usize,
    /// The seed.
    pub seed: u64,
}

/// Bootstrap of the difference of the means `mean(b) - mean(a)`: `resamples` times, each
/// sample is resampled with replacement to its own size, independently. `None` when either
/// sample is empty or `resamples` is 0.
pub fn bootstrap_mean_diff(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Option<Bootstrap> {
    if a.is_empty() || b.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let resample_mean = |xs: &[f64], rng: &mut SplitMix64| {
        let mut s = 0.0;
        for _ in 0..xs.len() {
            s += xs[rng.below(xs.len())];
        }
        s / xs.len() as f64
    };
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let ma = resample_mean(a, &mut rng);
        let mb = resample_mean(b, &mut rng);
        diffs.push(mb - ma);
    }
    let below = diffs.iter().filter(|d| **d <= 0.0).count() as f64 / resamples as f64;
    let above = diffs.iter().filter(|d| **d >= 0.0).count() as f64 / resamples as f64;
    Some(Bootstrap {
        diff: mean(b)? - mean(a)?,
        ci95: (percentile(&diffs, 2.5)?, percentile(&diffs, 97.5)?),
        p: (2.0 * below.min(above)).min(1.0),
        resamples,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
    }

    #[test]
    fn log_gamma_and_incomplete_beta_known_values() {
        near(ln_gamma(1.0), 0.0, 1e-14);
        near(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-14);
        near(ln_gamma(10.0), 362_880f64.ln(), 1e-12);
        near(ln_gamma(0.1), 2.252_712_651_734_206, 1e-13);
        // I_x(1, 1) = x; I_x(a, 1) = x^a.
        near(inc_beta(1.0, 1.0, 0.3), 0.3, 1e-14);
        near(inc_beta(3.0, 1.0, 0.5), 0.125, 1e-14);
        assert_eq!(inc_beta(2.0, 3.0, 0.0), 0.0);
        assert_eq!(inc_beta(2.0, 3.0, 1.0), 1.0);
    }

    #[test]
    fn t_distribution_matches_scipy() {
        // scipy.stats.t.cdf(t, df) and 2 * scipy.stats.t.sf(|t|, df), SciPy 1.17.
        let cases = [
            (2.0, 5.0, 0.949_030_260_585_070_8, 0.101_939_478_829_858_35),
            (1.0, 1.0, 0.75, 0.5),
            (
                -1.5,
                10.5,
                0.081_534_378_959_222_26,
                0.163_068_757_918_444_52,
            ),
            (
                3.0,
                30.0,
                0.997_305_017_967_174_1,
                0.005_389_964_065_651_945,
            ),
            (0.5, 2.5, 0.671_151_040_065_142_6, 0.657_697_919_869_714_8),
            (
                10.0,
                3.0,
                0.998_935_800_470_792_9,
                0.002_128_399_058_414_150_3,
            ),
        ];
        for (t, df, cdf, p) in cases {
            near(t_cdf(t, df), cdf, 1e-12);
            near(t_two_sided_p(t, df), p, 1e-12);
        }
        // scipy.stats.t.ppf(0.975, df).
        near(t_quantile(0.975, 24.99), 2.059_580_342_368_776_4, 1e-9);
        near(t_quantile(0.975, 10.0), 2.228_138_851_986_274, 1e-9);
        near(t_quantile(0.975, 1.0), 12.706_204_736_174_694, 1e-7);
        near(t_quantile(0.5, 7.0), 0.0, 1e-12);
        assert!(t_cdf(1.0, 0.0).is_nan());
        assert_eq!(t_cdf(f64::INFINITY, 3.0), 1.0);
    }

    #[test]
    fn welch_matches_scipy_on_the_wikipedia_examples() {
        // scipy.stats.ttest_ind(a, b, equal_var=False): statistic, pvalue, df.
        // (a, b, statistic, pvalue, df)
        type Case<'a> = (&'a [f64], &'a [f64], f64, f64, f64);
        let cases: [Case; 3] = [
            (
                &[
                    27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0,
                    21.7, 21.4,
                ],
                &[
                    27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9,
                    20.5, 24.4,
                ],
                -2.455_356_398_286_006,
                0.021_378_001_462_866_992,
                24.988_529_290_231_416,
            ),
            (
                &[17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8],
                &[
                    21.5, 22.8, 21.0, 23.0, 21.6, 23.6, 22.5, 20.7, 23.4, 21.8, 20.7, 21.7, 21.5,
                    22.5, 23.6, 21.5, 22.5, 23.5, 21.5, 21.8,
                ],
                -1.565_433_523_598_503_7,
                0.148_841_696_605_328_17,
                9.904_741_248_650_831,
            ),
            (
                &[19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0],
                &[
                    28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7, 23.2, 17.5, 20.6,
                    18.0, 23.9, 21.6, 24.3, 20.4, 23.9, 13.3,
                ],
                -2.225_512_039_969_852,
                0.035_484_530_830_010_394,
                24.524_634_944_257_343,
            ),
        ];
        for (a, b, t, p, df) in cases {
            let w = welch(a, b).unwrap();
            near(w.t, t, 1e-11);
            near(w.df, df, 1e-9);
            near(w.p, p, 1e-11);
            assert!(w.ci95.0 < w.diff && w.diff < w.ci95.1);
            // The interval excludes 0 exactly when p < 0.05.
            assert_eq!(w.ci95.1 < 0.0, p < 0.05);
        }
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
        assert!(welch(&[1.0, 1.0], &[2.0, 2.0]).is_none());
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_difference() {
        let a: Vec<f64> = (0..40).map(|i| (i % 7) as f64 * 0.001 - 0.003).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.004).collect();
        let x = bootstrap_mean_diff(&a, &b, 2_000, 7).unwrap();
        let y = bootstrap_mean_diff(&a, &b, 2_000, 7).unwrap();
        assert_eq!(x, y, "same seed, same result");
        near(x.diff, 0.004, 1e-15);
        assert!(x.ci95.0 < 0.004 && 0.004 < x.ci95.1, "{x:?}");
        assert!(x.ci95.0 > 0.0, "a clear shift excludes zero: {x:?}");
        assert!(x.p < 0.01, "{x:?}");
        // Identical samples: the difference straddles zero.
        let z = bootstrap_mean_diff(&a, &a, 2_000, 3).unwrap();
        assert!(z.ci95.0 < 0.0 && z.ci95.1 > 0.0 && z.p > 0.2, "{z:?}");
        assert!(bootstrap_mean_diff(&[], &a, 10, 1).is_none());
        let mut r = SplitMix64::new(1);
        assert!((0..1000).all(|_| r.below(3) < 3));
    }
}
