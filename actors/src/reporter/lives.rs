//! The session's record of its worker processes and injected faults, for the report.

use herd_core::events::{Event, Stamped};

use crate::report::{InjectedFault, WorkerLife};

/// Every worker process's life and every fault injected, in order.
#[derive(Default)]
pub struct Lives {
    workers: Vec<WorkerLife>,
    faults: Vec<InjectedFault>,
}

impl Lives {
    /// Takes in one event (spawns, exits and faults matter).
    pub fn event(&mut self, stamped: &Stamped) {
        let now = stamped.t;
        match &stamped.event {
            Event::WorkerSpawned {
                worker,
                incarnation,
                pid,
                appliance,
            } => self.workers.push(WorkerLife {
                worker: worker.clone(),
                incarnation: *incarnation,
                pid: *pid,
                appliance: appliance.clone(),
                started: now,
                ended: None,
                status: None,
                clean: false,
            }),
            Event::FaultInjected {
                worker,
                incarnation,
                kind,
                test,
            } => self.faults.push(InjectedFault {
                t: now,
                worker: worker.clone(),
                incarnation: *incarnation,
                kind: *kind,
                test: test.clone(),
            }),
            Event::WorkerExited {
                worker,
                incarnation,
                status,
                clean,
            } => {
                let life = self
                    .workers
                    .iter_mut()
                    .rev()
                    .find(|w| w.worker == *worker && w.incarnation == *incarnation);
                if let Some(life) = life {
                    (life.ended, life.status, life.clean) =
                        (Some(now), Some(status.clone()), *clean);
                }
            }
            _ => {}
        }
    }

    /// The lives and faults at the session's end (`ended`, seconds): a process still running
    /// is killed as the session ends.
    pub fn close(&mut self, ended: f64) -> (Vec<WorkerLife>, Vec<InjectedFault>) {
        for life in self.workers.iter_mut().filter(|w| w.ended.is_none()) {
            life.ended = Some(ended);
            life.status = Some("killed as the session ended".into());
        }
        (
            std::mem::take(&mut self.workers),
            std::mem::take(&mut self.faults),
        )
    }
}
