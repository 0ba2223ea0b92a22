//! What a pinned thread does when a poll round found no work.
//!
//! A hot-path thread loops over its stages; when none of them had anything to do it calls
//! [`Waiter::idle`], and after any round that did work it calls [`Waiter::reset`]. The strategy
//! decides the trade between wake-up latency and the CPU the idle thread burns:
//!
//! - [`WaitStrategy::BusySpin`]: never gives the core away. The only choice for an isolated core
//!   where every nanosecond of wake-up counts; each idle round is one `spin_loop` hint (`pause` on
//!   x86), which lowers power draw and yields pipeline resources to a hyper-thread sibling without
//!   entering the kernel.
//! - [`WaitStrategy::SpinThenYield`]: spins for `spins` idle rounds, then calls
//!   `sched_yield` on every further idle round. On a shared core (a 2-core VM, a laptop) this
//!   lets the other runnable thread in instead of burning the rest of our time slice, at the cost
//!   of a syscall per idle round once the thread has been idle for a while.
//! - [`WaitStrategy::Park`]: spins for `spins` idle rounds, then parks the thread for up to
//!   `park_micros` per idle round (`std::thread::park_timeout`, so anyone holding the thread's
//!   [`std::thread::Thread`] handle can wake it early with `unpark`). For cold or rarely-fed
//!   threads; the wake-up latency is that of the OS scheduler.
//!
//! The spin phase exists because data usually arrives in bursts: right after a round that did
//! work, more work is likely within nanoseconds to microseconds, and a syscall there would cost
//! more than it saves. Only a thread that has been idle for `spins` consecutive rounds backs off.
//!
//! A [`Waiter`] is plain thread-local state (one counter), so `idle`/`reset` never allocate,
//! lock or touch shared memory.
//!
//! Under `--cfg loom` every idle round is a `loom::thread::yield_now`, so the loom models of the
//! queues can use the blocking helpers: loom needs spinning threads to yield to explore the
//! interleavings, and real spinning or parking would make a model run forever.

use std::fmt;
use std::str::FromStr;

/// Spins before backing off, used by [`WaitStrategy::parse`] when no count is given.
///
/// One `spin_loop` hint costs roughly 10 to 140 cycles depending on the CPU (`pause` got much
/// slower on Skylake and later), so 1 000 idle rounds is a few to a few tens of microseconds:
/// longer than a typical gap inside a burst of market data, far shorter than an OS time slice.
pub const DEFAULT_SPINS: u32 = 1_000;

/// Park duration per idle round, used by [`WaitStrategy::parse`] for `park` when none is given.
pub const DEFAULT_PARK_MICROS: u64 = 100;

/// How a thread waits when its inputs are empty. Parse it from configuration with
/// [`WaitStrategy::parse`] and turn it into per-thread state with [`WaitStrategy::waiter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin forever with a `spin_loop` hint per idle round. Lowest wake-up latency; burns the
    /// whole core. Use on isolated cores only.
    BusySpin,
    /// Spin for `spins` idle rounds, then `std::thread::yield_now` on every further idle round.
    SpinThenYield {
        /// Consecutive idle rounds spent spinning before the first yield.
        spins: u32,
    },
    /// Spin for `spins` idle rounds, then `std::thread::park_timeout(park_micros)` on every
    /// further idle round.
    Park {
        /// Consecutive idle rounds spent spinning before the first park.
        spins: u32,
        /// Upper bound of one park, in microseconds.
        park_micros: u64,
    },
}

impl Default for WaitStrategy {
    /// [`WaitStrategy::BusySpin`], the hot-path default.
    fn default() -> Self {
        WaitStrategy::BusySpin
    }
}

impl WaitStrategy {
    /// Per-thread waiting state for this strategy. Create one per thread, call
    /// [`Waiter::idle`] after each empty round and [`Waiter::reset`] after each productive one.
    #[inline]
    pub fn waiter(self) -> Waiter {
        Waiter {
            strategy: self,
            idle_rounds: 0,
        }
    }

    /// Parses a strategy from configuration text.
    ///
    /// Accepted forms (surrounding whitespace ignored):
    /// - `busy-spin`
    /// - `spin-then-yield` (spins = [`DEFAULT_SPINS`]) or `spin-then-yield:<spins>`
    /// - `park` (spins = [`DEFAULT_SPINS`], park_micros = [`DEFAULT_PARK_MICROS`]),
    ///   `park:<spins>` or `park:<spins>:<park_micros>`
    ///
    /// The [`fmt::Display`] output parses back to the same value.
    pub fn parse(s: &str) -> Result<WaitStrategy, String> {
        let s = s.trim();
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let num = |i: usize, what: &str| -> Result<Option<u64>, String> {
            match args.get(i) {
                None => Ok(None),
                Some(a) => a
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|e| format!("wait strategy '{s}': bad {what} '{a}': {e}")),
            }
        };
        let spins = |i: usize| -> Result<u32, String> {
            match num(i, "spin count")? {
                None => Ok(DEFAULT_SPINS),
                Some(v) => u32::try_from(v)
                    .map_err(|_| format!("wait strategy '{s}': spin count {v} exceeds u32")),
            }
        };
        let max_args = match name {
            "busy-spin" => 0,
            "spin-then-yield" => 1,
            "park" => 2,
            _ => {
                return Err(format!(
                    "unknown wait strategy '{s}' (expected busy-spin, spin-then-yield[:spins] \
                     or park[:spins[:park_micros]])"
                ))
            }
        };
        if args.len() > max_args {
            return Err(format!("wait strategy '{s}': too many ':' parameters"));
        }
        Ok(match name {
            "busy-spin" => WaitStrategy::BusySpin,
            "spin-then-yield" => WaitStrategy::SpinThenYield { spins: spins(0)? },
            _ => WaitStrategy::Park {
                spins: spins(0)?,
                park_micros: num(1, "park duration")?.unwrap_or(DEFAULT_PARK_MICROS),
            },
        })
    }
}

