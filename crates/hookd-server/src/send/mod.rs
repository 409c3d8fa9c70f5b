//! Sending webhooks — the Svix API (`/api/v1/...`): applications, event types,
//! endpoints (with their headers and secrets), messages, the attempt log, resend /
//! recover / send-example, background tasks (replays, purge, statistics), and the
//! operational-webhook endpoints. Handlers are thin:
//! each extracts, calls the service layer, and maps the answer.

pub mod application;
pub mod attempt;
pub mod endpoint;
pub mod event_type;
pub mod message;
pub mod operational;
pub mod portal_access;
pub mod resend;
pub mod tasks;
