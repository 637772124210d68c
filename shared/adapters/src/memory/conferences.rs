//! Conferences and their participants in memory.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::conference::{
    Conference, ConferenceChange, ConferenceFilter, Participant, ParticipantStatus,
    conference_position,
};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::{AccountSid, CallSid, ConferenceSid, Timestamp};
use teleapi_ports::{ConferenceStore, ConferenceWrite, RecordError, StoreError};

#[async_trait]
impl ConferenceStore for MemoryStore {
    async fn live_conferences(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<ConferenceSid>, StoreError> {
        let tables = lock(&self.tables);
        let mut live: Vec<(Timestamp, ConferenceSid)> = tables
            .conferences
            .values()
            .filter(|c| c.worker.as_ref() == Some(worker))
            .filter(|c| c.status != teleapi_domain::conference::ConferenceStatus::Completed)
            .map(|c| (c.date_created, c.sid.clone()))
            .collect();
        live.sort();
        Ok(live.into_iter().take(limit).map(|(_, sid)| sid).collect())
    }

    async fn conference(&self, sid: &ConferenceSid) -> Result<Option<Conference>, StoreError> {
        Ok(lock(&self.tables).conferences.get(sid).cloned())
    }

    async fn participant(
        &self,
        sid: &ConferenceSid,
        call_sid: &CallSid,
    ) -> Result<Option<Participant>, StoreError> {
        Ok(lock(&self.tables)
            .participants
            .get(sid)
            .and_then(|room| room.get(call_sid))
            .cloned())
    }

    async fn participants(&self, sid: &ConferenceSid) -> Result<Vec<Participant>, StoreError> {
        let tables = lock(&self.tables);
        let mut participants: Vec<Participant> = tables
            .participants
            .get(sid)
            .into_iter()
            .flat_map(|room| room.values())
            .filter(|p| p.status == ParticipantStatus::Connected)
            .cloned()
            .collect();
        participants.sort_by(|a, b| {
            (a.date_created, &a.state.call_sid).cmp(&(b.date_created, &b.state.call_sid))
        });
        Ok(participants)
    }

    async fn write_conference(&self, change: &ConferenceChange) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match change {
            ConferenceChange::Conference {
                conference,
                expected_version,
            } => {
                let stored = tables.conferences.get(&conference.sid).map(|c| c.version);
                if stored != *expected_version {
                    return Ok(false);
                }
                tables.expire(conference.date_updated);
                if let Some(at) = conference.expires_at {
                    let key = Expiring::Conference(conference.sid.clone());
                    tables.expiring.push_back((at, key));
                }
                tables
                    .conferences
                    .insert(conference.sid.clone(), conference.clone());
            }
            ConferenceChange::Participant(participant) => {
                let (sid, call) = (&participant.conference_sid, &participant.state.call_sid);
                let later = tables
                    .participants
                    .get(sid)
                    .and_then(|room| room.get(call))
                    .is_none_or(|stored| stored.event_seq < participant.event_seq);
                if !later {
                    return Ok(false);
                }
                tables.expire(participant.date_updated);
                if let Some(at) = participant.expires_at {
                    let expiring = Expiring::Participant(sid.clone(), call.clone());
                    tables.expiring.push_back((at, expiring));
                }
                tables
                    .participants
                    .entry(sid.clone())
                    .or_default()
                    .insert(call.clone(), participant.clone());
            }
        }
        Ok(true)
    }

    async fn write_conference_intent(&self, write: ConferenceWrite<'_>) -> Result<(), RecordError> {
        let mut tables = lock(&self.tables);
        tables.expire(write.now);
        let sid = &write.conference.sid;
        let conference_moved = tables
            .conferences
            .get(sid)
            .is_none_or(|c| c.version != write.expected_version);
        let participant_moved = write.participant.is_some_and(|(p, seq)| {
            tables
                .participants
                .get(sid)
                .and_then(|room| room.get(&p.state.call_sid))
                .is_none_or(|stored| {
                    stored.event_seq != seq || stored.status != ParticipantStatus::Connected
                })
        });
        let number_taken = tables.intent_taken(write.intent);
        if tables.key_taken(write.idempotency, write.now) {
            return Err(RecordError::KeyTaken);
        }
        if conference_moved || participant_moved || number_taken {
            return Err(RecordError::CallChanged);
        }
        tables
            .conferences
            .insert(sid.clone(), write.conference.clone());
        if let Some((participant, _)) = write.participant {
            tables
                .participants
                .entry(sid.clone())
                .or_default()
                .insert(participant.state.call_sid.clone(), participant.clone());
        }
        tables.put_intent(write.intent);
        tables.put_key(write.idempotency);
        Ok(())
    }

    async fn list_conferences(
        &self,
        account: &AccountSid,
        filter: &ConferenceFilter,
        page: &PageRequest,
    ) -> Result<Page<Conference>, StoreError> {
        let listing: BTreeMap<String, Conference> = lock(&self.tables)
            .conferences
            .values()
            .filter(|c| c.account_sid == *account)
            .map(|c| (conference_position(c), c.clone()))
            .collect();
        newest_first(&listing, page, |c| filter.matches(c)).await
    }
}
