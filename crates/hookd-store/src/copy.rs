//! Moving a whole database from one backend to another (`hookd migrate-data`): the
//! tables in an order that satisfies their references, and a backend-neutral value.
//! Both backends keep the same tables and column names; each converts these values to
//! its own column types (times as milliseconds, JSON as text, flags as integers).

/// Every table holding data, parents before children.
pub const TABLES: &[&str] = &[
    "org",
    "api_token",
    "application",
    "ui_session",
    "event_type",
    "endpoint",
    "message",
    "delivery",
    "attempt",
    "idempotency",
    "source",
    "ingest_request",
    "data_definition",
    "document",
    "score",
    "api_key",
    "data_usage",
    "job",
    "flow",
    "flow_run",
    "flow_secret",
];

/// One column value as read from the source database.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A batch of rows of one table: the column names and the rows' values in that order.
#[derive(Debug, Clone, Default)]
pub struct CopyBatch {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<CopyValue>>,
    /// Where the next batch starts (the source's own row position).
    pub next: i64,
}
