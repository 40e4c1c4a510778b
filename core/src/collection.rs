//! Collection paid once: the reference collection assembled from shards, and each worker's
//! later, file by file, collection checked against it.
//!
//! Collecting a large pytest suite costs as much as running it. Instead of every worker
//! collecting everything, each of the first workers is given a *shard*: it walks the whole tree
//! (cheap: it lists the test files, `files`) but imports and collects only the files whose
//! position in that list is `index` modulo `count`. The shards together are the reference. A
//! worker that is later dealt tests of a file it has not collected collects that file then and
//! reports it (`file_collection`); that report is checked against the reference's tests of the
//! file before any of them runs. Every collection is still checked: the file list of each
//! worker, and the tests of each file each worker collects.
//!
//! A test belongs to the file named by its id up to the first `::` ([`module_of`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::diff::collection_diff;
use crate::grouping::module_of;
use crate::protocol::CollectionError;
use crate::TestId;

/// What a worker is asked to collect before it reports its collection (sent in `welcome`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CollectScope {
    /// Everything (the default, and all a worker that ignores scopes does).
    All,
    /// The files at positions `index`, `index + count`, ... of the walk.
    Shard {
        /// This shard's number, from 0.
        index: usize,
        /// How many shards there are.
        count: usize,
    },
    /// Nothing yet: files are collected when their tests are dealt.
    Lazy,
    /// Everything, but report only its [`digest`] (the coordinator already has the reference;
    /// it asks for the ids with `collection_needed` when the digests differ, to show the diff).
    Digest,
}

impl CollectScope {
    /// Whether the file at `position` of the walk belongs to this scope.
    pub fn covers(&self, position: usize) -> bool {
        match self {
            CollectScope::All => true,
            CollectScope::Shard { index, count } => position % count.max(&1) == *index,
            CollectScope::Lazy => false,
            CollectScope::Digest => true,
        }
    }
}

/// The digest of a collection: SHA-256 (hex) of its ids, sorted, each followed by a newline.
/// Order does not matter (as for the diff); a duplicated id does.
pub fn digest(tests: &[TestId]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut sorted: Vec<&str> = tests.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for id in sorted {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A worker's collection as the coordinator checks it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// The collected ids.
    pub tests: Vec<TestId>,
    /// Failed collectors.
    pub errors: Vec<CollectionError>,
    /// `herd_group` names by test id.
    pub herd_groups: BTreeMap<TestId, String>,
    /// Every test file of the walk, in order (`None`: the worker collected everything).
    pub files: Option<Vec<String>>,
    /// What the worker collected (`None`: everything).
    pub scope: Option<CollectScope>,
    /// The [`digest`] of the whole collection, sent instead of the ids.
    pub digest: Option<String>,
    /// Collected tests the runner left out (`-k`, `-m`).
    pub deselected: Vec<TestId>,
}

impl Part {
    /// Whether this part is a whole collection (possibly as a digest).
    pub fn is_whole(&self) -> bool {
        self.files.is_none()
            || matches!(
                self.scope,
                None | Some(CollectScope::All | CollectScope::Digest)
            )
    }
}

/// The reference collection, indexed by file.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Every test, in order.
    pub tests: Vec<TestId>,
    /// `herd_group` names by test id.
    pub herd_groups: BTreeMap<TestId, String>,
    /// The walk's test files, when the reference was assembled from shards.
    pub files: Option<Vec<String>>,
    /// Collected tests the runner left out (`-k`, `-m`), each once.
    pub deselected: Vec<TestId>,
    /// Positions in `tests` of each file's tests (built when first needed).
    by_file: OnceLock<HashMap<String, Vec<usize>>>,
    /// The [`digest`] of `tests` (computed when first needed).
    digest: OnceLock<String>,
}

impl PartialEq for Reference {
    fn eq(&self, other: &Reference) -> bool {
        // The file index is derived from the rest.
        (&self.tests, &self.herd_groups, &self.files)
            == (&other.tests, &other.herd_groups, &other.files)
    }
}

