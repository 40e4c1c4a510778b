//! The pool: the Scheduler's brain as a sans-I/O state machine. It owns the queue of groups
//! (tests returned by dead workers first), which worker holds which provider, the requests that
//! wait, each worker's in-flight count, work stealing and crash retries.
//! [`Pool::handle`] takes one [`PoolInput`] and the time and returns the [`PoolEffect`]s for
//! the shell (`herd-actors`' Scheduler) to carry out; there is no actor, channel or clock here.
//! Workers are named by id, and requests and steal requests by incarnation.
//!
//! A request's life:
//!
//! ```text
//!   Request --> halted? --------------------------- yes --> Assign [] (answered empty)
//!                 | no
//!                 v
//!               a group it may take? -------------- yes --> Assign tests (served)
//!                 | no                                      (its collected files first,
//!                 v                                          chunked, provider affinity)
//!               a busy worker to ask back, or an
//!               ask still unanswered? ------------- yes --> AskBack victim; parked
//!                 | no
//!                 v
//!               it holds nothing, others do? ------ yes --> parked
//!                 | no
//!                 v
//!               Assign [] (answered empty: "no more")
//!
//!   parked --(tests come back, tests settle, the reference, halt)--> tried again from the top
//!   parked --(a new request from the same worker)--> replaced
//!   parked --(the worker is gone)--> dropped
//! ```
//!
//! A worker that still holds tests is answered at once (it may be blocked on the answer before
//! running its last test, as pytest's worker is), so no two workers ever wait on each other. A
//! parked worker *steals*: the worker holding the most tests is asked to give back the end of
//! its unstarted queue ([`StealPolicy`] decides what may go), and what comes back is dealt at
//! once. A worker is asked again only after its share has changed.
//!
//! An elastic session may wait for its first workers ([`Pool::with_min_workers`]): until that
//! many workers have asked, or [`PoolInput::Open`], every request is parked, so the first tests
//! are dealt over all of them rather than all to the first to join.
//!
//! For dealt tests, the pool writes the crash verdicts: a test that was running when its worker
//! died is re-queued up to `crash_retries` times, then finished as crashed.

mod deal;
#[cfg(test)]
mod tests;
pub mod view;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::collection::Reference;
use crate::events::Event;
use crate::grouping::{Group, GroupingPolicy};
use crate::history::History;
use crate::outcome::{Outcome, Verdict};
use crate::providers::{pick, Pick, Providers};
use crate::stealing::StealPolicy;
use crate::TestId;

use view::Parked;
pub use view::View;

/// A worker's request for its next group.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Worker id.
    pub worker: String,
    /// The incarnation that asked; the answer names it.
    pub incarnation: u32,
    /// The files the worker's process has collected, when it collected only some: groups of
    /// these files are preferred (no collection to pay).
    pub collected: Option<Arc<HashSet<String>>>,
    /// The tests the worker holds and has not started (its load, for a steal on its behalf).
    pub holding: Vec<TestId>,
}

/// The test that was running when its worker died.
#[derive(Debug, Clone, PartialEq)]
pub struct Crash {
    /// Test id.
    pub test: TestId,
    /// Seconds it ran.
    pub duration: f64,
    /// The crash report (exit status, last output lines).
    pub details: String,
}

/// What the pool is told.
#[derive(Debug, Clone)]
pub enum PoolInput {
    /// The reference collection is known: the queue is built from it.
    Reference(Arc<Reference>),
    /// A worker asks for its next group.
    Request(Request),
    /// Tests come back: unstarted tests of a dead worker (and the one it was running), or the
    /// answer to a steal request.
    Returned {
        /// Worker id.
        worker: String,
        /// Tests that had not started, in order.
        tests: Vec<TestId>,
        /// The test that was running when the worker died.
        crashed: Option<Crash>,
        /// Whether this answers an [`PoolEffect::AskBack`] (the worker lives on).
        stolen: bool,
    },
    /// Tests of a worker reached their final outcome.
    Settled {
        /// Worker id.
        worker: String,
        /// How many.
        count: usize,
    },
    /// A worker slot is gone: its provider, waiting request and pending steal are forgotten.
    Gone {
        /// Worker id.
        worker: String,
    },
    /// Stop dealing: the queue is cleared and every waiting request answered empty.
    Halt,
    /// Deal now, however few workers have asked (see [`Pool::with_min_workers`]).
    Open,
}

