//! Streaming readers for the recorded capture formats under `ALGO_DATA_DIR`.
//!
//! The captures were written by other people's recorders, each with its own framing around the
//! venue's raw bytes. This module removes the framing and nothing else: it yields the receive
//! time and the raw message bytes exactly as they were recorded, so that `import` can journal
//! the raw frame first and only then hand the bytes to the real venue decoder. Decoding JSON is
//! not done here (one decoder, in `hotpath::venue`, is the one that is tested and benchmarked).
//!
//! | format | file | framing | yields |
//! |---|---|---|---|
//! | [`CaptureFormat::Hftbacktest`] | `*.gz` (gzip text) | `<recv ns> <json>` per line | [`ItemKind::Frame`] (REST snapshots appear inline as frames) |
//! | [`CaptureFormat::Cryptofeed`] | `X.ws.N.M` | first line `<url> <-> <s.frac>`, then `<s.frac>: <json>` | [`ItemKind::Session`], [`ItemKind::Frame`]; with the sibling `X.http.*` files merged in by receive time as [`ItemKind::Http`] |
//! | [`CaptureFormat::LeanFx`] | `YYYYMMDD_quote.zip` | one CSV `<ms since midnight UTC>,<bid>,<ask>` | [`ItemKind::Quote`] |
//!
//! Readers are streaming: one line buffer is reused, so a capture of any size is read in
//! constant memory (the Lean CSV, about 1.5 MB a day, and the few REST responses of a
//! cryptofeed session are read whole). Receive times are converted to nanoseconds exactly,
//! without floating point (`1633998512.0633569` is `1633998512063356900`).
//!
//! A line that does not have the format's framing is not an error that stops the reader: it is
//! yielded as [`ItemKind::Malformed`] with its raw bytes and the reason, so that the importer can
//! journal it as a `FeedError` and go on. Blank lines are skipped (and counted). An I/O error
//! (for example a gzip stream cut short) ends the capture with an `Err`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

/// The capture formats this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureFormat {
    /// hftbacktest's gzip text: `<recv ns> <raw JSON>` per line.
    Hftbacktest,
    /// cryptofeed's raw `*.ws.*` log (plus its sibling `*.http.*` REST log).
    Cryptofeed,
    /// QuantConnect Lean FX tick quotes: a zip holding one CSV.
    LeanFx,
}

impl CaptureFormat {
    /// The CLI name: `hftbacktest`, `cryptofeed`, `lean-fx`.
    pub const fn name(self) -> &'static str {
        match self {
            CaptureFormat::Hftbacktest => "hftbacktest",
            CaptureFormat::Cryptofeed => "cryptofeed",
            CaptureFormat::LeanFx => "lean-fx",
        }
    }

    /// The format named `s` (the CLI names).
    pub fn from_name(s: &str) -> Option<CaptureFormat> {
        [
            CaptureFormat::Hftbacktest,
            CaptureFormat::Cryptofeed,
            CaptureFormat::LeanFx,
        ]
        .into_iter()
        .find(|f| f.name() == s)
    }

    /// Guess the format from a file name (`.gz`, `.ws.`, `.zip`).
    pub fn detect(path: &Path) -> Option<CaptureFormat> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".gz") {
            Some(CaptureFormat::Hftbacktest)
        } else if name.ends_with(".zip") {
            Some(CaptureFormat::LeanFx)
        } else if name.contains(".ws.") {
            Some(CaptureFormat::Cryptofeed)
        } else {
            None
        }
    }
}

/// Errors opening or reading a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// An I/O error (including a corrupt or truncated gzip stream).
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file is not what the format says.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One item of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureItem<'a> {
    /// 1-based line number in its file (the CSV line for Lean; the `.http` line for
    /// [`ItemKind::Http`]).
    pub line: u64,
    /// Local receive time, ns since the Unix epoch (for [`ItemKind::Malformed`], the last good
    /// receive time before it, or 0).
    pub recv_ns: u64,
    /// What it is.
    pub kind: ItemKind<'a>,
}

