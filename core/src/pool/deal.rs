//! Which groups go out together: a worker's collected files first, then chunks sized from the
//! remaining work.

use std::collections::{HashSet, VecDeque};

use crate::grouping::{module_of, Group};
use crate::providers::Pick;

/// The first group of a file the worker has collected that it can take without switching
/// provider. The queue is walked once; a file's name is looked up only where the file changes.
pub fn collected_group(
    queue: &VecDeque<Group>,
    files: &HashSet<String>,
    held: Option<&str>,
) -> Option<Pick> {
    let mut module = "";
    let mut collected = false;
    let index = queue.iter().position(|g| {
        let first = module_of(&g.tests[0]);
        if first != module {
            module = first;
            collected = files.contains(first);
        }
        collected && (g.provider.is_none() || g.provider.as_deref() == held)
    })?;
    Some(Pick {
        index,
        provider: held.map(str::to_string),
        switch_from: None,
    })
}

/// Adds the groups that follow `index` in `queue` (from which `group` was just taken) to
/// `group`, up to a chunk sized from the remaining work: a quarter of each of the `workers`'
/// share, so chunks shrink as the session nears its end (work stealing evens out what is
/// left), and never more than 500 tests. Only groups of the same provider join; when `load`
/// (one-test groups dealt in chunks) any one-test group, otherwise only groups of the same
/// module (a module's parametrizations, which modscope deals as separate groups, go out
/// together instead of costing a round trip each).
pub fn fill_chunk(
    queue: &mut VecDeque<Group>,
    group: &mut Group,
    index: usize,
    workers: usize,
    load: bool,
) {
    if load && group.tests.len() != 1 {
        return;
    }
    let remaining: usize = queue.iter().map(|g| g.tests.len()).sum();
    let target = (remaining / (4 * workers.max(1))).clamp(1, 500);
    while group.tests.len() < target {
        let Some(next) = queue.get(index) else {
            break;
        };
        let joins = next.provider == group.provider
            && if load {
                next.tests.len() == 1
            } else {
                let last = group.tests.last().map_or("", |t| module_of(t));
                module_of(&next.tests[0]) == last
            };
        if !joins {
            break;
        }
        let next = queue.remove(index).expect("checked above");
        group.tests.extend(next.tests);
    }
}