/// What the shell is to do.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolEffect {
    /// Answer a worker's request: tests to run (empty: no more work), and `(from, to)` when it
    /// must switch provider first.
    Assign {
        /// Worker id.
        worker: String,
        /// The incarnation that asked.
        incarnation: u32,
        /// Tests to run, in order.
        tests: Vec<TestId>,
        /// The provider switch to make (and cleanse for) before running them.
        switch: Option<(String, String)>,
    },
    /// Ask a worker to give back the end of its unstarted queue, as [`Pool::steal_policy`]
    /// allows (a steal request; answered with [`PoolInput::Returned`] `stolen: true`).
    AskBack {
        /// The worker asked (the victim).
        worker: String,
        /// Its incarnation asked.
        incarnation: u32,
        /// The idle worker the tests are for (the thief).
        thief: String,
        /// The expected seconds of work the thief holds.
        thief_load: f64,
    },
    /// Publish an event.
    Publish(Event),
}

/// The pool of groups and the pool's view of every worker.
#[derive(Debug)]
pub struct Pool {
    queue: VecDeque<Group>,
    grouping: Arc<dyn GroupingPolicy>,
    history: Arc<History>,
    workers: usize,
    providers: Providers,
    named: BTreeMap<TestId, String>,
    views: BTreeMap<String, View>,
    next_seq: u64,
    steal_policy: Arc<StealPolicy>,
    sent: usize,
    total: usize,
    halted: bool,
    crash_retries: u32,
    crashes: BTreeMap<TestId, u32>,
    /// Dealing waits until this many distinct workers have asked (or [`PoolInput::Open`]).
    min_workers: usize,
    /// The workers that have asked so far, while dealing waits.
    asked: HashSet<String>,
}

impl Pool {
    /// An empty pool for `workers` slots; [`PoolInput::Reference`] fills it with `grouping`'s
    /// groups (longest first by `history`).
    pub fn new(
        grouping: Arc<dyn GroupingPolicy>,
        history: History,
        workers: usize,
        providers: Providers,
        crash_retries: u32,
    ) -> Pool {
        Pool {
            queue: VecDeque::new(),
            grouping,
            history: Arc::new(history),
            workers,
            providers,
            named: BTreeMap::new(),
            views: BTreeMap::new(),
            next_seq: 0,
            steal_policy: Arc::default(),
            sent: 0,
            total: 0,
            halted: false,
            crash_retries,
            crashes: BTreeMap::new(),
            min_workers: 0,
            asked: HashSet::new(),
        }
    }

    /// The pool deals nothing until `n` distinct workers have asked for work (or until
    /// [`PoolInput::Open`]); their requests wait.
    pub fn with_min_workers(mut self, n: usize) -> Pool {
        self.min_workers = n;
        self
    }

    /// Whether dealing still waits for workers to join.
    fn waiting_for_workers(&self) -> bool {
        self.min_workers > 1 && self.asked.len() < self.min_workers
    }

    /// Handles one input at `now`; the effects are in the order they are to be carried out.
    pub fn handle(&mut self, input: PoolInput, now: Instant) -> Vec<PoolEffect> {
        let mut out = Vec::new();
        match input {
            PoolInput::Reference(reference) => self.set_reference(&reference, now, &mut out),
            PoolInput::Request(request) => self.request(request, now, &mut out),
            PoolInput::Returned {
                worker,
                tests,
                crashed,
                stolen,
            } => self.returned(worker, tests, crashed, stolen, now, &mut out),
            PoolInput::Settled { worker, count } => {
                self.view(&worker).settle(count);
                // A parked worker tries again: everything may be done, or a busy worker's share
                // has changed and it can be asked for tests back.
                self.serve_parked(now, &mut out);
            }
            PoolInput::Gone { worker } => self.view(&worker).forget(),
            PoolInput::Halt => {
                self.halted = true;
                self.queue.clear();
                self.serve_parked(now, &mut out);
            }
            PoolInput::Open => {
                self.min_workers = 0;
                self.serve_parked(now, &mut out);
            }
        }
        out
    }

    /// How many tests are still queued (none once halted).
    pub fn remaining(&self) -> usize {
        if self.halted {
            return 0;
        }
        self.queue.iter().map(|g| g.tests.len()).sum()
    }

