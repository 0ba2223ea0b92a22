//! Notifications: a cold thread that tails journals and tells people what went wrong.
//!
//! The [`Notifier`] follows one or more journal directories, turns the records that matter into
//! [`Alert`]s through the table in [`alert`] (order failures, connection losses, gaps, feed
//! errors, reconciliation results, halts, ...), and delivers them through the configured
//! [`channel`]s (generic webhook, Slack, Discord, Telegram, SendGrid, SMTP) according to
//! [`config`]: critical alerts at once, warnings in batches, info in a periodic digest. The
//! [`outbox`] holds what is waiting and de-duplicates repeats; this module drives it: reading,
//! retries with jittered exponential backoff (honouring `Retry-After`), a token-bucket rate
//! limit per channel, and escalation: when an attempt fails on a channel that has been failing
//! for `escalate_after_secs`, its whole queue moves to its `fallback` channel (marked
//! "escalated from"). A message routed to a channel that is down still gets one attempt there,
//! at the channel's backoff pace (at most `retry_max_ms` later), before it follows; the first
//! success ends the failure and the channel takes its traffic again. Escalation is decided
//! only on a failed attempt, so a recovered channel is never bypassed.
//!
//! # Delivery guarantee
//!
//! The outbox is durable: after reading records that produced alerts, the notifier saves its
//! state (the outbox plus, per journal, the next sequence number to read) atomically *before*
//! it tries to deliver them, and saves it again after every successful delivery; each journal's
//! [`Cursor`] (`<state_dir>/<journal>.cursor`) is committed right after each save. So:
//!
//! * **Nothing is lost.** A record's alerts are durably queued before the record counts as
//!   read; a restart re-reads every record after the saved position and finds every undelivered
//!   message in the saved outbox. A journal pruned past the saved position is reported as a
//!   warning (`journal_records_skipped`), never skipped silently.
//! * **Nothing is sent twice, except in one window.** Delivered messages leave the outbox in the
//!   save that follows the delivery, so a restart never resends them. A crash *between* a
//!   service's 2xx and that save (a few milliseconds of `fsync`) resends that one message after
//!   the restart. It carries the same id both times (the `Idempotency-Key` header and `id` field
//!   of the generic webhook, `custom_args.alert_id` of SendGrid, the `Message-ID` of SMTP mail,
//!   and the id printed in every text), so a receiver that keys on it sees it once; Slack,
//!   Discord and Telegram have no idempotency key and would show it twice. No HTTP service can
//!   do better without one: the notifier cannot know whether a request whose answer it never
//!   saw was accepted.
//! * **Order is kept per channel**: each channel's queue is FIFO and its head is retried until
//!   it is delivered (or escalated with the rest of the queue).
//!
//! # Use
//!
//! `algo-engine run` starts it with [`spawn`] and stops it with [`NotifyHandle::stop`] (which
//! flushes open batches and makes one last delivery round). SMTP is plain (the workspace builds
//! `lettre` without TLS): point it at a local relay (or use SendGrid) for TLS-only providers.

pub mod alert;
pub mod channel;
pub mod config;
pub mod outbox;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringbuffers::journal::{JournalError, Tailer};

use crate::cursor::Cursor;
pub use alert::{Alert, Severity};
use channel::{Channel, Deliver};
pub use config::{ConfigError, NotifyConfig};
use outbox::{Ingested, Outbox, State, Windows};

/// Records read from one journal per step (bounds the time between deliveries).
const READ_BATCH: usize = 4096;
/// Successful deliveries per channel per step.
const SENDS_PER_STEP: usize = 32;
/// A state that only advanced journal positions (no new alerts) is saved at most this often.
const IDLE_SAVE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait a service can impose with `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// State or cursor files could not be read or written.
    #[error("notify state: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of a notifier (a snapshot through [`Notifier::stats`] / [`NotifyHandle::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Journal records read.
    pub records: u64,
    /// Alerts produced from records.
    pub alerts: u64,
    /// Repeats folded into an unsent alert's count.
    pub merged: u64,
    /// Repeats counted for a `repeated` summary.
    pub suppressed: u64,
    /// Alerts whose severity no channel takes.
    pub unrouted: u64,
    /// Records with an alert rule that could not be read (alerted as `unreadable_record`).
    pub unreadable: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Failed delivery attempts.
    pub failed_attempts: u64,
    /// Messages moved to a fallback channel.
    pub escalated: u64,
    /// Journal read errors (corrupt records; the tailer stays in place).
    pub journal_errors: u64,
    /// State saves.
    pub saves: u64,
    /// State saves or cursor commits that failed (retried at the next save).
    pub save_errors: u64,
}

