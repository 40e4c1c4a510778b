//! How a collection is cut into groups, as the seed's `_modscope_item_generator`: consecutive tests
//! of one module (the part of the id before `::`), then, within a module, tests that share a
//! parametrize id (the text in `[...]`), in order of first appearance.
//!
//! A group is the unit of dispatch: it goes to one worker, which runs it in order, so fixtures
//! scoped to a module or a parameter are set up once per group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::providers::Providers;
use crate::TestId;

/// Tests dispatched together to one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Test ids in the order they run.
    pub tests: Vec<TestId>,
    /// The provider the group's tests name, if any.
    pub provider: Option<String>,
}

/// How a collection is cut into groups; the pluggable part of scheduling.
pub trait GroupingPolicy: Send + Sync + std::fmt::Debug {
    /// Groups for `collection` (every test exactly once), tagged with their providers. Tests that
    /// share a `herd_group` name (`named`) should stay in one group.
    fn groups(
        &self,
        collection: &[TestId],
        providers: &Providers,
        named: &BTreeMap<TestId, String>,
    ) -> Vec<Group>;

    /// Whether consecutive one-test groups may be dealt together, in chunks sized from the
    /// remaining work (the `load` mode), rather than one group per request.
    fn chunked(&self) -> bool {
        false
    }

    /// Whether work stealing must keep each module's tests together (cut a worker's unstarted
    /// tests only where one module ends and the next begins).
    fn keeps_modules_whole(&self) -> bool {
        false
    }
}

/// The seed's policy: `herd_group` groups whole, then by module, then by parametrize id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Modscope;

impl GroupingPolicy for Modscope {
    fn groups(
        &self,
        collection: &[TestId],
        providers: &Providers,
        named: &BTreeMap<TestId, String>,
    ) -> Vec<Group> {
        make_groups(collection, providers, named)
    }
}

/// `--dist`: how tests are dealt out. Provider affinity and `herd_group` hold in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dist {
    /// The seed's: module, then parametrize id (shared module fixtures set up once per group).
    Modscope,
    /// Chunks sized from the remaining work: tests share no state, every worker stays busy.
    Load,
    /// One group per file (module).
    File,
    /// Only `herd_group` marks tie tests together; the rest is dealt as `load`.
    Group,
}

impl Dist {
    /// Every mode, for help texts.
    pub const ALL: [Dist; 4] = [Dist::Modscope, Dist::Load, Dist::File, Dist::Group];

    /// The mode's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dist::Modscope => "modscope",
            Dist::Load => "load",
            Dist::File => "file",
            Dist::Group => "group",
        }
    }

    /// The grouping policy that implements the mode.
    pub fn policy(self) -> std::sync::Arc<dyn GroupingPolicy> {
        match self {
            Dist::Modscope => std::sync::Arc::new(Modscope),
            Dist::File => std::sync::Arc::new(ByFile),
            Dist::Load | Dist::Group => std::sync::Arc::new(OneByOne),
        }
    }
}

impl std::str::FromStr for Dist {
    type Err = String;

    fn from_str(s: &str) -> Result<Dist, String> {
        Dist::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Dist::ALL.iter().map(|d| d.name()).collect();
                format!("unknown --dist {s:?} (known: {})", names.join(", "))
            })
    }
}

/// `--dist file`: `herd_group` groups whole, then one group per run of a module's tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByFile;

impl GroupingPolicy for ByFile {
    fn groups(
        &self,
        collection: &[TestId],
        providers: &Providers,
        named: &BTreeMap<TestId, String>,
    ) -> Vec<Group> {
        let (mut groups, rest) = named_groups(collection, providers, named);
        groups.extend(module_runs(&rest).map(|run| Group {
            tests: run.to_vec(),
            provider: provider_of(&run[0], providers),
        }));
        groups
    }

    fn keeps_modules_whole(&self) -> bool {
        true
    }
}

/// `--dist load` and `group`: `herd_group` groups whole, every other test alone (dealt in chunks).
#[derive(Debug, Clone, Copy, Default)]
pub struct OneByOne;

