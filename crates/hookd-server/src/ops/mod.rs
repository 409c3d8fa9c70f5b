//! Running the server: health, Prometheus metrics, retention (the pruner), and the
//! durable job and flow runners. It may use the service layer and the shared HTTP layer, never
//! another surface.

pub mod flows;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod retention;
