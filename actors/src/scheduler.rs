//! The Scheduler: owns the pool of groups, the tests returned by dead workers (served first) and
//! provider allocation. The choice of group is [`herd_core::providers::pick`]; this actor only
//! keeps the state.
//!
//! A request from an idle worker (one holding no tests) that finds the pool empty while tests are
//! still out on other workers is *parked*, not answered "no more work": if one of those workers
//! dies, its tests come back and a parked worker takes them, so a test is never stranded at the
//! tail of a session. A worker that still holds tests is answered at once (it may be blocked on
//! the answer before running its last test, as pytest's worker is), so no two workers ever wait
//! on each other.
//!
//! A parked worker also *steals*: the worker holding the most tests is asked to give back the end
//! of its unstarted queue ([`StealPolicy`] decides what may go), and what comes back is dealt at
//! once. A worker is asked again only after its share has changed, so a worker with nothing to
//! give is not asked in a loop.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use herd_core::events::Event;
use herd_core::grouping::{module_of, Group, GroupingPolicy};
use herd_core::history::History;
use herd_core::outcome::{Outcome, Verdict};
use herd_core::providers::{pick, Pick, Providers};
use herd_core::stealing::StealPolicy;
use herd_core::TestId;

use crate::messages::*;
use crate::reporter::Reporter;

/// The actor that deals out groups.
pub struct Scheduler {
    queue: VecDeque<Group>,
    grouping: Arc<dyn GroupingPolicy>,
    history: Arc<History>,
    workers: usize,
    providers: Providers,
    named: BTreeMap<TestId, String>,
    held: HashMap<String, String>,
    parked: Vec<RequestWork>,
    in_flight: HashMap<String, usize>,
    /// Where to ask each worker (its current incarnation) for tests back.
    victims: HashMap<String, (u32, Recipient<Steal>)>,
    /// Each worker's share (`in_flight`) when it was last asked to give tests back.
    asked: HashMap<String, usize>,
    /// Workers asked to give tests back that have not answered (by incarnation asked).
    unanswered: HashMap<String, u32>,
    steal_policy: Arc<StealPolicy>,
    sent: usize,
    total: usize,
    halted: bool,
    crash_retries: u32,
    crashes: HashMap<TestId, u32>,
    reporter: Addr<Reporter>,
}

impl Scheduler {
    /// A scheduler with an empty pool; [`SetReference`] fills it with `grouping`'s groups.
    pub fn new(
        grouping: Arc<dyn GroupingPolicy>,
        history: History,
        workers: usize,
        providers: Providers,
        crash_retries: u32,
        reporter: Addr<Reporter>,
    ) -> Scheduler {
        Scheduler {
            queue: VecDeque::new(),
            grouping,
            history: Arc::new(history),
            workers,
            providers,
            named: BTreeMap::new(),
            held: HashMap::new(),
            parked: Vec::new(),
            in_flight: HashMap::new(),
            victims: HashMap::new(),
            asked: HashMap::new(),
            unanswered: HashMap::new(),
            steal_policy: Arc::default(),
            sent: 0,
            total: 0,
            halted: false,
            crash_retries,
            crashes: HashMap::new(),
            reporter,
        }
    }

    /// Answers `request` now if it can; returns it back if it must wait.
    fn serve(&mut self, request: RequestWork) -> Option<RequestWork> {
        if self.halted {
            reply(&request, Vec::new(), None);
            return None;
        }
        let worker = request.worker.as_str();
        let held = self.held.get(worker).map(String::as_str);
        let others = |p: &str| self.held.iter().any(|(w, h)| w != worker && h == p);
        let preferred = request
            .collected
            .as_deref()
            .and_then(|files| collected_group(&self.queue, files, held));
        let Some(choice) = preferred.or_else(|| pick(&self.queue, held, others)) else {
            // Nothing queued: tests asked back from a busy worker will come (wait for them), or
            // an idle worker waits for work that may yet return; a worker that still holds
            // tests is told at once that there is no more.
            if self.steal_for(&request) {
                return Some(request);
            }
            let own = self.in_flight.get(worker).copied().unwrap_or(0);
            if own == 0 && self.in_flight.values().any(|n| *n > 0) {
                return Some(request);
            }
            reply(&request, Vec::new(), None);
            return None;
        };
        let mut group = self
            .queue
            .remove(choice.index)
            .expect("pick returns a valid index");
        self.fill_chunk(&mut group, choice.index);
        if let Some(provider) = &choice.provider {
            self.held.insert(request.worker.clone(), provider.clone());
        }
        let switch = choice.switch_from.zip(choice.provider);
        let n = group.tests.len();
        *self.in_flight.entry(request.worker.clone()).or_default() += n;
        self.sent += n;
        self.reporter.do_send(Publish(Event::GroupSent {
            worker: request.worker.clone(),
            tests: n,
            sent: self.sent,
            total: self.total,
        }));
        reply(&request, group.tests, switch);
        None
    }

