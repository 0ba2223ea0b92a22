//! The durable outbox: per-channel queues, warning batches, info digests and the
//! de-duplication table, persisted together with the journal positions they cover.
//!
//! Alerts enter through [`Outbox::ingest`]. De-duplication comes first: an alert whose key was
//! seen less than the window ago (by journal record time) is not routed again; it is folded
//! into the still-unsent copies of the first one (their `count` grows), or, when every copy has
//! already gone out, counted in the table and reported as one `repeated` warning when the
//! window ends ([`Outbox::expire_dedup`]). Routing then puts the alert, for every channel the
//! routing table names for its severity, either straight into the channel's queue as a
//! message (critical, or any severity whose window is 0), into the channel's open warning
//! batch, or into its info digest; [`Outbox::flush_due`] turns a batch whose window has passed
//! into one message at the back of the queue. Queues are FIFO and delivered head first, so
//! the order of messages on a channel is kept, retries included.
//!
//! The whole [`State`] (queues, open batches, de-duplication table and, per journal, the
//! sequence number of the next record to read) is one JSON document written atomically by
//! [`State::save`]: the notifier saves it after reading records that produced alerts (before
//! the first delivery attempt of those alerts), after every successful delivery, and after an
//! escalation. Every saved state is consistent: the alerts of every record before the saved
//! positions are either in the saved outbox or delivered. See [`super`] for the guarantee this
//! gives across restarts.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::alert::{Alert, Severity};
use super::config::Routing;

/// How a message groups its alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One alert (critical, or an unbatched severity).
    Single,
    /// A warning batch.
    Batch,
    /// An info digest.
    Digest,
}

/// One delivery to one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Idempotency key: a hash of the grouping and the journal identities of the alerts, so a
    /// message rebuilt from the same records after a restart has the same id.
    pub id: String,
    /// The highest severity of its alerts.
    pub severity: Severity,
    /// How the alerts are grouped.
    pub grouping: Grouping,
    /// The alerts, in journal order.
    pub alerts: Vec<Alert>,
    /// Channels that gave the message up (escalation path), oldest first.
    pub escalated_from: Vec<String>,
    /// When the message was formed (ms since the Unix epoch).
    pub created_unix_ms: u64,
}

impl Message {
    /// A message of `alerts` (not empty).
    pub fn new(grouping: Grouping, alerts: Vec<Alert>, now_ms: u64) -> Message {
        let severity = alerts
            .iter()
            .map(|a| a.severity)
            .max()
            .unwrap_or(Severity::Info);
        let mut ident = format!("{grouping:?}");
        for a in &alerts {
            ident.push_str(&format!("|{}:{}:{}", a.journal, a.seq, a.kind));
        }
        Message {
            id: format!("ae-{:016x}", hotpath::codec::fnv1a64(ident.as_bytes())),
            severity,
            grouping,
            alerts,
            escalated_from: Vec::new(),
            created_unix_ms: now_ms,
        }
    }
}

/// Alerts collected for one later message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// When the first alert arrived (ms since the Unix epoch).
    pub opened_unix_ms: u64,
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// Everything waiting for one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelQueue {
    /// Messages ready to send, in order.
    pub queue: VecDeque<Message>,
    /// The open warning batch.
    pub warnings: Option<Batch>,
    /// The open info digest.
    pub digest: Option<Batch>,
}

impl ChannelQueue {
    /// Messages and batched alerts still waiting.
    pub fn pending_alerts(&self) -> usize {
        self.queue.iter().map(|m| m.alerts.len()).sum::<usize>()
            + self.warnings.as_ref().map_or(0, |b| b.alerts.len())
            + self.digest.as_ref().map_or(0, |b| b.alerts.len())
    }
}

/// A de-duplication window of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupEntry {
    /// Journal of the first occurrence.
    pub journal: String,
    /// Sequence number of the first occurrence.
    pub first_seq: u64,
    /// Record time of the first occurrence (ns); the window is measured from it.
    pub first_ts_ns: u64,
    /// Sequence number of the latest repeat.
    pub last_seq: u64,
    /// Record time of the latest repeat.
    pub last_ts_ns: u64,
    /// Repeats that found no unsent copy to fold into.
    pub suppressed: u32,
    /// Kind of the alert.
    pub kind: String,
    /// Title of the alert.
    pub title: String,
}

