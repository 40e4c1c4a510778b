//! The Supervisor: the root of the tree, a thin shell around the session's brain
//! ([`herd_core::session`]). It starts the workers, gates every inbound message (token, version,
//! identity), assembles the reference, and turns the brain's effects into sends: it feeds the
//! brain signals, `--maxfail`, respawn requests and finished slots, and carries out its drains,
//! grants and the one finish.
//!
//! The gate binds a ZeroMQ identity to a worker slot only once a `hello` from it has passed the
//! token, version, fingerprint and identity checks; anything else from an identity that never
//! authenticated is refused here, its text escaped and its notices rate-limited
//! ([`herd_core::untrusted`]), and never reaches a worker actor.
//!
//! How a session ends is a [`SessionEnd`], an ordered value: a more severe reason replaces a
//! milder one (a second SIGINT beats `--maxfail`; a spent budget beats both), never the reverse.
//!
//! ```text
//!   SIGINT/SIGTERM (1st), --maxfail  -> drain: Scheduler halts, workers finish their running test
//!   SIGINT/SIGTERM (2nd), SIGQUIT,
//!   respawn budget spent,
//!   every slot retired               -> abort: every worker's process group is killed now
//!   every slot done                  -> finish: Reporter settles every test, prints the summary
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures_util::future::join_all;
use herd_core::collection::{CollectScope, Reference, ShardedReference};
use herd_core::diff::duplicates_error;
use herd_core::events::Event;
use herd_core::outcome::SessionEnd;
use herd_core::protocol::{
    check_fingerprint, check_hello, check_identity, CollectionError, CoordinatorMessage, Token,
    WorkerMessage,
};
use herd_core::restart::RespawnBudget;
use herd_core::session::{Effect, Input, Session, Signal};
use herd_core::untrusted::{self, RefusalLimit};
use herd_core::TestId;
use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
use tokio::sync::oneshot;

use crate::messages::*;
use crate::report::SessionReport;
use crate::reporter::Reporter;
use crate::scheduler::Scheduler;
use crate::signals::SignalWatch;
use crate::transport::Transport;
use crate::worker::{Peers, Worker, WorkerSettings, WorkerSlot};
use herd_core::roster::{Roster, RosterInput};

mod joins;
pub use joins::Joins;

/// What the Supervisor needs to run a session.
pub struct SupervisorSettings {
    /// The runner's name, for the session's first event.
    pub runner: String,
    /// Worker slots.
    pub slots: Vec<WorkerSlot>,
    /// The reference collection, or `None` to take the first worker's.
    pub reference: Option<Vec<TestId>>,
    /// Without a given reference: whether the first workers collect it in shards (one per
    /// slot) and every worker collects the rest file by file (the runner must support it).
    pub shard_collection: bool,
    /// Settings every worker shares.
    pub worker: Arc<WorkerSettings>,
    /// The respawn budget.
    pub budget: RespawnBudget,
    /// Whether to handle SIGINT, SIGTERM and SIGQUIT (an embedding program may not want that).
    pub handle_signals: bool,
    /// Replicas may join without naming a slot (`--launcher external`); `None`: they may not.
    pub joins: Option<Joins>,
    /// `--min-workers`: dealing starts once this many workers have joined, or after the start
    /// timeout.
    pub min_workers: usize,
}

/// The root actor.
pub struct Supervisor {
    settings: SupervisorSettings,
    token: Token,
    /// The lifecycle's brain: phase, signal count, budget, live and retired slots.
    session: Session,
    reference: Option<Arc<Reference>>,
    sharded: Option<ShardedReference>,
    /// Workers restarted to collect an orphaned shard, until their next hello.
    recollecting: HashSet<String>,
    scheduler: Addr<Scheduler>,
    reporter: Addr<Reporter>,
    transport: Addr<Transport>,
    workers: HashMap<String, Addr<Worker>>,
    /// Identities whose `hello` passed every check, and the worker slot each belongs to.
    authenticated: HashMap<Vec<u8>, String>,
    /// Which slot a replica joining without naming one gets.
    roster: Roster,
    /// How many refusals of unauthenticated peers are shown.
    refusals: RefusalLimit,
    result: Option<oneshot::Sender<SessionReport>>,
    signals: Option<SignalWatch>,
    started: Instant,
}