impl Reference {
    /// A reference from one whole collection.
    pub fn whole(tests: Vec<TestId>, herd_groups: BTreeMap<TestId, String>) -> Reference {
        Reference {
            tests,
            herd_groups,
            files: None,
            deselected: Vec::new(),
            by_file: OnceLock::new(),
            digest: OnceLock::new(),
        }
    }

    /// The reference's tests of `file`, in order.
    pub fn tests_of(&self, file: &str) -> Vec<TestId> {
        let by_file = self.by_file.get_or_init(|| by_file_positions(&self.tests));
        by_file.get(file).map_or_else(Vec::new, |positions| {
            positions.iter().map(|&i| self.tests[i].clone()).collect()
        })
    }

    /// Whether a collection sent as a digest matches; `None` when it was sent as ids.
    pub fn digest_matches(&self, part: &Part) -> Option<bool> {
        let sent = part.digest.as_ref()?;
        Some(*sent == *self.digest.get_or_init(|| digest(&self.tests)))
    }

    /// Checks a worker's collection; a unified diff (and any errors) when it differs. A
    /// collection sent as a digest is checked with [`Reference::digest_matches`] instead.
    pub fn check(&self, part: &Part, worker: &str) -> Option<String> {
        let mut diff = if part.is_whole() {
            collection_diff(&self.tests, &part.tests, worker)
        } else {
            let files = part.files.as_deref().unwrap_or_default();
            self.check_files(files, worker).or_else(|| {
                let scope = part.scope.clone().unwrap_or(CollectScope::All);
                let covered: Vec<&String> = files
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| scope.covers(*i))
                    .map(|(_, f)| f)
                    .collect();
                let expected: Vec<TestId> = covered.iter().flat_map(|f| self.tests_of(f)).collect();
                collection_diff(&expected, &part.tests, worker)
            })
        };
        if !part.errors.is_empty() {
            let failed: Vec<&str> = part.errors.iter().map(|e| e.nodeid.as_str()).collect();
            let text = diff.take().unwrap_or_default();
            diff = Some(format!(
                "{text}collection errors in: {}\n",
                failed.join(", ")
            ));
        }
        diff
    }

    /// Checks the tests a worker collected from one file.
    pub fn check_file(&self, file: &str, tests: &[TestId], worker: &str) -> Option<String> {
        collection_diff(&self.tests_of(file), tests, &format!("{worker} {file}"))
    }

    fn check_files(&self, files: &[String], worker: &str) -> Option<String> {
        let reference = self.files.as_ref()?;
        (reference.as_slice() != files).then(|| files_diff(reference, files, worker))
    }
}

fn by_file_positions(tests: &[TestId]) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, test) in tests.iter().enumerate() {
        match map.get_mut(module_of(test)) {
            Some(positions) => positions.push(i),
            None => {
                map.insert(module_of(test).to_string(), vec![i]);
            }
        }
    }
    map
}

fn files_diff(reference: &[String], files: &[String], worker: &str) -> String {
    let text = |f: &[String]| f.iter().map(|f| format!("{f}\n")).collect::<String>();
    let (old, new) = (text(reference), text(files));
    let diff = similar::TextDiff::from_lines(&old, &new);
    format!(
        "the test files differ:\n{}",
        diff.unified_diff()
            .context_radius(2)
            .header("reference files", &format!("{worker} files"))
    )
}

/// The reference assembled from shards as workers report them.
#[derive(Debug, Clone)]
pub struct ShardedReference {
    parts: Vec<Option<Part>>,
    owners: Vec<Option<String>>,
}

impl ShardedReference {
    /// `count` shards, none assigned.
    pub fn new(count: usize) -> ShardedReference {
        ShardedReference {
            parts: vec![None; count.max(1)],
            owners: vec![None; count.max(1)],
        }
    }

    /// What `worker` (saying hello) should collect: the shard it already owns and has not
    /// delivered, else the first shard nobody owns, else nothing until its tests are dealt.
    pub fn assign(&mut self, worker: &str) -> CollectScope {
        let count = self.parts.len();
        let undelivered = |i: usize| self.parts[i].is_none();
        let own = (0..count).find(|&i| undelivered(i) && self.owners[i].as_deref() == Some(worker));
        let free = || (0..count).find(|&i| undelivered(i) && self.owners[i].is_none());
        match own.or_else(free) {
            Some(index) => {
                self.owners[index] = Some(worker.to_string());
                CollectScope::Shard { index, count }
            }
            None => CollectScope::Lazy,
        }
    }

