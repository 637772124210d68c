//! A wrapper around any port implementation that sees every call go by: to count round trips
//! (benchmarks), or to inject faults on a schedule (failures, delays, duplicates, hangs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use teleapi_domain::call::CallFilter;
use teleapi_domain::call_log::{LogEntry, Notification, NotificationFilter, RequestEntry};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, NotificationSid,
    Subject, Timestamp,
};
use teleapi_ports::{
    AccountStore, CallLogStore, CallStore, CallWrite, InsertError, IntentFailure, OutgoingMessage,
    Queue, QueueError, ReceivedMessage, RecordError, Settlement, StoreError,
};

/// What to do with one call of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Proceed,
    /// Fail it, as a throttled or unavailable service does.
    Fail,
    /// Wait this long, then proceed.
    Delay(Duration),
    /// Do it twice (a send delivered twice); the first answer counts.
    Twice,
    /// Do it, then report a failure: the answer was lost (a timeout after the service acted).
    Lost,
    /// Do it twice and report the second answer, as an SDK retry of a request that had
    /// landed does.
    Retried,
    /// Never answer (the process dies while waiting).
    Hang,
}

/// Decides each call's fate; sees the operation's name (`"write_call"`, `"send"`, …).
pub trait Hooks: Send + Sync {
    fn before(&self, operation: &'static str) -> Step;
}

/// Counts calls by operation.
#[derive(Default)]
pub struct Counter(Mutex<BTreeMap<&'static str, u64>>);

impl Counter {
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

impl Hooks for Counter {
    fn before(&self, operation: &'static str) -> Step {
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Step::Proceed
    }
}

/// Faults on a schedule: the n-th call (from 0) of an operation takes the given step; every other
/// call proceeds. Every call is counted.
#[derive(Default)]
pub struct Schedule {
    plan: Mutex<BTreeMap<(&'static str, u64), Step>>,
    seen: Mutex<BTreeMap<&'static str, u64>>,
    always: Mutex<BTreeMap<&'static str, Step>>,
}

impl Schedule {
    pub fn at(&self, operation: &'static str, nth: u64, step: Step) -> &Self {
        self.plan.lock().unwrap().insert((operation, nth), step);
        self
    }

    /// Every call of `operation` from now on.
    pub fn always(&self, operation: &'static str, step: Step) -> &Self {
        self.always.lock().unwrap().insert(operation, step);
        self
    }

    pub fn clear(&self) {
        self.plan.lock().unwrap().clear();
        self.always.lock().unwrap().clear();
    }

    pub fn seen(&self, operation: &str) -> u64 {
        self.seen
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

impl Hooks for Schedule {
    fn before(&self, operation: &'static str) -> Step {
        let nth = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(operation).or_default();
            *n += 1;
            *n - 1
        };
        if let Some(step) = self.plan.lock().unwrap().get(&(operation, nth)) {
            return *step;
        }
        self.always
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(Step::Proceed)
    }
}

/// A port implementation seen through `hooks`.
pub struct Instrumented<T> {
    inner: T,
    hooks: Arc<dyn Hooks>,
}

impl<T> Instrumented<T> {
    pub fn new(inner: T, hooks: Arc<dyn Hooks>) -> Self {
        Self { inner, hooks }
    }

    /// Applies the step for `operation` up to the call itself: `Err` to fail without calling,
    /// else what to do around the call.
    async fn step(&self, operation: &'static str) -> Result<Step, ()> {
        match self.hooks.before(operation) {
            Step::Fail => Err(()),
            Step::Delay(wait) => {
                tokio::time::sleep(wait).await;
                Ok(Step::Proceed)
            }
            Step::Hang => std::future::pending().await,
            step => Ok(step),
        }
    }
}

/// Runs `call` as `step` says (after `Instrumented::step`), failing with `failure`.
macro_rules! around {
    ($step:expr, $call:expr, $failure:expr) => {{
        match $step {
            Step::Twice => {
                let result = $call;
                let _ = $call;
                result
            }
            Step::Lost => {
                let _ = $call;
                Err($failure)
            }
            Step::Retried => {
                let _ = $call;
                $call
            }
            _ => $call,
        }
    }};
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("ProvisionedThroughputExceededException (injected)".into())
}

macro_rules! store_call {
    ($self:ident, $name:literal, $call:expr) => {{
        let step = $self.step($name).await.map_err(|()| unavailable())?;
        around!(step, $call, unavailable())
    }};
}

#[async_trait]
impl<T: AccountStore> AccountStore for Instrumented<T> {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        store_call!(self, "account", self.inner.account(sid).await)
    }
    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        self.step("insert_account")
            .await
            .map_err(|()| InsertError::Store(unavailable()))?;
        self.inner.insert_account(account).await
    }
    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        store_call!(
            self,
            "update_account",
            self.inner.update_account(account).await
        )
    }
}

#[async_trait]
impl<T: CallStore> CallStore for Instrumented<T> {
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError> {
        store_call!(self, "call", self.inner.call(sid).await)
    }
    async fn insert_call(&self, call: &Call) -> Result<(), InsertError> {
        self.step("insert_call")
            .await
            .map_err(|()| InsertError::Store(unavailable()))?;
        self.inner.insert_call(call).await
    }
    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        let step = self
            .step("write_call")
            .await
            .map_err(|()| RecordError::Store(unavailable()))?;
        around!(
            step,
            self.inner.write_call(write).await,
            RecordError::Store(unavailable())
        )
    }
    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError> {
        store_call!(self, "intent", self.inner.intent(subject, seq).await)
    }
    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        store_call!(
            self,
            "settle_intent",
            self.inner.settle_intent(settlement).await
        )
    }
    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError> {
        store_call!(self, "fail_intent", self.inner.fail_intent(failure).await)
    }
    async fn live_calls(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<CallSid>, StoreError> {
        store_call!(
            self,
            "live_calls",
            self.inner.live_calls(worker, limit).await
        )
    }
    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        store_call!(
            self,
            "pending_intents",
            self.inner.pending_intents(created_before, limit).await
        )
    }
    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<teleapi_domain::call::ListedCall<'static>>, StoreError> {
        store_call!(
            self,
            "list_calls",
            self.inner.list_calls(account, shards, filter, page).await
        )
    }
    async fn list_intents(
        &self,
        subject: &Subject,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        store_call!(
            self,
            "list_intents",
            self.inner.list_intents(subject, page).await
        )
    }
    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        store_call!(
            self,
            "idempotency_record",
            self.inner.idempotency_record(key, now).await
        )
    }
}

