//! Restart policy for worker processes, named as OTP names it.
//!
//! The session's [`RespawnBudget`] is the supervisor's *intensity*: at most `limit` respawns (in
//! total, or within a sliding `window`). Past it the session ends. Each worker slot also has a
//! [`RetirePolicy`]: a slot whose appliance is gone is retired (never respawned) instead of eating
//! the budget.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many respawns the whole session allows.
#[derive(Debug, Clone)]
pub struct RespawnBudget {
    limit: u32,
    window: Option<Duration>,
    used: VecDeque<Instant>,
}

impl RespawnBudget {
    /// The default budget: three respawns per worker, over the whole session (as the seed).
    pub fn default_for(workers: usize) -> u32 {
        u32::try_from(workers.saturating_mul(3)).unwrap_or(u32::MAX)
    }

    /// A budget of `limit` respawns, counted over the session or, with `window`, over any period
    /// of that length (OTP's intensity and period).
    pub fn new(limit: u32, window: Option<Duration>) -> RespawnBudget {
        RespawnBudget {
            limit,
            window,
            used: VecDeque::new(),
        }
    }

    /// Takes one respawn at `now`; `false` when the budget is spent.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if let Some(window) = self.window {
            while self
                .used
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                self.used.pop_front();
            }
        }
        if self.used.len() >= self.limit as usize {
            return false;
        }
        self.used.push_back(now);
        true
    }

    /// Respawns counted now.
    pub fn used(&self) -> usize {
        self.used.len()
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// When a worker slot is retired rather than respawned (the seed's `forbid_restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetirePolicy {
    /// Retire a slot whose process died this many times in a row without finishing a test.
    pub after_consecutive_crashes: u32,
}

impl Default for RetirePolicy {
    fn default() -> Self {
        RetirePolicy {
            after_consecutive_crashes: 3,
        }
    }
}

impl RetirePolicy {
    /// Whether a slot that has now crashed `streak` times in a row must retire.
    pub fn should_retire(&self, streak: u32) -> bool {
        self.after_consecutive_crashes > 0 && streak >= self.after_consecutive_crashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_over_the_session() {
        let mut b = RespawnBudget::new(2, None);
        let t = Instant::now();
        assert!(b.try_take(t));
        assert!(b.try_take(t + Duration::from_secs(100)));
        assert!(!b.try_take(t + Duration::from_secs(1000)));
        assert_eq!(b.used(), 2);
        assert_eq!(RespawnBudget::default_for(4), 12);
        assert!(!RespawnBudget::new(0, None).try_take(t));
    }

    #[test]
    fn budget_with_a_window_forgets_old_respawns() {
        let mut b = RespawnBudget::new(1, Some(Duration::from_secs(5)));
        let t = Instant::now();
        assert!(b.try_take(t));
        assert!(!b.try_take(t + Duration::from_secs(4)));
        assert!(b.try_take(t + Duration::from_secs(5)));
    }

    #[test]
    fn retire_after_a_streak() {
        let p = RetirePolicy {
            after_consecutive_crashes: 2,
        };
        assert!(!p.should_retire(1));
        assert!(p.should_retire(2));
        assert!(!RetirePolicy {
            after_consecutive_crashes: 0
        }
        .should_retire(99));
    }
}
