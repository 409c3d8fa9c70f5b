//! Flows as stored (the automation issue): each flow's definition document, checked
//! by `hookd_flow::Flow::parse` before it is kept, and the key of the trigger it
//! listens to, so the place that commits an event finds its flows in one indexed read.

use chrono::{DateTime, Utc};
use hookd_core::id::FlowId;
use hookd_core::name::DataName;

/// What a flow is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowData {
    /// Unique in the organisation.
    pub name: DataName,
    /// The definition as the API took it.
    pub document: serde_json::Value,
    pub enabled: bool,
    /// What it listens to, e.g. `source.request:src_1`, `message.created:app_1`,
    /// `mode:app_1/signup`, `cron`, `manual` (the service builds it from the trigger,
    /// with ids resolved).
    pub trigger: String,
}

/// A flow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub id: FlowId,
    pub data: FlowData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
