//! Phone numbers in memory.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::PhoneNumberSid;
use teleapi_domain::number::{IncomingNumber, NumberFilter, number_position};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_ports::{InsertError, NumberStore, StoreError};

#[async_trait]
impl NumberStore for MemoryStore {
    async fn number(&self, sid: &PhoneNumberSid) -> Result<Option<IncomingNumber>, StoreError> {
        Ok(lock(&self.tables).numbers.get(sid).cloned())
    }

    async fn number_called(
        &self,
        phone_number: &str,
    ) -> Result<Option<IncomingNumber>, StoreError> {
        let tables = lock(&self.tables);
        Ok(tables
            .called
            .get(phone_number)
            .and_then(|sid| tables.numbers.get(sid))
            .cloned())
    }

    async fn insert_number(&self, number: &IncomingNumber) -> Result<(), InsertError> {
        let mut tables = lock(&self.tables);
        if tables.called.contains_key(&number.phone_number)
            || tables.numbers.contains_key(&number.sid)
        {
            return Err(InsertError::AlreadyExists);
        }
        tables
            .called
            .insert(number.phone_number.clone(), number.sid.clone());
        tables.numbers.insert(number.sid.clone(), number.clone());
        Ok(())
    }

    async fn update_number(
        &self,
        number: &IncomingNumber,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match tables.numbers.get_mut(&number.sid) {
            Some(stored)
                if stored.version == expected_version
                    && stored.phone_number == number.phone_number =>
            {
                *stored = number.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_number(
        &self,
        number: &IncomingNumber,
        version: u64,
    ) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        if tables
            .numbers
            .get(&number.sid)
            .is_none_or(|n| n.version != version)
        {
            return Ok(false);
        }
        if let Some(gone) = tables.numbers.remove(&number.sid) {
            tables.called.remove(&gone.phone_number);
        }
        Ok(true)
    }

    async fn list_numbers(
        &self,
        account: &AccountSid,
        filter: &NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<IncomingNumber>, StoreError> {
        let listing: BTreeMap<String, IncomingNumber> = lock(&self.tables)
            .numbers
            .values()
            .filter(|n| n.account_sid == *account)
            .map(|n| (number_position(n), n.clone()))
            .collect();
        newest_first(&listing, page, |n| filter.matches(n)).await
    }
}
