//! Replicas that join without naming a slot (elastic sessions): the `join` is checked like a
//! `hello` (version, token, fingerprint, identity) before anything is assigned; then the
//! [`Roster`](herd_core::roster::Roster) decides which slot the joiner takes, and a new slot's
//! actor is started here.

use herd_core::protocol::{check_identity, JOIN_WORKER};
use herd_core::roster::{RosterEffect, RosterInput};

use super::*;

/// What a replica joining without naming a slot is told, and how many slots a session may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joins {
    /// The rest of the `herd worker` command line a joiner runs: `--list CMD -- CMD {}`, or
    /// `-- pytest ARGS`.
    pub runner: Vec<String>,
    /// The session's `--fingerprint` command, run on the joiner's host.
    pub fingerprint: Option<String>,
    /// The most live slots (`--max-workers`).
    pub max_workers: usize,
    /// The herd program and the token file to print in the replicas' command line.
    pub herd: String,
    /// See [`Joins::herd`].
    pub token_file: String,
}

impl Supervisor {
    /// A `join`: refused unless its version, token, fingerprint and identity are right; then
    /// answered with the slot the roster gives it, or `full`.
    pub(super) fn join(&mut self, identity: Vec<u8>, join: WorkerMessage, ctx: &mut Context<Self>) {
        let WorkerMessage::Join {
            protocol,
            token,
            fingerprint,
            pid,
        } = &join
        else {
            return;
        };
        let settings = &self.settings.worker;
        let checked = check_hello(*protocol, token, &self.token)
            .and_then(|()| {
                check_fingerprint(
                    fingerprint.as_deref(),
                    &settings.fingerprint,
                    settings.fingerprint_required,
                )
            })
            .and_then(|()| check_identity(&identity, JOIN_WORKER, 0));
        if let Err(why) = checked {
            return self.refuse(identity, format!("join refused: {why}"));
        }
        let Some(joins) = self.settings.joins.clone() else {
            let why = "this session takes no worker that does not name its slot (it was not \
                       started with --launcher external); give --worker and --incarnation";
            return self.refuse(identity, why.into());
        };
        tracing::debug!(pid = ?pid, "a replica asks for a slot");
        let answer = if self.session.is_running() {
            self.roster.handle(RosterInput::Join, Instant::now())
        } else {
            Some(RosterEffect::Full("it is ending".into()))
        };
        let message = match answer {
            Some(RosterEffect::Assign {
                worker,
                incarnation,
            }) => self.assigned(&joins, worker, incarnation),
            Some(RosterEffect::Create { worker }) => {
                self.add_slot(&worker, ctx);
                self.assigned(&joins, worker, 1)
            }
            Some(RosterEffect::Full(message)) => CoordinatorMessage::Full { message },
            None => return,
        };
        self.transport.do_send(Outbound { identity, message });
    }

    fn assigned(&self, joins: &Joins, worker: String, incarnation: u32) -> CoordinatorMessage {
        let appliance = self
            .settings
            .slots
            .iter()
            .find(|s| s.id == worker)
            .and_then(|s| s.appliance.clone());
        CoordinatorMessage::Assigned {
            worker,
            incarnation,
            runner: joins.runner.clone(),
            fingerprint: joins.fingerprint.clone(),
            appliance,
        }
    }

    /// Starts the actor of a slot made for a joiner (it awaits the joiner quietly).
    fn add_slot(&mut self, id: &str, ctx: &mut Context<Self>) {
        let slot = WorkerSlot {
            id: id.to_string(),
            appliance: None,
        };
        let worker = Worker::new(slot, self.settings.worker.clone(), self.peers(ctx))
            .made_for_a_joiner()
            .start();
        if let Some(reference) = &self.reference {
            worker.do_send(ReferenceReady(reference.clone()));
        }
        self.workers.insert(id.to_string(), worker);
        self.step(Input::SlotAdded(id.to_string()), ctx);
    }

    /// The actors a worker talks to.
    pub(super) fn peers(&self, ctx: &Context<Self>) -> Peers {
        Peers {
            supervisor: ctx.address(),
            scheduler: self.scheduler.clone(),
            reporter: self.reporter.clone(),
            transport: self.transport.clone(),
        }
    }

    /// Says, once, the command line every replica may run to join.
    pub(super) fn announce_joins(&self) {
        let Some(joins) = &self.settings.joins else {
            return;
        };
        let quote = crate::launcher::quote;
        let n = joins.max_workers;
        let noun = if n == 1 { "worker" } else { "workers" };
        self.notice(format!(
            "identical replicas may join from any host (up to {n} {noun} at once), each with:\n    \
             {} worker --connect {} --token-file {}",
            quote(&joins.herd),
            quote(&self.settings.worker.endpoint),
            quote(&joins.token_file)
        ));
    }

    /// Deals to the workers that came once the start timeout has passed, if `--min-workers`
    /// were not reached by then.
    pub(super) fn open_dealing_later(&self, ctx: &mut Context<Self>) {
        let min = self.settings.min_workers;
        if min <= 1 {
            return;
        }
        ctx.run_later(self.settings.worker.start_timeout, move |act, _| {
            if act.session.is_running() {
                tracing::debug!(min, "opening the dealing after the start timeout");
                act.scheduler.do_send(OpenDealing);
            }
        });
    }
}

impl Handler<Awaiting> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Awaiting, _: &mut Self::Context) {
        let (worker, incarnation) = (msg.worker, msg.incarnation);
        let input = RosterInput::Awaiting {
            worker,
            incarnation,
        };
        self.roster.handle(input, Instant::now());
    }
}
