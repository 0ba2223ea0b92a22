//! Reconnect policy: jittered exponential backoff and a liveness tracker.
//!
//! Pure logic over caller-provided timestamps (nanoseconds on any monotonic clock), so the feed
//! and gateway stages drive it from their own clock and tests drive it deterministically. No
//! sleeping, no syscalls, no allocation.
//!
//! * [`Backoff`]: "full jitter" exponential backoff: the n-th delay is uniform in
//!   `[0, min(cap, base * 2^n)]`, which spreads reconnect storms of many clients best.
//! * [`Liveness`]: a connection that is nominally up but has received nothing for longer than a
//!   threshold is treated as down (venues ping every few minutes and stream data constantly, so
//!   silence means a dead path, not a quiet market), and a connection older than a maximum age is
//!   recycled proactively (Binance cuts every connection at 24 hours).
//! * [`Reconnector`]: both combined into the state machine a stage polls.

use std::time::Duration;

/// SplitMix64: a tiny deterministic generator for jitter (not for anything secret).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound]`.
    fn upto(&mut self, bound: u64) -> u64 {
        if bound == u64::MAX {
            return self.next();
        }
        // Multiply-shift reduction; bias is below 2^-64 * bound, irrelevant for delays.
        ((self.next() as u128 * (bound as u128 + 1)) >> 64) as u64
    }
}

/// Full-jitter exponential backoff.
#[derive(Clone, Debug)]
pub struct Backoff {
    base_ns: u64,
    cap_ns: u64,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// Backoff between `base` and `cap`, jitter seeded with `seed` (deterministic).
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        let base_ns = base.as_nanos().min(u64::MAX as u128) as u64;
        let cap_ns = (cap.as_nanos().min(u64::MAX as u128) as u64).max(base_ns);
        Backoff {
            base_ns,
            cap_ns,
            attempt: 0,
            rng: SplitMix64(seed),
        }
    }

    /// As [`Backoff::new`], seeded from the operating system.
    pub fn from_entropy(base: Duration, cap: Duration) -> Self {
        Self::new(base, cap, rand::random())
    }

    /// Failed attempts since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the next delay: `min(cap, base * 2^attempt)`.
    pub fn ceiling_ns(&self) -> u64 {
        let exp = self
            .base_ns
            .checked_shl(self.attempt.min(63))
            .filter(|v| v >> self.attempt.min(63) == self.base_ns)
            .unwrap_or(u64::MAX);
        exp.min(self.cap_ns)
    }

    /// The delay before the next attempt (nanoseconds), and count the attempt.
    pub fn next_delay_ns(&mut self) -> u64 {
        let d = self.rng.upto(self.ceiling_ns());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// As [`Backoff::next_delay_ns`], as a `Duration`.
    pub fn next_delay(&mut self) -> Duration {
        Duration::from_nanos(self.next_delay_ns())
    }

    /// Back to the first attempt (after a connection proved stable).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Health of a connection as judged by [`Liveness::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Not connected.
    Down,
    /// Connected and heard from recently.
    Up,
    /// Connected but silent for `silent_ns` (over the threshold): treat as down.
    Silent {
        /// Time since the last received byte.
        silent_ns: u64,
    },
    /// Connected for `age_ns` (over the maximum age): reconnect proactively.
    TooOld {
        /// Connection age.
        age_ns: u64,
    },
}

impl Health {
    /// Whether the connection should be torn down and re-established.
    pub fn needs_reconnect(self) -> bool {
        !matches!(self, Health::Up)
    }
}

/// Tracks when a connection came up and when it last received anything.
#[derive(Clone, Debug)]
pub struct Liveness {
    silence_ns: u64,
    max_age_ns: Option<u64>,
    connected_at: Option<u64>,
    last_rx: u64,
}

impl Liveness {
    /// Silence threshold and optional maximum connection age.
    pub fn new(silence: Duration, max_age: Option<Duration>) -> Self {
        Liveness {
            silence_ns: silence.as_nanos().min(u64::MAX as u128) as u64,
            max_age_ns: max_age.map(|d| d.as_nanos().min(u64::MAX as u128) as u64),
            connected_at: None,
            last_rx: 0,
        }
    }

    /// The connection is established at `now_ns`.
    pub fn on_connected(&mut self, now_ns: u64) {
        self.connected_at = Some(now_ns);
        self.last_rx = now_ns;
    }

