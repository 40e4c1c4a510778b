//! Liveness: telling a busy worker from a hung one.
//!
//! A worker that promised heartbeats and falls silent is not necessarily hung: a test whose C
//! code holds Python's interpreter lock (a regex backtracking, a long numpy call) keeps the
//! heartbeat thread from running for as long as it computes. So silence alone is not enough:
//! while the worker's process keeps using CPU, it is busy, and only `--timeout` bounds it. A
//! process that is silent *and* idle (no CPU time for as long as the silence limit) is hung.
//! Where the CPU time cannot be read (a worker on another host), silence decides alone.
//!
//! ```text
//!   heard within the limit          -> Alive
//!   silent, CPU advancing lately    -> Busy     (no action; --timeout still applies)
//!   silent, CPU idle for the limit  -> Silent   (hung here, lost when remote)
//! ```

use std::time::{Duration, Instant};

/// What a liveness check concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Heard from within the limit.
    Alive,
    /// Silent beyond the limit, but its process is computing.
    Busy,
    /// Silent and idle for this long: hung (or, on another host, lost).
    Silent(Duration),
}

/// The liveness of one worker process (one incarnation: a new process gets a new value).
#[derive(Debug, Clone)]
pub struct Watch {
    limit: Duration,
    last_heard: Instant,
    /// The last CPU time seen (clock ticks) and when it last advanced.
    cpu: Option<(u64, Instant)>,
}

impl Watch {
    /// A watch that takes a worker silent for `limit` for hung, starting at `now`.
    pub fn new(limit: Duration, now: Instant) -> Watch {
        Watch {
            limit,
            last_heard: now,
            cpu: None,
        }
    }

    /// The worker sent something at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.cpu = None;
    }

    /// How long the worker has been silent at `now`.
    pub fn silence(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// Whether the check at `now` wants the process's CPU time: from half the limit of silence
    /// on, so that a baseline exists when the limit is reached.
    pub fn wants_cpu(&self, now: Instant) -> bool {
        self.silence(now) >= self.limit / 2
    }

    /// Checks at `now`; `cpu` is the process's CPU time in any monotonic unit, when known.
    pub fn check(&mut self, now: Instant, cpu: Option<u64>) -> Liveness {
        if let Some(ticks) = cpu {
            self.cpu = Some(match self.cpu {
                Some((seen, at)) if ticks <= seen => (seen, at),
                Some(_) => (ticks, now),
                // The first sample of a silence: no progress is known since it was last heard.
                None => (ticks, self.last_heard),
            });
        }
        let silent = self.silence(now);
        if silent < self.limit {
            return Liveness::Alive;
        }
        match self.cpu.filter(|_| cpu.is_some()) {
            Some((_, advanced_at)) if now.saturating_duration_since(advanced_at) < self.limit => {
                Liveness::Busy
            }
            _ => Liveness::Silent(silent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn heard_within_the_limit_is_alive() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        assert_eq!(w.check(at(t0, 4_999), None), Liveness::Alive);
        w.heard(at(t0, 4_000));
        assert_eq!(w.check(at(t0, 8_999), Some(0)), Liveness::Alive);
        assert!(!w.wants_cpu(at(t0, 6_499)));
    }

    #[test]
    fn silent_without_cpu_figures_is_silent() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        assert!(w.wants_cpu(at(t0, 5_000)));
        assert_eq!(
            w.check(at(t0, 6_000), None),
            Liveness::Silent(Duration::from_secs(6))
        );
    }

    #[test]
    fn silent_but_computing_is_busy_for_as_long_as_it_computes() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        let mut ticks = 100;
        for ms in (2_500..60_000).step_by(250) {
            ticks += 25;
            let expected = if ms < 5_000 {
                Liveness::Alive
            } else {
                Liveness::Busy
            };
            assert_eq!(w.check(at(t0, ms), Some(ticks)), expected, "at {ms} ms");
        }
        // It stops computing (blocked with the lock held, or stopped): hung after the limit.
        assert_eq!(w.check(at(t0, 64_000), Some(ticks)), Liveness::Busy);
        assert_eq!(
            w.check(at(t0, 64_750), Some(ticks)),
            Liveness::Silent(Duration::from_millis(64_750))
        );
    }

    #[test]
    fn silent_and_idle_is_hung_at_the_limit() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        assert!(!w.wants_cpu(at(t0, 2_499)));
        assert!(w.wants_cpu(at(t0, 2_500)));
        assert_eq!(w.check(at(t0, 2_500), Some(7)), Liveness::Alive);
        assert_eq!(w.check(at(t0, 5_000), Some(7)), Liveness::Silent(LIMIT));
    }

    #[test]
    fn cpu_spent_before_the_silence_does_not_count() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        assert_eq!(w.check(at(t0, 3_000), Some(10)), Liveness::Alive);
        assert_eq!(w.check(at(t0, 4_000), Some(90)), Liveness::Alive);
        w.heard(at(t0, 4_100));
        // A new silence starts from nothing: the old progress is forgotten.
        assert_eq!(w.check(at(t0, 7_000), Some(95)), Liveness::Alive);
        assert_eq!(w.check(at(t0, 9_100), Some(95)), Liveness::Silent(LIMIT));
    }

    #[test]
    fn without_a_cpu_figure_now_an_old_one_does_not_count() {
        let t0 = Instant::now();
        let mut w = Watch::new(LIMIT, t0);
        assert_eq!(w.check(at(t0, 4_900), Some(1)), Liveness::Alive);
        assert_eq!(w.check(at(t0, 5_000), Some(2)), Liveness::Busy);
        assert_eq!(
            w.check(at(t0, 5_250), None),
            Liveness::Silent(Duration::from_millis(5_250))
        );
    }
}