/// The persisted notifier state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Per journal name: sequence number of the next record to read.
    pub journals: BTreeMap<String, u64>,
    /// Per channel name: what waits for it.
    pub channels: BTreeMap<String, ChannelQueue>,
    /// Open de-duplication windows by key.
    pub dedup: BTreeMap<String, DedupEntry>,
}

/// Version written by this build.
pub const STATE_VERSION: u32 = 1;

impl State {
    /// Loads the state at `path`; a missing file is an empty state. A file that does not parse
    /// is an error: starting empty would resend or lose alerts silently.
    pub fn load(path: &Path) -> io::Result<State> {
        match fs::read(path) {
            Ok(bytes) => {
                let s: State = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("notify state {}: {e}", path.display()),
                    )
                })?;
                if s.version != STATE_VERSION {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "notify state {}: version {} (this build reads {STATE_VERSION})",
                            path.display(),
                            s.version
                        ),
                    ));
                }
                Ok(s)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State {
                version: STATE_VERSION,
                ..State::default()
            }),
            Err(e) => Err(e),
        }
    }

    /// Writes the state atomically and durably (temporary file, `fsync`, rename, `fsync` of
    /// the directory), as [`crate::cursor::Cursor::commit`] does for a cursor.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Alerts waiting on every channel.
    pub fn pending_alerts(&self) -> usize {
        self.channels
            .values()
            .map(ChannelQueue::pending_alerts)
            .sum()
    }
}

/// What [`Outbox::ingest`] did with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Routed to this many channels (0: no channel takes its severity).
    Routed(usize),
    /// A repeat folded into unsent copies of the first occurrence.
    Merged,
    /// A repeat counted for the end-of-window summary.
    Suppressed,
}

/// Windows of the outbox.
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// Warning batch window (ms); 0 = no batching.
    pub warning_batch_ms: u64,
    /// Info digest window (ms); 0 = no digest.
    pub info_digest_ms: u64,
    /// De-duplication window (ns); 0 = off.
    pub dedup_ns: u64,
}

/// The routing, batching and de-duplication logic over a [`State`].
pub struct Outbox {
    /// The persisted state.
    pub state: State,
    routing: Routing,
    windows: Windows,
}

impl Outbox {
    /// An outbox over `state`.
    pub fn new(state: State, routing: Routing, windows: Windows) -> Outbox {
        Outbox {
            state,
            routing,
            windows,
        }
    }

    /// Takes one alert (from a journal record) at wall-clock `now_ms`.
    pub fn ingest(&mut self, mut alert: Alert, now_ms: u64) -> Ingested {
        if alert.ts_ns == 0 {
            alert.ts_ns = now_ms.saturating_mul(1_000_000);
        }
        if self.windows.dedup_ns > 0 {
            if let Some(e) = self.state.dedup.get_mut(&alert.key) {
                if alert.ts_ns.saturating_sub(e.first_ts_ns) < self.windows.dedup_ns {
                    e.last_seq = alert.seq;
                    e.last_ts_ns = alert.ts_ns;
                    let (journal, first) = (e.journal.clone(), e.first_seq);
                    if fold_repeat(&mut self.state.channels, &journal, first) {
                        return Ingested::Merged;
                    }
                    if let Some(e) = self.state.dedup.get_mut(&alert.key) {
                        e.suppressed += 1;
                    }
                    return Ingested::Suppressed;
                }
                // The window is over: report what it suppressed, then start a new one.
                if let Some(old) = self.state.dedup.remove(&alert.key) {
                    self.route_summary(&alert.key, old, now_ms);
                }
            }
            self.state.dedup.insert(
                alert.key.clone(),
                DedupEntry {
                    journal: alert.journal.clone(),
                    first_seq: alert.seq,
                    first_ts_ns: alert.ts_ns,
                    last_seq: alert.seq,
                    last_ts_ns: alert.ts_ns,
                    suppressed: 0,
                    kind: alert.kind.clone(),
                    title: alert.title.clone(),
                },
            );
        }
        Ingested::Routed(self.route(alert, now_ms))
    }

