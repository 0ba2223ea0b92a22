//! Client-side request-weight budget and the venue clock offset.
//!
//! **Weights.** Binance counts request weight per IP in one-minute windows and answers 429
//! (then 418, a ban) past the limit. The gateway keeps its own count so that it never gets
//! there: each request's weight is added when it is sent, the venue's own count
//! (`X-MBX-USED-WEIGHT-1M`) replaces the local one whenever a response carries it (other
//! processes on the same IP count too), and the count resets when the venue-clock minute
//! changes. New orders may use the limit minus a reserve; cancels may use all of it, so the
//! gateway can always pull its orders. A 429/418 stops every request until its `Retry-After`.
//!
//! **Clock.** Signed requests carry `timestamp` in the venue's clock: local wall time plus an
//! offset measured with `GET /api/v3/time` (the server time is taken to be at the midpoint of
//! the round trip) and refined from each order response's `transactTime`, which must lie
//! between send and receive in venue time. A `transactTime` that would move a synced offset by
//! more than [`MAX_REFINE_STEP_MS`] is not taken as the server clock: a venue simulator
//! replaying an old tape stamps its executions with the tape's clock while it authenticates on
//! the wall clock, and a real drift that large shows up as `-1021` and a new time request.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the epoch.
#[inline]
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why the budget refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough weight left in this window.
    Budget,
    /// The venue said to back off (429/418) and `Retry-After` has not passed.
    Backoff,
}

/// The request-weight budget (see the module docs).
#[derive(Debug, Clone)]
pub struct WeightBudget {
    limit: u32,
    reserve: u32,
    window_ms: u64,
    used: u32,
    window: u64,
    backoff_until: Option<Instant>,
}

impl WeightBudget {
    /// `limit` per window of `window_ms`, of which `reserve` only cancels may use.
    pub fn new(limit: u32, reserve: u32, window_ms: u64) -> Self {
        WeightBudget {
            limit,
            reserve: reserve.min(limit),
            window_ms: window_ms.max(1),
            used: 0,
            window: 0,
            backoff_until: None,
        }
    }

    fn roll(&mut self, venue_ms: u64) {
        let w = venue_ms / self.window_ms;
        if w != self.window {
            self.window = w;
            self.used = 0;
        }
    }

    /// Takes `weight` for a request at venue time `venue_ms` if allowed.
    pub fn take(
        &mut self,
        weight: u32,
        cancel: bool,
        now: Instant,
        venue_ms: u64,
    ) -> Result<(), Refusal> {
        if self.in_backoff(now) {
            return Err(Refusal::Backoff);
        }
        self.roll(venue_ms);
        let cap = if cancel {
            self.limit
        } else {
            self.limit - self.reserve
        };
        if self.used.saturating_add(weight) > cap {
            return Err(Refusal::Budget);
        }
        self.used += weight;
        Ok(())
    }

    /// True while a 429/418 back-off lasts.
    #[inline]
    pub fn in_backoff(&mut self, now: Instant) -> bool {
        match self.backoff_until {
            Some(t) if now < t => true,
            Some(_) => {
                self.backoff_until = None;
                false
            }
            None => false,
        }
    }

    /// The venue's count from `X-MBX-USED-WEIGHT-1M`. It can only raise ours: with several
    /// requests in flight on the pool, a response's header counts the requests the venue had
    /// seen when it answered, not the ones already charged here and still on the wire, so
    /// taking it as the truth would hand their weight out twice. A higher count (another
    /// client on the same IP) is taken as it is.
    pub fn observe_used(&mut self, used: u32, venue_ms: u64) {
        self.roll(venue_ms);
        self.used = self.used.max(used);
    }

    /// A 429/418: nothing is sent for `retry_after` (at least one second if the venue gave
    /// none).
    pub fn back_off(&mut self, retry_after: Option<Duration>, now: Instant) {
        let d = retry_after.unwrap_or(Duration::from_secs(1));
        let until = now + d;
        self.backoff_until = Some(self.backoff_until.map_or(until, |t| t.max(until)));
    }

    /// Weight used in the current window, as far as the gateway knows.
    pub fn used(&self) -> u32 {
        self.used
    }
}

