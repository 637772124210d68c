//! Media workers' records in memory.

use super::*;
use async_trait::async_trait;
use teleapi_domain::Timestamp;
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_ports::{StoreError, WorkerStore};

#[async_trait]
impl WorkerStore for MemoryStore {
    async fn worker(&self, id: &WorkerId) -> Result<Option<Worker>, StoreError> {
        Ok(lock(&self.tables).workers.get(id).cloned())
    }

    async fn record_worker(&self, worker: &Worker) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        let writable = tables
            .workers
            .get(&worker.id)
            .is_none_or(|stored| stored.status.is_live() && stored.last_event < worker.last_event);
        if writable {
            tables.workers.insert(worker.id.clone(), worker.clone());
        }
        Ok(writable)
    }

    async fn expired_workers(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Worker>, StoreError> {
        let tables = lock(&self.tables);
        let mut expired: Vec<Worker> = tables
            .workers
            .values()
            .filter(|w| w.status.is_live() && w.lease_expires_at < now)
            .cloned()
            .collect();
        expired.sort_by_key(|w| w.lease_expires_at);
        expired.truncate(limit);
        Ok(expired)
    }

    async fn expire_worker(&self, id: &WorkerId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match tables.workers.get_mut(id) {
            Some(worker) if worker.status.is_live() && worker.lease_expires_at < now => {
                worker.status = WorkerStatus::Expired;
                worker.date_updated = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
