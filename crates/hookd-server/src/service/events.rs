//! Operational webhooks (`endpoint.*`, `app.*`, ...): queued by the service functions
//! whose changes they report, never by a handler.

use hookd_core::id::OrgId;
use hookd_dispatch::events::OperationalEvent;

use crate::service::Service;

/// Queues an operational webhook; a failure is logged, never the caller's problem (the
/// change it reports is already committed).
pub(super) async fn emit(state: &Service, org: &OrgId, event: OperationalEvent) {
    let kind = event.kind;
    match hookd_dispatch::events::emit(state.store.as_ref(), org, event).await {
        Ok(true) => state.wake_dispatcher(),
        Ok(false) => {}
        Err(e) => tracing::warn!(event = kind, error = %e, "could not queue an operational webhook"),
    }
}