impl FromStr for WaitStrategy {
    type Err = String;
    /// Same as [`WaitStrategy::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WaitStrategy::parse(s)
    }
}

impl fmt::Display for WaitStrategy {
    /// The canonical configuration text, with every parameter spelled out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WaitStrategy::BusySpin => f.write_str("busy-spin"),
            WaitStrategy::SpinThenYield { spins } => write!(f, "spin-then-yield:{spins}"),
            WaitStrategy::Park { spins, park_micros } => write!(f, "park:{spins}:{park_micros}"),
        }
    }
}

/// Per-thread idle state of a [`WaitStrategy`]: how many consecutive rounds found no work.
///
/// Not shared and not `Sync`-sensitive: each pinned thread owns its own.
#[derive(Clone, Debug)]
pub struct Waiter {
    strategy: WaitStrategy,
    idle_rounds: u32,
}

impl Waiter {
    /// Called after a poll round that did no work. Spins, yields or parks according to the
    /// strategy and the number of consecutive idle rounds so far.
    #[inline]
    pub fn idle(&mut self) {
        let rounds = self.idle_rounds;
        // Saturating: a thread idle for 2^32 rounds simply stays in its back-off phase.
        self.idle_rounds = rounds.saturating_add(1);
        #[cfg(loom)]
        {
            let _ = rounds;
            loom::thread::yield_now();
        }
        #[cfg(not(loom))]
        match self.strategy {
            WaitStrategy::BusySpin => std::hint::spin_loop(),
            WaitStrategy::SpinThenYield { spins } => {
                if rounds < spins {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            WaitStrategy::Park { spins, park_micros } => {
                if rounds < spins {
                    std::hint::spin_loop();
                } else {
                    std::thread::park_timeout(std::time::Duration::from_micros(park_micros));
                }
            }
        }
    }

    /// Called after a poll round that did work: the next idle round starts spinning again.
    #[inline]
    pub fn reset(&mut self) {
        self.idle_rounds = 0;
    }

    /// Consecutive idle rounds since the last [`reset`](Self::reset) (saturating), for metrics.
    #[inline]
    pub fn idle_rounds(&self) -> u32 {
        self.idle_rounds
    }

    /// The strategy this waiter follows.
    #[inline]
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parse_names_and_defaults() {
        assert_eq!(WaitStrategy::parse("busy-spin"), Ok(WaitStrategy::BusySpin));
        assert_eq!(
            WaitStrategy::parse(" spin-then-yield "),
            Ok(WaitStrategy::SpinThenYield {
                spins: DEFAULT_SPINS
            })
        );
        assert_eq!(
            WaitStrategy::parse("park"),
            Ok(WaitStrategy::Park {
                spins: DEFAULT_SPINS,
                park_micros: DEFAULT_PARK_MICROS
            })
        );
        assert_eq!(
            WaitStrategy::parse("spin-then-yield:7"),
            Ok(WaitStrategy::SpinThenYield { spins: 7 })
        );
        assert_eq!(
            WaitStrategy::parse("park:3"),
            Ok(WaitStrategy::Park {
                spins: 3,
                park_micros: DEFAULT_PARK_MICROS
            })
        );
        assert_eq!(
            WaitStrategy::parse("park:3:9"),
            Ok(WaitStrategy::Park {
                spins: 3,
                park_micros: 9
            })
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "nap",
            "busy-spin:1",
            "park:1:2:3",
            "spin-then-yield:x",
            "park:99999999999",
        ] {
            assert!(
                WaitStrategy::parse(bad).is_err(),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for w in [
            WaitStrategy::BusySpin,
            WaitStrategy::SpinThenYield { spins: 12 },
            WaitStrategy::Park {
                spins: 0,
                park_micros: 5,
            },
        ] {
            assert_eq!(w.to_string().parse::<WaitStrategy>(), Ok(w));
        }
    }

    #[test]
    fn idle_counts_and_reset_clears() {
        let mut w = WaitStrategy::Park {
            spins: 2,
            park_micros: 1,
        }
        .waiter();
        for _ in 0..5 {
            w.idle();
        }
        assert_eq!(w.idle_rounds(), 5);
        w.reset();
        assert_eq!(w.idle_rounds(), 0);
        let mut y = WaitStrategy::SpinThenYield { spins: 0 }.waiter();
        y.idle();
        assert_eq!(y.idle_rounds(), 1);
    }
}