    /// What a worker asked back may give: never part of a `herd_group`, never a provider's
    /// tests, and (`--dist file`) never part of a module.
    pub fn steal_policy(&self) -> &Arc<StealPolicy> {
        &self.steal_policy
    }

    /// The pool's view of `worker`, if it has one.
    pub fn worker(&self, worker: &str) -> Option<&View> {
        self.views.get(worker)
    }

    fn view(&mut self, worker: &str) -> &mut View {
        if !self.views.contains_key(worker) {
            self.views.insert(worker.to_string(), View::default());
        }
        self.views.get_mut(worker).expect("inserted above")
    }

    fn set_reference(&mut self, reference: &Reference, now: Instant, out: &mut Vec<PoolEffect>) {
        self.named = reference.herd_groups.clone();
        self.steal_policy = Arc::new(
            StealPolicy::new(self.named.clone(), self.providers.clone())
                .keeping_modules_whole(self.grouping.keeps_modules_whole())
                .with_history(self.history.clone()),
        );
        let groups = self
            .grouping
            .groups(&reference.tests, &self.providers, &self.named);
        // Longest first (LPT) when earlier runs tell the durations.
        self.queue = self.history.longest_first(groups, &self.named).into();
        self.total = reference.tests.len();
        self.serve_parked(now, out);
    }

