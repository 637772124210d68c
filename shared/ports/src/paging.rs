//! The page-filling loop every listing shares, so that the DynamoDB adapter and its in-memory
//! twin page alike. A listing is one or more *shards* (partitions of an index), each read in the
//! listing's order in rounds of at most a limit of items (DynamoDB's `Limit` counts items read,
//! before any filter); the page merges the shards, item by item, in the listing's order, until
//! it is full, every shard has ended, or the read budget is spent.
//!
//! Positions (the sort key) are unique across shards, so a position names one place in the
//! whole listing: a page continues after its last item in every shard, with no repeats and no
//! gaps.

use std::collections::VecDeque;
use std::future::Future;

use crate::StoreError;
use teleapi_domain::paging::{Page, PageRequest};

/// The most items one page may read. A filter that matches little then answers a partial (even
/// empty) page with a next page, instead of reading a whole account in one request.
pub const MAX_SCANNED_PER_PAGE: usize = 5000;

/// One read of a shard: the items that matched, with their positions, and where the read
/// stopped.
pub struct Round<T> {
    pub items: Vec<(String, T)>,
    /// Position of the last item read (matched or not), when the read stopped at its limit.
    pub last_evaluated: Option<String>,
    pub scanned: usize,
}

/// What the page knows of one shard.
struct Shard<T> {
    /// Read and matched, not yet on the page, in reading order.
    buffer: VecDeque<(String, T)>,
    /// Where the next read starts (exclusive); `None` before the first read: the request's start.
    cursor: Option<String>,
    read_once: bool,
    ended: bool,
}

impl<T> Shard<T> {
    /// Unread items may still come before anything buffered elsewhere.
    fn starved(&self) -> bool {
        self.buffer.is_empty() && !self.ended
    }
}

/// A page of keys read from an index, as a page of the items read whole by key (`found`): in
/// the page's order, leaving out those that no longer `matches` (the index is eventually
/// consistent, so an entry may lag its item).
pub fn resolve<K: std::hash::Hash + Eq, T>(
    listed: Page<K>,
    mut found: std::collections::HashMap<K, T>,
    matches: impl Fn(&T) -> bool,
) -> Page<T> {
    Page {
        items: listed
            .items
            .iter()
            .filter_map(|key| found.remove(key))
            .filter(|item| matches(item))
            .collect(),
        more: listed.more,
        scanned: listed.scanned,
    }
}

/// The order a listing is displayed in, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Calls: newest first.
    Descending,
    /// Intents: in sequence.
    Ascending,
}

impl Order {
    /// The order a page reads in: the display order, or its reverse for a backward page.
    pub fn reading(self, request: &PageRequest) -> Order {
        match (self, request.backward) {
            (order, false) => order,
            (Order::Descending, true) => Order::Ascending,
            (Order::Ascending, true) => Order::Descending,
        }
    }
}

/// Fills one page from `shards` shards of a listing displayed in `order`. `round(shard, after,
/// limit)` reads up to `limit` items of that shard after `after` in the page's reading order
/// ([`Order::reading`]); the page comes back in display order. Shards are read concurrently,
/// and only as far as the page needs: a shard whose buffer runs dry is read again only if it
/// could still hold the next item.
pub async fn fill_page<T, F, Fut>(
    request: &PageRequest,
    order: Order,
    shards: usize,
    round: F,
) -> Result<Page<T>, StoreError>
where
    F: Fn(usize, Option<String>, usize) -> Fut,
    Fut: Future<Output = Result<Round<T>, StoreError>>,
{
    let size = request.size.max(1);
    let shards = shards.max(1);
    // Before `b` in reading order (positions are compared as text, which is their order).
    let reading = order.reading(request);
    let before = |a: &str, b: &str| match reading {
        Order::Descending => a > b,
        Order::Ascending => a < b,
    };
    let mut state: Vec<Shard<T>> = (0..shards)
        .map(|_| Shard {
            buffer: VecDeque::new(),
            cursor: request.after.clone(),
            read_once: false,
            ended: false,
        })
        .collect();
    // A first read takes a shard's fair share of the page and a little more; later reads what
    // the page still lacks (no shard can give more than that).
    let first_limit = if shards == 1 {
        size
    } else {
        size.div_ceil(shards) + 2
    };
    let mut items: Vec<(String, T)> = Vec::with_capacity(size.min(1000));
    let mut scanned = 0;
    loop {
        // The next item: the first buffered head in reading order, if no starved shard (buffer
        // empty, more to read) could still hold something before it.
        let head = (0..shards)
            .filter_map(|i| state[i].buffer.front().map(|(p, _)| (i, p)))
            .reduce(|a, b| if before(b.1, a.1) { b } else { a });
        let blocking: Vec<usize> = (0..shards)
            .filter(|&i| {
                let shard = &state[i];
                shard.starved()
                    && match (&head, &shard.cursor) {
                        (Some((_, head)), Some(cursor)) if shard.read_once => !before(head, cursor),
                        _ => true,
                    }
            })
            .collect();
        if blocking.is_empty() {
            let Some((i, _)) = head else {
                break; // every shard ended
            };
            items.push(state[i].buffer.pop_front().expect("a head"));
            if items.len() == size {
                break;
            }
            continue;
        }
        if scanned >= MAX_SCANNED_PER_PAGE {
            break;
        }
        let reads = blocking.iter().map(|&i| {
            let limit = if state[i].read_once {
                size - items.len()
            } else {
                first_limit
            };
            round(i, state[i].cursor.clone(), limit)
        });
        let results = futures_util::future::try_join_all(reads).await?;
        for (i, read) in blocking.into_iter().zip(results) {
            let shard = &mut state[i];
            scanned += read.scanned;
            shard.read_once = true;
            shard.buffer.extend(read.items);
            match read.last_evaluated {
                // A read that read nothing cannot have stopped at its limit: the shard ended.
                Some(last) if read.scanned > 0 => shard.cursor = Some(last),
                _ => shard.ended = true,
            }
        }
    }
    // Where the next page starts. After a full page: its last item (everything before it in
    // every shard has been read: it was placed only once no shard could hold anything earlier).
    // After a page cut short by the read budget: its last item if it has one, else the earliest
    // point that every shard has read past with nothing left to place.
    let unfinished = state.iter().any(|s| !s.buffer.is_empty() || !s.ended);
    let more = if !unfinished {
        None
    } else if let Some((last, _)) = items.last() {
        Some(last.clone())
    } else {
        state
            .iter()
            .filter(|s| s.starved())
            .filter_map(|s| s.cursor.clone())
            .reduce(|a, b| if before(&b, &a) { b } else { a })
    };
    let mut items: Vec<T> = items.into_iter().map(|(_, item)| item).collect();
    if request.backward {
        items.reverse();
    }
    Ok(Page {
        items,
        more,
        scanned,
    })
}
