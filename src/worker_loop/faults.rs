//! Fault hooks for tests of herd itself (and chaos runs): what a worker spawn is asked to do to
//! itself through `HERD_WORKER_FAULT`, and when. Pure: the loop asks, and carries out the answer.
//!
//! `HERD_WORKER_FAULT` holds `;`-separated `IDENTITY:ACTION=N` items; an item applies only to
//! the spawn whose identity (`w1.1`) matches, so a respawned worker behaves. Actions:
//! `exit0-after=N` (exit 0 without shutdown while starting the test after the Nth),
//! `garbage-after=N` (send a malformed frame after N tests), `extra-test=ID` (report a
//! collection with one more test), `wedge-after=N` (hang silently, no heartbeats, after N tests).

/// The variable holding the fault requests.
pub const ENV_WORKER_FAULT: &str = "HERD_WORKER_FAULT";

/// Fault hooks that apply to this spawn.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    /// Exit 0 without `shutdown`, as the test after this many has started.
    pub exit0_after: Option<usize>,
    /// Send a malformed frame after this many tests.
    pub garbage_after: Option<usize>,
    /// Add this id to the reported collection.
    pub extra_test: Option<String>,
    /// Hang silently (no heartbeats) after this many tests.
    pub wedge_after: Option<usize>,
}

/// A fault to carry out after a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// Send what waits, then a frame that is not JSON.
    Garbage,
    /// Send what waits, stop the heartbeats and hang for good (a deadlocked worker).
    Wedge,
}

impl Faults {
    /// Parses `HERD_WORKER_FAULT` for the spawn named `identity`.
    pub fn parse(spec: &str, identity: &str) -> Faults {
        let mut faults = Faults::default();
        for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((who, action)) = item.split_once(':') else {
                continue;
            };
            if who != identity {
                continue;
            }
            let (name, value) = action.split_once('=').unwrap_or((action, ""));
            match name {
                "exit0-after" => faults.exit0_after = value.parse().ok(),
                "garbage-after" => faults.garbage_after = value.parse().ok(),
                "extra-test" => faults.extra_test = Some(value.to_string()),
                "wedge-after" => faults.wedge_after = value.parse().ok(),
                other => tracing::warn!("unknown fault {other:?} in {ENV_WORKER_FAULT} ignored"),
            }
        }
        faults
    }

    /// The faults `HERD_WORKER_FAULT` asks of the spawn named `identity` (none when unset).
    pub fn from_env(identity: &str) -> Faults {
        Faults::parse(
            &std::env::var(ENV_WORKER_FAULT).unwrap_or_default(),
            identity,
        )
    }

    /// Whether to exit 0 without `shutdown` once the start of the test after `done` finished
    /// tests is sent (the socket closed first, so what was sent is delivered).
    pub fn exits_as_test_starts(&self, done: usize) -> bool {
        self.exit0_after == Some(done)
    }

    /// What to do once `done` tests have finished (the last one's reports not yet sent).
    pub fn after_tests(&self, done: usize) -> Option<Strike> {
        if self.wedge_after == Some(done) {
            Some(Strike::Wedge)
        } else if self.garbage_after == Some(done) {
            Some(Strike::Garbage)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_to_one_spawn() {
        let spec =
            "w1.1:exit0-after=2; w2.1:garbage-after=1;w1.1:extra-test=bogus;w1.2:exit0-after=9";
        assert_eq!(
            Faults::parse(spec, "w1.1"),
            Faults {
                exit0_after: Some(2),
                garbage_after: None,
                extra_test: Some("bogus".into()),
                wedge_after: None,
            }
        );
        assert_eq!(Faults::parse(spec, "w2.1").garbage_after, Some(1));
        assert_eq!(Faults::parse(spec, "w3.1"), Faults::default());
    }

    #[test]
    fn each_fault_strikes_once_at_its_count() {
        let faults = Faults::parse("w1.1:exit0-after=2;w1.1:garbage-after=1", "w1.1");
        let exits: Vec<_> = (0..4).map(|n| faults.exits_as_test_starts(n)).collect();
        assert_eq!(exits, [false, false, true, false]);
        let after: Vec<_> = (0..4).map(|n| faults.after_tests(n)).collect();
        assert_eq!(after, [None, Some(Strike::Garbage), None, None]);
        // A wedged worker sends nothing more, garbage included.
        let both = Faults::parse("w1.1:wedge-after=1;w1.1:garbage-after=1", "w1.1");
        assert_eq!(both.after_tests(1), Some(Strike::Wedge));
        assert_eq!(Faults::default().after_tests(0), None);
    }
}
