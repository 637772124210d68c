//! Recordings in memory.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::recording::{Recording, RecordingFilter, recording_position};
use teleapi_domain::{AccountSid, RecordingSid};
use teleapi_ports::{RecordError, RecordingStore, RecordingWrite, StoreError};

#[async_trait]
impl RecordingStore for MemoryStore {
    async fn recording(&self, sid: &RecordingSid) -> Result<Option<Recording>, StoreError> {
        Ok(lock(&self.tables).recordings.get(sid).cloned())
    }

    async fn write_recording(
        &self,
        recording: &Recording,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        let stored = tables.recordings.get(&recording.sid).map(|r| r.version);
        if stored != expected_version {
            return Ok(false);
        }
        tables
            .recordings
            .insert(recording.sid.clone(), recording.clone());
        Ok(true)
    }

    async fn write_recording_intent(&self, write: RecordingWrite<'_>) -> Result<(), RecordError> {
        let planned = write.planned;
        let mut tables = lock(&self.tables);
        tables.expire(write.now);
        let call_moved = tables
            .calls
            .get(&planned.call.sid)
            .is_none_or(|c| c.version != planned.call_version);
        let recording_moved = tables
            .recordings
            .get(&planned.recording.sid)
            .map(|r| r.version)
            != planned.recording_version;
        let number_taken = tables.intent_taken(&planned.intent);
        if tables.key_taken(write.idempotency, write.now) {
            return Err(RecordError::KeyTaken);
        }
        if call_moved || recording_moved || number_taken {
            return Err(RecordError::CallChanged);
        }
        tables.put_call(&planned.call);
        tables
            .recordings
            .insert(planned.recording.sid.clone(), planned.recording.clone());
        tables.put_intent(&planned.intent);
        tables.put_key(write.idempotency);
        Ok(())
    }

    async fn list_recordings(
        &self,
        account: &AccountSid,
        filter: &RecordingFilter,
        page: &PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        let listing: BTreeMap<String, Recording> = lock(&self.tables)
            .recordings
            .values()
            .filter(|r| r.account_sid == *account)
            .map(|r| (recording_position(r), r.clone()))
            .collect();
        newest_first(&listing, page, |r| filter.matches(r)).await
    }

    async fn delete_recording(&self, sid: &RecordingSid, version: u64) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        if tables
            .recordings
            .get(sid)
            .is_some_and(|r| r.version == version)
        {
            tables.recordings.remove(sid);
            return Ok(true);
        }
        Ok(false)
    }
}