/// Per-channel delivery bookkeeping (not persisted: a restart retries at once).
struct Health {
    failing_since: Option<Instant>,
    attempts: u32,
    next_attempt: Instant,
    tokens: f64,
    refilled: Instant,
}

/// One channel: its settings and its deliverer.
struct Link {
    name: String,
    fallback: Option<String>,
    escalate_after: Duration,
    retry_base: Duration,
    retry_max: Duration,
    rate_per_minute: u32,
    burst: u32,
    deliver: Box<dyn Deliver>,
    health: Health,
}

/// One tailed journal.
struct Source {
    name: String,
    dir: PathBuf,
    cursor: Cursor,
    tailer: Option<Tailer>,
    retry_open_at: Instant,
    error_logged: bool,
}

/// The notification consumer; drive it with [`Notifier::step`] or run it on a thread with
/// [`spawn`].
pub struct Notifier {
    sources: Vec<Source>,
    links: Vec<Link>,
    outbox: Outbox,
    state_path: PathBuf,
    stats: NotifyStats,
    dirty: bool,
    last_save: Instant,
    latest_record_ns: u64,
    rng: u64,
    poll_interval: Duration,
    crash_after_deliveries: Option<u64>,
}

/// Wall-clock milliseconds since the Unix epoch.
fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Journal names from directory names (`a/journal` and `b/journal` become `journal`,
/// `journal-2`): the names key the state, so they must stay the same across restarts.
pub fn journal_names(dirs: &[PathBuf]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    dirs.iter()
        .map(|d| {
            let base = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "journal".into());
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                base
            } else {
                format!("{base}-{n}")
            }
        })
        .collect()
}

