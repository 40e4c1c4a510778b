//! herd's pure policy: everything that decides *what* happens, with no actors, threads or
//! processes. The actor tree in `herd-actors` owns state and lifecycles and calls into this crate
//! for every decision, so each rule here is testable with plain unit tests.
//!
//! | module | concept |
//! |---|---|
//! | [`collection`] | the reference assembled from shards; file-by-file checks |
//! | [`protocol`] | wire protocol v1 between the coordinator and its workers |
//! | [`grouping`] | how a collection is cut into groups (module, then parametrize id) |
//! | [`history`] | test durations from earlier runs; groups dealt longest first |
//! | [`providers`] | which provider a test names and which group a worker gets next |
//! | [`session`] | the session's brain: running, draining, finishing; signals, budget, its end |
//! | [`slot`] | a worker slot's brain: its phase, incarnation, decisions and timers; what a death means |
//! | [`stealing`] | which unstarted tests an idle worker may take from a busy one |
//! | [`pool`] | the Scheduler's brain: the queue, worker views, dealing, steals, crash retries |
//! | [`text`] | text that cannot travel as it is: undecodable strings, oversized output |
//! | [`diff`] | comparing a worker's collection with the reference |
//! | [`outcome`] | a test's phases, its single final outcome, the tally and exit codes |
//! | [`ledger`] | every collected test's one outcome (exactly-once), not-run settling, `--maxfail` |
//! | [`liveness`] | telling a busy worker from a hung one (silence and CPU time) |
//! | [`roster`] | which slot a replica joining without naming one gets (elastic sessions) |
//! | [`restart`] | the respawn budget and the retirement rule for worker slots |
//! | [`events`] | the typed events of a session (`--events` JSON lines) |
//! | [`faults`] | seeded fault injection (`--chaos`, `FaultPlan`) |
//! | [`untrusted`] | peers not yet authenticated: their text escaped, their refusals rate-limited |

#![warn(missing_docs)]

pub mod collection;
pub mod controller;
pub mod diff;
pub mod events;
pub mod faults;
pub mod fork;
pub mod grouping;
pub mod history;
pub mod ledger;
pub mod liveness;
pub mod outcome;
pub mod pool;
pub mod protocol;
pub mod providers;
pub mod restart;
pub mod roster;
pub mod session;
pub mod slot;
pub mod stealing;
pub mod text;
pub mod untrusted;

/// A test's id, as its runner names it (for pytest, the node id).
pub type TestId = String;