    /// `worker` is gone for good: its undelivered shard goes to the next worker that asks.
    /// Whether a shard was orphaned.
    pub fn release(&mut self, worker: &str) -> bool {
        let mut orphaned = false;
        for (owner, part) in self.owners.iter_mut().zip(&self.parts) {
            if owner.as_deref() == Some(worker) && part.is_none() {
                *owner = None;
                orphaned = true;
            }
        }
        orphaned
    }

    /// How many shards have no owner and no part yet.
    pub fn unowned(&self) -> usize {
        self.owners
            .iter()
            .zip(&self.parts)
            .filter(|(o, p)| o.is_none() && p.is_none())
            .count()
    }

    /// Whether `worker` owns a shard (delivered or not).
    pub fn owns_any(&self, worker: &str) -> bool {
        self.owners.iter().any(|o| o.as_deref() == Some(worker))
    }

    /// Whether `worker` owns shards and has delivered them all (it waits for the others).
    pub fn has_delivered(&self, worker: &str) -> bool {
        self.owns_any(worker)
            && self
                .owners
                .iter()
                .zip(&self.parts)
                .all(|(o, p)| o.as_deref() != Some(worker) || p.is_some())
    }

    /// Adds a shard's part (or checks a lazy worker's file list). `Err` holds the diff when the
    /// worker's file list differs from the other shards'; `Ok(Some)` is the complete reference.
    pub fn add(&mut self, part: Part, worker: &str) -> Result<Option<Reference>, String> {
        let files = part.files.clone().unwrap_or_default();
        if let Some(known) = self.parts.iter().flatten().find_map(|p| p.files.as_ref()) {
            if *known != files {
                return Err(files_diff(known, &files, worker));
            }
        }
        if let Some(CollectScope::Shard { index, count }) = part.scope {
            if count == self.parts.len() && index < count && self.parts[index].is_none() {
                self.parts[index] = Some(part);
            }
        }
        if self.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(self.assemble(files)))
    }

    /// Every collection error reported so far.
    pub fn errors(&self) -> Vec<CollectionError> {
        self.parts
            .iter()
            .flatten()
            .flat_map(|p| p.errors.iter().cloned())
            .collect()
    }

    fn assemble(&self, files: Vec<String>) -> Reference {
        let mut by_file: HashMap<String, Vec<TestId>> = HashMap::new();
        let mut herd_groups = BTreeMap::new();
        let mut elsewhere = Vec::new();
        let mut deselected = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for part in self.parts.iter().flatten() {
            herd_groups.extend(part.herd_groups.clone());
            // Each shard left out the tests of its own files.
            deselected.extend(part.deselected.iter().filter(|t| seen.insert(*t)).cloned());
            for test in &part.tests {
                by_file
                    .entry(module_of(test).to_string())
                    .or_default()
                    .push(test.clone());
            }
        }
        let mut tests = Vec::new();
        for file in &files {
            if let Some(list) = by_file.get(file) {
                tests.extend(list.iter().cloned());
            }
        }
        // Ids that do not start with a file of the walk keep their shard's order, last.
        for (file, list) in &by_file {
            if !files.contains(file) {
                elsewhere.extend(list.iter().cloned());
            }
        }
        elsewhere.sort();
        tests.extend(elsewhere);
        Reference {
            by_file: OnceLock::new(),
            digest: OnceLock::new(),
            tests,
            herd_groups,
            files: Some(files),
            deselected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<TestId> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn shard(index: usize, count: usize, files: &[&str], tests: &[&str]) -> Part {
        Part {
            tests: ids(tests),
            files: Some(ids(files)),
            scope: Some(CollectScope::Shard { index, count }),
            ..Part::default()
        }
    }

    #[test]
    fn a_digest_ignores_order_but_not_content() {
        let a = digest(&ids(&["x", "y"]));
        assert_eq!(a, digest(&ids(&["y", "x"])));
        assert_ne!(a, digest(&ids(&["x", "y", "y"])));
        assert_ne!(a, digest(&ids(&["xy"])));
        assert_eq!(a.len(), 64);
        let reference = Reference::whole(ids(&["x", "y"]), BTreeMap::new());
        let sent = |d: String| Part {
            digest: Some(d),
            scope: Some(CollectScope::Digest),
            ..Part::default()
        };
        assert_eq!(reference.digest_matches(&sent(a)), Some(true));
        assert_eq!(reference.digest_matches(&sent("0".repeat(64))), Some(false));
        assert_eq!(reference.digest_matches(&Part::default()), None);
    }

    #[test]
    fn shards_are_assigned_once_and_orphans_are_reassigned() {
        let mut sharded = ShardedReference::new(2);
        assert_eq!(
            sharded.assign("w1"),
            CollectScope::Shard { index: 0, count: 2 }
        );
        assert_eq!(
            sharded.assign("w2"),
            CollectScope::Shard { index: 1, count: 2 }
        );
        // A respawned w1 collects its shard again; a third worker has nothing to shard.
        assert_eq!(
            sharded.assign("w1"),
            CollectScope::Shard { index: 0, count: 2 }
        );
        assert_eq!(sharded.assign("w3"), CollectScope::Lazy);
        assert!(sharded.release("w1"));
        assert_eq!(sharded.unowned(), 1);
        assert!(!sharded.owns_any("w1") && sharded.owns_any("w2"));
        assert!(!sharded.has_delivered("w2"));
        assert_eq!(
            sharded.assign("w3"),
            CollectScope::Shard { index: 0, count: 2 }
        );
    }

    #[test]
    fn shards_assemble_in_walk_order_and_files_are_checked() {
        let files = ["a.py", "b.py", "c.py"];
        let mut sharded = ShardedReference::new(2);
        let first = shard(1, 2, &files, &["b.py::t1", "b.py::t2"]);
        assert_eq!(sharded.add(first, "w2"), Ok(None));
        let other_files = shard(0, 2, &["a.py", "c.py"], &["a.py::t"]);
        let diff = sharded.add(other_files, "w1").unwrap_err();
        assert!(diff.contains("-b.py"), "{diff}");
        let second = shard(0, 2, &files, &["a.py::t", "c.py::t"]);
        let reference = sharded.add(second, "w1").unwrap().unwrap();
        assert_eq!(
            reference.tests,
            ids(&["a.py::t", "b.py::t1", "b.py::t2", "c.py::t"])
        );
        assert_eq!(
            reference.tests_of("b.py"),
            &ids(&["b.py::t1", "b.py::t2"])[..]
        );
    }

    #[test]
    fn each_file_and_each_part_is_checked_against_the_reference() {
        let files = ["a.py", "b.py"];
        let mut sharded = ShardedReference::new(1);
        let reference = sharded
            .add(shard(0, 1, &files, &["a.py::t", "b.py::u"]), "w1")
            .unwrap()
            .unwrap();
        assert_eq!(reference.check_file("b.py", &ids(&["b.py::u"]), "w2"), None);
        let diff = reference
            .check_file("b.py", &ids(&["b.py::u", "b.py::v"]), "w2")
            .unwrap();
        assert!(diff.contains("+b.py::v"), "{diff}");
        let lazy = Part {
            files: Some(ids(&files)),
            scope: Some(CollectScope::Lazy),
            ..Part::default()
        };
        assert_eq!(reference.check(&lazy, "w2"), None);
        let wrong_shard = Part {
            scope: Some(CollectScope::Shard { index: 0, count: 2 }),
            ..shard(0, 2, &files, &["a.py::t", "a.py::extra"])
        };
        assert!(reference.check(&wrong_shard, "w2").is_some());
        let whole = Part {
            tests: ids(&["a.py::t", "b.py::u"]),
            ..Part::default()
        };
        assert_eq!(reference.check(&whole, "w3"), None);
    }
}
