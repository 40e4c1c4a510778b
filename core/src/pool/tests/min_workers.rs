//! `--min-workers`: the pool deals nothing until enough workers have asked.

use super::*;

#[test]
fn dealing_waits_for_the_minimum_of_workers_or_an_open() {
    let tests = ["a.py::1", "b.py::1", "c.py::1"];
    let mut p = pool(Arc::new(ByFile), 3, "").with_min_workers(2);
    play(
        &mut p,
        vec![
            (reference(&tests), NONE),
            // The first worker waits, however often it asks, until a second one asks.
            (req("w1", 1), NONE),
            (req("w1", 1), NONE),
            (settled("w1", 0), NONE),
            (req("w2", 1), &["w1#1 <- [a.py::1]", "w2#1 <- [b.py::1]"]),
            (req("w3", 1), &["w3#1 <- [c.py::1]"]),
        ],
    );
    let mut p = pool(Arc::new(ByFile), 3, "").with_min_workers(3);
    play(
        &mut p,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), NONE),
            // Open: deal with those who came (the start timeout passed).
            (PoolInput::Open, &["w1#1 <- [a.py::1]"]),
            (req("w2", 1), &["w2#1 <- [b.py::1]"]),
        ],
    );
    let mut p = pool(Arc::new(ByFile), 3, "").with_min_workers(3);
    play(
        &mut p,
        vec![
            (reference(&tests), NONE),
            (req("w1", 1), NONE),
            // Halted before enough came: the waiting request is answered empty.
            (PoolInput::Halt, &["w1#1 <- []"]),
        ],
    );
}