impl GroupingPolicy for OneByOne {
    fn groups(
        &self,
        collection: &[TestId],
        providers: &Providers,
        named: &BTreeMap<TestId, String>,
    ) -> Vec<Group> {
        let (mut groups, rest) = named_groups(collection, providers, named);
        groups.extend(rest.into_iter().map(|test| {
            let provider = provider_of(&test, providers);
            Group {
                tests: vec![test],
                provider,
            }
        }));
        groups
    }

    fn chunked(&self) -> bool {
        true
    }
}

/// The `herd_group` groups of `collection` (in order of first member) and the other tests.
fn named_groups(
    collection: &[TestId],
    providers: &Providers,
    named: &BTreeMap<TestId, String>,
) -> (Vec<Group>, Vec<TestId>) {
    let mut by_name: Vec<(&str, Vec<TestId>)> = Vec::new();
    let mut rest = Vec::new();
    for test in collection {
        match named.get(test) {
            Some(name) => match by_name.iter_mut().find(|(n, _)| n == name) {
                Some((_, tests)) => tests.push(test.clone()),
                None => by_name.push((name, vec![test.clone()])),
            },
            None => rest.push(test.clone()),
        }
    }
    let groups = by_name
        .into_iter()
        .map(|(_, tests)| Group {
            provider: provider_of(&tests[0], providers),
            tests,
        })
        .collect();
    (groups, rest)
}

/// The provider a test names in its parametrize id, if any.
pub fn provider_of(test: &str, providers: &Providers) -> Option<String> {
    param_id(test)
        .and_then(|p| providers.named_in(p))
        .map(str::to_string)
}

/// Consecutive runs of tests of one module, in order.
fn module_runs(tests: &[TestId]) -> impl Iterator<Item = &[TestId]> {
    tests.chunk_by(|a, b| module_of(a) == module_of(b))
}

/// The module part of a test id: everything before the first `::`.
pub fn module_of(test: &str) -> &str {
    test.split("::").next().unwrap_or(test)
}

/// The parametrize id of a test: the text between the first `[` and the last `]`.
pub fn param_id(test: &str) -> Option<&str> {
    let start = test.find('[')?;
    let rest = &test[start + 1..];
    Some(rest.rfind(']').map_or(rest, |end| &rest[..end]))
}

/// Cuts `collection` into groups by module, then by parametrize id (tests without one form the
/// module's "no params" group), and tags each group with the provider its tests name.
pub fn modscope_groups(collection: &[TestId], providers: &Providers) -> Vec<Group> {
    let mut groups = Vec::new();
    for run in module_runs(collection) {
        // Keys in order of first appearance; modules rarely hold many distinct ids.
        let mut by_param: Vec<(Option<&str>, Vec<TestId>)> = Vec::new();
        for test in run {
            let key = param_id(test);
            match by_param.iter_mut().find(|(k, _)| *k == key) {
                Some((_, tests)) => tests.push(test.clone()),
                None => by_param.push((key, vec![test.clone()])),
            }
        }
        for (key, tests) in by_param {
            let provider = key.and_then(|k| providers.named_in(k)).map(str::to_string);
            groups.push(Group { tests, provider });
        }
    }
    groups
}

