//! Calls' logs and accounts' notifications in memory.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::call_log::{
    LogEntry, MAX_ENTRIES, Notification, NotificationFilter, RequestEntry,
};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::{AccountSid, CallSid, NotificationSid, Timestamp};
use teleapi_ports::{CallLogStore, StoreError};

#[async_trait]
impl CallLogStore for MemoryStore {
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        tables.expire(Timestamp::now());
        let call = entry.call_sid().clone();
        let log = tables.call_log.entry(call.clone()).or_default();
        if log.written >= MAX_ENTRIES {
            return Ok(false);
        }
        // As the DynamoDB adapter: the counter counts writes, the entry lands on its key.
        log.written += 1;
        log.expires_at = Some(log.expires_at.map_or(expires_at, |e| e.max(expires_at)));
        log.entries
            .insert(entry.position(), (entry.clone(), expires_at));
        tables.expiring.push_back((expires_at, Expiring::Log(call)));
        Ok(true)
    }

    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError> {
        let listing: BTreeMap<String, RequestEntry> = lock(&self.tables)
            .call_log
            .get(call)
            .map(|log| {
                log.entries
                    .iter()
                    .filter_map(|(position, (entry, _))| match entry {
                        LogEntry::Request(request) => Some((position.clone(), request.clone())),
                        LogEntry::Notification(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        newest_first(&listing, page, |_| true).await
    }

    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        let listing: BTreeMap<String, Notification> = lock(&self.tables)
            .call_log
            .iter()
            .filter(|(sid, _)| call.is_none_or(|c| c == *sid))
            .flat_map(|(_, log)| log.entries.iter())
            .filter_map(|(position, (entry, _))| match entry {
                LogEntry::Notification(n) if n.account_sid == *account => {
                    Some((position.clone(), n.clone()))
                }
                _ => None,
            })
            .collect();
        newest_first(&listing, page, |n| filter.matches(n)).await
    }

    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError> {
        Ok(lock(&self.tables).call_log.get(call).and_then(|log| {
            log.entries.values().find_map(|(entry, _)| match entry {
                LogEntry::Notification(n) if n.sid == *sid => Some(n.clone()),
                _ => None,
            })
        }))
    }
}
