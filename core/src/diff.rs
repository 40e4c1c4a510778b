//! Comparing a worker's collection with the reference, as sorted lists.

use similar::TextDiff;

use crate::TestId;

/// A unified diff from the reference collection to a worker's, or `None` when they hold exactly
/// the same ids (order does not matter; a duplicated id does).
pub fn collection_diff(
    reference: &[TestId],
    worker: &[TestId],
    worker_name: &str,
) -> Option<String> {
    let (reference, worker) = (sorted(reference), sorted(worker));
    if reference == worker {
        return None;
    }
    let lines = |ids: Vec<&str>| ids.iter().map(|id| format!("{id}\n")).collect::<String>();
    let (old, new) = (lines(reference), lines(worker));
    let diff = TextDiff::from_lines(&old, &new);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header("reference", worker_name)
            .to_string(),
    )
}

fn sorted(ids: &[TestId]) -> Vec<&str> {
    let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids
}

/// Why a collection cannot be a reference because it names tests more than once (up to ten
/// shown), or `None` when every id is unique.
pub fn duplicates_error(collection: &[TestId]) -> Option<String> {
    let dups = duplicates(collection);
    if dups.is_empty() {
        return None;
    }
    let shown: Vec<&str> = dups.iter().take(10).map(String::as_str).collect();
    let more = if dups.len() > 10 { ", ..." } else { "" };
    Some(format!(
        "the collection names {} test ids more than once: {}{more}",
        dups.len(),
        shown.join(", ")
    ))
}

/// Test ids that occur more than once, each named once, in sorted order.
pub fn duplicates(collection: &[TestId]) -> Vec<TestId> {
    let mut sorted: Vec<&TestId> = collection.iter().collect();
    sorted.sort_unstable();
    let mut dups: Vec<TestId> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    dups.dedup();
    dups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<TestId> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn same_ids_in_another_order_match() {
        assert_eq!(
            collection_diff(&ids(&["a", "b", "c"]), &ids(&["c", "a", "b"]), "w1"),
            None
        );
    }

    #[test]
    fn a_mismatch_is_a_unified_diff() {
        let diff = collection_diff(&ids(&["a", "b", "c"]), &ids(&["a", "c", "d"]), "w2").unwrap();
        assert!(diff.starts_with("--- reference\n+++ w2\n"), "{diff}");
        assert!(diff.contains("\n-b\n"), "{diff}");
        assert!(diff.contains("\n+d\n"), "{diff}");
        assert!(diff.contains("@@"), "{diff}");
    }

    #[test]
    fn a_duplicate_is_a_mismatch() {
        assert!(collection_diff(&ids(&["a", "b"]), &ids(&["a", "b", "b"]), "w1").is_some());
        assert_eq!(
            duplicates(&ids(&["b", "a", "b", "c", "b", "a"])),
            ids(&["a", "b"])
        );
        assert!(duplicates(&ids(&["a", "b"])).is_empty());
        assert_eq!(
            duplicates_error(&ids(&["b", "a", "b"])).unwrap(),
            "the collection names 1 test ids more than once: b"
        );
        assert_eq!(duplicates_error(&ids(&["a"])), None);
    }
}
