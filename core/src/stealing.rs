//! Work stealing at the tail of a session: which of a busy worker's unstarted tests an idle
//! worker may take.
//!
//! A worker is dealt a group before its last test of the previous one runs (pytest must know the
//! next test to tear fixtures down at the right time), so near the end one worker can hold a
//! queue while another idles. The coordinator then asks the busy worker to give back the end of
//! its queue; the worker answers with those it has not started, and they are dealt again.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::grouping::{module_of, provider_of};
use crate::history::History;
use crate::providers::Providers;
use crate::TestId;

/// What may be stolen: never part of a `herd_group`, never a test that names a provider (it
/// stays with the worker that holds the provider) and, when asked, never part of a module.
#[derive(Debug, Clone)]
pub struct StealPolicy {
    named: BTreeMap<TestId, String>,
    providers: Providers,
    whole_modules: bool,
    history: Arc<History>,
    mean: f64,
}

impl Default for StealPolicy {
    fn default() -> StealPolicy {
        StealPolicy::new(BTreeMap::new(), Providers::default())
    }
}

impl StealPolicy {
    /// A policy for a collection's `herd_group` names and the session's providers.
    pub fn new(named: BTreeMap<TestId, String>, providers: Providers) -> StealPolicy {
        StealPolicy {
            named,
            providers,
            whole_modules: false,
            history: Arc::default(),
            mean: 1.0,
        }
    }

    /// The same policy, weighing tests by their durations in `history` (unknown tests count as
    /// the mean; without a history every test counts as one).
    pub fn with_history(mut self, history: Arc<History>) -> StealPolicy {
        self.mean = history.mean();
        self.history = history;
        self
    }

    /// A test's expected seconds (or weight).
    pub fn expected(&self, test: &str) -> f64 {
        self.history.expected(test, self.mean)
    }

    /// The same policy, keeping each module's tests together (`--dist file`).
    pub fn keeping_modules_whole(mut self, whole: bool) -> StealPolicy {
        self.whole_modules = whole;
        self
    }

    /// The tests to ask back from a worker that runs `running` and will then run `unstarted`,
    /// in that order, for a worker that holds `thief_load` (expected seconds) of work: the end
    /// of `unstarted` worth half the difference between the two, so that both finish together
    /// (at least one test when the busy worker holds more), shortened so that it holds no test
    /// that names a provider and starts at a `herd_group` boundary (and, when modules are kept
    /// whole, a module boundary). Empty when nothing may or should be taken.
    pub fn tail<'a>(
        &self,
        running: Option<&TestId>,
        unstarted: &'a [TestId],
        thief_load: f64,
    ) -> &'a [TestId] {
        let len = unstarted.len();
        let load: f64 = unstarted.iter().map(|t| self.expected(t)).sum();
        let share = (load - thief_load) / 2.0;
        if share <= 0.0 || len == 0 {
            return &[];
        }
        let mut cut = len - 1;
        let mut taken = self.expected(&unstarted[cut]);
        // Take the next test while that brings the share closer (half of it still fits).
        while cut > 0 && taken + self.expected(&unstarted[cut - 1]) / 2.0 <= share + 1e-9 {
            cut -= 1;
            taken += self.expected(&unstarted[cut]);
        }
        let free_from = unstarted
            .iter()
            .rposition(|t| provider_of(t, &self.providers).is_some())
            .map_or(0, |i| i + 1);
        let mut cut = cut.max(free_from);
        // The test before position `i`: the running one before the first unstarted.
        let before = |i: usize| {
            if i == 0 {
                running
            } else {
                Some(&unstarted[i - 1])
            }
        };
        let inside = |i: usize| {
            let Some(prev) = before(i) else {
                return false;
            };
            let group = self.named.get(&unstarted[i]);
            (group.is_some() && group == self.named.get(prev))
                || (self.whole_modules && module_of(&unstarted[i]) == module_of(prev))
        };
        while cut < len && inside(cut) {
            cut += 1;
        }
        &unstarted[cut..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<TestId> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn takes_the_later_half_rounded_up() {
        let policy = StealPolicy::default();
        let queue = ids(&["a", "b", "c", "d", "e"]);
        assert_eq!(policy.tail(None, &queue, 0.0), &queue[2..]);
        assert_eq!(policy.tail(None, &queue[..1], 0.0), &queue[..1]);
        assert!(policy.tail(None, &[], 0.0).is_empty());
    }

    #[test]
    fn the_thief_gets_half_the_difference_in_expected_time() {
        let mut history = History::default();
        history.record((0..10).map(|i| (format!("q{i}"), 0.1)));
        history.record([("slow".to_string(), 1.5)]);
        let policy = StealPolicy::default().with_history(Arc::new(history));
        let queue: Vec<TestId> = (0..10).map(|i| format!("q{i}")).collect();
        // A thief about to run a 1.5 s test and a victim holding 1 s of quick tests: no steal.
        assert!(policy.tail(None, &queue, 1.5).is_empty());
        // An idle thief takes half: 0.5 s.
        assert_eq!(policy.tail(None, &queue, 0.0), &queue[5..]);
        // A thief holding 0.4 s takes 0.3 s.
        assert_eq!(policy.tail(None, &queue, 0.4), &queue[7..]);
    }

    #[test]
    fn never_splits_a_herd_group() {
        let named: BTreeMap<TestId, String> = [("b", "g"), ("c", "g"), ("d", "g")]
            .iter()
            .map(|(t, g)| (t.to_string(), g.to_string()))
            .collect();
        let policy = StealPolicy::new(named, Providers::default());
        let queue = ids(&["a", "b", "c", "d", "e", "f"]);
        // The half would start at "d", inside group g: the cut moves past the group.
        assert_eq!(policy.tail(None, &queue, 0.0), &ids(&["e", "f"])[..]);
        let whole = ids(&["b", "c", "d"]);
        assert!(policy.tail(None, &whole, 0.0).is_empty());
        let running = "c".to_string();
        assert!(policy.tail(Some(&running), &whole[2..], 0.0).is_empty());
    }

    #[test]
    fn can_keep_modules_whole() {
        let policy = StealPolicy::default().keeping_modules_whole(true);
        let queue = ids(&["a.py::1", "a.py::2", "a.py::3", "b.py::1"]);
        assert_eq!(policy.tail(None, &queue, 0.0), &ids(&["b.py::1"])[..]);
        assert!(policy.tail(None, &queue[..3], 0.0).is_empty());
        // The running test counts: its module's next test stays with it.
        let running = "b.py::0".to_string();
        assert!(policy.tail(Some(&running), &queue[3..], 0.0).is_empty());
    }

    #[test]
    fn keeps_tests_that_name_a_provider() {
        let policy = StealPolicy::new(BTreeMap::new(), Providers::parse("rhv,vsphere"));
        let queue = ids(&[
            "m.py::t[rhv]",
            "m.py::u",
            "m.py::t[vsphere]",
            "n.py::a",
            "n.py::b",
        ]);
        assert_eq!(
            policy.tail(None, &queue, 0.0),
            &ids(&["n.py::a", "n.py::b"])[..]
        );
        let all = ids(&["m.py::t[rhv]", "m.py::u[rhv]"]);
        assert!(policy.tail(None, &all, 0.0).is_empty());
    }
}
