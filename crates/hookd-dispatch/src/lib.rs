//! The delivery engine.
//!
//! [`Dispatcher::run_due`] is one step: lease what is due, send it, record the
//! attempts. [`Dispatcher::run`] repeats that step in the background, woken by
//! [`Dispatcher::wake`] right after a message is committed (the fast path) and by a
//! poll for retries and expired leases. The parts are small modules:
//!
//! - [`guard`]: resolving hosts and refusing internal addresses before connecting;
//! - [`sender`]: the signed HTTP request and what came back;
//! - [`transform`]: the endpoint's transformation, run before each attempt;
//! - [`outcome`]: turning an answer into the delivery's next step;
//! - [`throttle`]: per-endpoint rate limits;
//! - [`relay`]: deliveries to `hookd listen` sessions connected to this node.

pub mod dispatcher;
pub mod events;
pub mod guard;
pub mod metrics;
pub mod outcome;
pub mod relay;
pub mod sender;
pub mod throttle;
pub mod transform;

pub use dispatcher::{DispatchConfig, Dispatcher};
