//! Calls' logs on DynamoDB: the `call_log` table, a call's entries in its partition (sort key
//! `Entry`, the entry's position), a counter item that bounds them, and the sparse
//! `notifications` index of an account's notifications (docs/data-model.md, "call_log").

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::item::{n, s};
use super::{DynamoStore, is_conditional_check_failed, round_by, schema, store_error};
use teleapi_domain::call_log::{
    LogEntry, MAX_ENTRIES, Notification, NotificationFilter, RequestEntry,
    notification_position_call,
};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::{AccountSid, CallSid, NotificationSid, Timestamp};
use teleapi_ports::paging::{Order, fill_page};
use teleapi_ports::{CallLogStore, StoreError};

/// The sort key of a call's counter item: it sorts before every entry (`E…`, `N…`).
const COUNTER: &str = "#size";

fn entry_item(entry: &LogEntry, expires_at: Timestamp) -> HashMap<String, AttributeValue> {
    let data = match entry {
        LogEntry::Request(request) => serde_json::to_string(request),
        LogEntry::Notification(notification) => serde_json::to_string(notification),
    }
    .expect("an entry always serialises");
    let mut item = HashMap::from([
        ("CallSid".to_owned(), s(entry.call_sid().as_str())),
        ("Entry".to_owned(), s(&entry.position())),
        ("AccountSid".to_owned(), s(entry.account_sid().as_str())),
        ("Data".to_owned(), s(&data)),
        ("ExpiresAt".to_owned(), n(expires_at.epoch_seconds())),
    ]);
    if let LogEntry::Notification(notification) = entry {
        item.insert("NoticeAccount".into(), s(notification.account_sid.as_str()));
        item.insert("NotificationSid".into(), s(notification.sid.as_str()));
        item.insert("Log".into(), n(notification.level.code()));
    }
    item
}

fn data<T: serde::de::DeserializeOwned>(
    item: &HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    let raw = item
        .get("Data")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Failed("log entry without Data".into()))?;
    serde_json::from_str(raw).map_err(|e| StoreError::Failed(format!("log entry Data: {e}")))
}

/// The bounds of a notification query's sort key: `N`, then the time bounds.
fn notification_range(filter: &NotificationFilter) -> (String, String) {
    let low = filter.from.map_or_else(
        || "N".to_owned(),
        |at| format!("N{:015}#", at.millis().max(0)),
    );
    let high = filter.to.map_or_else(
        || "N~".to_owned(),
        |at| format!("N{:015}#~", at.millis().max(0)),
    );
    (low, high)
}

#[async_trait]
impl CallLogStore for DynamoStore {
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError> {
        // The counter first: a log that is full takes nothing. It counts writes, so a retried
        // append counts twice while its entry lands once, on its key.
        let counted = self
            .client
            .update_item()
            .table_name(&self.tables.call_log)
            .key("CallSid", s(entry.call_sid().as_str()))
            .key("Entry", s(COUNTER))
            .update_expression("ADD Entries :one SET ExpiresAt = :expires")
            .condition_expression("attribute_not_exists(Entries) OR Entries < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_ENTRIES))
            .expression_attribute_values(":expires", n(expires_at.epoch_seconds()))
            .send()
            .await;
        match counted {
            Ok(_) => {}
            Err(err) if is_conditional_check_failed(&err) => return Ok(false),
            Err(err) => return Err(store_error(err)),
        }
        self.client
            .put_item()
            .table_name(&self.tables.call_log)
            .set_item(Some(entry_item(entry, expires_at)))
            .send()
            .await
            .map_err(store_error)?;
        Ok(true)
    }

    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError> {
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        fill_page(page, Order::Descending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.call_log)
                .key_condition_expression("CallSid = :call AND begins_with(Entry, :requests)")
                .expression_attribute_values(":call", s(call.as_str()))
                .expression_attribute_values(":requests", s("E"))
                .consistent_read(true)
                .scan_index_forward(ascending)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            async move {
                if let Some(after) = after {
                    query = query
                        .exclusive_start_key("CallSid", s(call.as_str()))
                        .exclusive_start_key("Entry", s(&after));
                }
                let output = query.send().await.map_err(store_error)?;
                round_by("Entry", &output, |item, _| data(item))
            }
        })
        .await
    }

    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        // A call's from its partition of the table; the account's from its partition of the
        // index. The time bounds are bounds of the sort key; the level is a filter.
        let (index, hash_name, hash) = match call {
            Some(call) => (None, "CallSid", call.as_str()),
            None => (
                Some(schema::NOTIFICATIONS_INDEX),
                "NoticeAccount",
                account.as_str(),
            ),
        };
        let (low, high) = notification_range(filter);
        let mut filters = vec!["AccountSid = :account"];
        if filter.level.is_some() {
            filters.push("#log = :log");
        }
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        fill_page(page, Order::Descending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.call_log)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression(format!(
                    "{hash_name} = :hash AND Entry BETWEEN :low AND :high"
                ))
                .expression_attribute_values(":hash", s(hash))
                .expression_attribute_values(":low", s(&low))
                .expression_attribute_values(":high", s(&high))
                .filter_expression(filters.join(" AND "))
                .expression_attribute_values(":account", s(account.as_str()))
                .scan_index_forward(ascending)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            if let Some(level) = filter.level {
                query = query
                    .expression_attribute_names("#log", "Log")
                    .expression_attribute_values(":log", n(level.code()));
            }
            if index.is_none() {
                query = query.consistent_read(true);
            }
            async move {
                if let Some(after) = after {
                    let call = notification_position_call(&after).ok_or_else(|| {
                        StoreError::Failed("malformed notification position".into())
                    })?;
                    query = query
                        .exclusive_start_key(hash_name, s(hash))
                        .exclusive_start_key("Entry", s(&after))
                        .exclusive_start_key("CallSid", s(call.as_str()));
                }
                let output = query.send().await.map_err(store_error)?;
                round_by("Entry", &output, |item, _| data(item))
            }
        })
        .await
    }

    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError> {
        // A call's log is bounded (MAX_ENTRIES), so this reads a few pages at most.
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.call_log)
                .key_condition_expression("CallSid = :call AND begins_with(Entry, :notices)")
                .filter_expression("NotificationSid = :sid")
                .expression_attribute_values(":call", s(call.as_str()))
                .expression_attribute_values(":notices", s("N"))
                .expression_attribute_values(":sid", s(sid.as_str()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            if let Some(item) = output.items().first() {
                return data(item).map(Some);
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }
}