    fn request(&mut self, request: Request, now: Instant, out: &mut Vec<PoolEffect>) {
        let view = self.view(&request.worker);
        view.parked = None;
        view.incarnation = Some(request.incarnation);
        if self.waiting_for_workers() {
            // Parked until enough workers have asked; the last of them opens the dealing.
            self.asked.insert(request.worker.clone());
            let seq = self.next_seq;
            self.next_seq += 1;
            self.park(Parked { seq, request });
            return self.serve_parked(now, out);
        }
        if let Some(waiting) = self.serve(request, now, out) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.park(Parked {
                seq,
                request: waiting,
            });
        }
    }

    fn park(&mut self, parked: Parked) {
        let view = self.view(&parked.request.worker);
        view.parked = Some(parked);
    }

    /// Answers `request` now if it can; returns it if it must wait.
    fn serve(
        &mut self,
        request: Request,
        now: Instant,
        out: &mut Vec<PoolEffect>,
    ) -> Option<Request> {
        if self.halted {
            out.push(assign(&request, Vec::new(), None));
            return None;
        }
        let Some(choice) = self.choose(&request) else {
            // Nothing queued: tests asked back from a busy worker will come (wait for them), or
            // an idle worker waits for work that may yet return; a worker that still holds
            // tests is told at once that there is no more.
            if self.steal_for(&request, now, out) {
                return Some(request);
            }
            let own = self.views.get(&request.worker).map_or(0, |v| v.in_flight);
            if own == 0 && self.views.values().any(|v| v.in_flight > 0) {
                return Some(request);
            }
            out.push(assign(&request, Vec::new(), None));
            return None;
        };
        self.deal(&request, choice, out);
        None
    }

    /// The group for `request`: one of its collected files first, else [`pick`]'s choice.
    fn choose(&self, request: &Request) -> Option<Pick> {
        let worker = request.worker.as_str();
        let held = self.views.get(worker).and_then(|v| v.provider.as_deref());
        let others = |p: &str| {
            self.views
                .iter()
                .any(|(w, v)| w != worker && v.provider.as_deref() == Some(p))
        };
        let preferred = request
            .collected
            .as_deref()
            .and_then(|files| deal::collected_group(&self.queue, files, held));
        preferred.or_else(|| pick(&self.queue, held, others))
    }

    /// Takes the chosen group (and the chunk that follows it) out of the queue and sends it.
    fn deal(&mut self, request: &Request, choice: Pick, out: &mut Vec<PoolEffect>) {
        let mut group = self
            .queue
            .remove(choice.index)
            .expect("pick returns a valid index");
        let load = self.grouping.chunked();
        deal::fill_chunk(
            &mut self.queue,
            &mut group,
            choice.index,
            self.workers,
            load,
        );
        let n = group.tests.len();
        let view = self.view(&request.worker);
        if let Some(provider) = &choice.provider {
            view.provider = Some(provider.clone());
        }
        view.in_flight += n;
        self.sent += n;
        out.push(PoolEffect::Publish(Event::GroupSent {
            worker: request.worker.clone(),
            tests: n,
            sent: self.sent,
            total: self.total,
        }));
        let switch = choice.switch_from.zip(choice.provider);
        out.push(assign(request, group.tests, switch));
    }

    /// Asks the worker holding the most tests (at least one beyond the one it runs) to give
    /// back the end of its queue, unless it was already asked at its current share or has not
    /// answered the last request yet. Whether an answer is on its way.
    fn steal_for(&mut self, request: &Request, now: Instant, out: &mut Vec<PoolEffect>) -> bool {
        let thief = request.worker.as_str();
        let victim = self
            .views
            .iter()
            .filter(|(w, v)| v.askable(w, thief))
            .max_by_key(|(w, v)| (v.in_flight, std::cmp::Reverse(w.as_str())))
            .map(|(w, _)| w.clone());
        let Some(victim) = victim else {
            return self.views.values().any(View::answer_pending);
        };
        let policy = &self.steal_policy;
        let thief_load = request.holding.iter().map(|t| policy.expected(t)).sum();
        let view = self.view(&victim);
        view.ask(now);
        let incarnation = view.incarnation.expect("an askable worker is live");
        out.push(PoolEffect::AskBack {
            worker: victim,
            incarnation,
            thief: request.worker.clone(),
            thief_load,
        });
        true
    }

    /// Tests come back: a crashed test is re-queued or finished as crashed, the rest go to the
    /// front of the queue, and waiting requests are tried again.
    fn returned(
        &mut self,
        worker: String,
        mut tests: Vec<TestId>,
        crashed: Option<Crash>,
        stolen: bool,
        now: Instant,
        out: &mut Vec<PoolEffect>,
    ) {
        let mut returned = tests.len();
        if let Some(crash) = crashed {
            returned += 1;
            if let Some(retry) = self.crash_verdict(&worker, crash, out) {
                tests.insert(0, retry);
            }
        }
        let view = self.view(&worker);
        view.settle(returned);
        if stolen {
            view.unanswered = None;
        }
        if !tests.is_empty() {
            self.sent = self.sent.saturating_sub(tests.len());
            let event = if stolen {
                Event::WorkStolen {
                    from: worker,
                    tests: tests.len(),
                }
            } else {
                Event::TestsRequeued {
                    worker,
                    tests: tests.clone(),
                }
            };
            out.push(PoolEffect::Publish(event));
            let groups = self.grouping.groups(&tests, &self.providers, &self.named);
            for group in groups.into_iter().rev() {
                self.queue.push_front(group);
            }
        }
        self.serve_parked(now, out);
    }

    /// The test to re-run if `--crash-retries` allows another try; otherwise its crashed
    /// verdict is published.
    fn crash_verdict(
        &mut self,
        worker: &str,
        crash: Crash,
        out: &mut Vec<PoolEffect>,
    ) -> Option<TestId> {
        let count = self.crashes.entry(crash.test.clone()).or_default();
        *count += 1;
        if *count <= self.crash_retries {
            return Some(crash.test);
        }
        let message = crash.details.lines().next().map(str::to_string);
        let verdict = Verdict::decided(
            Outcome::Crashed,
            crash.duration,
            message,
            Some(crash.details),
        );
        out.push(PoolEffect::Publish(Event::TestFinished {
            test: crash.test,
            worker: Some(worker.to_string()),
            verdict,
        }));
        None
    }

    /// Tries every waiting request again, longest waiting first; those that must still wait
    /// keep their place.
    fn serve_parked(&mut self, now: Instant, out: &mut Vec<PoolEffect>) {
        if self.waiting_for_workers() && !self.halted {
            return;
        }
        let mut parked: Vec<Parked> = self
            .views
            .values_mut()
            .filter_map(|v| v.parked.take())
            .collect();
        if parked.is_empty() {
            return;
        }
        parked.sort_by_key(|p| p.seq);
        for Parked { seq, request } in parked {
            if let Some(request) = self.serve(request, now, out) {
                self.park(Parked { seq, request });
            }
        }
    }
}

fn assign(request: &Request, tests: Vec<TestId>, switch: Option<(String, String)>) -> PoolEffect {
    PoolEffect::Assign {
        worker: request.worker.clone(),
        incarnation: request.incarnation,
        tests,
        switch,
    }
}