    /// Closes the de-duplication windows that ended before `now_ns` (the later of the wall
    /// clock and the newest record time seen), routing one `repeated` warning per window that
    /// suppressed repeats. Returns how many summaries were routed.
    pub fn expire_dedup(&mut self, now_ns: u64, now_ms: u64) -> usize {
        if self.windows.dedup_ns == 0 {
            return 0;
        }
        let ended: Vec<String> = self
            .state
            .dedup
            .iter()
            .filter(|(_, e)| now_ns.saturating_sub(e.first_ts_ns) >= self.windows.dedup_ns)
            .map(|(k, _)| k.clone())
            .collect();
        let mut n = 0;
        for k in ended {
            if let Some(e) = self.state.dedup.remove(&k) {
                if e.suppressed > 0 {
                    n += 1;
                }
                self.route_summary(&k, e, now_ms);
            }
        }
        n
    }

    fn route_summary(&mut self, key: &str, e: DedupEntry, now_ms: u64) {
        if e.suppressed == 0 {
            return;
        }
        let secs = self.windows.dedup_ns / 1_000_000_000;
        let alert = Alert {
            journal: e.journal,
            seq: e.last_seq,
            ts_ns: e.last_ts_ns,
            severity: Severity::Warning,
            kind: "repeated".into(),
            key: format!("repeated:{key}"),
            title: format!(
                "{}: repeated {} more times within {secs}s",
                e.title, e.suppressed
            ),
            fields: vec![
                ("kind".into(), e.kind),
                ("first_seq".into(), e.first_seq.to_string()),
                ("repeats".into(), e.suppressed.to_string()),
            ],
            count: e.suppressed,
        };
        self.route(alert, now_ms);
    }

    /// Puts `alert` on every channel routed for its severity; returns how many.
    fn route(&mut self, alert: Alert, now_ms: u64) -> usize {
        let window = match alert.severity {
            Severity::Critical => 0,
            Severity::Warning => self.windows.warning_batch_ms,
            Severity::Info => self.windows.info_digest_ms,
        };
        let targets = self.routing.targets(alert.severity).to_vec();
        for t in &targets {
            let cq = self.state.channels.entry(t.clone()).or_default();
            if window == 0 {
                cq.queue
                    .push_back(Message::new(Grouping::Single, vec![alert.clone()], now_ms));
                continue;
            }
            let slot = if alert.severity == Severity::Warning {
                &mut cq.warnings
            } else {
                &mut cq.digest
            };
            slot.get_or_insert_with(|| Batch {
                opened_unix_ms: now_ms,
                alerts: Vec::new(),
            })
            .alerts
            .push(alert.clone());
        }
        targets.len()
    }

