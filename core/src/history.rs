//! Duration history: how long each test took last time, so groups can be dealt longest first
//! (LPT), which keeps the slowest work from landing on a worker at the very end.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::grouping::Group;
use crate::TestId;

/// Seconds per test id, from earlier runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The latest duration of each test.
    pub durations: HashMap<TestId, f64>,
}

impl History {
    /// Parses the stored form (JSON).
    pub fn parse(text: &str) -> Result<History, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The stored form (JSON).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a map of numbers serializes")
    }

    /// Records durations measured now (finite and non-negative ones).
    pub fn record(&mut self, measured: impl IntoIterator<Item = (TestId, f64)>) {
        for (test, secs) in measured {
            if secs.is_finite() && secs >= 0.0 {
                self.durations.insert(test, secs);
            }
        }
    }

    /// The expected duration of `test`: its last one, or the mean of the known ones.
    pub fn expected(&self, test: &str, mean: f64) -> f64 {
        self.durations.get(test).copied().unwrap_or(mean)
    }

    /// The mean known duration (1 s when nothing is known).
    pub fn mean(&self) -> f64 {
        if self.durations.is_empty() {
            return 1.0;
        }
        self.durations.values().sum::<f64>() / self.durations.len() as f64
    }

    /// `groups` dealt longest expected first (stable, so equal groups keep their order).
    ///
    /// A group that work stealing can split (no `herd_group` in `named`, no provider) counts as
    /// its longest test, not its total: many quick tests are dealt last, where idle workers
    /// share them out and even the tail, instead of making one worker's queue long at the start.
    pub fn longest_first(
        &self,
        mut groups: Vec<Group>,
        named: &BTreeMap<TestId, String>,
    ) -> Vec<Group> {
        if self.durations.is_empty() {
            return groups;
        }
        let mean = self.mean();
        let cost = |g: &Group| {
            let expected = g.tests.iter().map(|t| self.expected(t, mean));
            let whole = g.provider.is_some() || g.tests.iter().any(|t| named.contains_key(t));
            if whole {
                expected.sum::<f64>()
            } else {
                expected.fold(0.0, f64::max)
            }
        };
        let mut keyed: Vec<(i64, Group)> = groups
            .drain(..)
            .map(|g| (cost_class(cost(&g)), g))
            .collect();
        // Stable: groups of one class keep collection order (a module's tests stay together).
        keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
        keyed.into_iter().map(|(_, g)| g).collect()
    }
}

/// Expected seconds as a class for ordering: classes 25 % wide, and everything under 5 ms in one
/// class, so that noise in tiny durations does not scatter a module's tests over the queue.
fn cost_class(secs: f64) -> i64 {
    if secs.is_nan() || secs < 0.005 {
        return 0;
    }
    1 + ((secs / 0.005).ln() / 1.25f64.ln()).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(tests: &[&str]) -> Group {
        Group {
            tests: tests.iter().map(|t| t.to_string()).collect(),
            provider: None,
        }
    }

    #[test]
    fn groups_are_dealt_longest_first_and_unknown_tests_count_as_the_mean() {
        let mut history = History::default();
        assert_eq!(
            history.longest_first(vec![group(&["a"]), group(&["b"])], &BTreeMap::new())[0],
            group(&["a"])
        );
        history.record([
            ("slow".to_string(), 3.0),
            ("quick".to_string(), 0.1),
            ("bad".to_string(), f64::NAN),
        ]);
        assert_eq!(history.durations.len(), 2);
        let ordered = history.longest_first(
            vec![group(&["quick"]), group(&["new"]), group(&["slow"])],
            &BTreeMap::new(),
        );
        assert_eq!(
            ordered,
            vec![group(&["slow"]), group(&["new"]), group(&["quick"])]
        );
        assert_eq!(history.expected("new", history.mean()), 1.55);
    }

    #[test]
    fn a_splittable_group_counts_as_its_longest_test_a_whole_one_as_its_total() {
        let mut history = History::default();
        history.record([
            ("q1".to_string(), 0.5),
            ("q2".to_string(), 0.5),
            ("q3".to_string(), 0.5),
            ("g1".to_string(), 0.5),
            ("g2".to_string(), 0.5),
            ("slow".to_string(), 1.0),
        ]);
        let named: BTreeMap<TestId, String> = [("g1", "g"), ("g2", "g")]
            .iter()
            .map(|(t, g)| (t.to_string(), g.to_string()))
            .collect();
        let ordered = history.longest_first(
            vec![
                group(&["q1", "q2", "q3"]),
                group(&["slow"]),
                group(&["g1", "g2"]),
            ],
            &named,
        );
        assert_eq!(
            ordered,
            vec![
                group(&["slow"]),
                group(&["g1", "g2"]),
                group(&["q1", "q2", "q3"])
            ]
        );
    }

    #[test]
    fn tiny_differences_do_not_reorder_groups() {
        let mut history = History::default();
        history.record([
            ("a".to_string(), 0.0002),
            ("b".to_string(), 0.0009),
            ("c".to_string(), 0.010),
            ("d".to_string(), 0.011),
        ]);
        let ordered = history.longest_first(
            vec![group(&["a"]), group(&["b"]), group(&["c"]), group(&["d"])],
            &BTreeMap::new(),
        );
        assert_eq!(
            ordered,
            vec![group(&["c"]), group(&["d"]), group(&["a"]), group(&["b"])]
        );
        assert!(cost_class(3.0) > cost_class(2.0) && cost_class(0.004) == 0);
    }

    #[test]
    fn history_round_trips_and_garbage_is_an_error() {
        let mut history = History::default();
        history.record([("t".to_string(), 0.5)]);
        assert_eq!(History::parse(&history.to_json()).unwrap(), history);
        assert!(History::parse("{not json").is_err());
    }
}
