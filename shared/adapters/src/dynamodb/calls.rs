//! Calls, their intents and idempotency records on DynamoDB, with the listing by account.

use super::*;

#[async_trait]
impl CallStore for DynamoStore {
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError> {
        let found = self
            .read_item(&self.tables.calls, "CallSid", sid.as_str())
            .await?;
        found.map(|i| item::call_from(&i)).transpose()
    }

    async fn insert_call(&self, call: &Call) -> Result<(), InsertError> {
        self.insert_item(&self.tables.calls, "CallSid", item::call_item(call))
            .await
    }

    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        let call_put = Put::builder()
            .table_name(&self.tables.calls)
            .set_item(Some(item::call_item(write.call)));
        let call_put = match write.expected_version {
            Some(expected) => call_put
                .condition_expression("Version = :expected")
                .expression_attribute_values(":expected", n(expected)),
            None => call_put.condition_expression("attribute_not_exists(CallSid)"),
        }
        .build()
        .map_err(|e| StoreError::Failed(e.to_string()))?;
        if write.intent.is_none() && write.idempotency.is_none() {
            // The call alone: one conditional PutItem, no transaction needed.
            let result = self
                .client
                .put_item()
                .table_name(&self.tables.calls)
                .set_item(Some(call_put.item))
                .set_condition_expression(call_put.condition_expression)
                .set_expression_attribute_values(call_put.expression_attribute_values)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(err) if is_conditional_check_failed(&err) => Err(RecordError::CallChanged),
                Err(err) => Err(store_error(err).into()),
            };
        }
        let mut items = vec![TransactWriteItem::builder().put(call_put).build()];
        if let Some(intent) = write.intent {
            items.push(self.intent_put(intent)?);
        }
        self.transact_with_key(items, write.idempotency, write.now)
            .await
    }

    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.intents)
            .key("CallSid", s(subject.as_str()))
            .key("Seq", n(seq))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|i| item::intent_from(&i)).transpose()
    }

    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        let Settlement {
            subject,
            seq,
            intent_sid,
            from,
            to,
            reason,
            now,
        } = settlement;
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut condition = format!("#status IN ({})", placeholders.join(", "));
        let mut update = "SET #status = :to, DateUpdated = :now".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.intents)
            .key("CallSid", s(subject.as_str()))
            .key("Seq", n(seq))
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", n(now.millis()));
        for (placeholder, status) in placeholders.iter().zip(from) {
            request = request.expression_attribute_values(placeholder, s(status.as_str()));
        }
        if let Some(sid) = intent_sid {
            condition.push_str(" AND IntentSid = :sid");
            request = request.expression_attribute_values(":sid", s(sid.as_str()));
        }
        request = request.condition_expression(condition);
        if let Some(reason) = reason {
            update.push_str(", Reason = :reason");
            request = request.expression_attribute_values(":reason", s(reason));
        }
        if to.is_settled() {
            update.push_str(" REMOVE PendingShard");
        }
        landed(request.update_expression(update).send().await)
    }

    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError> {
        let build = |restore: bool| -> Result<Vec<TransactWriteItem>, StoreError> {
            let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed(e.to_string());
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.tables.intents)
                            .key("CallSid", s(failure.call_sid.as_str()))
                            .key("Seq", n(failure.seq))
                            .update_expression(
                                "SET #status = :failed, Reason = :reason, DateUpdated = :now REMOVE PendingShard",
                            )
                            .condition_expression("#status = :pending")
                            .expression_attribute_names("#status", "Status")
                            .expression_attribute_values(":failed", s(IntentStatus::Failed.as_str()))
                            .expression_attribute_values(":pending", s(IntentStatus::Pending.as_str()))
                            .expression_attribute_values(":reason", s(failure.reason))
                            .expression_attribute_values(":now", n(failure.now.millis()))
                            .build()
                            .map_err(built)?,
                    )
                    .build(),
            ];
            if let (true, Some((call, expected))) = (restore, failure.restore) {
                items.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.tables.calls)
                                .set_item(Some(item::call_item(call)))
                                .condition_expression("Version = :expected")
                                .expression_attribute_values(":expected", n(expected))
                                .build()
                                .map_err(built)?,
                        )
                        .build(),
                );
            }
            if let Some(key) = failure.release_key {
                items.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.tables.idempotency)
                                .key("IdempotencyKey", s(key.as_str()))
                                .build()
                                .map_err(built)?,
                        )
                        .build(),
                );
            }
            Ok(items)
        };
        // First with the call restored; if the call moved on meanwhile, a later intent owns it
        // and only the intent is failed.
        for restore in [true, false] {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(build(restore)?))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(true),
                Err(err) => match cancelled_items(&err) {
                    Some(failed) if failed.first() == Some(&true) => return Ok(false),
                    Some(failed) if restore && failed.get(1) == Some(&true) => continue,
                    _ => return Err(store_error(err)),
                },
            }
        }
        Ok(false)
    }

    async fn live_calls(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<CallSid>, StoreError> {
        self.live_on_worker(&self.tables.calls, "CallSid", worker, limit)
            .await
    }

    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        let page_size = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        // The shards are independent: query them all at once, so the sweep costs one round
        // trip rather than one per shard.
        let mut queries = tokio::task::JoinSet::new();
        for shard in pending_partitions() {
            let query = self
                .client
                .query()
                .table_name(&self.tables.intents)
                .index_name(schema::PENDING_INDEX)
                .key_condition_expression("PendingShard = :shard AND DateCreated < :before")
                .expression_attribute_values(":shard", s(&shard))
                .expression_attribute_values(":before", n(created_before.millis()))
                .limit(page_size);
            queries.spawn(query.send());
        }
        let mut found = Vec::new();
        while let Some(output) = queries.join_next().await {
            let output = output
                .map_err(|e| StoreError::Failed(format!("pending query: {e}")))?
                .map_err(store_error)?;
            for entry in output.items() {
                let intent = item::intent_from(entry)?;
                // The index is eventually consistent: skip what has settled since.
                if !intent.status.is_settled() {
                    found.push(intent);
                }
            }
        }
        found.sort_by_key(|i| i.date_created);
        found.truncate(limit);
        Ok(found)
    }

    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<ListedCall<'static>>, StoreError> {
        let mut key_condition = "ListingKey = :key".to_owned();
        let mut values: Vec<(&str, AttributeValue)> = Vec::new();
        // A call starts after it is created: an upper bound on the start time bounds the key.
        if let Some(before) = filter.started_at_or_before {
            key_condition.push_str(" AND Listing <= :upper");
            values.push((":upper", s(&format!("{:015}#~", before.millis().max(0)))));
        }
        let mut conditions = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut equal = |name: &'static str, placeholder: &'static str, value: AttributeValue| {
            conditions.push(format!("#{name} = {placeholder}"));
            names.push(name);
            values.push((placeholder, value));
        };
        if let Some(to) = &filter.to {
            equal("To", ":to", s(to));
        }
        if let Some(from) = &filter.from {
            equal("From", ":from", s(from));
        }
        if let Some(status) = filter.status {
            equal("Status", ":status", s(status.as_str()));
        }
        if let Some(parent) = &filter.parent_call_sid {
            equal("ParentCallSid", ":parent", s(parent.as_str()));
        }
        if let Some(after) = filter.started_at_or_after {
            conditions.push("StartTime >= :started_after".into());
            values.push((":started_after", n(after.millis())));
        }
        if let Some(before) = filter.started_at_or_before {
            conditions.push("StartTime <= :started_before".into());
            values.push((":started_before", n(before.millis())));
        }
        let filter_expression = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        // The index holds what a page shows: the page is its entries, with no read of the table.
        fill_page(
            page,
            Order::Descending,
            usize::from(shards),
            |shard, after, limit| {
                let key = paging::partition_key(account, u8::try_from(shard).unwrap_or(u8::MAX));
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.tables.calls)
                    .index_name(schema::LISTING_INDEX)
                    .key_condition_expression(&key_condition)
                    .expression_attribute_values(":key", s(&key))
                    .set_filter_expression(filter_expression.clone())
                    .scan_index_forward(ascending)
                    .limit(i32::try_from(limit).unwrap_or(i32::MAX));
                for (placeholder, value) in &values {
                    query = query.expression_attribute_values(*placeholder, value.clone());
                }
                for name in &names {
                    query = query.expression_attribute_names(format!("#{name}"), *name);
                }
                async move {
                    if let Some(after) = after {
                        let sid = teleapi_domain::call::call_position_sid(&after)
                            .ok_or_else(|| StoreError::Failed("malformed call position".into()))?;
                        query = query
                            .exclusive_start_key("ListingKey", s(&key))
                            .exclusive_start_key("Listing", s(&after))
                            .exclusive_start_key("CallSid", s(sid.as_str()));
                    }
                    let output = query.send().await.map_err(store_error)?;
                    listing_round(&output, |entry, _| item::listed_from(entry))
                }
            },
        )
        .await
    }

    async fn list_intents(
        &self,
        subject: &Subject,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let ascending = Order::Ascending.reading(page) == Order::Ascending;
        fill_page(page, Order::Ascending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.intents)
                .key_condition_expression("CallSid = :call")
                .expression_attribute_values(":call", s(subject.as_str()))
                .scan_index_forward(ascending)
                .consistent_read(true)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            async move {
                if let Some(after) = after {
                    let seq = paging::intent_position_seq(&after)
                        .ok_or_else(|| StoreError::Failed("malformed intent position".into()))?;
                    query = query
                        .exclusive_start_key("CallSid", s(subject.as_str()))
                        .exclusive_start_key("Seq", n(seq));
                }
                let output = query.send().await.map_err(store_error)?;
                Ok(Round {
                    items: output
                        .items()
                        .iter()
                        .map(|entry| {
                            let intent = item::intent_from(entry)?;
                            Ok((paging::intent_position(intent.seq), intent))
                        })
                        .collect::<Result<_, StoreError>>()?,
                    last_evaluated: output
                        .last_evaluated_key()
                        .and_then(|key| key.get("Seq"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|seq| seq.parse().ok())
                        .map(paging::intent_position),
                    scanned: usize::try_from(output.scanned_count()).unwrap_or(0),
                })
            }
        })
        .await
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found = self
            .read_item(&self.tables.idempotency, "IdempotencyKey", key.as_str())
            .await?;
        // TTL deletes lazily, so an expired record may still be there: it counts as absent.
        Ok(found
            .map(|i| item::idempotency_from(&i))
            .transpose()?
            .filter(|record| record.is_live(now)))
    }
}