    /// Moves every batch whose window has passed at `now_ms` (or every batch, with `force`)
    /// into its channel's queue as one message. Returns how many messages were formed.
    pub fn flush_due(&mut self, now_ms: u64, force: bool) -> usize {
        let w = self.windows;
        let mut n = 0;
        for cq in self.state.channels.values_mut() {
            for (slot, window, grouping) in [
                (&mut cq.warnings, w.warning_batch_ms, Grouping::Batch),
                (&mut cq.digest, w.info_digest_ms, Grouping::Digest),
            ] {
                let due = slot
                    .as_ref()
                    .is_some_and(|b| force || now_ms >= b.opened_unix_ms.saturating_add(window));
                if due {
                    if let Some(b) = slot.take().filter(|b| !b.alerts.is_empty()) {
                        cq.queue.push_back(Message::new(grouping, b.alerts, now_ms));
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Moves every queued message of `from` to the back of `to`'s queue, recording the hop;
    /// messages that already came through `to` stay (no escalation loops). Returns how many
    /// moved.
    pub fn escalate(&mut self, from: &str, to: &str) -> usize {
        let Some(src) = self.state.channels.get_mut(from) else {
            return 0;
        };
        let (moving, staying): (Vec<Message>, Vec<Message>) = src
            .queue
            .drain(..)
            .partition(|m| !m.escalated_from.iter().any(|c| c == to));
        src.queue.extend(staying);
        let n = moving.len();
        let dst = self.state.channels.entry(to.to_string()).or_default();
        for mut m in moving {
            m.escalated_from.push(from.to_string());
            dst.queue.push_back(m);
        }
        n
    }
}

/// Adds one to the count of every unsent copy of the alert `journal#seq`; true if any.
fn fold_repeat(channels: &mut BTreeMap<String, ChannelQueue>, journal: &str, seq: u64) -> bool {
    let mut found = false;
    let mut bump = |alerts: &mut Vec<Alert>| {
        for a in alerts.iter_mut() {
            if a.seq == seq && a.journal == journal {
                a.count = a.count.saturating_add(1);
                found = true;
            }
        }
    };
    for cq in channels.values_mut() {
        for m in cq.queue.iter_mut() {
            bump(&mut m.alerts);
        }
        if let Some(b) = cq.warnings.as_mut() {
            bump(&mut b.alerts);
        }
        if let Some(b) = cq.digest.as_mut() {
            bump(&mut b.alerts);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(seq: u64, sev: Severity, key: &str, ts_s: u64) -> Alert {
        Alert {
            journal: "j".into(),
            seq,
            ts_ns: ts_s * 1_000_000_000,
            severity: sev,
            kind: "k".into(),
            key: key.into(),
            title: format!("t{seq}"),
            fields: vec![],
            count: 1,
        }
    }

    fn outbox() -> Outbox {
        let routing = Routing {
            critical: vec!["a".into()],
            warning: vec!["a".into(), "b".into()],
            info: vec!["b".into()],
        };
        Outbox::new(
            State::default(),
            routing,
            Windows {
                warning_batch_ms: 1000,
                info_digest_ms: 5000,
                dedup_ns: 60_000_000_000,
            },
        )
    }

    #[test]
    fn routing_batching_and_dedup() {
        let mut o = outbox();
        assert_eq!(
            o.ingest(alert(1, Severity::Critical, "x", 100), 0),
            Ingested::Routed(1)
        );
        assert_eq!(
            o.ingest(alert(2, Severity::Warning, "w", 100), 0),
            Ingested::Routed(2)
        );
        // Repeat of an unsent warning: folded into both copies.
        assert_eq!(
            o.ingest(alert(3, Severity::Warning, "w", 110), 0),
            Ingested::Merged
        );
        assert_eq!(
            o.ingest(alert(4, Severity::Info, "i", 100), 0),
            Ingested::Routed(1)
        );
        assert_eq!(o.state.channels["a"].queue.len(), 1);
        assert_eq!(o.flush_due(999, false), 0);
        assert_eq!(o.flush_due(1000, false), 2);
        let b = &o.state.channels["b"];
        assert_eq!(b.queue[0].alerts[0].count, 2);
        assert!(b.digest.is_some());
        // The critical went out: a repeat within the window is suppressed, then summarised.
        o.state.channels.get_mut("a").unwrap().queue.clear();
        assert_eq!(
            o.ingest(alert(5, Severity::Critical, "x", 120), 0),
            Ingested::Suppressed
        );
        assert_eq!(o.expire_dedup(150 * 1_000_000_000, 0), 0);
        assert_eq!(o.expire_dedup(161 * 1_000_000_000, 0), 1);
        let w = o.state.channels["a"].warnings.as_ref().unwrap();
        assert_eq!(w.alerts[0].kind, "repeated");
        assert_eq!(w.alerts[0].count, 1);
        // After the window a repeat is a new alert.
        assert_eq!(
            o.ingest(alert(6, Severity::Critical, "x", 200), 0),
            Ingested::Routed(1)
        );
    }

    #[test]
    fn escalation_moves_and_does_not_loop() {
        let mut o = outbox();
        o.ingest(alert(1, Severity::Critical, "x", 1), 0);
        assert_eq!(o.escalate("a", "b"), 1);
        assert_eq!(
            o.state.channels["b"].queue[0].escalated_from,
            vec!["a".to_string()]
        );
        // Never back to a channel it came from.
        assert_eq!(o.escalate("b", "a"), 0);
        assert_eq!(o.state.channels["b"].queue.len(), 1);
    }

    #[test]
    fn state_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s/notify.state.json");
        let mut o = outbox();
        o.ingest(alert(1, Severity::Warning, "w", 1), 0);
        o.state.version = STATE_VERSION;
        o.state.journals.insert("j".into(), 9);
        o.state.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), o.state);
        fs::write(&p, "{").unwrap();
        assert!(State::load(&p).is_err());
    }
}