/// What a [`CaptureItem`] holds. Byte slices borrow the reader's buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind<'a> {
    /// A raw inbound message (WebSocket payload; in hftbacktest captures also the inline REST
    /// depth snapshot).
    Frame(&'a [u8]),
    /// A REST response body and the URL it answered.
    Http {
        /// Request URL.
        url: &'a str,
        /// Raw response body.
        body: &'a [u8],
    },
    /// A WebSocket session (re)started on `url`: sequence chains restart here.
    Session {
        /// Subscribed URL.
        url: &'a str,
    },
    /// A forex top-of-book quote, decimal strings as recorded.
    Quote {
        /// The whole CSV line.
        raw: &'a [u8],
        /// Bid price.
        bid: &'a [u8],
        /// Ask price.
        ask: &'a [u8],
    },
    /// A line without the format's framing, with the reason.
    Malformed {
        /// The whole line.
        raw: &'a [u8],
        /// Why it was rejected.
        reason: &'static str,
    },
}

/// A capture being read: items in file (and, for merged REST logs, receive-time) order.
pub trait CaptureSource {
    /// The next item, `Ok(None)` at the end.
    fn next_item(&mut self) -> Result<Option<CaptureItem<'_>>, CaptureError>;

    /// Blank lines skipped so far.
    fn blank_lines(&self) -> u64;

    /// The capture's file.
    fn path(&self) -> &Path;
}

/// Open `path` as `format`.
pub fn open(path: &Path, format: CaptureFormat) -> Result<Box<dyn CaptureSource>, CaptureError> {
    Ok(match format {
        CaptureFormat::Hftbacktest => Box::new(HftbacktestReader::open(path)?),
        CaptureFormat::Cryptofeed => Box::new(CryptofeedReader::open(path)?),
        CaptureFormat::LeanFx => Box::new(LeanFxReader::open(path)?),
    })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Strip a trailing `\n` / `\r\n`.
fn trim_eol(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Parse an unsigned integer made only of ASCII digits.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Seconds with an optional fraction (`1633998512.0633569`) as exact nanoseconds; fraction
/// digits beyond the ninth are truncated.
pub fn parse_secs_ns(s: &[u8]) -> Option<u64> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    let secs = parse_u64(int)?;
    let mut ns: u64 = 0;
    for i in 0..9 {
        let d = match frac.get(i) {
            Some(b) if b.is_ascii_digit() => u64::from(b - b'0'),
            Some(_) => return None,
            None => 0,
        };
        ns = ns * 10 + d;
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

// ---------------------------------------------------------------------------------------------
// hftbacktest
// ---------------------------------------------------------------------------------------------

/// Reader of hftbacktest `.gz` captures (`<recv ns> <raw JSON>` lines).
pub struct HftbacktestReader {
    path: PathBuf,
    input: Box<dyn BufRead>,
    buf: Vec<u8>,
    line: u64,
    last_ns: u64,
    blank: u64,
}

impl HftbacktestReader {
    /// Open a gzip capture (a plain-text file is read as is if it is not gzip).
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let mut f = BufReader::new(File::open(path).map_err(io_err(path))?);
        let gz = f
            .fill_buf()
            .map_err(io_err(path))?
            .starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn BufRead> = if gz {
            Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(f)))
        } else {
            Box::new(f)
        };
        Ok(Self::from_reader(path, input))
    }

    /// Read already-decompressed lines from `input` (`path` is only reported).
    pub fn from_reader(path: &Path, input: Box<dyn BufRead>) -> Self {
        HftbacktestReader {
            path: path.to_path_buf(),
            input,
            buf: Vec::with_capacity(1 << 16),
            line: 0,
            last_ns: 0,
            blank: 0,
        }
    }
}