impl Supervisor {
    /// A supervisor that sends its [`SessionReport`] to `result` when the session ends.
    pub fn new(
        settings: SupervisorSettings,
        scheduler: Addr<Scheduler>,
        reporter: Addr<Reporter>,
        transport: Addr<Transport>,
        result: oneshot::Sender<SessionReport>,
    ) -> Supervisor {
        Supervisor {
            token: settings.worker.token.clone(),
            session: Session::new(
                settings.slots.iter().map(|s| s.id.clone()).collect(),
                settings.budget.clone(),
            ),
            reference: None,
            sharded: (settings.reference.is_none() && settings.shard_collection)
                .then(|| ShardedReference::new(settings.slots.len())),
            recollecting: HashSet::new(),
            roster: Roster::new(
                &settings
                    .slots
                    .iter()
                    .map(|s| s.id.clone())
                    .collect::<Vec<_>>(),
                settings.joins.as_ref().map_or(0, |j| j.max_workers),
                settings.worker.start_timeout,
            ),
            settings,
            scheduler,
            reporter,
            transport,
            workers: HashMap::new(),
            authenticated: HashMap::new(),
            refusals: RefusalLimit::default(),
            result: Some(result),
            signals: None,
            started: Instant::now(),
        }
    }

    fn publish(&self, event: Event) {
        self.reporter.do_send(Publish(event));
    }

    fn notice(&self, text: impl Into<String>) {
        self.publish(Event::Notice {
            worker: None,
            text: text.into(),
        });
    }

    /// Feeds the session's brain one input and carries out what it decides; the grant, when
    /// the input asked for one.
    fn step(&mut self, input: Input, ctx: &mut Context<Self>) -> Option<bool> {
        let mut grant = None;
        for effect in self.session.handle(input, Instant::now()) {
            match effect {
                Effect::Notice(text) => self.notice(text),
                Effect::Drain => {
                    self.scheduler.do_send(Halt);
                    for worker in self.workers.values() {
                        worker.do_send(Drain);
                    }
                }
                Effect::Finish(end) => self.finish(end, ctx),
                Effect::Grant(granted) => grant = Some(granted),
                Effect::SlotGone(worker) => self.recollect_orphaned_shard(&worker),
                Effect::NoMoreWork => {
                    for worker in self
                        .session
                        .live()
                        .iter()
                        .filter_map(|w| self.workers.get(w))
                    {
                        worker.do_send(NoMoreWork);
                    }
                }
                Effect::CountRemaining => self.count_remaining(ctx),
                Effect::Revive(slot) => {
                    if let Some(worker) = self.workers.get(&slot) {
                        worker.do_send(Revive);
                    }
                }
            }
        }
        grant
    }

    /// Asks the Scheduler how many tests are left and tells the session.
    fn count_remaining(&mut self, ctx: &mut Context<Self>) {
        let remaining = self.scheduler.send(Remaining);
        ctx.spawn(remaining.into_actor(self).map(|remaining, act, ctx| {
            act.step(Input::Remaining(remaining.unwrap_or(0)), ctx);
        }));
    }

    /// Ends the session as `end`: kills every worker, then reports.
    fn finish(&mut self, end: SessionEnd, ctx: &mut Context<Self>) {
        self.signals = None;
        if let Some(suppressed) = self.refusals.drain(Instant::now()) {
            self.notice(suppressed.line());
        }
        tracing::debug!(?end, elapsed = ?self.started.elapsed(), "session finishing");
        let kills = join_all(self.workers.values().map(|w| w.send(KillNow)));
        let (scheduler, reporter) = (self.scheduler.clone(), self.reporter.clone());
        let work = async move {
            // Workers first, then the Scheduler: every outcome they publish reaches the Reporter
            // before Finish does.
            kills.await;
            let _ = scheduler.send(Flush).await;
            reporter.send(Finish { end }).await
        };
        ctx.spawn(work.into_actor(self).map(|report, act, _| match report {
            Ok(report) => {
                if let Some(result) = act.result.take() {
                    let _ = result.send(report);
                }
            }
            Err(e) => tracing::error!("the reporter is gone: {e}"),
        }));
    }

