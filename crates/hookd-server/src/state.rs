//! What every handler shares.

use std::sync::Arc;

use hookd_store::Store;

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
}
