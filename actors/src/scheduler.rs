//! The Scheduler: the thin actix shell of [`herd_core::pool::Pool`], which holds the queue of
//! groups, each worker's view, parked requests, work stealing and crash retries (see its docs
//! for the life of a request: served, parked, answered empty). Each message becomes a
//! [`PoolInput`]; each [`PoolEffect`] becomes a send: an [`Assignment`] or a [`Steal`] to a
//! worker, or an event to the Reporter. The shell keeps only where to send: each worker's
//! reply and steal recipients, from its latest [`RequestWork`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use herd_core::grouping::GroupingPolicy;
use herd_core::history::History;
use herd_core::pool::{Crash, Pool, PoolEffect, PoolInput, Request};
use herd_core::providers::Providers;

use crate::messages::*;
use crate::reporter::Reporter;

/// The actor that deals out groups.
pub struct Scheduler {
    pool: Pool,
    peers: HashMap<String, Peer>,
    reporter: Addr<Reporter>,
}

/// Where a worker's answers go (its latest request's recipients).
struct Peer {
    reply: Recipient<Assignment>,
    steal: Recipient<Steal>,
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
            pool: Pool::new(grouping, history, workers, providers, crash_retries),
            peers: HashMap::new(),
            reporter,
        }
    }

    /// Deals nothing until `n` workers have asked (or [`OpenDealing`]).
    pub fn with_min_workers(mut self, n: usize) -> Scheduler {
        self.pool = self.pool.with_min_workers(n);
        self
    }

    /// Feeds `input` to the pool and carries out its effects, in order.
    fn feed(&mut self, input: PoolInput) {
        for effect in self.pool.handle(input, Instant::now()) {
            self.apply(effect);
        }
    }

    fn apply(&self, effect: PoolEffect) {
        match effect {
            PoolEffect::Assign {
                worker,
                incarnation,
                tests,
                switch,
            } => match self.peers.get(&worker) {
                Some(peer) => peer.reply.do_send(Assignment {
                    incarnation,
                    tests,
                    switch,
                }),
                None => tracing::warn!(%worker, "an answer for a worker that never asked"),
            },
            PoolEffect::AskBack {
                worker,
                incarnation,
                thief,
                thief_load,
            } => {
                tracing::debug!(victim = %worker, incarnation, %thief, "asking for tests back");
                if let Some(peer) = self.peers.get(&worker) {
                    peer.steal.do_send(Steal {
                        policy: self.pool.steal_policy().clone(),
                        thief_load,
                    });
                }
            }
            PoolEffect::Publish(event) => self.reporter.do_send(Publish(event)),
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;
}

impl Handler<RequestWork> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: RequestWork, _: &mut Self::Context) {
        let peer = Peer {
            reply: msg.reply,
            steal: msg.steal,
        };
        self.peers.insert(msg.worker.clone(), peer);
        self.feed(PoolInput::Request(Request {
            worker: msg.worker,
            incarnation: msg.incarnation,
            collected: msg.collected,
            holding: msg.holding,
        }));
    }
}

impl Handler<ReturnTests> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: ReturnTests, _: &mut Self::Context) {
        let crashed = msg.crashed.map(|c| Crash {
            test: c.test,
            duration: c.duration,
            details: c.details,
        });
        self.feed(PoolInput::Returned {
            worker: msg.worker,
            tests: msg.tests,
            crashed,
            stolen: msg.stolen,
        });
    }
}

impl Handler<Settled> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: Settled, _: &mut Self::Context) {
        self.feed(PoolInput::Settled {
            worker: msg.worker,
            count: msg.count,
        });
    }
}

impl Handler<WorkerGone> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: WorkerGone, _: &mut Self::Context) {
        self.feed(PoolInput::Gone { worker: msg.worker });
    }
}

impl Handler<SetReference> for Scheduler {
    type Result = ();

    fn handle(&mut self, SetReference(reference): SetReference, _: &mut Self::Context) {
        self.feed(PoolInput::Reference(reference));
    }
}

impl Handler<Remaining> for Scheduler {
    type Result = usize;

    fn handle(&mut self, _: Remaining, _: &mut Self::Context) -> usize {
        self.pool.remaining()
    }
}

impl Handler<Flush> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Flush, _: &mut Self::Context) {}
}

impl Handler<OpenDealing> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: OpenDealing, _: &mut Self::Context) {
        self.feed(PoolInput::Open);
    }
}

impl Handler<Halt> for Scheduler {
    type Result = ();

    fn handle(&mut self, _: Halt, _: &mut Self::Context) {
        self.feed(PoolInput::Halt);
    }
}
