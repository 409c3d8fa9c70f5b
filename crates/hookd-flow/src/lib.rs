//! Flows, without IO: a flow's [definition] — its trigger and its steps, each with an
//! optional `if` in the payload-filter language — parsed and checked once; the
//! sandboxed [template]s its text fields are written in; the [plan] of a step for a
//! run's data (what to do, every value rendered and checked); and a [run]'s state,
//! which each step's outcome moves on.
//!
//! Running flows (the durable run, the steps' effects) is built on this by the server;
//! nothing here reaches a database or the network.

pub mod definition;
pub mod plan;
pub mod run;
pub mod template;

pub use definition::{Action, Flow, FlowError, Step, Trigger};
pub use plan::{Effect, PlanError, plan};
pub use run::{Outcome, RunState, RunStatus};
pub use template::{Mapping, RunData, Template, TemplateError};

#[cfg(test)]
mod tests;