    /// Something (data, ping, pong) was received at `now_ns`.
    #[inline]
    pub fn on_receive(&mut self, now_ns: u64) {
        if now_ns > self.last_rx {
            self.last_rx = now_ns;
        }
    }

    /// The connection went down.
    pub fn on_disconnected(&mut self) {
        self.connected_at = None;
    }

    /// When the connection came up, if it is up.
    pub fn connected_at(&self) -> Option<u64> {
        self.connected_at
    }

    /// Judge the connection at `now_ns`. Age is checked before silence.
    pub fn check(&self, now_ns: u64) -> Health {
        let Some(since) = self.connected_at else {
            return Health::Down;
        };
        let age_ns = now_ns.saturating_sub(since);
        if let Some(max) = self.max_age_ns {
            if age_ns >= max {
                return Health::TooOld { age_ns };
            }
        }
        let silent_ns = now_ns.saturating_sub(self.last_rx);
        if silent_ns > self.silence_ns {
            return Health::Silent { silent_ns };
        }
        Health::Up
    }

    /// The earliest time at which [`Liveness::check`] can change from `Up` (for timers).
    pub fn next_deadline(&self) -> Option<u64> {
        let since = self.connected_at?;
        let silence = self
            .last_rx
            .saturating_add(self.silence_ns)
            .saturating_add(1);
        Some(match self.max_age_ns {
            Some(max) => silence.min(since.saturating_add(max)),
            None => silence,
        })
    }
}

/// What a stage should do now, according to [`Reconnector::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: connected and healthy, or waiting for the next attempt.
    Wait,
    /// Start a connection attempt now (then report with `on_connected` / `on_failed`).
    Connect,
    /// The current connection is unhealthy: close it (then report `on_disconnected`).
    Disconnect(Health),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle { retry_at: u64 },
    Connecting,
    Up,
}

/// Backoff + liveness: the reconnect state machine of one connection.
///
/// The backoff resets only after a connection has stayed up for `stable_after`, so a connection
/// that flaps (connects, dies at once) keeps backing off instead of hammering the venue.
#[derive(Clone, Debug)]
pub struct Reconnector {
    backoff: Backoff,
    liveness: Liveness,
    stable_ns: u64,
    phase: Phase,
}

impl Reconnector {
    /// A reconnector that will connect at the first `poll`.
    pub fn new(backoff: Backoff, liveness: Liveness, stable_after: Duration) -> Self {
        Reconnector {
            backoff,
            liveness,
            stable_ns: stable_after.as_nanos().min(u64::MAX as u128) as u64,
            phase: Phase::Idle { retry_at: 0 },
        }
    }

    /// The liveness tracker (feed it with `on_receive`).
    pub fn liveness_mut(&mut self) -> &mut Liveness {
        &mut self.liveness
    }

    /// Record a received message at `now_ns`.
    #[inline]
    pub fn on_receive(&mut self, now_ns: u64) {
        self.liveness.on_receive(now_ns);
    }