    /// Makes `reference` the reference: the Reporter, the Scheduler and every worker learn it.
    fn adopt_reference(&mut self, reference: Reference) -> Arc<Reference> {
        let reference = Arc::new(reference);
        self.reference = Some(reference.clone());
        self.sharded = None;
        self.publish(Event::Collected {
            tests: reference.tests.clone(),
            deselected: reference.deselected.clone(),
        });
        self.scheduler.do_send(SetReference(reference.clone()));
        for worker in self.workers.values() {
            worker.do_send(ReferenceReady(reference.clone()));
        }
        reference
    }

    /// Answers a peer with an error. The identity is escaped here; `reason` must be safe to
    /// print already (any peer-supplied text in it escaped). The first few refusals per second
    /// are shown, the rest counted.
    fn refuse(&mut self, identity: Vec<u8>, reason: String) {
        let admission = self.refusals.admit(Instant::now());
        if let Some(suppressed) = admission.summary {
            self.notice(suppressed.line());
        }
        if admission.show {
            let shown = untrusted::escape(&identity, untrusted::MAX_SHOWN_CHARS);
            tracing::debug!(identity = %shown, "refused: {reason}");
            self.publish(Event::MessageRefused {
                identity: shown,
                reason: reason.clone(),
            });
        }
        self.transport.do_send(Outbound {
            identity,
            message: CoordinatorMessage::Error { message: reason },
        });
    }

    /// The worker an authenticated identity belongs to; `None` for any other identity.
    fn authenticated_worker(&self, identity: &[u8]) -> Option<&Addr<Worker>> {
        self.workers.get(self.authenticated.get(identity)?)
    }

    /// Shows how many refusals the rate limit left out, once a second.
    fn watch_refusals(&self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.refusals.window(), |act, _| {
            if let Some(suppressed) = act.refusals.tick(Instant::now()) {
                act.notice(suppressed.line());
            }
        });
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish(Event::SessionStarted {
            runner: self.settings.runner.clone(),
            workers: self.settings.slots.len(),
            endpoint: self.settings.worker.endpoint.clone(),
            slots: self
                .settings
                .slots
                .iter()
                .map(|s| herd_core::events::SlotInfo {
                    id: s.id.clone(),
                    appliance: s.appliance.clone(),
                })
                .collect(),
        });
        if let Some(tests) = self.settings.reference.take() {
            self.adopt_reference(Reference::whole(tests, BTreeMap::new()));
        }
        self.watch_refusals(ctx);
        if self.settings.handle_signals {
            match SignalWatch::start(ctx.address().recipient()) {
                Ok(watch) => self.signals = Some(watch),
                Err(e) => tracing::warn!("cannot watch signals: {e}"),
            }
        }
        let peers = self.peers(ctx);
        self.open_dealing_later(ctx);
        self.announce_joins();
        for slot in self.settings.slots.clone() {
            let id = slot.id.clone();
            let worker = Worker::new(slot, self.settings.worker.clone(), peers.clone()).start();
            self.workers.insert(id, worker);
        }
        self.step(Input::Started, ctx);
    }
}

impl Handler<InboundBatch> for Supervisor {
    type Result = ();

    fn handle(&mut self, InboundBatch(batch): InboundBatch, ctx: &mut Self::Context) {
        for msg in batch {
            self.gate(msg, ctx);
        }
    }
}

impl Supervisor {
    /// Lets a frame through to the worker it claims to come from, or refuses it.
    fn gate(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        if self.session.is_finishing() {
            return;
        }
        let worker = self.authenticated_worker(&msg.identity).cloned();
        match (msg.message, worker) {
            (Err(e), Some(worker)) => worker.do_send(Garbage {
                identity: msg.identity,
                reason: e.to_string(),
            }),
            (Err(e), None) => {
                let why = untrusted::escape_str(&e.to_string(), 2 * untrusted::MAX_SHOWN_CHARS);
                self.refuse(msg.identity, why)
            }
            (Ok(hello @ WorkerMessage::Hello { .. }), _) => self.hello(msg.identity, hello),
            (Ok(join @ WorkerMessage::Join { .. }), _) => self.join(msg.identity, join, ctx),
            (Ok(message), Some(worker)) => worker.do_send(FromProcess {
                identity: msg.identity,
                message,
                collect: None,
            }),
            (Ok(_), None) => self.refuse(msg.identity, "unknown identity; say hello first".into()),
        }
    }
}

