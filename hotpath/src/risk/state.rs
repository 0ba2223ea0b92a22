//! Trading states: ACTIVE / REDUCING / HALTED, for the account and for each symbol.
//!
//! Why states rather than a flag per cause: several causes (the admin kill switch, the daily
//! drawdown levels, the health score, the circuit breakers) can each restrict trading, and they
//! lift at different times. Each cause keeps its own latch here; the effective state of a
//! symbol is the most restrictive of the account's and the symbol's. Entries need ACTIVE;
//! exits pass in every state (a halted book must still be able to flatten).
//!
//! The watchlist is one more latch: a symbol off the watchlist (removed by the operator, or
//! its 24-hour entry expired) is REDUCING: no new positions, while one already open is still
//! managed and closed by its exits. The configured symbols are watched until removed.
//!
//! Time is event time: `halt_until_ns` latches (the 5% drawdown halt until 00:00 UTC, breaker
//! cool-downs) are compared against the timestamps of the events being processed.

/// How freely a scope may trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum TradingState {
    /// Entries and exits allowed.
    #[default]
    Active = 1,
    /// No new entries; exits and risk reductions go through.
    Reducing = 2,
    /// Trading stopped: no entries; exits (closing what is left) still go through.
    Halted = 3,
}

impl TradingState {
    /// The code journaled in [`RiskReject::state`](super::RiskReject::state).
    #[inline]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Stable lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::Reducing => "reducing",
            TradingState::Halted => "halted",
        }
    }

    /// True if new positions may be opened.
    #[inline]
    pub const fn allows_entry(self) -> bool {
        matches!(self, TradingState::Active)
    }

    /// Exits are always allowed; kept as a function so call sites say what they rely on.
    #[inline]
    pub const fn allows_exit(self) -> bool {
        true
    }
}

/// The latches of one scope (the account, or one symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeState {
    /// The admin kill switch (`Control` Halt until Resume).
    pub admin_halt: bool,
    /// Halted by risk until this event time (ns); 0 = no such halt.
    pub halt_until_ns: u64,
    /// Reducing by risk until this event time (ns): breaker cool-downs.
    pub reduce_until_ns: u64,
    /// Reducing while set (drawdown at or above the close-worst-half level, health below the
    /// stop-entries level); recomputed by the portfolio manager.
    pub reducing: bool,
    /// Time (ns since the epoch) the scope leaves the watchlist: `u64::MAX` for a configured
    /// symbol (watched until removed), the entry's expiry after an admin add or renew, 0 once
    /// removed. At and after it the scope is REDUCING.
    pub watch_expires_ns: u64,
}

impl Default for ScopeState {
    /// ACTIVE, and watched until removed.
    fn default() -> Self {
        ScopeState {
            admin_halt: false,
            halt_until_ns: 0,
            reduce_until_ns: 0,
            reducing: false,
            watch_expires_ns: u64::MAX,
        }
    }
}

impl ScopeState {
    /// The state at event time `now_ns`.
    #[inline]
    pub fn at(&self, now_ns: u64) -> TradingState {
        if self.admin_halt || now_ns < self.halt_until_ns {
            TradingState::Halted
        } else if self.reducing || now_ns < self.reduce_until_ns || now_ns >= self.watch_expires_ns
        {
            TradingState::Reducing
        } else {
            TradingState::Active
        }
    }
}

/// The account's latches and one set per symbol (a table indexed by instrument id, allocated
/// at construction).
#[derive(Debug, Clone)]
pub struct TradingStates {
    account: ScopeState,
    symbols: Box<[ScopeState]>,
}

impl TradingStates {
    /// States for instrument ids `0..symbols`, all ACTIVE.
    pub fn new(symbols: usize) -> Self {
        TradingStates {
            account: ScopeState::default(),
            symbols: vec![ScopeState::default(); symbols].into_boxed_slice(),
        }
    }

    /// The account's latches.
    pub fn account(&self) -> &ScopeState {
        &self.account
    }

    /// The account's latches, mutable.
    pub fn account_mut(&mut self) -> &mut ScopeState {
        &mut self.account
    }

    /// A symbol's latches (`None` outside the table).
    pub fn symbol(&self, id: usize) -> Option<&ScopeState> {
        self.symbols.get(id)
    }

    /// A symbol's latches, mutable.
    pub fn symbol_mut(&mut self, id: usize) -> Option<&mut ScopeState> {
        self.symbols.get_mut(id)
    }

    /// The account's state at `now_ns`.
    #[inline]
    pub fn account_state(&self, now_ns: u64) -> TradingState {
        self.account.at(now_ns)
    }

    /// The effective state of symbol `id` at `now_ns`: the more restrictive of the account's
    /// and the symbol's (HALTED for an id outside the table).
    #[inline]
    pub fn effective(&self, id: usize, now_ns: u64) -> TradingState {
        match self.symbols.get(id) {
            Some(s) => self.account.at(now_ns).max(s.at(now_ns)),
            None => TradingState::Halted,
        }
    }
}
