//! Media workers' records on DynamoDB.

use super::*;

#[async_trait]
impl WorkerStore for DynamoStore {
    async fn worker(&self, id: &WorkerId) -> Result<Option<Worker>, StoreError> {
        let found = self
            .read_item(&self.tables.workers, "WorkerId", id.as_str())
            .await?;
        found.map(|i| item::worker_from(&i)).transpose()
    }

    async fn record_worker(&self, worker: &Worker) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.workers)
            .set_item(Some(item::worker_item(worker)))
            .condition_expression(
                "attribute_not_exists(WorkerId) \
                 OR (#status IN (:active, :draining) AND LastEvent < :at)",
            )
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":active", s(WorkerStatus::Active.as_str()))
            .expression_attribute_values(":draining", s(WorkerStatus::Draining.as_str()))
            .expression_attribute_values(":at", n(worker.last_event.millis()))
            .send()
            .await;
        landed(result)
    }

    async fn expired_workers(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Worker>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.workers)
            .index_name(schema::LEASES_INDEX)
            .key_condition_expression("LeaseShard = :live AND LeaseExpiresAt < :now")
            .expression_attribute_values(":live", s(item::LIVE_LEASES))
            .expression_attribute_values(":now", n(now.millis()))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(store_error)?;
        let mut expired = Vec::new();
        for entry in output.items() {
            let worker = item::worker_from(entry)?;
            // The index is eventually consistent: skip what was renewed or has left since.
            if worker.status.is_live() && worker.lease_expires_at < now {
                expired.push(worker);
            }
        }
        Ok(expired)
    }

    async fn expire_worker(&self, id: &WorkerId, now: Timestamp) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.workers)
            .key("WorkerId", s(id.as_str()))
            .update_expression("SET #status = :expired, DateUpdated = :now REMOVE LeaseShard")
            .condition_expression("#status IN (:active, :draining) AND LeaseExpiresAt < :now")
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":expired", s(WorkerStatus::Expired.as_str()))
            .expression_attribute_values(":active", s(WorkerStatus::Active.as_str()))
            .expression_attribute_values(":draining", s(WorkerStatus::Draining.as_str()))
            .expression_attribute_values(":now", n(now.millis()))
            .send()
            .await;
        landed(result)
    }
}
