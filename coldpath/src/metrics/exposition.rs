//! The Prometheus text exposition format (version 0.0.4), written by hand, and the fixed-bucket
//! latency histogram the exporter keeps.
//!
//! The format is small enough that a writer is a page of code: one `# HELP` and one `# TYPE`
//! line per metric family, then its samples, each family's samples contiguous. [`Exposition`]
//! enforces the rules a scraper checks (a family is declared once; names and label names match
//! the Prometheus grammar; label values are escaped), so a bug in a caller becomes a skipped,
//! counted sample instead of an unparseable page.
//!
//! Histograms use **fixed buckets** ([`BUCKETS_NS`], 100 ns to 10 s in 1-2.5-5 steps) rather
//! than buckets derived from an HDR histogram: Prometheus needs the same `le` boundaries on
//! every scrape for `histogram_quantile` and `rate` to work across scrapes and instances, and
//! fixed bounds keep the series count constant. Recording is a short scan of 25 bounds and an
//! add; exact quantiles of a run are the hot path's own HDR histograms
//! ([`hotpath::latency::LatencyReport`]).

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Upper bounds of the latency buckets, in nanoseconds (exposed in seconds as `le`).
pub const BUCKETS_NS: [u64; 25] = [
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram over [`BUCKETS_NS`] (plus the implicit `+Inf` bucket).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative; index `BUCKETS_NS.len()` is the overflow.
    counts: [u64; BUCKETS_NS.len() + 1],
    /// Sum of the observations, nanoseconds.
    sum_ns: u128,
}

impl LatencyHistogram {
    /// Records one observation of `ns` nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        self.counts[i] += 1;
        self.sum_ns += u128::from(ns);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// Cumulative counts per bound of [`BUCKETS_NS`], then the `+Inf` total.
    pub fn cumulative(&self) -> [u64; BUCKETS_NS.len() + 1] {
        let mut out = self.counts;
        for i in 1..out.len() {
            out[i] += out[i - 1];
        }
        out
    }
}

/// The `# TYPE` of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter (name should end in `_total`).
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Cumulative-bucket histogram (`_bucket`, `_sum`, `_count` samples).
    Histogram,
}

impl MetricType {
    fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// True if `s` matches `[a-zA-Z_:][a-zA-Z0-9_:]*` (a metric name).
pub fn valid_metric_name(s: &str) -> bool {
    let mut it = s.bytes();
    matches!(it.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && it.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// True if `s` matches `[a-zA-Z_][a-zA-Z0-9_]*` and does not start with `__` (reserved).
pub fn valid_label_name(s: &str) -> bool {
    let mut it = s.bytes();
    !s.starts_with("__")
        && matches!(it.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && it.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A page of exposition text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: BTreeSet<String>,
    current: Option<String>,
    rejected: u64,
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a family called `name` was declared already.
    pub fn has_family(&self, name: &str) -> bool {
        self.families.contains(name)
    }

    /// Declares the family `name`; its samples must follow before the next family. Returns
    /// false (and writes nothing) for an invalid or already declared name: the caller must then
    /// skip its samples, which [`sample`](Self::sample) also refuses.
    pub fn family(&mut self, name: &str, help: &str, ty: MetricType) -> bool {
        if !valid_metric_name(name) || self.families.contains(name) {
            self.rejected += 1;
            self.current = None;
            return false;
        }
        self.families.insert(name.to_string());
        self.current = Some(name.to_string());
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", ty.name());
        true
    }

    /// One sample of the current family (`name` is the family name, or for a histogram the
    /// family name plus `_bucket`/`_sum`/`_count`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let in_family = self.current.as_deref().is_some_and(|f| {
            name.strip_prefix(f)
                .is_some_and(|s| s.is_empty() || s.starts_with('_'))
        });
        if !in_family || !labels.iter().all(|(k, _)| valid_label_name(k)) {
            self.rejected += 1;
            return;
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(v, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        format_value(value, &mut self.out);
        self.out.push('\n');
    }

    /// The `_bucket`, `_sum` and `_count` samples of `h` in the current histogram family.
    pub fn histogram(&mut self, family: &str, labels: &[(&str, &str)], h: &LatencyHistogram) {
        let cum = h.cumulative();
        let bucket = format!("{family}_bucket");
        let bounds: Vec<String> = BUCKETS_NS
            .iter()
            .map(|&b| format_seconds(b))
            .chain(std::iter::once("+Inf".to_string()))
            .collect();
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        for (le, n) in bounds.iter().zip(cum) {
            with_le.push(("le", le));
            self.sample(&bucket, &with_le, n as f64);
            with_le.pop();
        }
        self.sample(&format!("{family}_sum"), labels, h.sum_seconds());
        self.sample(&format!("{family}_count"), labels, h.count() as f64);
    }

    /// Samples or families refused so far (invalid names, duplicate families).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `ns` as a decimal number of seconds with no exponent (`0.0000001` for 100 ns).
fn format_seconds(ns: u64) -> String {
    let whole = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:09}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn format_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let mut h = LatencyHistogram::default();
        for ns in [1, 100, 101, 999, 1_000, 20_000_000_000] {
            h.record_ns(ns);
        }
        let c = h.cumulative();
        assert_eq!(c[0], 2, "1 ns and 100 ns are <= 100 ns");
        assert_eq!(c[3], 5, "<= 1 us");
        assert_eq!(c[BUCKETS_NS.len() - 1], 5);
        assert_eq!(c[BUCKETS_NS.len()], 6, "+Inf holds the overflow");
        assert_eq!(h.count(), 6);
        let mut e = Exposition::new();
        assert!(e.family("algo_x_seconds", "x", MetricType::Histogram));
        e.histogram("algo_x_seconds", &[("stage", "decode")], &h);
        let text = e.finish();
        assert!(text.contains("algo_x_seconds_bucket{stage=\"decode\",le=\"0.0000001\"} 2\n"));
        assert!(text.contains("algo_x_seconds_bucket{stage=\"decode\",le=\"10\"} 5\n"));
        assert!(text.contains("algo_x_seconds_bucket{stage=\"decode\",le=\"+Inf\"} 6\n"));
        assert!(text.contains("algo_x_seconds_count{stage=\"decode\"} 6\n"));
    }

    #[test]
    fn families_are_declared_once_and_values_escaped() {
        let mut e = Exposition::new();
        assert!(e.family("algo_a_total", "a\nb", MetricType::Counter));
        e.sample("algo_a_total", &[("symbol", "x\"y\\z\n")], 3.0);
        e.sample("algo_other", &[], 1.0);
        e.sample("algo_a_total", &[("bad-label", "v")], 1.0);
        assert!(!e.family("algo_a_total", "again", MetricType::Counter));
        assert!(!e.family("9bad", "", MetricType::Gauge));
        assert!(e.family("algo_g", "g", MetricType::Gauge));
        e.sample("algo_g", &[], f64::NAN);
        assert_eq!(e.rejected(), 4);
        assert_eq!(
            e.finish(),
            "# HELP algo_a_total a\\nb\n# TYPE algo_a_total counter\n\
             algo_a_total{symbol=\"x\\\"y\\\\z\\n\"} 3\n\
             # HELP algo_g g\n# TYPE algo_g gauge\nalgo_g NaN\n"
        );
    }
}
