//! A small pool of read-only connections. WAL mode lets them read while the writer
//! writes; each read runs on tokio's blocking pool so it never stalls the runtime.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use hookd_store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn new(conns: Vec<Connection>) -> Self {
        Self {
            permits: Semaphore::new(conns.len()),
            idle: Mutex::new(conns),
        }
    }

    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the reader pool is closed".into()))?;
        let conn = self
            .idle
            .lock()
            .map_err(|_| StoreError::Unavailable("the reader pool is poisoned".into()))?
            .pop()
            .ok_or_else(|| StoreError::Unavailable("no idle reader connection".into()))?;
        let this = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| f(&conn)));
            if let Ok(mut idle) = this.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await;
        drop(permit);
        match result {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StoreError::Unavailable("a read panicked".into())),
            Err(e) => Err(StoreError::Unavailable(format!("a read was cancelled: {e}"))),
        }
    }
}
