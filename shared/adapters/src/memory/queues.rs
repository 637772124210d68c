//! Call queues in memory: the queues as set, and their members from the calls (as the calls'
//! sparse `queue` index has them).

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::QueueSid;
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::queue::{CallQueue, Member, queue_position};
use teleapi_ports::{CallQueueStore, InsertError, StoreError};

#[async_trait]
impl CallQueueStore for MemoryStore {
    async fn call_queue(&self, sid: &QueueSid) -> Result<Option<CallQueue>, StoreError> {
        Ok(lock(&self.tables).queues.get(sid).cloned())
    }

    async fn insert_call_queue(&self, queue: &CallQueue) -> Result<(), InsertError> {
        let mut tables = lock(&self.tables);
        if tables.queues.contains_key(&queue.sid) {
            return Err(InsertError::AlreadyExists);
        }
        tables.queues.insert(queue.sid.clone(), queue.clone());
        Ok(())
    }

    async fn update_call_queue(
        &self,
        queue: &CallQueue,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match tables.queues.get_mut(&queue.sid) {
            Some(stored) if stored.version == expected_version => {
                *stored = queue.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_call_queue(&self, sid: &QueueSid, version: u64) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        if tables.queues.get(sid).is_none_or(|q| q.version != version) {
            return Ok(false);
        }
        tables.queues.remove(sid);
        Ok(true)
    }

    async fn list_call_queues(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> Result<Page<CallQueue>, StoreError> {
        let listing: BTreeMap<String, CallQueue> = lock(&self.tables)
            .queues
            .values()
            .filter(|q| q.account_sid == *account)
            .map(|q| (queue_position(q), q.clone()))
            .collect();
        newest_first(&listing, page, |_| true).await
    }

    async fn members(&self, sid: &QueueSid) -> Result<Vec<Member>, StoreError> {
        Ok(lock(&self.tables)
            .calls
            .values()
            .filter_map(|call| {
                let waiting = call.waiting().filter(|w| w.sid == *sid)?;
                Some(Member {
                    call_sid: call.sid.clone(),
                    queue_sid: waiting.sid.clone(),
                    date_enqueued: waiting.since,
                })
            })
            .collect())
    }
}
