//! Flows (docs/flows.md), without IO: a flow's [definition] — its trigger and its
//! steps, each with an optional `if` in the payload-filter language — parsed and
//! checked once, and the sandboxed [template]s its text fields are written in.
//!
//! Running flows (the durable run, the steps' effects) is built on this by the server;
//! nothing here reaches a database or the network.

pub mod definition;
pub mod template;

pub use definition::{Action, Flow, FlowError, Step, Trigger};
pub use template::{Mapping, RunData, Template, TemplateError};

#[cfg(test)]
mod tests;
