//! The recording store on DynamoDB: the `recordings` table, one item per recording, listed by
//! account and by call through two indexes (docs/data-model.md, "recordings").

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::item::{self, n, s};
use super::{DynamoStore, landed, listing_round, schema, store_error};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::recording::{Recording, RecordingFilter, recording_position_sid};
use teleapi_domain::{AccountSid, RecordingSid};
use teleapi_ports::paging::{Order, fill_page};
use teleapi_ports::{RecordError, RecordingStore, RecordingWrite, StoreError};

#[async_trait]
impl RecordingStore for DynamoStore {
    async fn recording(&self, sid: &RecordingSid) -> Result<Option<Recording>, StoreError> {
        let found = self
            .read_item(&self.tables.recordings, "RecordingSid", sid.as_str())
            .await?;
        found.as_ref().map(item::recording_from).transpose()
    }

    async fn write_recording(
        &self,
        recording: &Recording,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.recordings)
            .set_item(Some(item::recording_item(recording)));
        let put = match expected_version {
            Some(version) => put
                .condition_expression("Version = :version")
                .expression_attribute_values(":version", n(version)),
            None => put.condition_expression("attribute_not_exists(RecordingSid)"),
        };
        landed(put.send().await)
    }

    async fn write_recording_intent(&self, write: RecordingWrite<'_>) -> Result<(), RecordError> {
        let planned = write.planned;
        let failed = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed(e.to_string());
        let call = Put::builder()
            .table_name(&self.tables.calls)
            .set_item(Some(item::call_item(&planned.call)))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(planned.call_version))
            .build()
            .map_err(failed)?;
        let recording = Put::builder()
            .table_name(&self.tables.recordings)
            .set_item(Some(item::recording_item(&planned.recording)));
        let recording = match planned.recording_version {
            Some(version) => recording
                .condition_expression("Version = :version")
                .expression_attribute_values(":version", n(version)),
            None => recording.condition_expression("attribute_not_exists(RecordingSid)"),
        }
        .build()
        .map_err(failed)?;
        let items = vec![
            TransactWriteItem::builder().put(call).build(),
            TransactWriteItem::builder().put(recording).build(),
            self.intent_put(&planned.intent)?,
        ];
        self.transact_with_key(items, write.idempotency, write.now)
            .await
    }

    async fn list_recordings(
        &self,
        account: &AccountSid,
        filter: &RecordingFilter,
        page: &PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        // A call's recordings from the call's partition of the `call` index; the account's
        // from its partition of `account`. The time bounds are bounds of the sort key.
        let (index, hash_name, hash) = match &filter.call_sid {
            Some(call) => (schema::RECORDING_CALL_INDEX, "CallSid", call.as_str()),
            None => (
                schema::RECORDING_ACCOUNT_INDEX,
                "ListingAccount",
                account.as_str(),
            ),
        };
        // Positions start with the creation time: the time bounds bound the sort key.
        let low = filter
            .created_from
            .map(|at| format!("{:015}#", at.millis().max(0)));
        let high = filter
            .created_to
            .map(|at| format!("{:015}#~", at.millis().max(0)));
        let range = match (&low, &high) {
            (Some(_), Some(_)) => " AND Listing BETWEEN :low AND :high",
            (Some(_), None) => " AND Listing >= :low",
            (None, Some(_)) => " AND Listing <= :high",
            (None, None) => "",
        };
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        fill_page(page, Order::Descending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.recordings)
                .index_name(index)
                .key_condition_expression(format!("{hash_name} = :hash{range}"))
                .expression_attribute_values(":hash", s(hash))
                .filter_expression("AccountSid = :account")
                .expression_attribute_values(":account", s(account.as_str()))
                .scan_index_forward(ascending)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            if let Some(low) = &low {
                query = query.expression_attribute_values(":low", s(low));
            }
            if let Some(high) = &high {
                query = query.expression_attribute_values(":high", s(high));
            }
            async move {
                if let Some(after) = after {
                    let sid = recording_position_sid(&after)
                        .ok_or_else(|| StoreError::Failed("malformed recording position".into()))?;
                    query = query
                        .exclusive_start_key(hash_name, s(hash))
                        .exclusive_start_key("Listing", s(&after))
                        .exclusive_start_key("RecordingSid", s(sid.as_str()));
                }
                let output = query.send().await.map_err(store_error)?;
                let mut round = listing_round(&output, |entry, _| item::recording_from(entry))?;
                round
                    .items
                    .retain(|(_, recording)| filter.matches(recording));
                Ok(round)
            }
        })
        .await
    }

    async fn delete_recording(&self, sid: &RecordingSid, version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.recordings)
            .key("RecordingSid", s(sid.as_str()))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(version))
            .send()
            .await;
        landed(result)
    }
}