#[async_trait]
impl<T: Queue> Queue for Instrumented<T> {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError> {
        let throttled = || QueueError::Unavailable("RequestThrottled (injected)".into());
        let step = self.step("send").await.map_err(|()| throttled())?;
        around!(step, self.inner.send(queue, message).await, throttled())
    }
    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let step = self
            .step("receive")
            .await
            .map_err(|()| QueueError::Unavailable("injected".into()))?;
        let mut batch = self.inner.receive(queue, max, wait).await?;
        if step == Step::Twice {
            // Every message delivered twice, as SQS may (at-least-once delivery).
            batch.extend(batch.clone());
        }
        Ok(batch)
    }
    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.step("delete")
            .await
            .map_err(|()| QueueError::Unavailable("injected".into()))?;
        self.inner.delete(queue, receipt).await
    }
    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.step("release")
            .await
            .map_err(|()| QueueError::Unavailable("injected".into()))?;
        self.inner.release(queue, receipt).await
    }
}

/// `Arc<dyn Port>` are ports too: wrap what a `Backend` holds.
pub struct Shared<T: ?Sized>(pub Arc<T>);

#[async_trait]
impl<T: CallLogStore> CallLogStore for Instrumented<T> {
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError> {
        store_call!(self, "append", self.inner.append(entry, expires_at).await)
    }
    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError> {
        store_call!(self, "requests", self.inner.requests(call, page).await)
    }
    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        store_call!(
            self,
            "notifications",
            self.inner.notifications(account, call, filter, page).await
        )
    }
    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError> {
        store_call!(
            self,
            "notification",
            self.inner.notification(call, sid).await
        )
    }
}

#[async_trait]
impl CallLogStore for Shared<dyn CallLogStore> {
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError> {
        self.0.append(entry, expires_at).await
    }
    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError> {
        self.0.requests(call, page).await
    }
    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        self.0.notifications(account, call, filter, page).await
    }
    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError> {
        self.0.notification(call, sid).await
    }
}

#[async_trait]
impl AccountStore for Shared<dyn AccountStore> {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        self.0.account(sid).await
    }
    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        self.0.insert_account(account).await
    }
    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        self.0.update_account(account).await
    }
}

#[async_trait]
impl CallStore for Shared<dyn CallStore> {
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError> {
        self.0.call(sid).await
    }
    async fn insert_call(&self, call: &Call) -> Result<(), InsertError> {
        self.0.insert_call(call).await
    }
    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        self.0.write_call(write).await
    }
    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError> {
        self.0.intent(subject, seq).await
    }
    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        self.0.settle_intent(settlement).await
    }
    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError> {
        self.0.fail_intent(failure).await
    }
    async fn live_calls(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<CallSid>, StoreError> {
        self.0.live_calls(worker, limit).await
    }
    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        self.0.pending_intents(created_before, limit).await
    }
    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<teleapi_domain::call::ListedCall<'static>>, StoreError> {
        self.0.list_calls(account, shards, filter, page).await
    }
    async fn list_intents(
        &self,
        subject: &Subject,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        self.0.list_intents(subject, page).await
    }
    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.0.idempotency_record(key, now).await
    }
}

#[async_trait]
impl Queue for Shared<dyn Queue> {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError> {
        self.0.send(queue, message).await
    }
    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.0.receive(queue, max, wait).await
    }
    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.0.delete(queue, receipt).await
    }
    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.0.release(queue, receipt).await
    }
}

impl crate::Backend {
    /// The same backend with every port seen through `hooks`.
    pub fn instrumented(&self, hooks: Arc<dyn Hooks>) -> crate::Backend {
        let store = |s: &Arc<dyn CallStore>| -> Arc<dyn CallStore> {
            Arc::new(Instrumented::new(Shared(s.clone()), hooks.clone()))
        };
        let queue = |q: &Arc<dyn Queue>| -> Arc<dyn Queue> {
            Arc::new(Instrumented::new(Shared(q.clone()), hooks.clone()))
        };
        crate::Backend {
            name: self.name,
            accounts: Arc::new(Instrumented::new(
                Shared(self.accounts.clone()),
                hooks.clone(),
            )),
            calls: store(&self.calls),
            workers: self.workers.clone(),
            conferences: self.conferences.clone(),
            recordings: self.recordings.clone(),
            numbers: self.numbers.clone(),
            queues: self.queues.clone(),
            key_pool: self.key_pool.clone(),
            call_log: Arc::new(Instrumented::new(
                Shared(self.call_log.clone()),
                hooks.clone(),
            )),
            commands: queue(&self.commands),
            events: queue(&self.events),
            event_dead_letters: queue(&self.event_dead_letters),
            callbacks: queue(&self.callbacks),
            callback_dead_letters: queue(&self.callback_dead_letters),
            aws: self.aws.clone(),
        }
    }
}
