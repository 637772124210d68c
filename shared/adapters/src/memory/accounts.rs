//! Accounts in memory.

use super::*;
use async_trait::async_trait;
use teleapi_domain::{Account, AccountSid};
use teleapi_ports::{AccountStore, InsertError, StoreError};

#[async_trait]
impl AccountStore for MemoryStore {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        Ok(lock(&self.tables).accounts.get(sid).cloned())
    }

    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        let mut tables = lock(&self.tables);
        if tables.accounts.contains_key(&account.sid) {
            return Err(InsertError::AlreadyExists);
        }
        tables.accounts.insert(account.sid.clone(), account.clone());
        Ok(())
    }

    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        match lock(&self.tables).accounts.get_mut(&account.sid) {
            Some(stored) => {
                stored.auth_token = account.auth_token.clone();
                stored.status = account.status;
                stored.listing_shards = account.listing_shards;
                stored.rate_limit = account.rate_limit;
                stored.usage_key = account.usage_key.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