impl Notifier {
    /// A notifier over `journal_dirs` keeping its state in `state_dir`, with secrets looked up
    /// through `env` (normally [`std::env::var`]).
    pub fn open(
        config: &NotifyConfig,
        journal_dirs: &[PathBuf],
        state_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Notifier, NotifyError> {
        let resolved = config.resolve(env)?;
        let links = resolved
            .into_iter()
            .map(|c| {
                let deliver: Box<dyn Deliver> = Box::new(Channel::new(c.clone()));
                Link {
                    name: c.name,
                    fallback: c.fallback,
                    escalate_after: c.escalate_after,
                    retry_base: c.retry_base,
                    retry_max: c.retry_max,
                    rate_per_minute: c.rate_per_minute,
                    burst: c.burst,
                    deliver,
                    health: Health {
                        failing_since: None,
                        attempts: 0,
                        next_attempt: Instant::now(),
                        tokens: f64::from(c.burst),
                        refilled: Instant::now(),
                    },
                }
            })
            .collect();
        let state_path = state_dir.join("notify.state.json");
        let mut state = State::load(&state_path)?;
        let mut sources = Vec::new();
        for (dir, name) in journal_dirs.iter().zip(journal_names(journal_dirs)) {
            let cursor = Cursor::load(state_dir.join(format!("{name}.cursor")))?;
            // The state is saved before the cursor is committed, so it is never behind; a
            // cursor ahead of it means the state file was replaced: never go back (that would
            // resend), but say so.
            let saved = state.journals.get(&name).copied().unwrap_or(0);
            if cursor.next_seq() > saved {
                if state.journals.contains_key(&name) {
                    tracing::warn!(
                        journal = %name,
                        state = saved,
                        cursor = cursor.next_seq(),
                        "notify state is behind its cursor; resuming at the cursor"
                    );
                }
                state.journals.insert(name.clone(), cursor.next_seq());
            } else {
                state.journals.insert(name.clone(), saved);
            }
            sources.push(Source {
                name,
                dir: dir.clone(),
                cursor,
                tailer: None,
                retry_open_at: Instant::now(),
                error_logged: false,
            });
        }
        let windows = Windows {
            warning_batch_ms: config.warning_batch_secs.saturating_mul(1000),
            info_digest_ms: config.info_digest_secs.saturating_mul(1000),
            dedup_ns: config.dedup_window_secs.saturating_mul(1_000_000_000),
        };
        let seed = now_unix_ms() ^ u64::from(std::process::id()).rotate_left(32);
        Ok(Notifier {
            sources,
            links,
            outbox: Outbox::new(state, config.routing.clone(), windows),
            state_path,
            stats: NotifyStats::default(),
            dirty: true,
            last_save: Instant::now(),
            latest_record_ns: 0,
            rng: seed | 1,
            poll_interval: Duration::from_millis(config.poll_interval_ms.max(1)),
            crash_after_deliveries: None,
        })
    }

    /// Counters.
    pub fn stats(&self) -> NotifyStats {
        self.stats
    }

    /// The current (in-memory) state: queues, batches, positions.
    pub fn state(&self) -> &State {
        &self.outbox.state
    }

    /// Test hook simulating a crash between a delivery and the save that records it: after
    /// `n` more successful deliveries, [`step`](Self::step) returns without saving and the
    /// notifier refuses to do anything more (drop it and open a new one, as after a crash).
    #[doc(hidden)]
    pub fn crash_after_deliveries(&mut self, n: u64) {
        self.crash_after_deliveries = Some(n);
    }

    fn crashed(&self) -> bool {
        self.crash_after_deliveries == Some(0)
    }

    /// One round: read new records, save, close de-duplication windows and due batches,
    /// deliver and escalate. Returns true if anything happened (the caller sleeps otherwise).
    pub fn step(&mut self) -> bool {
        if self.crashed() {
            return false;
        }
        let now_ms = now_unix_ms();
        let (read, alerts) = self.read_journals(now_ms);
        let now_ns = now_ms.saturating_mul(1_000_000).max(self.latest_record_ns);
        let summaries = self.outbox.expire_dedup(now_ns, now_ms);
        let flushed = self.outbox.flush_due(now_ms, false);
        if alerts > 0 || summaries > 0 || flushed > 0 {
            self.dirty = true;
            self.save();
        } else if read > 0 {
            self.dirty = true;
            if self.last_save.elapsed() >= IDLE_SAVE_EVERY {
                self.save();
            }
        }
        let sent = self.deliver_all();
        if self.crashed() {
            return false;
        }
        read > 0 || sent > 0 || alerts > 0
    }

    /// Flushes every open batch into its queue now (shutdown, tests).
    pub fn flush_batches(&mut self) {
        if self.outbox.flush_due(now_unix_ms(), true) > 0 {
            self.dirty = true;
            self.save();
        }
    }

    /// Steps until the journals are read to their end and nothing is left to send, or until
    /// `timeout` passes; true if everything was delivered. Batches are flushed as they fall
    /// due (or at once with `flush`).
    pub fn run_until_idle(&mut self, timeout: Duration, flush: bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let busy = self.step();
            if flush {
                self.flush_batches();
            }
            if self.crashed() {
                return false;
            }
            if !busy && self.outbox.state.pending_alerts() == 0 {
                self.save_if_dirty();
                return true;
            }
            if Instant::now() >= deadline {
                self.save_if_dirty();
                return false;
            }
            if !busy {
                std::thread::sleep(self.poll_interval.min(Duration::from_millis(20)));
            }
        }
    }

    /// Saves the state if anything changed since the last save.
    pub fn save_if_dirty(&mut self) {
        if self.dirty && !self.crashed() {
            self.save();
        }
    }

    fn save(&mut self) {
        if let Err(e) = self.outbox.state.save(&self.state_path) {
            self.stats.save_errors += 1;
            tracing::error!(error = %e, "notify: saving state failed; retrying at the next save");
            return;
        }
        self.stats.saves += 1;
        self.dirty = false;
        self.last_save = Instant::now();
        for s in &mut self.sources {
            let next = self
                .outbox
                .state
                .journals
                .get(&s.name)
                .copied()
                .unwrap_or(0);
            if let Err(e) = s.cursor.commit(next) {
                self.stats.save_errors += 1;
                tracing::error!(journal = %s.name, error = %e, "notify: cursor commit failed");
            }
        }
    }

