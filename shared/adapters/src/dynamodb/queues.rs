//! Call queues on DynamoDB (docs/data-model.md, "queues"): the `queues` table, one item a
//! queue (what the application set), listed by account through its `account` index; and who
//! waits in each, from the calls table's sparse `queue` index (a call carries `QueueSid` and
//! `QueuedAt` while it waits), so that joining or leaving a queue costs no write besides the
//! call's own.

use async_trait::async_trait;

use super::item::{self, n, s};
use super::{AccountIndex, DynamoStore, landed, schema, store_error};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::queue::{CallQueue, Member};
use teleapi_domain::{AccountSid, QueueSid};
use teleapi_ports::{CallQueueStore, InsertError, StoreError};

#[async_trait]
impl CallQueueStore for DynamoStore {
    async fn call_queue(&self, sid: &QueueSid) -> Result<Option<CallQueue>, StoreError> {
        let found = self
            .read_item(&self.tables.queues, "QueueSid", sid.as_str())
            .await?;
        found.as_ref().map(item::call_queue_from).transpose()
    }

    async fn insert_call_queue(&self, queue: &CallQueue) -> Result<(), InsertError> {
        self.insert_item(
            &self.tables.queues,
            "QueueSid",
            item::call_queue_item(queue),
        )
        .await
    }

    async fn update_call_queue(
        &self,
        queue: &CallQueue,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.queues)
            .set_item(Some(item::call_queue_item(queue)))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(expected_version))
            .send()
            .await;
        landed(result)
    }

    async fn delete_call_queue(&self, sid: &QueueSid, version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.queues)
            .key("QueueSid", s(sid.as_str()))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(version))
            .send()
            .await;
        landed(result)
    }

    async fn list_call_queues(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> Result<Page<CallQueue>, StoreError> {
        let index = AccountIndex {
            table: &self.tables.queues,
            index: schema::QUEUE_ACCOUNT_INDEX,
            key: "QueueSid",
        };
        self.list_by_account(index, account, page, item::call_queue_from, |_| true)
            .await
    }

    async fn members(&self, sid: &QueueSid) -> Result<Vec<Member>, StoreError> {
        let mut members = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.calls)
                .index_name(schema::QUEUE_INDEX)
                .key_condition_expression("QueueSid = :queue")
                .expression_attribute_values(":queue", s(sid.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for entry in page.items() {
                members.push(item::member_from(entry)?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(members),
            }
        }
    }
}
