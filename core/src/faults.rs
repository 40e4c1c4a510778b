//! Fault injection: a seeded plan of faults herd inflicts on its own workers, so users can see
//! how their suite and their workers behave when processes die, hang or lie, and so herd can
//! prove it survives every such fault (every test still ends with exactly one outcome).
//!
//! `--chaos 'seed=7,kill=0.05,stop=0.02,term=0.02,exit0=0.01,garble=0.01,lie=0.01'`: each rate is
//! the chance, per test started, that the fault strikes the worker running it (`lie` is drawn
//! once per spawn). The draws of one worker spawn come from a generator seeded with the plan's
//! seed, the worker id and its incarnation, so a run can be replayed.

use std::fmt;
use std::hash::{Hash, Hasher};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL the worker process while it runs a test.
    Kill,
    /// SIGSTOP it (herd's hang detection must find it).
    Stop,
    /// SIGTERM it.
    Term,
    /// Make it exit 0 without saying shutdown (done by the worker, on herd's request).
    Exit0,
    /// Make it send a malformed frame (done by the worker).
    Garble,
    /// Make it report a different collection (done by the worker).
    Lie,
}

impl FaultKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Term,
        FaultKind::Exit0,
        FaultKind::Garble,
        FaultKind::Lie,
    ];

    /// The name used in `--chaos` and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Term => "term",
            FaultKind::Exit0 => "exit0",
            FaultKind::Garble => "garble",
            FaultKind::Lie => "lie",
        }
    }

    /// Whether herd inflicts it from outside (a signal) rather than through the worker.
    pub fn is_signal(self) -> bool {
        matches!(self, FaultKind::Kill | FaultKind::Stop | FaultKind::Term)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A seeded plan of faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The seed every draw derives from.
    pub seed: u64,
    /// Chance per test started (per spawn for `lie`) of each fault.
    pub rates: Vec<(FaultKind, f64)>,
}

impl FaultPlan {
    /// Parses `seed=7,kill=0.05,stop=0.02,...` (the seed defaults to 0).
    pub fn parse(spec: &str) -> Result<FaultPlan, String> {
        let mut plan = FaultPlan {
            seed: 0,
            rates: Vec::new(),
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("--chaos: {item:?} is not KEY=VALUE"))?;
            if key == "seed" {
                plan.seed = value
                    .parse()
                    .map_err(|_| format!("--chaos: seed {value:?} is not a number"))?;
                continue;
            }
            let kind = FaultKind::ALL
                .into_iter()
                .find(|k| k.name() == key)
                .ok_or_else(|| {
                    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "--chaos: unknown fault {key:?} (known: seed, {})",
                        names.join(", ")
                    )
                })?;
            let rate: f64 = value
                .parse()
                .map_err(|_| format!("--chaos: {key}={value:?} is not a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "--chaos: {key}={rate} is not a probability between 0 and 1"
                ));
            }
            plan.rates.retain(|(k, _)| *k != kind);
            plan.rates.push((kind, rate));
        }
        Ok(plan)
    }

    fn rate(&self, kind: FaultKind) -> f64 {
        self.rates
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0.0, |(_, r)| *r)
    }

    /// The dice of one worker spawn.
    pub fn dice(&self, worker: &str, incarnation: u32) -> FaultDice {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.seed, worker, incarnation).hash(&mut hasher);
        FaultDice {
            plan: self.clone(),
            rng: ChaCha8Rng::seed_from_u64(hasher.finish()),
        }
    }
}

/// What a worker spawn is asked to do to itself (its `HERD_WORKER_FAULT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfFaults {
    /// Exit 0 without shutdown as the test after this many starts.
    pub exit0_after: Option<usize>,
    /// Send a malformed frame after this many tests (at least one).
    pub garble_after: Option<usize>,
    /// Report a collection with one more test.
    pub lie: bool,
}

impl SelfFaults {
    /// The `HERD_WORKER_FAULT` value for the spawn `identity`, or `None` when there is nothing.
    pub fn env_value(&self, identity: &str) -> Option<String> {
        let mut items = Vec::new();
        if let Some(n) = self.exit0_after {
            items.push(format!("{identity}:exit0-after={n}"));
        }
        if let Some(n) = self.garble_after {
            items.push(format!("{identity}:garbage-after={n}"));
        }
        if self.lie {
            items.push(format!(
                "{identity}:extra-test=herd-chaos::a-test-that-does-not-exist"
            ));
        }
        (!items.is_empty()).then(|| items.join(";"))
    }
}