/// Cuts `collection` into groups: tests that share a `herd_group` name (`named`) form one group
/// each, in collection order, never split; the others are grouped by [`modscope_groups`].
pub fn make_groups(
    collection: &[TestId],
    providers: &Providers,
    named: &BTreeMap<TestId, String>,
) -> Vec<Group> {
    let (mut groups, rest) = named_groups(collection, providers, named);
    groups.extend(modscope_groups(&rest, providers));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<TestId> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn module_and_param_id() {
        assert_eq!(module_of("tests/a.py::T::test_x[p1]"), "tests/a.py");
        assert_eq!(module_of("plain"), "plain");
        assert_eq!(param_id("a.py::t[rhv-1]"), Some("rhv-1"));
        assert_eq!(param_id("a.py::t[x[1]]"), Some("x[1]"));
        assert_eq!(param_id("a.py::t[open"), Some("open"));
        assert_eq!(param_id("a.py::t"), None);
    }

    #[test]
    fn groups_by_module_then_param_id_in_order() {
        let collection = ids(&[
            "a.py::t1[x]",
            "a.py::t1[y]",
            "a.py::t2[x]",
            "a.py::plain",
            "b.py::t[y]",
            "a.py::late",
        ]);
        let groups = modscope_groups(&collection, &Providers::default());
        let tests: Vec<Vec<TestId>> = groups.into_iter().map(|g| g.tests).collect();
        assert_eq!(
            tests,
            vec![
                ids(&["a.py::t1[x]", "a.py::t2[x]"]),
                ids(&["a.py::t1[y]"]),
                ids(&["a.py::plain"]),
                ids(&["b.py::t[y]"]),
                ids(&["a.py::late"]),
            ]
        );
    }

    #[test]
    fn every_test_lands_in_exactly_one_group() {
        let collection: Vec<TestId> = (0..500)
            .map(|i| format!("m{}.py::t{}[p{}]", i % 7, i, i % 3))
            .collect();
        let groups = modscope_groups(&collection, &Providers::default());
        let mut all: Vec<TestId> = groups.into_iter().flat_map(|g| g.tests).collect();
        all.sort();
        let mut expected = collection.clone();
        expected.sort();
        assert_eq!(all, expected);
    }

    #[test]
    fn named_groups_stay_whole_across_modules() {
        let collection = ids(&["a.py::t1", "b.py::t2", "a.py::t3", "c.py::t4", "b.py::t5"]);
        let named: BTreeMap<TestId, String> =
            [("b.py::t2", "db"), ("c.py::t4", "db"), ("a.py::t3", "solo")]
                .into_iter()
                .map(|(t, n)| (t.to_string(), n.to_string()))
                .collect();
        let groups = make_groups(&collection, &Providers::default(), &named);
        let tests: Vec<Vec<TestId>> = groups.into_iter().map(|g| g.tests).collect();
        assert_eq!(
            tests,
            vec![
                ids(&["b.py::t2", "c.py::t4"]),
                ids(&["a.py::t3"]),
                ids(&["a.py::t1"]),
                ids(&["b.py::t5"]),
            ]
        );
        assert_eq!(
            make_groups(&collection, &Providers::default(), &BTreeMap::new()).len(),
            5
        );
    }

    #[test]
    fn dist_modes_cut_the_collection_their_way() {
        let collection = ids(&[
            "a.py::t[x]",
            "a.py::t[y]",
            "a.py::u",
            "b.py::t",
            "a.py::g",
            "c.py::g",
        ]);
        let named: BTreeMap<TestId, String> = [("a.py::g", "db"), ("c.py::g", "db")]
            .into_iter()
            .map(|(t, n)| (t.into(), n.into()))
            .collect();
        let cut = |dist: Dist| -> Vec<Vec<TestId>> {
            dist.policy()
                .groups(&collection, &Providers::default(), &named)
                .into_iter()
                .map(|g| g.tests)
                .collect()
        };
        assert_eq!(
            cut(Dist::File),
            vec![
                ids(&["a.py::g", "c.py::g"]),
                ids(&["a.py::t[x]", "a.py::t[y]", "a.py::u"]),
                ids(&["b.py::t"])
            ]
        );
        let load = cut(Dist::Load);
        assert_eq!(load[0], ids(&["a.py::g", "c.py::g"]));
        assert!(load[1..].iter().all(|g| g.len() == 1) && load.len() == 5);
        assert!(Dist::Load.policy().chunked() && !Dist::Modscope.policy().chunked());
        assert_eq!("file".parse::<Dist>(), Ok(Dist::File));
        assert!("scope"
            .parse::<Dist>()
            .unwrap_err()
            .contains("known: modscope, load, file, group"));
        for dist in Dist::ALL {
            let mut all: Vec<TestId> = cut(dist).into_iter().flatten().collect();
            all.sort();
            let mut expected = collection.clone();
            expected.sort();
            assert_eq!(all, expected, "{dist:?} loses or repeats a test");
        }
    }

    #[test]
    fn groups_carry_their_provider() {
        let providers = Providers::new(["rhv", "rhv4", "vsphere"]);
        let groups = modscope_groups(
            &ids(&[
                "a.py::t[rhv4-x]",
                "a.py::t[vsphere]",
                "a.py::t[other]",
                "a.py::u",
            ]),
            &providers,
        );
        let provs: Vec<Option<&str>> = groups.iter().map(|g| g.provider.as_deref()).collect();
        assert_eq!(provs, vec![Some("rhv4"), Some("vsphere"), None, None]);
    }
}
