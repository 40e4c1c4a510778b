//! herd's actor tree (actix): it owns state and lifecycles; every decision is pure policy from
//! `herd-core`.
//!
//! ```text
//!                       Supervisor  (root: gate, respawn budget, signals, session end)
//!          +----------------+---------------+----------------+
//!       Worker w1 ...    Worker wN       Scheduler         Reporter        Transport
//!   (process, restart   (one per slot)   (pool, returned   (the ledger,     (thread owning the
//!    policy, tests)                       work, providers)  fan-out to       ROUTER socket)
//!                                                           sinks)
//!
//!   Transport --Inbound--> Supervisor --FromProcess--> Worker --RequestWork--> Scheduler
//!   Scheduler --Assignment--> Worker --Outbound--> Transport --> worker process
//!   everyone --Publish(Event)--> Reporter --MaxfailReached--> Supervisor
//! ```
//!
//! A test's life: dealt out by the Scheduler in a group -> `test_started` -> phase reports ->
//! the teardown report finishes it (Worker publishes `TestFinished`, tells the Scheduler it
//! settled). If the process dies first, the Worker reports the running test crashed (or re-runs
//! it, with `--crash-retries`) and returns the rest to the front of the queue. When the session
//! ends, the Reporter's ledger ([`herd_core::ledger`]) settles every test still without an
//! outcome as "not run"; every output (terminal, summary, `--events`, `--junit-xml`, the
//! embedder's subscribers) is a [`Sink`] of the same event stream.

#![warn(missing_docs)]

pub mod launcher;
pub mod messages;
pub mod orphans;
pub mod output;
pub mod process;
pub mod report;
pub mod reporter;
pub mod scheduler;
pub mod signals;
pub mod supervisor;
pub mod transport;
pub mod worker;
pub mod zygote;

use std::sync::Arc;

use actix::prelude::*;
use herd_core::providers::Providers;
use herd_core::restart::RespawnBudget;
use tokio::sync::oneshot;

pub use launcher::{ExternalLauncher, Launch, Launcher, LocalLauncher, TemplateLauncher};
pub use output::{OutputFailure, ReportFile};
pub use process::WorkerCommand;
pub use report::{InjectedFault, SessionReport, TestResult, WorkerLife};
pub use reporter::{EventSubscriber, ReporterOptions, Sink};
pub use transport::BindError;
pub use worker::{WorkerSettings, WorkerSlot};

use crate::reporter::Reporter;
use crate::scheduler::Scheduler;
pub use crate::supervisor::Joins;
use crate::supervisor::{Supervisor, SupervisorSettings};
use crate::transport::Transport;

/// Everything the actor tree needs to run one session.
pub struct SessionPlan {
    /// The runner's name.
    pub runner: String,
    /// Worker slots.
    pub slots: Vec<WorkerSlot>,
    /// The reference collection, or `None` to take the first worker's collection as it.
    pub reference: Option<Vec<herd_core::TestId>>,
    /// Without a reference: whether the workers collect it in shards and the rest file by file
    /// (see [`herd_core::collection`]); the runner's workers must support it.
    pub shard_collection: bool,
    /// Settings every worker shares (command, endpoint, token, timeouts).
    pub worker: WorkerSettings,
    /// How the collection is cut into groups.
    pub grouping: Arc<dyn herd_core::grouping::GroupingPolicy>,
    /// Durations from earlier runs: groups are dealt longest first.
    pub history: herd_core::history::History,
    /// `--providers`.
    pub providers: Providers,
    /// `--crash-retries`.
    pub crash_retries: u32,
    /// The respawn budget.
    pub budget: RespawnBudget,
    /// Whether SIGINT, SIGTERM and SIGQUIT are handled by the session.
    pub handle_signals: bool,
    /// Replicas may join without naming a slot (see [`Joins`]); `None`: they may not.
    pub joins: Option<Joins>,
    /// `--min-workers`: dealing starts once this many workers have joined (or after the start
    /// timeout); 0 or 1: at once.
    pub min_workers: usize,
}

/// Runs a session inside the current actix system and returns its report. The endpoint in
/// `plan.worker.endpoint` is bound first; a bind failure is returned before anything starts.
pub async fn run_session(
    mut plan: SessionPlan,
    output: ReporterOptions,
) -> Result<SessionReport, BindError> {
    let supervisor_ctx = Context::<Supervisor>::new();
    let supervisor = supervisor_ctx.address();
    let inboxes = transport::Inboxes {
        frames: supervisor.clone().recipient(),
        barriers: supervisor.clone().recipient(),
    };
    let transport = Transport::bind(&plan.worker.endpoint, inboxes)?;
    plan.worker.endpoint = transport::advertised(transport.endpoint());
    let transport = transport.start();
    let mut reporter = Reporter::new(output);
    reporter.set_supervisor(supervisor.clone().recipient());
    let reporter = reporter.start();
    if plan.worker.fork_server {
        plan.worker.zygote = zygote::start_for(&plan.worker, reporter.clone().recipient());
    }
    let zygote = plan.worker.zygote.clone();
    let scheduler = Scheduler::new(
        plan.grouping,
        plan.history,
        plan.slots.len(),
        plan.providers,
        plan.crash_retries,
        reporter.clone(),
    )
    .with_min_workers(plan.min_workers)
    .start();
    let (tx, rx) = oneshot::channel();
    let settings = SupervisorSettings {
        runner: plan.runner,
        slots: plan.slots,
        reference: plan.reference,
        shard_collection: plan.shard_collection,
        worker: Arc::new(plan.worker),
        budget: plan.budget,
        handle_signals: plan.handle_signals,
        joins: plan.joins,
        min_workers: plan.min_workers,
    };
    supervisor_ctx.run(Supervisor::new(
        settings,
        scheduler,
        reporter,
        transport.clone(),
        tx,
    ));
    let report = rx
        .await
        .expect("the supervisor always reports before it stops");
    if let Some(zygote) = zygote {
        zygote.stop();
    }
    drop(transport);
    Ok(report)
}