    /// Failed attempts since the backoff was last reset.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempt()
    }

    /// Decide what to do at `now_ns`.
    pub fn poll(&mut self, now_ns: u64) -> Action {
        match self.phase {
            Phase::Idle { retry_at } if now_ns >= retry_at => {
                self.phase = Phase::Connecting;
                Action::Connect
            }
            Phase::Idle { .. } | Phase::Connecting => Action::Wait,
            Phase::Up => {
                if let Some(since) = self.liveness.connected_at() {
                    if self.backoff.attempt() > 0 && now_ns.saturating_sub(since) >= self.stable_ns
                    {
                        self.backoff.reset();
                    }
                }
                match self.liveness.check(now_ns) {
                    Health::Up => Action::Wait,
                    h => Action::Disconnect(h),
                }
            }
        }
    }

    /// The attempt succeeded at `now_ns`.
    pub fn on_connected(&mut self, now_ns: u64) {
        self.liveness.on_connected(now_ns);
        self.phase = Phase::Up;
    }

    /// The attempt failed at `now_ns`; returns when the next one is due.
    pub fn on_failed(&mut self, now_ns: u64) -> u64 {
        self.schedule(now_ns)
    }

    /// The connection went down (or was closed for health) at `now_ns`; returns when the next
    /// attempt is due.
    pub fn on_disconnected(&mut self, now_ns: u64) -> u64 {
        self.liveness.on_disconnected();
        self.schedule(now_ns)
    }

    fn schedule(&mut self, now_ns: u64) -> u64 {
        let retry_at = now_ns.saturating_add(self.backoff.next_delay_ns());
        self.phase = Phase::Idle { retry_at };
        retry_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn backoff_is_bounded_by_exponential_ceiling_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let c = b.ceiling_ns();
            let d = b.next_delay_ns();
            assert!(d <= c, "delay {d} above ceiling {c}");
            ceilings.push(c / MS);
        }
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000, 5000, 5000]
        );
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.ceiling_ns(), 100 * MS);
    }

    #[test]
    fn backoff_is_deterministic_per_seed_and_jittered() {
        let seq = |seed| {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30), seed);
            (0..20).map(|_| b.next_delay_ns()).collect::<Vec<_>>()
        };
        assert_eq!(seq(7), seq(7));
        assert_ne!(seq(7), seq(8));
        // Full jitter: over many draws at the cap the mean is about cap/2 and values spread.
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let draws: Vec<u64> = (0..10_000).map(|_| b.next_delay_ns()).collect();
        let mean = draws.iter().sum::<u64>() as f64 / draws.len() as f64;
        assert!((mean / 1e9 - 0.5).abs() < 0.02, "mean {mean}");
        assert!(draws.iter().any(|&d| d < 100 * MS));
        assert!(draws.iter().any(|&d| d > 900 * MS));
    }

    #[test]
    fn backoff_survives_huge_attempt_counts() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 3);
        for _ in 0..1000 {
            assert!(b.next_delay_ns() <= 60_000 * MS);
        }
    }

    #[test]
    fn liveness_silence_and_age() {
        let mut l = Liveness::new(Duration::from_secs(10), Some(Duration::from_secs(86_000)));
        assert_eq!(l.check(0), Health::Down);
        l.on_connected(1_000 * MS);
        assert_eq!(l.check(1_000 * MS), Health::Up);
        assert_eq!(l.check(11_000 * MS), Health::Up);
        assert_eq!(
            l.check(11_001 * MS),
            Health::Silent {
                silent_ns: 10_001 * MS
            }
        );
        l.on_receive(11_000 * MS);
        assert_eq!(l.check(11_001 * MS), Health::Up);
        assert_eq!(l.next_deadline(), Some(21_000 * MS + 1));
        let old = 1_000 * MS + 86_000_000 * MS;
        l.on_receive(old - 1);
        assert_eq!(l.check(old - 1), Health::Up);
        assert_eq!(
            l.check(old),
            Health::TooOld {
                age_ns: 86_000_000 * MS
            }
        );
        l.on_disconnected();
        assert_eq!(l.check(old), Health::Down);
    }

    #[test]
    fn reconnector_cycle() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10), 9);
        let l = Liveness::new(Duration::from_secs(5), None);
        let mut r = Reconnector::new(b, l, Duration::from_secs(30));
        assert_eq!(r.poll(0), Action::Connect);
        assert_eq!(r.poll(1), Action::Wait);
        let retry = r.on_failed(10 * MS);
        assert!(retry <= 110 * MS);
        assert_eq!(r.poll(retry.saturating_sub(1).max(10 * MS)), {
            if retry > 10 * MS {
                Action::Wait
            } else {
                Action::Connect
            }
        });
        // Catch up to the retry time.
        let mut t = retry;
        if r.poll(t) != Action::Connect {
            t += 1;
        }
        r.on_connected(t);
        assert_eq!(r.attempts(), 1);
        r.on_receive(t + 4_000 * MS);
        assert_eq!(r.poll(t + 8_000 * MS), Action::Wait);
        // Silent for more than 5 s: disconnect.
        match r.poll(t + 9_001 * MS) {
            Action::Disconnect(Health::Silent { .. }) => {}
            a => panic!("expected disconnect, got {a:?}"),
        }
        let retry = r.on_disconnected(t + 9_001 * MS);
        assert!(
            retry - (t + 9_001 * MS) <= 200 * MS,
            "second attempt ceiling 200 ms"
        );
        assert_eq!(r.poll(retry), Action::Connect);
        r.on_connected(retry);
        // Stable for 30 s (with traffic): backoff resets.
        for s in 1..=31u64 {
            r.on_receive(retry + s * 1_000 * MS);
            assert_eq!(r.poll(retry + s * 1_000 * MS), Action::Wait);
        }
        assert_eq!(r.attempts(), 0);
    }
}
