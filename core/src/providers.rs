//! Provider affinity: which provider a test names, and which group a worker gets next.
//!
//! A worker holds at most one provider (an expensive, stateful connection of its appliance). A
//! group for a provider goes to the worker already holding it; a worker switches provider (and runs
//! the cleanse hook first) only when nothing it can take without switching is left.

use std::collections::VecDeque;

use crate::grouping::Group;

/// The provider names given with `--providers`, longest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Providers {
    names: Vec<String>,
}

impl Providers {
    /// A provider set from names (empty names are ignored).
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Providers {
        let mut names: Vec<String> = names
            .into_iter()
            .map(Into::into)
            .filter(|n: &String| !n.is_empty())
            .collect();
        names.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        names.dedup();
        Providers { names }
    }

    /// Parses a comma separated list, as `--providers a,b,c`.
    pub fn parse(list: &str) -> Providers {
        Providers::new(list.split(',').map(str::trim))
    }

    /// Whether no providers are configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The provider named in a parametrize id: the longest configured name it contains.
    pub fn named_in(&self, param_id: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| param_id.contains(n.as_str()))
            .map(String::as_str)
    }
}

/// What a worker is given: a group, and whether it must switch provider first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Index of the chosen group in the queue.
    pub index: usize,
    /// The provider the worker holds after taking the group.
    pub provider: Option<String>,
    /// Set when the worker held another provider and must cleanse before running the group.
    pub switch_from: Option<String>,
}

/// Chooses the next group for a worker holding `held`, given the queue (returned work first) and
/// whether a provider is held by another live worker.
///
/// In order of preference:
/// 1. the first group that needs no provider, or the provider the worker holds, or (for a worker
///    holding none) a provider nobody holds;
/// 2. the first group whose provider nobody holds (the worker switches).
///
/// A group whose provider another live worker holds is never given to this one: that worker will
/// take it, and each provider is connected once. The worker waits (or, holding tests, is told
/// there is no more) instead.
pub fn pick(
    queue: &VecDeque<Group>,
    held: Option<&str>,
    held_by_others: impl Fn(&str) -> bool,
) -> Option<Pick> {
    let take = |index: usize| {
        let wanted = queue[index].provider.clone();
        let switch_from = match (&wanted, held) {
            (Some(w), Some(h)) if w != h => Some(h.to_string()),
            _ => None,
        };
        let provider = wanted.or_else(|| held.map(str::to_string));
        Pick {
            index,
            provider,
            switch_from,
        }
    };
    let free = |p: &str| !held_by_others(p);
    let first = queue.iter().position(|g| match g.provider.as_deref() {
        None => true,
        Some(p) => Some(p) == held || (held.is_none() && free(p)),
    });
    if let Some(index) = first {
        return Some(take(index));
    }
    queue
        .iter()
        .position(|g| g.provider.as_deref().is_some_and(free))
        .map(take)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, provider: Option<&str>) -> Group {
        Group {
            tests: vec![name.to_string()],
            provider: provider.map(str::to_string),
        }
    }

    #[test]
    fn providers_match_longest_name_first() {
        let p = Providers::parse("rhv, rhv43 ,vsphere,,rhv");
        assert_eq!(p.named_in("rhv43-api"), Some("rhv43"));
        assert_eq!(p.named_in("rhv-api"), Some("rhv"));
        assert_eq!(p.named_in("ec2"), None);
        assert!(Providers::parse("").is_empty());
    }

    #[test]
    fn a_worker_keeps_its_provider() {
        let q: VecDeque<Group> = [
            group("a", Some("p1")),
            group("b", Some("p2")),
            group("c", Some("p2")),
        ]
        .into();
        let pick = pick(&q, Some("p2"), |_| false).unwrap();
        assert_eq!(
            (pick.index, pick.provider.as_deref(), pick.switch_from),
            (1, Some("p2"), None)
        );
    }

    #[test]
    fn a_free_worker_takes_an_unheld_provider_or_plain_work() {
        let q: VecDeque<Group> = [group("a", Some("p1")), group("b", Some("p2"))].into();
        let p = pick(&q, None, |p| p == "p1").unwrap();
        assert_eq!(
            (p.index, p.provider.as_deref(), p.switch_from),
            (1, Some("p2"), None)
        );
        let q: VecDeque<Group> = [group("a", Some("p1")), group("b", None)].into();
        let p = pick(&q, Some("p9"), |_| false).unwrap();
        assert_eq!((p.index, p.provider.as_deref()), (1, Some("p9")));
    }

    #[test]
    fn a_worker_switches_only_when_nothing_else_is_left_and_never_to_a_held_provider() {
        let q: VecDeque<Group> = [group("a", Some("p1")), group("b", Some("p2"))].into();
        let p = pick(&q, Some("p3"), |p| p == "p1").unwrap();
        assert_eq!(
            (p.index, p.provider.as_deref(), p.switch_from.as_deref()),
            (1, Some("p2"), Some("p3"))
        );
        assert_eq!(pick(&q, Some("p3"), |_| true), None);
        assert_eq!(pick(&q, None, |_| true), None);
        assert_eq!(pick(&VecDeque::new(), None, |_| false), None);
    }
}
