//! Which slot a replica gets when it joins without naming one (elastic sessions: the N
//! identical replicas of a Kubernetes Job, a Slurm job array, a CI matrix). A plain value fed
//! [`RosterInput`]s by the Supervisor; [`Roster::handle`] answers a join with a
//! [`RosterEffect`]. No actors, no clock but the `now` passed in.
//!
//! ```text
//!   a slot awaits a worker (printed command, or made for a joiner)   -> Awaiting(incarnation)
//!   join: the first Awaiting slot, in slot order                     -> Reserved (assigned)
//!         else, fewer live slots than the maximum                     -> a new slot (created)
//!         else                                                        -> full
//!   hello of the slot's worker                                        -> Busy
//!   a reservation nobody used within `hold`                          -> Awaiting again
//!   the slot is done (retired, finished, left)                        -> Gone
//! ```
//!
//! A slot counts as live until it is gone: a session never has more than `max` live slots,
//! however many replicas ask. New slots are named `w<N>` after the highest number in use.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the Supervisor tells the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterInput {
    /// A replica asks for a slot.
    Join,
    /// A slot waits for a worker to join as `incarnation` (herd starts nothing for it).
    Awaiting {
        /// The slot.
        worker: String,
        /// The incarnation it waits for.
        incarnation: u32,
    },
    /// The slot's worker said a valid hello.
    Joined {
        /// The slot.
        worker: String,
    },
    /// The slot is done: retired, finished, or its worker left and it is not awaited again.
    Gone {
        /// The slot.
        worker: String,
    },
}

/// The answer to [`RosterInput::Join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterEffect {
    /// The joiner takes this awaited slot as this incarnation.
    Assign {
        /// The slot.
        worker: String,
        /// The incarnation to say in `hello`.
        incarnation: u32,
    },
    /// A new slot is made for the joiner (its incarnation 1): the Supervisor starts its actor.
    Create {
        /// The new slot's id.
        worker: String,
    },
    /// No slot for the joiner; the message says why.
    Full(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    /// Its worker runs (or, spawned by herd, is starting): nothing to give.
    Busy,
    /// It waits for a worker to join as this incarnation.
    Awaiting(u32),
    /// Given to a joiner, whose hello is expected before `until`.
    Reserved { incarnation: u32, until: Instant },
    /// Done.
    Gone,
}

/// The slots of a session as joiners see them.
#[derive(Debug, Clone)]
pub struct Roster {
    seats: BTreeMap<String, Seat>,
    /// Slot ids in the order they were made (the order joiners fill awaited slots).
    order: Vec<String>,
    max: usize,
    hold: Duration,
}

impl Roster {
    /// A roster over the session's first `slots` (all busy until said otherwise), with at most
    /// `max` live slots, and reservations held for `hold`.
    pub fn new(slots: &[String], max: usize, hold: Duration) -> Roster {
        Roster {
            seats: slots.iter().map(|s| (s.clone(), Seat::Busy)).collect(),
            order: slots.to_vec(),
            max: max.max(slots.len()),
            hold,
        }
    }

    /// The most live slots.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Slots that are not gone.
    pub fn live(&self) -> usize {
        self.seats.values().filter(|s| **s != Seat::Gone).count()
    }

    /// Takes in one input at `now`; the answer, for a join.
    pub fn handle(&mut self, input: RosterInput, now: Instant) -> Option<RosterEffect> {
        match input {
            RosterInput::Join => return Some(self.join(now)),
            RosterInput::Awaiting {
                worker,
                incarnation,
            } => self.set(worker, Seat::Awaiting(incarnation)),
            RosterInput::Joined { worker } => self.set(worker, Seat::Busy),
            RosterInput::Gone { worker } => self.set(worker, Seat::Gone),
        }
        None
    }

    fn set(&mut self, worker: String, seat: Seat) {
        if !self.seats.contains_key(&worker) {
            self.order.push(worker.clone());
        }
        // A slot that is gone stays gone (a late notice changes nothing), and a reserved one
        // stays reserved when its actor starts awaiting the same incarnation.
        let current = self.seats.entry(worker).or_insert(seat);
        match (*current, seat) {
            (Seat::Gone, _) => {}
            (Seat::Reserved { incarnation, .. }, Seat::Awaiting(i)) if i == incarnation => {}
            _ => *current = seat,
        }
    }

    fn join(&mut self, now: Instant) -> RosterEffect {
        for seat in self.seats.values_mut() {
            if let Seat::Reserved { incarnation, until } = *seat {
                if until <= now {
                    *seat = Seat::Awaiting(incarnation);
                }
            }
        }
        let free = self.order.iter().find_map(|w| match self.seats.get(w) {
            Some(Seat::Awaiting(incarnation)) => Some((w.clone(), *incarnation)),
            _ => None,
        });
        let until = now + self.hold;
        if let Some((worker, incarnation)) = free {
            self.seats
                .insert(worker.clone(), Seat::Reserved { incarnation, until });
            return RosterEffect::Assign {
                worker,
                incarnation,
            };
        }
        let live = self.live();
        if live >= self.max {
            return RosterEffect::Full(format!(
                "every worker slot is taken ({live} of at most {})",
                self.max
            ));
        }
        let worker = self.new_name();
        self.order.push(worker.clone());
        let seat = Seat::Reserved {
            incarnation: 1,
            until,
        };
        self.seats.insert(worker.clone(), seat);
        RosterEffect::Create { worker }
    }