impl CaptureSource for HftbacktestReader {
    fn next_item(&mut self) -> Result<Option<CaptureItem<'_>>, CaptureError> {
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(io_err(&self.path))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            if !trim_eol(&self.buf).is_empty() {
                break;
            }
            self.blank += 1;
        }
        let l = trim_eol(&self.buf);
        let line = self.line;
        Ok(Some(match l.iter().position(|&b| b == b' ') {
            Some(sp) => match parse_u64(&l[..sp]) {
                Some(ns) if sp + 1 < l.len() => {
                    self.last_ns = ns;
                    CaptureItem {
                        line,
                        recv_ns: ns,
                        kind: ItemKind::Frame(&l[sp + 1..]),
                    }
                }
                Some(_) => malformed(line, self.last_ns, l, "no message after the timestamp"),
                None => malformed(line, self.last_ns, l, "bad receive timestamp"),
            },
            None => malformed(line, self.last_ns, l, "no receive timestamp"),
        }))
    }

    fn blank_lines(&self) -> u64 {
        self.blank
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

fn malformed<'a>(line: u64, recv_ns: u64, raw: &'a [u8], reason: &'static str) -> CaptureItem<'a> {
    CaptureItem {
        line,
        recv_ns,
        kind: ItemKind::Malformed { raw, reason },
    }
}

// ---------------------------------------------------------------------------------------------
// cryptofeed
// ---------------------------------------------------------------------------------------------

/// One REST response of a cryptofeed `.http` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Line in the `.http` file.
    pub line: u64,
    /// Receive time, ns.
    pub recv_ns: u64,
    /// Request URL.
    pub url: String,
    /// Raw body.
    pub body: Vec<u8>,
}

/// Lines of a REST log without the expected framing: `(line number, raw bytes)`.
pub type BadLines = Vec<(u64, Vec<u8>)>;

/// Parse a cryptofeed `.http` log: lines `<url> -> <s.frac>: <body>`. Lines without that
/// framing are returned in the second vector as `(line, raw)`.
pub fn read_http_log(path: &Path) -> Result<(Vec<HttpResponse>, BadLines), CaptureError> {
    let mut r = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut buf = Vec::new();
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    let mut line = 0u64;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(io_err(path))? == 0 {
            break;
        }
        line += 1;
        let l = trim_eol(&buf);
        if l.is_empty() {
            continue;
        }
        match split_http_line(l) {
            Some((url, ns, body)) => out.push(HttpResponse {
                line,
                recv_ns: ns,
                url: url.to_string(),
                body: body.to_vec(),
            }),
            None => bad.push((line, l.to_vec())),
        }
    }
    Ok((out, bad))
}