impl Supervisor {
    /// A `hello` passes on to the worker it names once its token, version, fingerprint and
    /// identity are right; only then is its identity bound to that worker.
    fn hello(&mut self, identity: Vec<u8>, hello: WorkerMessage) {
        let WorkerMessage::Hello {
            protocol,
            token,
            worker: name,
            incarnation,
            fingerprint,
            ..
        } = &hello
        else {
            return;
        };
        let settings = &self.settings.worker;
        let checked = check_hello(*protocol, token, &self.token).and_then(|()| {
            check_fingerprint(
                fingerprint.as_deref(),
                &settings.fingerprint,
                settings.fingerprint_required,
            )
        });
        let shown = || untrusted::escape_str(name, untrusted::MAX_SHOWN_CHARS / 4);
        if let Err(why) = checked {
            return self.refuse(
                identity,
                format!("hello from \"{}\" refused: {why}", shown()),
            );
        }
        let Some(worker) = self.workers.get(name).cloned() else {
            let why = format!("hello from unknown worker \"{}\"", shown());
            return self.refuse(identity, why);
        };
        if let Err(why) = check_identity(&identity, name, *incarnation) {
            return self.refuse(identity, format!("hello from \"{name}\" refused: {why}"));
        }
        self.authenticated.insert(identity.clone(), name.clone());
        let joined = RosterInput::Joined {
            worker: name.clone(),
        };
        self.roster.handle(joined, Instant::now());
        let collect = self.collect_scope(name);
        worker.do_send(FromProcess {
            identity,
            message: hello,
            collect,
        });
    }

    /// What a worker saying hello is asked to collect.
    fn collect_scope(&mut self, name: &str) -> Option<CollectScope> {
        if self.reference.is_some() {
            // The reference is known: a digest of the collection is enough (a sharding runner's
            // workers collect files as they need them instead).
            Some(if self.settings.shard_collection {
                CollectScope::Lazy
            } else {
                CollectScope::Digest
            })
        } else {
            self.recollecting.remove(name);
            self.sharded.as_mut().map(|sharded| sharded.assign(name))
        }
    }
}

impl Handler<BarrierReached> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: BarrierReached, _: &mut Self::Context) {
        if let Some(worker) = self.workers.get(&msg.worker) {
            worker.do_send(msg);
        }
    }
}

impl Handler<CheckCollection> for Supervisor {
    type Result = MessageResult<CheckCollection>;

    fn handle(&mut self, msg: CheckCollection, ctx: &mut Self::Context) -> Self::Result {
        if !self.session.is_running() {
            return MessageResult(CollectionVerdict::Refused);
        }
        if let Some(reference) = &self.reference {
            if let Some(matches) = reference.digest_matches(&msg.part) {
                return MessageResult(if matches {
                    CollectionVerdict::Accepted(reference.clone())
                } else {
                    CollectionVerdict::IdsNeeded
                });
            }
            return MessageResult(match reference.check(&msg.part, &msg.identity) {
                None => CollectionVerdict::Accepted(reference.clone()),
                Some(diff) => CollectionVerdict::Mismatch(diff),
            });
        }
        if !msg.part.errors.is_empty() {
            return MessageResult(self.collection_errors(msg.worker, msg.part.errors, ctx));
        }
        let sharded = self.sharded.as_mut().filter(|_| !msg.part.is_whole());
        let Some(sharded) = sharded else {
            let mut reference = Reference::whole(msg.part.tests, msg.part.herd_groups);
            reference.deselected = msg.part.deselected;
            return MessageResult(self.first_reference(reference, ctx));
        };
        MessageResult(match sharded.add(msg.part, &msg.identity) {
            Err(diff) => CollectionVerdict::Mismatch(diff),
            Ok(None) => {
                self.recollect_orphans();
                CollectionVerdict::Pending
            }
            Ok(Some(reference)) => self.first_reference(reference, ctx),
        })
    }
}