    /// `w<N>`, N one more than the highest number of a slot named `w<number>`.
    fn new_name(&self) -> String {
        let highest = self
            .seats
            .keys()
            .filter_map(|w| w.strip_prefix('w')?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        format!("w{}", highest + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use RosterEffect::{Assign, Create, Full};
    use RosterInput::{Awaiting, Gone, Join, Joined};

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("w{i}")).collect()
    }

    fn awaiting(worker: &str, incarnation: u32) -> RosterInput {
        Awaiting {
            worker: worker.into(),
            incarnation,
        }
    }

    fn assign(worker: &str, incarnation: u32) -> Option<RosterEffect> {
        Some(Assign {
            worker: worker.into(),
            incarnation,
        })
    }

    fn create(worker: &str) -> Option<RosterEffect> {
        Some(Create {
            worker: worker.into(),
        })
    }

    /// Table-driven: each case feeds inputs (in order, one second apart) to a roster of
    /// `slots` first slots and at most `max`, and checks the answer to every join.
    #[test]
    fn joiners_get_awaited_slots_first_then_new_ones_up_to_the_maximum() {
        let hold = Duration::from_secs(10);
        let full = |live: usize, max: usize| {
            Some(Full(format!(
                "every worker slot is taken ({live} of at most {max})"
            )))
        };
        type Case = (
            &'static str,
            usize,
            usize,
            Vec<(RosterInput, Option<RosterEffect>)>,
        );
        let cases: Vec<Case> = vec![
            (
                "awaited slots in slot order, then full",
                2,
                2,
                vec![
                    (awaiting("w2", 1), None),
                    (awaiting("w1", 1), None),
                    (Join, assign("w1", 1)),
                    (Join, assign("w2", 1)),
                    (Join, full(2, 2)),
                ],
            ),
            (
                "new slots past the first ones, up to the maximum",
                1,
                3,
                vec![
                    (awaiting("w1", 1), None),
                    (Join, assign("w1", 1)),
                    (Join, create("w2")),
                    // The new slot's actor starts awaiting its joiner: still reserved.
                    (awaiting("w2", 1), None),
                    (Join, create("w3")),
                    (Join, full(3, 3)),
                ],
            ),
            (
                "a slot that is gone frees a place; names are never reused",
                1,
                2,
                vec![
                    (
                        Joined {
                            worker: "w1".into(),
                        },
                        None,
                    ),
                    (Join, create("w2")),
                    (Join, full(2, 2)),
                    (
                        Gone {
                            worker: "w2".into(),
                        },
                        None,
                    ),
                    (Join, create("w3")),
                    // A late notice for a gone slot changes nothing.
                    (awaiting("w2", 2), None),
                    (Join, full(2, 2)),
                ],
            ),
            (
                "a slot awaiting its next incarnation takes a joiner",
                2,
                2,
                vec![
                    (
                        Joined {
                            worker: "w1".into(),
                        },
                        None,
                    ),
                    (awaiting("w2", 3), None),
                    (Join, assign("w2", 3)),
                    (
                        Joined {
                            worker: "w2".into(),
                        },
                        None,
                    ),
                    (Join, full(2, 2)),
                ],
            ),
            (
                "no slots at first: every joiner makes one",
                0,
                2,
                vec![
                    (Join, create("w1")),
                    (Join, create("w2")),
                    (Join, full(2, 2)),
                ],
            ),
        ];
        for (name, slots, max, steps) in cases {
            let mut roster = Roster::new(&names(slots), max, hold);
            let start = Instant::now();
            for (i, (input, expected)) in steps.into_iter().enumerate() {
                let now = start + Duration::from_secs(i as u64);
                assert_eq!(roster.handle(input, now), expected, "{name}: step {i}");
            }
        }
    }

    #[test]
    fn a_reservation_nobody_used_is_given_again_after_the_hold() {
        let mut roster = Roster::new(&names(1), 1, Duration::from_secs(10));
        let t0 = Instant::now();
        roster.handle(awaiting("w1", 1), t0);
        assert_eq!(roster.handle(Join, t0), assign("w1", 1));
        assert!(matches!(
            roster.handle(Join, t0 + Duration::from_secs(9)),
            Some(Full(_))
        ));
        assert_eq!(
            roster.handle(Join, t0 + Duration::from_secs(10)),
            assign("w1", 1)
        );
        // Once its worker said hello, the slot is nobody else's.
        roster.handle(
            Joined {
                worker: "w1".into(),
            },
            t0,
        );
        assert!(matches!(
            roster.handle(Join, t0 + Duration::from_secs(60)),
            Some(Full(_))
        ));
        assert_eq!((roster.live(), roster.max()), (1, 1));
    }

    #[test]
    fn the_maximum_is_at_least_the_first_slots() {
        let roster = Roster::new(&names(4), 2, Duration::ZERO);
        assert_eq!(roster.max(), 4);
    }
}