/// `<url> -> <s.frac>: <body>`.
fn split_http_line(l: &[u8]) -> Option<(&str, u64, &[u8])> {
    let arrow = find(l, b" -> ")?;
    let url = core::str::from_utf8(&l[..arrow]).ok()?;
    let rest = &l[arrow + 4..];
    let colon = find(rest, b": ")?;
    let ns = parse_secs_ns(&rest[..colon])?;
    Some((url, ns, &rest[colon + 2..]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The sibling REST logs of a cryptofeed WebSocket log: `X.ws.N.M` -> every `X.http.*` file in
/// the same directory, sorted by name.
pub fn cryptofeed_http_siblings(ws_path: &Path) -> Vec<PathBuf> {
    let Some(name) = ws_path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Some(idx) = name.find(".ws.") else {
        return Vec::new();
    };
    let prefix = format!("{}.http.", &name[..idx]);
    let dir = ws_path.parent().unwrap_or(Path::new("."));
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    v.sort();
    v
}

/// Reader of a cryptofeed `.ws` log with its `.http` REST responses merged in by receive time
/// (a response is yielded before the first WebSocket message received after it).
pub struct CryptofeedReader {
    path: PathBuf,
    input: Box<dyn BufRead>,
    buf: Vec<u8>,
    line: u64,
    last_ns: u64,
    blank: u64,
    http: Vec<HttpResponse>,
    http_bad: BadLines,
    next_http: usize,
    /// A WebSocket line read but not yet yielded because a REST response comes first.
    held: bool,
}

impl CryptofeedReader {
    /// Open `X.ws.N.M` and read its sibling `X.http.*` logs.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let f = BufReader::new(File::open(path).map_err(io_err(path))?);
        let mut http = Vec::new();
        let mut http_bad = Vec::new();
        for p in cryptofeed_http_siblings(path) {
            let (ok, bad) = read_http_log(&p)?;
            http.extend(ok);
            http_bad.extend(bad);
        }
        Ok(Self::from_parts(path, Box::new(f), http, http_bad))
    }

    /// A reader over WebSocket log lines from `input` and already-parsed REST responses.
    pub fn from_parts(
        path: &Path,
        input: Box<dyn BufRead>,
        mut http: Vec<HttpResponse>,
        http_bad: BadLines,
    ) -> Self {
        http.sort_by_key(|h| h.recv_ns);
        CryptofeedReader {
            path: path.to_path_buf(),
            input,
            buf: Vec::with_capacity(1 << 16),
            line: 0,
            last_ns: 0,
            blank: 0,
            http,
            http_bad,
            next_http: 0,
            held: false,
        }
    }

    /// The REST responses merged into this capture.
    pub fn http_responses(&self) -> &[HttpResponse] {
        &self.http
    }

    /// Receive time of a framed WebSocket line (`<s.frac>: ...` or `<url> <-> <s.frac>`).
    fn line_time(l: &[u8]) -> Option<u64> {
        if let Some(p) = find(l, b" <-> ") {
            return parse_secs_ns(&l[p + 5..]);
        }
        let colon = find(l, b": ")?;
        parse_secs_ns(&l[..colon])
    }

    fn classify(line: u64, last_ns: u64, l: &[u8]) -> CaptureItem<'_> {
        if let Some(p) = find(l, b" <-> ") {
            if let (Ok(url), Some(ns)) = (core::str::from_utf8(&l[..p]), parse_secs_ns(&l[p + 5..]))
            {
                return CaptureItem {
                    line,
                    recv_ns: ns,
                    kind: ItemKind::Session { url },
                };
            }
            return malformed(line, last_ns, l, "bad session line");
        }
        match find(l, b": ") {
            Some(c) => match parse_secs_ns(&l[..c]) {
                Some(ns) if c + 2 < l.len() => CaptureItem {
                    line,
                    recv_ns: ns,
                    kind: ItemKind::Frame(&l[c + 2..]),
                },
                Some(_) => malformed(line, last_ns, l, "no message after the timestamp"),
                None => malformed(line, last_ns, l, "bad receive timestamp"),
            },
            None => malformed(line, last_ns, l, "no receive timestamp"),
        }
    }
}

impl CaptureSource for CryptofeedReader {
    fn next_item(&mut self) -> Result<Option<CaptureItem<'_>>, CaptureError> {
        // Unparseable REST lines first (they have no time to merge by).
        if !self.http_bad.is_empty() && !self.held {
            let (line, raw) = self.http_bad.remove(0);
            self.buf = raw;
            return Ok(Some(malformed(line, 0, &self.buf, "bad REST log line")));
        }
        if !self.held {
            loop {
                self.buf.clear();
                let n = self
                    .input
                    .read_until(b'\n', &mut self.buf)
                    .map_err(io_err(&self.path))?;
                if n == 0 {
                    break;
                }
                self.line += 1;
                if trim_eol(&self.buf).is_empty() {
                    self.blank += 1;
                    continue;
                }
                self.held = true;
                break;
            }
        }
        let ws_ns = if self.held {
            Self::line_time(trim_eol(&self.buf))
        } else {
            None
        };
        if let Some(h) = self.http.get(self.next_http) {
            // Before the next WebSocket line (or at the end; a malformed line has no time and
            // does not hold a response back).
            if !self.held || ws_ns.is_some_and(|t| h.recv_ns <= t) {
                self.next_http += 1;
                return Ok(Some(CaptureItem {
                    line: h.line,
                    recv_ns: h.recv_ns,
                    kind: ItemKind::Http {
                        url: &h.url,
                        body: &h.body,
                    },
                }));
            }
        }
        if !self.held {
            return Ok(None);
        }
        self.held = false;
        let item = Self::classify(self.line, self.last_ns, trim_eol(&self.buf));
        if !matches!(item.kind, ItemKind::Malformed { .. }) {
            self.last_ns = item.recv_ns;
        }
        Ok(Some(item))
    }

    fn blank_lines(&self) -> u64 {
        self.blank
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

// ---------------------------------------------------------------------------------------------
// Lean FX
// ---------------------------------------------------------------------------------------------

/// Reader of a QuantConnect Lean FX tick-quote zip: one CSV of `<ms since midnight>,<bid>,<ask>`.
///
/// The date comes from the zip's file name (`20140505_quote.zip`), the pair from the CSV's name
/// (`20140505_eurusd_tick_quote.csv` gives `EURUSD`) or else the parent directory.
pub struct LeanFxReader {
    path: PathBuf,
    csv: Vec<u8>,
    pos: usize,
    line: u64,
    midnight_ns: u64,
    last_ns: u64,
    blank: u64,
    pair: String,
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDD` at the start of a file name, as ns since the epoch of that day's midnight UTC.
pub fn date_prefix_ns(name: &str) -> Option<u64> {
    let d = name.get(..8)?;
    let v = parse_u64(d.as_bytes())?;
    let (y, m, day) = (
        (v / 10_000) as i64,
        ((v / 100) % 100) as u32,
        (v % 100) as u32,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || y < 1970 {
        return None;
    }
    u64::try_from(days_from_civil(y, m, day))
        .ok()?
        .checked_mul(86_400_000_000_000)
}

impl LeanFxReader {
    /// Open a Lean quote zip.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let (name, csv) = read_single_zip_entry(&bytes).map_err(|reason| CaptureError::Format {
            path: path.to_path_buf(),
            reason,
        })?;
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let midnight_ns = date_prefix_ns(file_name)
            .or_else(|| date_prefix_ns(&name))
            .ok_or_else(|| CaptureError::Format {
                path: path.to_path_buf(),
                reason: "no YYYYMMDD date at the start of the file name".into(),
            })?;
        let pair = name
            .split('_')
            .nth(1)
            .filter(|p| p.len() == 6 && p.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(str::to_owned)
            .or_else(|| {
                path.parent()
                    .and_then(Path::file_name)
                    .and_then(|n| n.to_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
            .to_ascii_uppercase();
        Ok(LeanFxReader {
            path: path.to_path_buf(),
            csv,
            pos: 0,
            line: 0,
            midnight_ns,
            last_ns: midnight_ns,
            blank: 0,
            pair,
        })
    }

    /// The currency pair, upper case (`EURUSD`).
    pub fn pair(&self) -> &str {
        &self.pair
    }

    /// Midnight UTC of the file's day, ns since the epoch.
    pub fn midnight_ns(&self) -> u64 {
        self.midnight_ns
    }
}

impl CaptureSource for LeanFxReader {
    fn next_item(&mut self) -> Result<Option<CaptureItem<'_>>, CaptureError> {
        loop {
            if self.pos >= self.csv.len() {
                return Ok(None);
            }
            let rest = &self.csv[self.pos..];
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let start = self.pos;
            self.pos += end;
            self.line += 1;
            let l = trim_eol(&self.csv[start..start + end]);
            if l.is_empty() {
                self.blank += 1;
                continue;
            }
            let line = self.line;
            let mut f = l.split(|&b| b == b',');
            let (ms, bid, ask) = (f.next(), f.next(), f.next());
            let extra = f.next().is_some();
            return Ok(Some(match (ms.and_then(parse_u64), bid, ask, extra) {
                (Some(ms), Some(bid), Some(ask), false) if ms < 86_400_000 * 2 => {
                    let ns = self.midnight_ns + ms * 1_000_000;
                    self.last_ns = ns;
                    CaptureItem {
                        line,
                        recv_ns: ns,
                        kind: ItemKind::Quote { raw: l, bid, ask },
                    }
                }
                (None, ..) => malformed(line, self.last_ns, l, "bad millisecond time"),
                (Some(_), Some(_), Some(_), false) => {
                    malformed(line, self.last_ns, l, "millisecond time beyond the day")
                }
                _ => malformed(line, self.last_ns, l, "expected 3 comma-separated fields"),
            }));
        }
    }

    fn blank_lines(&self) -> u64 {
        self.blank
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Little-endian `u16`/`u32` at `at`.
fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The name and contents of the only (first) file in a zip archive: stored or deflated, with
/// zip64 sizes (Lean writes them), no encryption, CRC-32 checked. The central directory
/// is used for sizes, so archives written with data descriptors work too.
pub fn read_single_zip_entry(zip: &[u8]) -> Result<(String, Vec<u8>), String> {
    const EOCD: u32 = 0x0605_4b50;
    const CEN: u32 = 0x0201_4b50;
    const LOC: u32 = 0x0403_4b50;
    let bad = |what: &str| format!("not a readable zip archive: {what}");
    // End of central directory: 22 bytes plus up to 64 KiB of comment, searched backwards.
    let min = zip.len().saturating_sub(22 + 0xffff);
    let eocd = (min..=zip.len().saturating_sub(22))
        .rev()
        .find(|&i| le32(zip, i) == Some(EOCD))
        .ok_or_else(|| bad("no end-of-central-directory record"))?;
    let entries = le16(zip, eocd + 10).ok_or_else(|| bad("short EOCD"))?;
    if entries == 0 {
        return Err(bad("archive is empty"));
    }
    let cd = le32(zip, eocd + 16).ok_or_else(|| bad("short EOCD"))? as usize;
    if le32(zip, cd) != Some(CEN) {
        return Err(bad("central directory signature"));
    }
    let flags = le16(zip, cd + 8).ok_or_else(|| bad("short central entry"))?;
    let method = le16(zip, cd + 10).ok_or_else(|| bad("short central entry"))?;
    let crc = le32(zip, cd + 16).ok_or_else(|| bad("short central entry"))?;
    let short = || bad("short central entry");
    let mut csize = u64::from(le32(zip, cd + 20).ok_or_else(short)?);
    let mut usize_ = u64::from(le32(zip, cd + 24).ok_or_else(short)?);
    let nlen = usize::from(le16(zip, cd + 28).ok_or_else(short)?);
    let elen = usize::from(le16(zip, cd + 30).ok_or_else(short)?);
    let mut local = u64::from(le32(zip, cd + 42).ok_or_else(short)?);
    let name = zip
        .get(cd + 46..cd + 46 + nlen)
        .ok_or_else(|| bad("short entry name"))?;
    let name = String::from_utf8_lossy(name).into_owned();
    if flags & 1 != 0 {
        return Err(bad("encrypted entry"));
    }
    // Zip64: fields saturated at 0xFFFFFFFF are in the 0x0001 extra field, 8 bytes each, in the
    // order uncompressed size, compressed size, local header offset (Lean writes its files so).
    let extra = zip
        .get(cd + 46 + nlen..cd + 46 + nlen + elen)
        .ok_or_else(|| bad("short extra field"))?;
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (le16(extra, at), le16(extra, at + 2));
        let (Some(id), Some(len)) = (id, len) else {
            break;
        };
        let body = extra
            .get(at + 4..at + 4 + usize::from(len))
            .ok_or_else(|| bad("short extra field"))?;
        if id == 1 {
            let mut vals = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
            for field in [&mut usize_, &mut csize, &mut local] {
                if *field == u64::from(u32::MAX) {
                    *field = vals.next().ok_or_else(|| bad("short zip64 field"))?;
                }
            }
        }
        at += 4 + usize::from(len);
    }
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad("entry too large"));
    let (csize, usize_, local) = (to_usize(csize)?, to_usize(usize_)?, to_usize(local)?);
    if le32(zip, local) != Some(LOC) {
        return Err(bad("local header signature"));
    }
    let lname = usize::from(le16(zip, local + 26).ok_or_else(|| bad("short local header"))?);
    let lextra = usize::from(le16(zip, local + 28).ok_or_else(|| bad("short local header"))?);
    let data_at = local + 30 + lname + lextra;
    let data = zip
        .get(data_at..data_at + csize)
        .ok_or_else(|| bad("entry data runs past the end"))?;
    let out = match method {
        0 => data.to_vec(),
        8 => {
            let mut out = Vec::with_capacity(usize_);
            flate2::read::DeflateDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| bad(&format!("inflate: {e}")))?;
            out
        }
        m => return Err(bad(&format!("compression method {m}"))),
    };
    if out.len() != usize_ {
        return Err(bad("uncompressed size mismatch"));
    }
    let mut c = flate2::Crc::new();
    c.update(&out);
    if c.sum() != crc {
        return Err(bad("CRC-32 mismatch"));
    }
    Ok((name, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_times() {
        assert_eq!(
            parse_secs_ns(b"1633998512.0633569"),
            Some(1_633_998_512_063_356_900)
        );
        assert_eq!(
            parse_secs_ns(b"1633998512.0633569123456"),
            Some(1_633_998_512_063_356_912)
        );
        assert_eq!(
            parse_secs_ns(b"1633998512"),
            Some(1_633_998_512_000_000_000)
        );
        assert_eq!(parse_secs_ns(b"16339x8512"), None);
        assert_eq!(parse_secs_ns(b"1.2x"), None);
        assert_eq!(
            date_prefix_ns("20140505_quote.zip"),
            Some(1_399_248_000_000_000_000)
        );
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn hftbacktest_lines() {
        let text = b"123 {\"a\":1}\n\nnot-a-time {}\n456\n789 x\r\n".to_vec();
        let mut r = HftbacktestReader::from_reader(Path::new("t"), Box::new(io::Cursor::new(text)));
        let mut got = Vec::new();
        while let Some(it) = r.next_item().unwrap() {
            got.push(format!("{} {} {:?}", it.line, it.recv_ns, it.kind));
        }
        assert_eq!(got.len(), 4);
        assert!(got[0].starts_with("1 123 Frame"));
        assert!(got[1].contains("bad receive timestamp"), "{}", got[1]);
        assert!(got[2].contains("no receive timestamp"), "{}", got[2]);
        assert!(got[3].starts_with("5 789 Frame([120])"), "{}", got[3]);
        assert_eq!(r.blank_lines(), 1);
    }

    #[test]
    fn cryptofeed_merges_rest_by_time() {
        let ws =
            b"wss://x/stream?streams=a <-> 10.5\n11.0: {\"m\":1}\n12.0: {\"m\":2}\ngarbage\n\n"
                .to_vec();
        let http = vec![HttpResponse {
            line: 1,
            recv_ns: 11_500_000_000,
            url: "https://x/depth?symbol=A".into(),
            body: b"{}".to_vec(),
        }];
        let mut r = CryptofeedReader::from_parts(
            Path::new("X.ws.1.0"),
            Box::new(io::Cursor::new(ws)),
            http,
            vec![],
        );
        let mut kinds = Vec::new();
        while let Some(it) = r.next_item().unwrap() {
            kinds.push(match it.kind {
                ItemKind::Session { .. } => format!("session@{}", it.recv_ns),
                ItemKind::Frame(b) => {
                    format!("frame@{}:{}", it.recv_ns, String::from_utf8_lossy(b))
                }
                ItemKind::Http { url, .. } => format!("http@{}:{url}", it.recv_ns),
                ItemKind::Malformed { reason, .. } => format!("bad@{}:{reason}", it.line),
                ItemKind::Quote { .. } => unreachable!(),
            });
        }
        assert_eq!(
            kinds,
            [
                "session@10500000000",
                "frame@11000000000:{\"m\":1}",
                "http@11500000000:https://x/depth?symbol=A",
                "frame@12000000000:{\"m\":2}",
                "bad@4:no receive timestamp",
            ]
        );
        assert_eq!(r.blank_lines(), 1);
    }
}
