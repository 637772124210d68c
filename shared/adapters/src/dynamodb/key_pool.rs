//! The pool of API keys lent to accounts on DynamoDB: the `key-pool` table (docs/data-model.md,
//! "key-pool"). Three kinds of item, by `PoolKey`: `size` (how many slots, `Slots`), `slot#{n}`
//! (the slot's `KeyValue` and, while lent, `Account` and `LentUntil` in ms), and `key#{value}`
//! (the slot holding that key: it keeps a key once in the pool). A slot is added and removed in
//! one transaction with its `key#` item and the size, so the slots stay `0..size`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, ReturnValue, TransactWriteItem, Update};

use super::item::{self, n, s};
use super::{DynamoStore, Item, is_conditional_check_failed, store_error};
use teleapi_domain::{AccountSid, Timestamp};
use teleapi_ports::{KeyPool, StoreError};

const SIZE: &str = "size";

fn slot_key(slot: u32) -> String {
    format!("slot#{slot}")
}

fn key_key(key: &str) -> String {
    format!("key#{key}")
}

fn built<T>(result: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::Failed(e.to_string()))
}

/// How many times an administrative change is tried when another one moved the size first.
const RACES: usize = 5;

impl DynamoStore {
    async fn pool_item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        self.read_item(&self.tables.key_pool, "PoolKey", key).await
    }

    /// The update of the size item from `size` to `to`, only if it still says `size`.
    fn resize(&self, size: u32, to: u32) -> Result<TransactWriteItem, StoreError> {
        let update = built(
            Update::builder()
                .table_name(&self.tables.key_pool)
                .key("PoolKey", s(SIZE))
                .update_expression("SET Slots = :to")
                .condition_expression(if size == 0 {
                    "attribute_not_exists(Slots) OR Slots = :size"
                } else {
                    "Slots = :size"
                })
                .expression_attribute_values(":size", n(size))
                .expression_attribute_values(":to", n(to))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl KeyPool for DynamoStore {
    async fn pool_size(&self) -> Result<u32, StoreError> {
        match self.pool_item(SIZE).await? {
            Some(item) => item::pool_number_from(&item, "Slots"),
            None => Ok(0),
        }
    }

    async fn lend_slot(
        &self,
        slot: u32,
        account: &AccountSid,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.key_pool)
            .key("PoolKey", s(&slot_key(slot)))
            .update_expression("SET Account = :account, LentUntil = :until")
            .condition_expression(
                "attribute_exists(KeyValue) AND (attribute_not_exists(Account) \
                 OR Account = :account OR LentUntil < :now)",
            )
            .expression_attribute_values(":account", s(account.as_str()))
            .expression_attribute_values(":until", n(until.millis()))
            .expression_attribute_values(":now", n(now.millis()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => item::pool_key_from(&output.attributes.unwrap_or_default()).map(Some),
            Err(err) if is_conditional_check_failed(&err) => Ok(None),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn add_key(
        &self,
        key: &str,
        lent: Option<(&AccountSid, Timestamp)>,
    ) -> Result<u32, StoreError> {
        for _ in 0..RACES {
            if let Some(found) = self.pool_item(&key_key(key)).await? {
                return item::pool_number_from(&found, "Slot");
            }
            let slot = self.pool_size().await?;
            let put = |item| {
                built(
                    Put::builder()
                        .table_name(&self.tables.key_pool)
                        .set_item(Some(item))
                        .condition_expression("attribute_not_exists(PoolKey)")
                        .build(),
                )
                .map(|put| TransactWriteItem::builder().put(put).build())
            };
            let result = self
                .client
                .transact_write_items()
                .transact_items(put(item::pool_slot_item(&slot_key(slot), key, lent))?)
                .transact_items(put(item::pool_index_item(&key_key(key), slot))?)
                .transact_items(self.resize(slot, slot + 1)?)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(slot),
                // Another change came first: read again.
                Err(err) if super::condition_failed(&err) => continue,
                Err(err) => return Err(store_error(err)),
            }
        }
        Err(StoreError::Failed(
            "the key pool kept changing while a key was added".into(),
        ))
    }

    async fn take_last_key(&self, now: Timestamp) -> Result<Option<String>, StoreError> {
        let size = self.pool_size().await?;
        let Some(last) = size.checked_sub(1) else {
            return Ok(None);
        };
        let Some(stored) = self.pool_item(&slot_key(last)).await? else {
            return Ok(None);
        };
        let key = item::pool_key_from(&stored)?;
        let delete = |pool_key: String, condition: Option<&str>| {
            let mut delete = Delete::builder()
                .table_name(&self.tables.key_pool)
                .key("PoolKey", s(&pool_key));
            if let Some(condition) = condition {
                delete = delete
                    .condition_expression(condition)
                    .expression_attribute_values(":now", n(now.millis()));
            }
            built(delete.build()).map(|d| TransactWriteItem::builder().delete(d).build())
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(delete(
                slot_key(last),
                Some("attribute_not_exists(Account) OR LentUntil < :now"),
            )?)
            .transact_items(delete(key_key(&key), None)?)
            .transact_items(self.resize(size, last)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(key)),
            Err(err) if super::condition_failed(&err) => Ok(None),
            Err(err) => Err(store_error(err)),
        }
    }
}