/// Largest correction (ms) one `transactTime` may make to a synced clock offset.
pub const MAX_REFINE_STEP_MS: i64 = 1_000;

/// Offset of the venue's clock to the local wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct VenueClock {
    offset_ms: i64,
    synced: bool,
}

impl VenueClock {
    /// The venue's time now, in ms.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.at(wall_ms())
    }

    /// The venue's time at local wall time `wall`.
    #[inline]
    pub fn at(&self, wall: u64) -> u64 {
        (wall as i64 + self.offset_ms).max(0) as u64
    }

    /// The current offset (venue minus local), ms.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// Whether a time request has set the offset.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// A `serverTime` answered to a request sent at local `sent` and received at `recv`.
    pub fn on_server_time(&mut self, sent: u64, recv: u64, server: u64) {
        let mid = (sent as i64 + recv as i64) / 2;
        self.offset_ms = server as i64 - mid;
        self.synced = true;
    }

    /// A venue timestamp `venue` of an event between local `sent` and `recv`: the offset must
    /// lie in `[venue - recv, venue - sent]`; it is moved into that interval if outside, unless
    /// that would move a synced offset by more than [`MAX_REFINE_STEP_MS`] (see the module
    /// docs).
    pub fn refine(&mut self, sent: u64, recv: u64, venue: u64) {
        if venue == 0 || recv < sent {
            return;
        }
        let lo = venue as i64 - recv as i64;
        let hi = venue as i64 - sent as i64;
        let next = self.offset_ms.clamp(lo, hi);
        if self.synced && (next - self.offset_ms).abs() > MAX_REFINE_STEP_MS {
            return;
        }
        self.offset_ms = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_reserves_for_cancels_follows_the_venue_and_backs_off() {
        let now = Instant::now();
        let mut b = WeightBudget::new(10, 3, 60_000);
        for _ in 0..7 {
            b.take(1, false, now, 1_000).unwrap();
        }
        assert_eq!(b.take(1, false, now, 1_000), Err(Refusal::Budget));
        for _ in 0..3 {
            b.take(1, true, now, 1_000).unwrap();
        }
        assert_eq!(b.take(1, true, now, 1_000), Err(Refusal::Budget));
        // A new minute resets the count.
        b.take(1, false, now, 60_000).unwrap();
        assert_eq!(b.used(), 1);
        // A higher venue count wins; a lower one (requests still in flight) does not hand
        // their weight out again.
        b.observe_used(9, 60_001);
        assert_eq!(b.used(), 9);
        assert_eq!(b.take(1, false, now, 60_002), Err(Refusal::Budget));
        b.observe_used(2, 60_002);
        assert_eq!(b.used(), 9);
        b.back_off(Some(Duration::from_secs(2)), now);
        assert_eq!(b.take(1, true, now, 60_003), Err(Refusal::Backoff));
        let later = now + Duration::from_secs(3);
        assert!(!b.in_backoff(later));
        b.take(1, true, later, 120_000).unwrap();
    }

    #[test]
    fn clock_midpoint_and_refinement() {
        let mut c = VenueClock::default();
        c.on_server_time(1_000, 1_010, 6_005);
        assert_eq!(c.offset_ms(), 5_000);
        assert_eq!(c.at(2_000), 7_000);
        // transactTime 8_020 for a request sent at 3_000 and answered at 3_010: offset within
        // [5_010, 5_020].
        c.refine(3_000, 3_010, 8_020);
        assert_eq!(c.offset_ms(), 5_010);
        c.refine(3_000, 3_010, 0);
        assert_eq!(c.offset_ms(), 5_010);
        // A transactTime on another clock (a replayed tape's, days behind) leaves it alone.
        let wall = 1_800_000_000_000;
        c.refine(wall, wall + 10, wall + 5_010 - 3 * 86_400_000);
        assert_eq!(c.offset_ms(), 5_010);
        c.refine(
            wall,
            wall + 10,
            wall + 5_010 + MAX_REFINE_STEP_MS as u64 + 20,
        );
        assert_eq!(c.offset_ms(), 5_010);
        // Before any time request, a transactTime is the best there is.
        let mut fresh = VenueClock::default();
        fresh.refine(3_000, 3_010, 8_020);
        assert_eq!(fresh.offset_ms(), 5_010);
    }
}