    /// Reads up to [`READ_BATCH`] records from each journal; returns (records, alerts).
    fn read_journals(&mut self, now_ms: u64) -> (usize, usize) {
        let (mut read, mut produced) = (0, 0);
        for si in 0..self.sources.len() {
            let mut skipped_alert = None;
            let src = &mut self.sources[si];
            let next = self
                .outbox
                .state
                .journals
                .get(&src.name)
                .copied()
                .unwrap_or(0);
            if src.tailer.is_none() {
                if Instant::now() < src.retry_open_at {
                    continue;
                }
                match Tailer::open_at(&src.dir, Some(hotpath::codec::SCHEMA_HASH), next) {
                    Ok(t) => {
                        src.tailer = Some(t);
                        src.error_logged = false;
                    }
                    Err(JournalError::SeqUnavailable { first, .. }) => {
                        // The journal was pruned past our position: say so and go on from
                        // its oldest record.
                        skipped_alert = Some(Alert {
                            journal: src.name.clone(),
                            seq: first,
                            ts_ns: now_ms.saturating_mul(1_000_000),
                            severity: Severity::Warning,
                            kind: "journal_records_skipped".into(),
                            key: format!("journal_records_skipped:{}", src.name),
                            title: format!(
                                "Notifier skipped journal records {next}..{first} (pruned)"
                            ),
                            fields: vec![
                                ("from_seq".into(), next.to_string()),
                                ("to_seq".into(), first.to_string()),
                            ],
                            count: 1,
                        });
                        self.outbox.state.journals.insert(src.name.clone(), first);
                        src.retry_open_at = Instant::now();
                    }
                    Err(e) => {
                        if !src.error_logged {
                            tracing::warn!(journal = %src.name, error = %e, "notify: journal not readable yet");
                            src.error_logged = true;
                        }
                        src.retry_open_at = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
            if let Some(a) = skipped_alert {
                produced += 1;
                self.ingest(a, now_ms);
                continue;
            }
            let src = &mut self.sources[si];
            let Some(tailer) = src.tailer.as_mut() else {
                continue;
            };
            let mut alerts = Vec::new();
            let mut n = 0;
            while n < READ_BATCH {
                match tailer.next() {
                    Ok(Some(r)) => {
                        n += 1;
                        self.latest_record_ns = self.latest_record_ns.max(r.timestamp);
                        let (a, err) =
                            alert::to_alert(&src.name, r.seq, r.timestamp, r.kind, r.payload);
                        if let Some(e) = err {
                            self.stats.unreadable += 1;
                            tracing::warn!(journal = %src.name, seq = r.seq, error = %e, "notify: unreadable record");
                        }
                        alerts.extend(a);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.stats.journal_errors += 1;
                        if !src.error_logged {
                            tracing::error!(journal = %src.name, error = %e, "notify: journal read error; waiting");
                            src.error_logged = true;
                        }
                        break;
                    }
                }
            }
            let next_seq = tailer.next_seq();
            let name = src.name.clone();
            read += n;
            self.stats.records += n as u64;
            produced += alerts.len();
            for a in alerts {
                self.ingest(a, now_ms);
            }
            self.outbox.state.journals.insert(name, next_seq);
        }
        (read, produced)
    }

    fn ingest(&mut self, a: Alert, now_ms: u64) {
        self.stats.alerts += 1;
        match self.outbox.ingest(a, now_ms) {
            Ingested::Routed(0) => self.stats.unrouted += 1,
            Ingested::Routed(_) => {}
            Ingested::Merged => self.stats.merged += 1,
            Ingested::Suppressed => self.stats.suppressed += 1,
        }
    }

    /// A random number (splitmix64) for backoff jitter.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Delivery and escalation round over every channel; returns messages delivered.
    fn deliver_all(&mut self) -> usize {
        let mut sent = 0;
        for li in 0..self.links.len() {
            let (n, failed) = self.deliver_channel(li);
            sent += n;
            if self.crashed() {
                return sent;
            }
            if failed {
                self.maybe_escalate(li);
            }
        }
        sent
    }

    /// Sends from the head of one channel's queue; returns (messages sent, whether an
    /// attempt failed).
    fn deliver_channel(&mut self, li: usize) -> (usize, bool) {
        let mut sent = 0;
        while sent < SENDS_PER_STEP {
            let now = Instant::now();
            let link = &mut self.links[li];
            let Some(cq) = self.outbox.state.channels.get_mut(&link.name) else {
                break;
            };
            let Some(head) = cq.queue.front() else {
                break;
            };
            if now < link.health.next_attempt || !take_token(link, now) {
                break;
            }
            match link.deliver.deliver(head) {
                Ok(()) => {
                    cq.queue.pop_front();
                    if link.health.failing_since.is_some() {
                        tracing::info!(channel = %link.name, "notify: channel recovered");
                    }
                    link.health.failing_since = None;
                    link.health.attempts = 0;
                    self.stats.delivered += 1;
                    sent += 1;
                    if let Some(n) = self.crash_after_deliveries.as_mut() {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            return (sent, false);
                        }
                    }
                    self.dirty = true;
                    self.save();
                }
                Err(e) => {
                    link.health.attempts = link.health.attempts.saturating_add(1);
                    link.health.failing_since.get_or_insert(now);
                    let exp = link
                        .retry_base
                        .saturating_mul(1u32 << (link.health.attempts.saturating_sub(1)).min(20));
                    let delay = exp.min(link.retry_max);
                    let (attempts, name) = (link.health.attempts, link.name.clone());
                    // Equal jitter: half fixed, half random, so retries of several channels
                    // (or several engines) do not synchronise.
                    let half = delay / 2;
                    let jitter_ns = self.random() % (half.as_nanos() as u64).max(1);
                    let mut wait = half + Duration::from_nanos(jitter_ns);
                    if let Some(ra) = e.retry_after {
                        wait = wait.max(ra.min(MAX_RETRY_AFTER));
                    }
                    let link = &mut self.links[li];
                    link.health.next_attempt = now + wait;
                    self.stats.failed_attempts += 1;
                    tracing::warn!(
                        channel = %name,
                        attempt = attempts,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %e,
                        "notify: delivery failed"
                    );
                    return (sent, true);
                }
            }
        }
        (sent, false)
    }

    fn maybe_escalate(&mut self, li: usize) {
        let link = &self.links[li];
        let (Some(since), Some(fb)) = (link.health.failing_since, link.fallback.as_ref()) else {
            return;
        };
        if since.elapsed() < link.escalate_after {
            return;
        }
        let moved = self.outbox.escalate(&link.name, fb);
        if moved > 0 {
            tracing::warn!(channel = %link.name, fallback = %fb, messages = moved, "notify: escalating to fallback channel");
            self.stats.escalated += moved as u64;
            self.dirty = true;
            self.save();
        }
    }
}

/// Takes a token from the channel's bucket (refilled at `rate_per_minute`).
fn take_token(link: &mut Link, now: Instant) -> bool {
    if link.rate_per_minute == 0 {
        return true;
    }
    let h = &mut link.health;
    let per_sec = f64::from(link.rate_per_minute) / 60.0;
    let elapsed = now.saturating_duration_since(h.refilled).as_secs_f64();
    h.tokens = (h.tokens + elapsed * per_sec).min(f64::from(link.burst));
    h.refilled = now;
    if h.tokens >= 1.0 {
        h.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// A running notifier thread.
pub struct NotifyHandle {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<NotifyStats>>,
    thread: Option<JoinHandle<()>>,
}

impl NotifyHandle {
    /// Latest counters.
    pub fn stats(&self) -> NotifyStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops the thread: flushes open batches, makes one last delivery round, saves, joins.
    /// Whatever could not be delivered stays in the saved outbox for the next start.
    pub fn stop(mut self) -> NotifyStats {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("notify thread panicked");
            }
        }
        self.stats()
    }
}

impl Drop for NotifyHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the notifier on a thread named `notify`: `config` is the `[notify]` section,
/// `journal_dirs` the journals to follow (named after their directories), `state_dir` where the
/// outbox and cursors live. Secrets are read from the process environment now, so a missing
/// token fails here rather than at the first alert.
pub fn spawn(
    config: NotifyConfig,
    journal_dirs: Vec<PathBuf>,
    state_dir: PathBuf,
) -> Result<NotifyHandle, NotifyError> {
    let env = |k: &str| std::env::var(k).ok();
    let mut notifier = Notifier::open(&config, &journal_dirs, &state_dir, &env)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(NotifyStats::default()));
    let (stop2, stats2) = (stop.clone(), stats.clone());
    let thread = std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            while !stop2.load(Ordering::Acquire) {
                let busy = notifier.step();
                if let Ok(mut s) = stats2.lock() {
                    *s = notifier.stats();
                }
                if !busy {
                    std::thread::sleep(notifier.poll_interval);
                }
            }
            notifier.flush_batches();
            notifier.step();
            notifier.save_if_dirty();
            if let Ok(mut s) = stats2.lock() {
                *s = notifier.stats();
            }
        })?;
    Ok(NotifyHandle {
        stop,
        stats,
        thread: Some(thread),
    })
}
