//! The worker slot's brain: the pure decisions of one slot's life.
//!
//! * [`death`]: what a worker's death means: whom to blame, what goes back to the queue,
//!   whether it counts against the respawn budget, and whether the slot respawns, retires or is
//!   done. The kill-policy table is in its module docs.
//! * [`machine`]: the slot itself, a sans-I/O state machine: its phase, its current
//!   incarnation, every decision on what the process says, timers as effects; the Worker actor
//!   is its shell.
//! * [`steal`]: the steal handshake with one process (defer, ask, answer once, forget).
//!
//! Liveness (busy or hung) is [`crate::liveness`]; the respawn budget and the retirement rule are
//! [`crate::restart`].

pub mod death;
pub mod machine;
pub mod steal;
