//! Work stealing at the tail of a session: which of a busy worker's unstarted tests an idle
//! worker may take.
//!
//! A worker is dealt a group before its last test of the previous one runs (pytest must know the
//! next test to tear fixtures down at the right time), so near the end one worker can hold a
//! queue while another idles. The coordinator then asks the busy worker to give back the end of
//! its queue; the worker answers with those it has not started, and they are dealt again.

use std::collections::BTreeMap;

use crate::grouping::{module_of, provider_of};
use crate::providers::Providers;
use crate::TestId;

/// What may be stolen: never part of a `herd_group`, never a test that names a provider (it
/// stays with the worker that holds the provider) and, when asked, never part of a module.
#[derive(Debug, Clone, Default)]
pub struct StealPolicy {
    named: BTreeMap<TestId, String>,
    providers: Providers,
    whole_modules: bool,
}

impl StealPolicy {
    /// A policy for a collection's `herd_group` names and the session's providers.
    pub fn new(named: BTreeMap<TestId, String>, providers: Providers) -> StealPolicy {
        StealPolicy {
            named,
            providers,
            whole_modules: false,
        }
    }

    /// The same policy, keeping each module's tests together (`--dist file`).
    pub fn keeping_modules_whole(mut self, whole: bool) -> StealPolicy {
        self.whole_modules = whole;
        self
    }

    /// The tests to ask back from a worker that runs `running` and will then run `unstarted`,
    /// in that order: the later half of `unstarted` (rounded up), shortened so that it holds no
    /// test that names a provider and starts at a `herd_group` boundary (and, when modules are
    /// kept whole, a module boundary). Empty when nothing may be taken.
    pub fn tail<'a>(&self, running: Option<&TestId>, unstarted: &'a [TestId]) -> &'a [TestId] {
        let len = unstarted.len();
        let free_from = unstarted
            .iter()
            .rposition(|t| provider_of(t, &self.providers).is_some())
            .map_or(0, |i| i + 1);
        let mut cut = (len / 2).max(free_from);
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
        assert_eq!(policy.tail(None, &queue), &queue[2..]);
        assert_eq!(policy.tail(None, &queue[..1]), &queue[..1]);
        assert!(policy.tail(None, &[]).is_empty());
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
        assert_eq!(policy.tail(None, &queue), &ids(&["e", "f"])[..]);
        let whole = ids(&["b", "c", "d"]);
        assert!(policy.tail(None, &whole).is_empty());
        let running = "c".to_string();
        assert!(policy.tail(Some(&running), &whole[2..]).is_empty());
    }

    #[test]
    fn can_keep_modules_whole() {
        let policy = StealPolicy::default().keeping_modules_whole(true);
        let queue = ids(&["a.py::1", "a.py::2", "a.py::3", "b.py::1"]);
        assert_eq!(policy.tail(None, &queue), &ids(&["b.py::1"])[..]);
        assert!(policy.tail(None, &queue[..3]).is_empty());
        // The running test counts: its module's next test stays with it.
        let running = "b.py::0".to_string();
        assert!(policy.tail(Some(&running), &queue[3..]).is_empty());
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
        assert_eq!(policy.tail(None, &queue), &ids(&["n.py::a", "n.py::b"])[..]);
        let all = ids(&["m.py::t[rhv]", "m.py::u[rhv]"]);
        assert!(policy.tail(None, &all).is_empty());
    }
}