    /// Adds the groups that follow `index` to `group`, up to a chunk sized from the remaining
    /// work (a quarter of each worker's share, so chunks shrink as the session nears its end;
    /// work stealing evens out what is left). Only groups of the same provider join; in `load`
    /// mode any one-test group, otherwise only groups of the same module (a module's
    /// parametrizations, which modscope deals as separate groups, go out together instead of
    /// costing a round trip each).
    fn fill_chunk(&mut self, group: &mut Group, index: usize) {
        let load = self.grouping.chunked();
        if load && group.tests.len() != 1 {
            return;
        }
        let remaining: usize = self.queue.iter().map(|g| g.tests.len()).sum();
        let target = (remaining / (4 * self.workers.max(1))).clamp(1, 500);
        while group.tests.len() < target {
            let Some(next) = self.queue.get(index) else {
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
            let next = self.queue.remove(index).expect("checked above");
            group.tests.extend(next.tests);
        }
    }

    /// Asks the worker holding the most tests (at least one beyond the one it runs) to give
    /// back the end of its queue, unless it was already asked at its current share or has not
    /// answered the last request yet. Whether an answer is on its way.
    fn steal_for(&mut self, request: &RequestWork) -> bool {
        let thief = request.worker.as_str();
        let askable = |w: &String, n: &usize| {
            let Some((incarnation, _)) = self.victims.get(w) else {
                return false;
            };
            w.as_str() != thief
                && *n >= 2
                && self.asked.get(w) != Some(n)
                && self.unanswered.get(w) != Some(incarnation)
        };
        let victim = self
            .in_flight
            .iter()
            .filter(|(w, n)| askable(w, n))
            .max_by_key(|(w, n)| (**n, std::cmp::Reverse(w.as_str())))
            .map(|(w, n)| (w.clone(), *n));
        let Some((victim, share)) = victim else {
            return self
                .unanswered
                .iter()
                .any(|(w, i)| self.victims.get(w).is_some_and(|(current, _)| current == i));
        };
        let (incarnation, steal) = &self.victims[&victim];
        tracing::debug!(%victim, %thief, share, "asking for tests back");
        let policy = self.steal_policy.clone();
        let thief_load = request.holding.iter().map(|t| policy.expected(t)).sum();
        steal.do_send(Steal { policy, thief_load });
        self.unanswered.insert(victim.clone(), *incarnation);
        self.asked.insert(victim, share);
        true
    }

    fn settle(&mut self, worker: &str, count: usize) {
        if let Some(n) = self.in_flight.get_mut(worker) {
            *n = n.saturating_sub(count);
        }
    }

    fn serve_parked(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        for request in parked {
            if let Some(waiting) = self.serve(request) {
                self.parked.push(waiting);
            }
        }
    }
}

/// The first group of a file the worker has collected that it can take without switching
/// provider. The queue is walked once; a file's name is looked up only where the file changes.
fn collected_group(
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

fn reply(request: &RequestWork, tests: Vec<TestId>, switch: Option<(String, String)>) {
    request.reply.do_send(Assignment {
        incarnation: request.incarnation,
        tests,
        switch,
    });
}

impl Actor for Scheduler {
    type Context = Context<Self>;
}

impl Handler<RequestWork> for Scheduler {
    type Result = ();

    fn handle(&mut self, request: RequestWork, _: &mut Self::Context) {
        self.parked.retain(|p| p.worker != request.worker);
        let victim = (request.incarnation, request.steal.clone());
        self.victims.insert(request.worker.clone(), victim);
        if let Some(waiting) = self.serve(request) {
            self.parked.push(waiting);
        }
    }
}

impl Handler<ReturnTests> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: ReturnTests, _: &mut Self::Context) {
        let mut tests = msg.tests;
        let mut returned = tests.len();
        if let Some(crash) = msg.crashed {
            returned += 1;
            let count = self.crashes.entry(crash.test.clone()).or_default();
            *count += 1;
            if *count <= self.crash_retries {
                tests.insert(0, crash.test);
            } else {
                let message = crash.details.lines().next().map(str::to_string);
                let verdict = Verdict::decided(
                    Outcome::Crashed,
                    crash.duration,
                    message,
                    Some(crash.details),
                );
                let worker = Some(msg.worker.clone());
                self.reporter.do_send(Publish(Event::TestFinished {
                    test: crash.test,
                    worker,
                    verdict,
                }));
            }
        }
        self.settle(&msg.worker, returned);
        if msg.stolen {
            self.unanswered.remove(&msg.worker);
        }
        if !tests.is_empty() {
            self.sent = self.sent.saturating_sub(tests.len());
            let event = if msg.stolen {
                Event::WorkStolen {
                    from: msg.worker,
                    tests: tests.len(),
                }
            } else {
                Event::TestsRequeued {
                    worker: msg.worker,
                    tests: tests.clone(),
                }
            };
            self.reporter.do_send(Publish(event));
            for group in self
                .grouping
                .groups(&tests, &self.providers, &self.named)
                .into_iter()
                .rev()
            {
                self.queue.push_front(group);
            }
        }
        self.serve_parked();
    }
}

impl Handler<Settled> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: Settled, _: &mut Self::Context) {
        self.settle(&msg.worker, msg.count);
        // A parked worker tries again: everything may be done, or a busy worker's share has
        // changed and it can be asked for tests back.
        if !self.parked.is_empty() {
            self.serve_parked();
        }
    }
}

impl Handler<WorkerGone> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: WorkerGone, _: &mut Self::Context) {
        self.held.remove(&msg.worker);
        self.parked.retain(|p| p.worker != msg.worker);
        self.victims.remove(&msg.worker);
        self.unanswered.remove(&msg.worker);
    }
}

impl Handler<SetReference> for Scheduler {
    type Result = ();

    fn handle(&mut self, SetReference(reference): SetReference, _: &mut Self::Context) {
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
        self.serve_parked();
    }
}

impl Handler<Remaining> for Scheduler {
    type Result = usize;

    fn handle(&mut self, _: Remaining, _: &mut Self::Context) -> usize {
        if self.halted {
            return 0;
        }
        self.queue.iter().map(|g| g.tests.len()).sum()
    }
}

impl Handler<Flush> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
}

impl Handler<Halt> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Halt, _: &mut Self::Context) {
        self.halted = true;
        self.queue.clear();
        self.serve_parked();
    }
}
