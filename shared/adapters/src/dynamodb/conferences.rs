//! The conference store on DynamoDB: the `conferences` table, where a conference's item and its
//! participants' items share its partition (docs/data-model.md, "conferences").

use async_trait::async_trait;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::item::{self, CONFERENCE_MEMBER, n, s};
use super::{DynamoStore, landed, listing_round, schema, store_error};
use teleapi_domain::conference::{
    Conference, ConferenceChange, ConferenceFilter, Participant, ParticipantStatus,
    conference_position_sid,
};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::{AccountSid, CallSid, ConferenceSid};
use teleapi_ports::paging::{Order, fill_page, resolve};
use teleapi_ports::{ConferenceStore, ConferenceWrite, RecordError, StoreError};

impl DynamoStore {
    async fn conference_member(
        &self,
        sid: &ConferenceSid,
        member: &str,
    ) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.conferences)
            .key("ConferenceSid", s(sid.as_str()))
            .key("Member", s(member))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.item)
    }
}

#[async_trait]
impl ConferenceStore for DynamoStore {
    async fn live_conferences(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<ConferenceSid>, StoreError> {
        self.live_on_worker(&self.tables.conferences, "ConferenceSid", worker, limit)
            .await
    }

    async fn conference(&self, sid: &ConferenceSid) -> Result<Option<Conference>, StoreError> {
        self.conference_member(sid, CONFERENCE_MEMBER)
            .await?
            .as_ref()
            .map(item::conference_from)
            .transpose()
    }

    async fn participant(
        &self,
        sid: &ConferenceSid,
        call_sid: &CallSid,
    ) -> Result<Option<Participant>, StoreError> {
        self.conference_member(sid, call_sid.as_str())
            .await?
            .as_ref()
            .map(item::participant_from)
            .transpose()
    }

    async fn participants(&self, sid: &ConferenceSid) -> Result<Vec<Participant>, StoreError> {
        let mut participants = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.conferences)
                .key_condition_expression("ConferenceSid = :sid AND begins_with(Member, :calls)")
                .expression_attribute_values(":sid", s(sid.as_str()))
                .expression_attribute_values(":calls", s(CallSid::PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for entry in output.items() {
                let participant = item::participant_from(entry)?;
                if participant.status == ParticipantStatus::Connected {
                    participants.push(participant);
                }
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        participants.sort_by(|a, b| {
            (a.date_created, &a.state.call_sid).cmp(&(b.date_created, &b.state.call_sid))
        });
        Ok(participants)
    }

    async fn write_conference(&self, change: &ConferenceChange) -> Result<bool, StoreError> {
        let put = self.client.put_item().table_name(&self.tables.conferences);
        let put = match change {
            ConferenceChange::Conference {
                conference,
                expected_version: None,
            } => put
                .set_item(Some(item::conference_item(conference)))
                .condition_expression("attribute_not_exists(ConferenceSid)"),
            ConferenceChange::Conference {
                conference,
                expected_version: Some(version),
            } => put
                .set_item(Some(item::conference_item(conference)))
                .condition_expression("Version = :version")
                .expression_attribute_values(":version", n(version)),
            ConferenceChange::Participant(participant) => put
                .set_item(Some(item::participant_item(participant)))
                .condition_expression("attribute_not_exists(ConferenceSid) OR EventSeq < :seq")
                .expression_attribute_values(":seq", n(participant.event_seq)),
        };
        landed(put.send().await)
    }

    async fn write_conference_intent(&self, write: ConferenceWrite<'_>) -> Result<(), RecordError> {
        let failed = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed(e.to_string());
        let conference = Put::builder()
            .table_name(&self.tables.conferences)
            .set_item(Some(item::conference_item(write.conference)))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(write.expected_version))
            .build()
            .map_err(failed)?;
        let mut items = vec![TransactWriteItem::builder().put(conference).build()];
        if let Some((participant, event_seq)) = write.participant {
            let put = Put::builder()
                .table_name(&self.tables.conferences)
                .set_item(Some(item::participant_item(participant)))
                .condition_expression("EventSeq = :seq AND #Status = :connected")
                .expression_attribute_names("#Status", "Status")
                .expression_attribute_values(":seq", n(event_seq))
                .expression_attribute_values(":connected", s(ParticipantStatus::Connected.as_str()))
                .build()
                .map_err(failed)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        items.push(self.intent_put(write.intent)?);
        self.transact_with_key(items, write.idempotency, write.now)
            .await
    }

    async fn list_conferences(
        &self,
        account: &AccountSid,
        filter: &ConferenceFilter,
        page: &PageRequest,
    ) -> Result<Page<Conference>, StoreError> {
        let mut conditions = Vec::new();
        let mut values: Vec<(&str, AttributeValue)> = Vec::new();
        if let Some(name) = &filter.friendly_name {
            conditions.push("FriendlyName = :name");
            values.push((":name", s(name)));
        }
        if let Some(status) = filter.status {
            conditions.push("#Status = :status");
            values.push((":status", s(status.as_str())));
        }
        let bounds = [
            (
                "DateCreated >= :created_from",
                ":created_from",
                filter.created_from,
            ),
            (
                "DateCreated <= :created_to",
                ":created_to",
                filter.created_to,
            ),
            (
                "DateUpdated >= :updated_from",
                ":updated_from",
                filter.updated_from,
            ),
            (
                "DateUpdated <= :updated_to",
                ":updated_to",
                filter.updated_to,
            ),
        ];
        for (condition, placeholder, bound) in bounds {
            if let Some(at) = bound {
                conditions.push(condition);
                values.push((placeholder, n(at.millis())));
            }
        }
        let filter_expression = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        let listed = fill_page(page, Order::Descending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.conferences)
                .index_name(schema::CONFERENCE_LISTING_INDEX)
                .key_condition_expression("ListingAccount = :account")
                .expression_attribute_values(":account", s(account.as_str()))
                .set_filter_expression(filter_expression.clone())
                .scan_index_forward(ascending)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            if filter.status.is_some() {
                query = query.expression_attribute_names("#Status", "Status");
            }
            for (placeholder, value) in &values {
                query = query.expression_attribute_values(*placeholder, value.clone());
            }
            async move {
                if let Some(after) = after {
                    let sid = conference_position_sid(&after).ok_or_else(|| {
                        StoreError::Failed("malformed conference position".into())
                    })?;
                    query = query
                        .exclusive_start_key("ListingAccount", s(account.as_str()))
                        .exclusive_start_key("Listing", s(&after))
                        .exclusive_start_key("ConferenceSid", s(sid.as_str()))
                        .exclusive_start_key("Member", s(CONFERENCE_MEMBER));
                }
                let output = query.send().await.map_err(store_error)?;
                listing_round(&output, |_, position| {
                    conference_position_sid(position)
                        .ok_or_else(|| StoreError::Failed("malformed conference position".into()))
                })
            }
        })
        .await?;
        // The index holds positions and what the filters read; the page's conferences are then
        // read whole.
        let found = self.conferences_by_sid(&listed.items).await?;
        Ok(resolve(listed, found, |conference| {
            filter.matches(conference)
        }))
    }
}

impl DynamoStore {
    /// The conferences named, read whole (eventually consistent, as the index they come from).
    async fn conferences_by_sid(
        &self,
        sids: &[ConferenceSid],
    ) -> Result<HashMap<ConferenceSid, Conference>, StoreError> {
        let keys = sids
            .iter()
            .map(|sid| {
                HashMap::from([
                    ("ConferenceSid".to_owned(), s(sid.as_str())),
                    ("Member".to_owned(), s(CONFERENCE_MEMBER)),
                ])
            })
            .collect();
        Ok(self
            .batch_get(&self.tables.conferences, keys, item::conference_from)
            .await?
            .into_iter()
            .map(|conference| (conference.sid.clone(), conference))
            .collect())
    }
}
