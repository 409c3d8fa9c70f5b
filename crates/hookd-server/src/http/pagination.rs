//! Svix-style list pages: `?limit=&iterator=&order=` in, `{data, iterator,
//! prevIterator, done}` out. An iterator is the key of the last item seen; a
//! `prevIterator` is `-` followed by the key of the first, and reads backwards.

use hookd_store::{Cursor, ListQuery, Order, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ApiError;

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 250;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Ascending,
    Descending,
}

/// The paging parameters every list takes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// Items per page, 1 to 250 (default 50).
    pub limit: Option<u64>,
    /// The `iterator` (or `prevIterator`) of a previous page.
    pub iterator: Option<String>,
    /// Sort order (default ascending: oldest first).
    pub order: Option<Ordering>,
}

impl Pagination {
    pub fn to_query(&self, default_order: Order) -> Result<ListQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                &["query", "limit"],
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let cursor = match self.iterator.as_deref() {
            None | Some("") => None,
            Some(it) if it.len() > 300 => {
                return Err(ApiError::invalid(
                    &["query", "iterator"],
                    "the iterator is too long",
                ));
            }
            Some(it) => Some(match it.strip_prefix('-') {
                Some(key) => Cursor {
                    key: key.to_owned(),
                    backward: true,
                },
                None => Cursor {
                    key: it.to_owned(),
                    backward: false,
                },
            }),
        };
        Ok(ListQuery {
            limit: limit as usize,
            cursor,
            order: match self.order {
                Some(Ordering::Ascending) => Order::Ascending,
                Some(Ordering::Descending) => Order::Descending,
                None => default_order,
            },
        })
    }
}

/// One page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    /// Pass as `iterator` to get the next page; `null` when the page is empty.
    pub iterator: Option<String>,
    /// Pass as `iterator` to get the previous page.
    #[serde(rename = "prevIterator")]
    pub prev_iterator: Option<String>,
    /// True when there is nothing further in the direction read.
    pub done: bool,
}

impl<T> ListResponse<T> {
    /// Builds the response from a store page; `key` gives an item's cursor key.
    pub fn from_page<S>(page: Page<S>, key: impl Fn(&S) -> String, out: impl Fn(S) -> T) -> Self {
        let iterator = page.items.last().map(&key);
        let prev_iterator = page.items.first().map(|s| format!("-{}", key(s)));
        Self {
            done: !page.has_more,
            iterator,
            prev_iterator,
            data: page.items.into_iter().map(out).collect(),
        }
    }
}