impl Supervisor {
    /// Collection errors end the session as pytest does (interrupted, exit 2).
    fn collection_errors(
        &mut self,
        worker: String,
        errors: Vec<CollectionError>,
        ctx: &mut Context<Self>,
    ) -> CollectionVerdict {
        let n = errors.len();
        self.publish(Event::CollectionErrors { worker, errors });
        self.step(Input::CollectionErrors(n), ctx);
        CollectionVerdict::Refused
    }

    /// The first complete collection becomes the reference, unless it is unusable: duplicate
    /// ids end the session (exit 2), an empty one ends it (exit 5).
    fn first_reference(
        &mut self,
        reference: Reference,
        ctx: &mut Context<Self>,
    ) -> CollectionVerdict {
        if let Some(why) = duplicates_error(&reference.tests) {
            self.step(Input::CollectionUnusable(why), ctx);
            return CollectionVerdict::Refused;
        }
        let empty = reference.tests.is_empty();
        let reference = self.adopt_reference(reference);
        if empty {
            self.step(Input::NoTests, ctx);
            return CollectionVerdict::Refused;
        }
        CollectionVerdict::Accepted(reference)
    }
}

impl Handler<SessionExitRequested> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SessionExitRequested, ctx: &mut Self::Context) {
        let (worker, reason) = (msg.worker, msg.reason);
        self.step(Input::SessionExitRequested { worker, reason }, ctx);
    }
}

impl Handler<RequestRespawn> for Supervisor {
    type Result = bool;

    fn handle(&mut self, msg: RequestRespawn, ctx: &mut Self::Context) -> bool {
        let (worker, counted) = (msg.worker, msg.counted);
        let grant = self.step(Input::RespawnRequested { worker, counted }, ctx);
        grant.unwrap_or(false)
    }
}

impl Handler<WorkerDone> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WorkerDone, ctx: &mut Self::Context) {
        let gone = RosterInput::Gone {
            worker: msg.worker.clone(),
        };
        self.roster.handle(gone, Instant::now());
        let (worker, retired) = (msg.worker, msg.retired);
        if msg.left {
            self.step(Input::WorkerLeft(worker), ctx);
        } else {
            self.step(Input::WorkerDone { worker, retired }, ctx);
        }
    }
}

impl Supervisor {
    /// A slot ended before delivering its shard of the reference: another worker collects it.
    fn recollect_orphaned_shard(&mut self, gone: &str) {
        if let Some(sharded) = self.sharded.as_mut() {
            sharded.release(gone);
            self.recollect_orphans();
        }
    }

    /// Shards that nobody owns and no live worker will claim (every live worker already owns
    /// one) are orphans: a worker that has delivered its own shard, and so holds no tests yet,
    /// is restarted to collect one (not counted against the respawn budget). If every live
    /// worker is still collecting, this runs again when one delivers.
    fn recollect_orphans(&mut self) {
        let Some(sharded) = &self.sharded else {
            return;
        };
        let live = self.session.live();
        let claimants = live.iter().filter(|w| !sharded.owns_any(w)).count();
        let orphans = sharded.unowned().saturating_sub(claimants);
        // In name order (the live set is sorted).
        let restart: Vec<String> = live
            .iter()
            .filter(|w| sharded.has_delivered(w) && !self.recollecting.contains(*w))
            .take(orphans.saturating_sub(self.recollecting.len()))
            .cloned()
            .collect();
        for worker in restart {
            tracing::debug!(%worker, "restarting to collect an orphaned shard");
            if let Some(addr) = self.workers.get(&worker) {
                addr.do_send(Recollect);
            }
            self.recollecting.insert(worker);
        }
    }
}

impl Handler<MaxfailReached> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: MaxfailReached, ctx: &mut Self::Context) {
        self.step(Input::MaxfailReached, ctx);
    }
}

impl Handler<SignalReceived> for Supervisor {
    type Result = ();

    fn handle(&mut self, SignalReceived(signal): SignalReceived, ctx: &mut Self::Context) {
        let signal = match signal {
            SIGINT => Signal::Interrupt,
            SIGTERM => Signal::Terminate,
            SIGQUIT => Signal::Quit,
            other => return tracing::debug!(signal = other, "ignored signal"),
        };
        self.step(Input::Signal(signal), ctx);
    }
}
