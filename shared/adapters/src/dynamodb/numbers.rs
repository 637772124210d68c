//! Phone numbers on DynamoDB: the `numbers` table, two items a number (docs/data-model.md,
//! "numbers"): its own, keyed by its sid and listed by account through the `account` index,
//! and one keyed by its `PhoneNumber` that names the sid, which keeps a number once in the
//! deployment and finds it for an inbound call. Both are written and deleted in one
//! transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

use super::item::{self, n, s};
use super::{AccountIndex, DynamoStore, condition_failed, landed, schema, store_error};
use teleapi_domain::AccountSid;
use teleapi_domain::PhoneNumberSid;
use teleapi_domain::number::{IncomingNumber, NumberFilter};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_ports::{InsertError, NumberStore, StoreError};

fn build_failed(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(err.to_string())
}

impl DynamoStore {
    async fn read_number(&self, key: &str) -> Result<Option<IncomingNumber>, StoreError> {
        let found = self
            .read_item(&self.tables.numbers, "NumberKey", key)
            .await?;
        found.as_ref().map(item::number_from).transpose()
    }
}

#[async_trait]
impl NumberStore for DynamoStore {
    async fn number(&self, sid: &PhoneNumberSid) -> Result<Option<IncomingNumber>, StoreError> {
        self.read_number(sid.as_str()).await
    }

    async fn number_called(
        &self,
        phone_number: &str,
    ) -> Result<Option<IncomingNumber>, StoreError> {
        let found = self
            .read_item(&self.tables.numbers, "NumberKey", phone_number)
            .await?;
        let Some(route) = found else {
            return Ok(None);
        };
        let sid = item::number_route_from(&route)?;
        self.read_number(sid.as_str()).await
    }

    async fn insert_number(&self, number: &IncomingNumber) -> Result<(), InsertError> {
        let put = |item| {
            Put::builder()
                .table_name(&self.tables.numbers)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(NumberKey)")
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(build_failed)
        };
        let items = vec![
            put(item::number_item(number))?,
            put(item::number_route_item(number))?,
        ];
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if condition_failed(&err) => Err(InsertError::AlreadyExists),
            Err(err) => Err(store_error(err).into()),
        }
    }

    async fn update_number(
        &self,
        number: &IncomingNumber,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.numbers)
            .set_item(Some(item::number_item(number)))
            .condition_expression("Version = :version AND PhoneNumber = :number")
            .expression_attribute_values(":version", n(expected_version))
            .expression_attribute_values(":number", s(&number.phone_number))
            .send()
            .await;
        landed(result)
    }

    async fn delete_number(
        &self,
        number: &IncomingNumber,
        version: u64,
    ) -> Result<bool, StoreError> {
        let own = Delete::builder()
            .table_name(&self.tables.numbers)
            .key("NumberKey", s(number.sid.as_str()))
            .condition_expression("Version = :version")
            .expression_attribute_values(":version", n(version))
            .build()
            .map_err(build_failed)?;
        let route = Delete::builder()
            .table_name(&self.tables.numbers)
            .key("NumberKey", s(&number.phone_number))
            .condition_expression("NumberSid = :sid")
            .expression_attribute_values(":sid", s(number.sid.as_str()))
            .build()
            .map_err(build_failed)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(own).build())
            .transact_items(TransactWriteItem::builder().delete(route).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if condition_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn list_numbers(
        &self,
        account: &AccountSid,
        filter: &NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<IncomingNumber>, StoreError> {
        let index = AccountIndex {
            table: &self.tables.numbers,
            index: schema::NUMBER_ACCOUNT_INDEX,
            key: "NumberKey",
        };
        self.list_by_account(index, account, page, item::number_from, |number| {
            filter.matches(number)
        })
        .await
    }
}
