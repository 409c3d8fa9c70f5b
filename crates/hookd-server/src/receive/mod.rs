//! Receiving webhooks — the Svix Ingest API (`/ingest/api/v1/source...`): sources,
//! their destinations, the request log and replay; and the receiving URL
//! `/in/{token}`. Recording a request, firing cron sources and forwarding are the
//! service layer's and the delivery engine's work.

pub mod destination;
pub mod request;
pub mod source;
