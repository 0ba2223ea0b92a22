//! Trading sessions of session-based instruments (forex): the weekly close (seed 004, section
//! "Session-Based Position Management (Forex Only)").
//!
//! The seed's rule: no forex position over the weekend (swap fees, weekend gaps); every forex
//! position is force-closed 30 minutes before the session end, **Friday 23:30 GMT**, with a
//! market order, and crypto (24/7, no session) is never touched by it. Here that is a blocked
//! window per week, in event time (UTC): from `close_lead_min` before the weekly close
//! (`week_close_min`, Friday 24:00 UTC by default, so the window opens Friday 23:30) until the
//! weekly open (`week_open_min`, Sunday 22:00 UTC by default, when forex trading resumes).
//! Inside it the engine closes every open position of a session-based instrument
//! ([`ReasonCode::EXIT_SESSION_CLOSE`](crate::event::ReasonCode::EXIT_SESSION_CLOSE)) and refuses
//! their entries
//! ([`ReasonCode::RISK_REJECT_SESSION`](crate::event::ReasonCode::RISK_REJECT_SESSION)). Which
//! instruments are session-based is theirs to say
//! ([`InstrumentSpec::is_session_based`](crate::instrument::InstrumentSpec::is_session_based)).
//!
//! Times are minutes after Monday 00:00 UTC, so a window is the same every week and needs no
//! calendar: 1970-01-05, the first Monday of the epoch, anchors the weeks.

/// Minutes in a week.
pub const WEEK_MIN: u32 = 7 * 24 * 60;

const MIN_NS: u64 = 60_000_000_000;
const WEEK_NS: u64 = WEEK_MIN as u64 * MIN_NS;
/// 1970-01-05 00:00 UTC (a Monday), ns.
const FIRST_MONDAY_NS: u64 = 4 * 24 * 60 * MIN_NS;

/// The weekly session of session-based instruments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Close positions and refuse entries of session-based instruments in the window.
    pub enabled: bool,
    /// Weekly session end, minutes after Monday 00:00 UTC (Friday 24:00 = 7,200).
    pub week_close_min: u32,
    /// Weekly session start, minutes after Monday 00:00 UTC (Sunday 22:00 = 9,960).
    pub week_open_min: u32,
    /// Minutes before the session end at which positions are force-closed and entries stop
    /// (30: Friday 23:30 UTC).
    pub close_lead_min: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: true,
            week_close_min: 5 * 24 * 60,
            week_open_min: 6 * 24 * 60 + 22 * 60,
            close_lead_min: 30,
        }
    }
}

impl SessionConfig {
    /// The blocked window `[start, end)` (ns since the epoch) that contains `now_ns`, or the
    /// next one if `now_ns` is outside every window.
    pub fn window_at(&self, now_ns: u64) -> (u64, u64) {
        let close = u64::from(self.week_close_min % WEEK_MIN);
        let lead = u64::from(self.close_lead_min.min(WEEK_MIN - 1));
        // The window starts `lead` before the close, wrapping into the previous week.
        let start = (close + u64::from(WEEK_MIN) - lead) % u64::from(WEEK_MIN);
        let open = u64::from(self.week_open_min % WEEK_MIN);
        // Its length: from the start to the first open after the close.
        let len = (open + u64::from(WEEK_MIN) - start) % u64::from(WEEK_MIN);
        let len = if len <= lead {
            len + u64::from(WEEK_MIN)
        } else {
            len
        };
        let len = len.min(u64::from(WEEK_MIN) - 1);
        let week = now_ns.saturating_sub(FIRST_MONDAY_NS) / WEEK_NS;
        // The window of the previous week may still be running; the first window that has not
        // ended is the current or the next one.
        for w in [week.saturating_sub(1), week, week + 1] {
            let s = FIRST_MONDAY_NS + w * WEEK_NS + start * MIN_NS;
            let e = s + len * MIN_NS;
            if now_ns < e {
                return (s, e);
            }
        }
        let s = FIRST_MONDAY_NS + (week + 2) * WEEK_NS + start * MIN_NS;
        (s, s + len * MIN_NS)
    }

    /// Whether `now_ns` lies in a blocked window.
    pub fn closed_at(&self, now_ns: u64) -> bool {
        self.enabled && {
            let (s, e) = self.window_at(now_ns);
            s <= now_ns && now_ns < e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ns of a UTC date and time.
    fn utc(y: i64, m: i64, d: i64, hh: u64, mm: u64, ss: u64) -> u64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
        (days as u64 * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000_000_000
    }

    #[test]
    fn the_window_runs_from_friday_2330_to_sunday_2200_utc() {
        let c = SessionConfig::default();
        // 2014-05-09 was a Friday (the last day of the FXCM EUR/USD week in the data set).
        let fri_2330 = utc(2014, 5, 9, 23, 30, 0);
        let sun_2200 = utc(2014, 5, 11, 22, 0, 0);
        assert_eq!(c.window_at(utc(2014, 5, 5, 0, 0, 0)), (fri_2330, sun_2200));
        assert_eq!(c.window_at(fri_2330 - 1), (fri_2330, sun_2200));
        assert!(
            !c.closed_at(fri_2330 - 1),
            "23:29:59.999999999 still trades"
        );
        assert!(c.closed_at(fri_2330));
        assert!(c.closed_at(utc(2014, 5, 10, 12, 0, 0)), "Saturday");
        assert!(c.closed_at(sun_2200 - 1));
        assert!(!c.closed_at(sun_2200), "Sunday 22:00 opens the new week");
        assert_eq!(
            c.window_at(sun_2200),
            (utc(2014, 5, 16, 23, 30, 0), utc(2014, 5, 18, 22, 0, 0))
        );
        // The capture day of the crypto data (a Thursday) is outside it.
        assert!(!c.closed_at(utc(2024, 8, 8, 23, 55, 0)));
        assert!(!SessionConfig {
            enabled: false,
            ..c
        }
        .closed_at(fri_2330));
    }

    #[test]
    fn a_window_across_monday_midnight_is_found_from_either_side() {
        // Close Sunday 23:50, lead 20 minutes, open Monday 00:15.
        let c = SessionConfig {
            enabled: true,
            week_close_min: 6 * 1440 + 23 * 60 + 50,
            week_open_min: 15,
            close_lead_min: 20,
        };
        let start = utc(2014, 5, 11, 23, 30, 0);
        let end = utc(2014, 5, 12, 0, 15, 0);
        assert_eq!(c.window_at(start - 1), (start, end));
        assert_eq!(c.window_at(utc(2014, 5, 12, 0, 5, 0)), (start, end));
        assert!(c.closed_at(utc(2014, 5, 12, 0, 5, 0)));
        assert!(!c.closed_at(end));
    }
}
