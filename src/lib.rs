//! herd runs one test suite across many supervised worker processes and never loses a test.
//!
//! This crate is the facade: [`Session`] runs a suite from a [`SessionConfig`] and a [`Runner`],
//! returning a [`SessionReport`] in which every collected test has exactly one outcome. The pure
//! policy lives in [`herd_core`] (re-exported as [`core`]); the actor tree in [`herd_actors`]
//! (re-exported as [`actors`]).
//!
//! ```no_run
//! use herd::{ExecRunner, Session, SessionConfig};
//!
//! let runner = ExecRunner::new("ls tests/*.sh", vec!["sh".into()]).unwrap();
//! let config = SessionConfig { workers: Some(4), ..SessionConfig::default() };
//! let report = Session::new(config, Box::new(runner)).run().unwrap();
//! println!("{}", report.tally.summary_line(report.duration));
//! ```

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod exec;
pub mod junit;
pub mod options;
pub mod preflight;
pub mod profile;
pub mod pytest;
pub mod runner;
pub mod session;
pub mod values;
pub mod worker_loop;

pub use herd_actors as actors;
pub use herd_actors::{SessionReport, TestResult, WorkerCommand};
pub use herd_core as core;
pub use herd_core::events::Event;
pub use herd_core::outcome::{Outcome, SessionEnd};
pub use pytest::PytestRunner;
pub use runner::{ExecRunner, Runner, RunnerError};
pub use session::{Session, SessionConfig, SessionError};
