//! The page-filling loop every listing shares, so that the DynamoDB adapter and its in-memory
//! twin page alike: rounds of at most `size` items read in the listing's order (DynamoDB's `Limit`
//! counts items read, before any filter), until the page is full, the listing ends, or the read
//! budget is spent.

use std::future::Future;

use crate::domain::listing::{Page, PageRequest};
use crate::ports::StoreError;

/// The most items one page may read. A filter that matches little then answers a partial (even
/// empty) page with a next page, instead of reading a whole account in one request.
pub const MAX_SCANNED_PER_PAGE: usize = 5000;

/// One read of a listing: the items that matched, and where the read stopped.
pub struct Round<T> {
    pub items: Vec<T>,
    /// Position of the last item read, when the read stopped at its limit.
    pub last_evaluated: Option<String>,
    pub scanned: usize,
}

/// Fills one page. `round(after, limit)` reads up to `limit` items after `after` in the order of
/// the request (reverse display order for a backward page); the page comes back in display
/// order.
pub async fn fill_page<T, F, Fut>(
    request: &PageRequest,
    position: impl Fn(&T) -> String,
    mut round: F,
) -> Result<Page<T>, StoreError>
where
    F: FnMut(Option<String>, usize) -> Fut,
    Fut: Future<Output = Result<Round<T>, StoreError>>,
{
    let size = request.size.max(1);
    let mut items: Vec<T> = Vec::with_capacity(size.min(1000));
    let mut scanned = 0;
    let mut cursor = request.after.clone();
    let more = loop {
        let read = round(cursor.clone(), size).await?;
        scanned += read.scanned;
        let mut matched = read.items.into_iter();
        items.extend(matched.by_ref().take(size - items.len()));
        if matched.next().is_some() {
            // The page filled inside this round: continue right after its last item.
            break items.last().map(&position);
        }
        match read.last_evaluated {
            None => break None,
            Some(last) => cursor = Some(last),
        }
        if items.len() == size || scanned >= MAX_SCANNED_PER_PAGE {
            break cursor;
        }
    };
    if request.backward {
        items.reverse();
    }
    Ok(Page {
        items,
        more,
        scanned,
    })
}
