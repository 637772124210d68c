//! The pool of API keys lent to accounts, in memory.

use super::*;
use async_trait::async_trait;
use teleapi_ports::KeyPool;

#[async_trait]
impl KeyPool for MemoryStore {
    async fn pool_size(&self) -> Result<u32, StoreError> {
        Ok(u32::try_from(lock(&self.tables).key_pool.len()).unwrap_or(u32::MAX))
    }

    async fn lend_slot(
        &self,
        slot: u32,
        account: &AccountSid,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let mut tables = lock(&self.tables);
        let Some((key, lent)) = tables.key_pool.get_mut(slot as usize) else {
            return Ok(None);
        };
        let free = match lent {
            None => true,
            Some((holder, lent_until)) => holder == account || *lent_until < now,
        };
        if !free {
            return Ok(None);
        }
        *lent = Some((account.clone(), until));
        Ok(Some(key.clone()))
    }

    async fn add_key(
        &self,
        key: &str,
        lent: Option<(&AccountSid, Timestamp)>,
    ) -> Result<u32, StoreError> {
        let mut tables = lock(&self.tables);
        let pool = &mut tables.key_pool;
        let slot = match pool.iter().position(|(k, _)| k == key) {
            Some(slot) => slot,
            None => {
                pool.push((key.to_owned(), lent.map(|(a, until)| (a.clone(), until))));
                pool.len() - 1
            }
        };
        Ok(u32::try_from(slot).unwrap_or(u32::MAX))
    }

    async fn take_last_key(&self, now: Timestamp) -> Result<Option<String>, StoreError> {
        let mut tables = lock(&self.tables);
        let pool = &mut tables.key_pool;
        match pool.last() {
            Some((_, Some((_, until)))) if *until >= now => Ok(None),
            Some(_) => Ok(pool.pop().map(|(key, _)| key)),
            None => Ok(None),
        }
    }
}