/// The draws of one worker spawn.
#[derive(Debug, Clone)]
pub struct FaultDice {
    plan: FaultPlan,
    rng: ChaCha8Rng,
}

impl FaultDice {
    /// What the worker is asked to do to itself: for `exit0` and `garble`, the number of tests
    /// before the first strike (a geometric draw, so the rate is per test), capped at `horizon`.
    pub fn self_faults(&mut self, horizon: usize) -> SelfFaults {
        let mut after = |rate: f64| {
            if rate <= 0.0 {
                return None;
            }
            (0..horizon).find(|_| self.rng.gen_bool(rate))
        };
        let exit0_after = after(self.plan.rate(FaultKind::Exit0));
        // The worker sends garbage after a test's reports: after the (n + 1)th test.
        let garble_after = after(self.plan.rate(FaultKind::Garble)).map(|n| n + 1);
        let lie_rate = self.plan.rate(FaultKind::Lie);
        let lie = lie_rate > 0.0 && self.rng.gen_bool(lie_rate);
        SelfFaults {
            exit0_after,
            garble_after,
            lie,
        }
    }

    /// At a test's start: the signal fault to inflict, if any, and a delay into the test (ms).
    pub fn at_test_start(&mut self) -> Option<(FaultKind, u64)> {
        for kind in [FaultKind::Kill, FaultKind::Stop, FaultKind::Term] {
            let rate = self.plan.rate(kind);
            if rate > 0.0 && self.rng.gen_bool(rate) {
                return Some((kind, self.rng.gen_range(0..30)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_refuse_nonsense() {
        let plan = FaultPlan::parse("seed=7,kill=0.05,stop=0.02,term=0.02,exit0=0.01").unwrap();
        assert_eq!(plan.seed, 7);
        assert_eq!(plan.rate(FaultKind::Kill), 0.05);
        assert_eq!(plan.rate(FaultKind::Lie), 0.0);
        assert!(FaultPlan::parse("kill=2")
            .unwrap_err()
            .contains("probability"));
        assert!(FaultPlan::parse("bite=0.1")
            .unwrap_err()
            .contains("unknown fault \"bite\""));
        assert!(FaultPlan::parse("kill").unwrap_err().contains("KEY=VALUE"));
        assert!(FaultPlan::parse("seed=x").unwrap_err().contains("seed"));
    }

    #[test]
    fn the_same_seed_replays_the_same_faults() {
        let plan =
            FaultPlan::parse("seed=42,kill=0.3,stop=0.1,exit0=0.2,garble=0.1,lie=0.5").unwrap();
        let draws = |worker: &str| {
            let mut dice = plan.dice(worker, 1);
            let own = dice.self_faults(50);
            let strikes: Vec<Option<(FaultKind, u64)>> =
                (0..20).map(|_| dice.at_test_start()).collect();
            (own, strikes)
        };
        assert_eq!(draws("w1"), draws("w1"));
        assert_ne!(draws("w1"), draws("w2"));
        assert_ne!(draws("w1"), {
            let mut dice = plan.dice("w1", 2);
            (
                dice.self_faults(50),
                (0..20).map(|_| dice.at_test_start()).collect(),
            )
        });
    }

    #[test]
    fn rates_are_per_test() {
        let plan = FaultPlan::parse("seed=1,kill=0.25").unwrap();
        let mut dice = plan.dice("w1", 1);
        let hits = (0..4000).filter(|_| dice.at_test_start().is_some()).count();
        assert!((800..1200).contains(&hits), "{hits}");
        let never = FaultPlan::parse("seed=1").unwrap();
        assert_eq!(never.dice("w1", 1).self_faults(100), SelfFaults::default());
        let always = FaultPlan::parse("exit0=1,lie=1").unwrap();
        let own = always.dice("w1", 3).self_faults(100);
        assert_eq!((own.exit0_after, own.lie), (Some(0), true));
        assert_eq!(
            own.env_value("w1.3").unwrap(),
            "w1.3:exit0-after=0;w1.3:extra-test=herd-chaos::a-test-that-does-not-exist"
        );
    }
}
