//! Keyset pagination shared by every listing: a page is the items after (or before) a
//! cursor key in the listing's order, never an offset, so pages stay stable while rows
//! are added.

/// The order of a listing by its key (ids are time-ordered, so this is creation order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Ascending,
    Descending,
}

/// Where a page starts: strictly after `key` in the listing's order, or, with
/// `backward`, the page that ends strictly before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub backward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<Cursor>,
    pub order: Order,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: 50,
            cursor: None,
            order: Order::Ascending,
        }
    }
}

impl ListQuery {
    /// Whether rows must be read in descending key order to produce this page.
    pub fn scan_descending(&self) -> bool {
        let backward = self.cursor.as_ref().is_some_and(|c| c.backward);
        (self.order == Order::Descending) != backward
    }

    /// Turns `limit + 1` rows read in scan order into a page in listing order.
    pub fn into_page<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let has_more = rows.len() > self.limit;
        rows.truncate(self.limit);
        if self.cursor.as_ref().is_some_and(|c| c.backward) {
            rows.reverse();
        }
        Page {
            items: rows,
            has_more,
        }
    }
}

/// One page of a listing, in listing order. `has_more` says whether more items lie
/// beyond it in the direction it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}
