//! The callback function's work: deliver one job (a StatusCallback or a FallbackUrl request)
//! to the application, signed, within its connection overrides; retry it later with backoff, or
//! give it up to the dead-letter queue with its history. A fallback's answer becomes an
//! `execute` command for the call; a fallback that fails ends the call as failed.

use std::sync::Arc;
use std::time::Duration;

use crate::consumer::BatchMessage;
use crate::system_intents::{SystemOutcome, record_system_intent};
use teleapi_domain::call::SystemAction;
use teleapi_domain::call_log::{
    LogLevel, LoggedRequest, LoggedResponse, MAX_BODY_BYTES, Problem, bounded,
};
use teleapi_domain::wire::callback::{
    AppRequest, AttemptRecord, CallbackJob, Delivery, JobKind, SIGNATURE_HEADER, encode_pairs,
    retry_delay,
};
use teleapi_domain::{Rcml, Timestamp};
use teleapi_ports::account_cache::AccountCache;
use teleapi_ports::insight;
use teleapi_ports::{
    AccountStore, CallLogStore, CallStore, Clock, DeliveryError, OutgoingMessage, Queue,
    QueueError, StoreError, WebhookClient, WebhookRequest, WebhookResponse,
};

pub const IDEMPOTENCY_HEADER: &str = "i-teleapi-idempotency-token";

#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// First retry delay; later ones double, with jitter, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub intent_retention: Duration,
    pub write_budget: Duration,
    /// How long an account read to sign is reused: a rotated AuthToken signs within this long.
    pub account_cache_ttl: Duration,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(300),
            intent_retention: Duration::from_secs(30 * 24 * 3600),
            write_budget: Duration::from_secs(5),
            account_cache_ttl: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct CallbackServices {
    /// Read (through the cache) for the AuthToken that signs each request.
    pub accounts: Arc<dyn AccountStore>,
    pub account_cache: AccountCache,
    pub calls: Arc<dyn CallStore>,
    /// Where each attempt, and each callback given up on, is logged with its call.
    pub call_log: Arc<dyn CallLogStore>,
    pub commands: Arc<dyn Queue>,
    /// The callbacks queue itself: retries go back on it, delayed.
    pub callbacks: Arc<dyn Queue>,
    /// Where jobs go when they are out of tries (or unreadable), with their history.
    pub dead_letters: Arc<dyn Queue>,
    pub webhooks: Arc<dyn WebhookClient>,
    pub clock: Arc<dyn Clock>,
    pub config: CallbackConfig,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The application answered 2xx (and, for a fallback, its RCML now runs).
    Delivered,
    /// Not this time; queued again to be tried after `delay`.
    Retrying { attempts: u32, delay: Duration },
    /// Out of tries, or unreadable: on the dead-letter queue.
    DeadLettered(String),
}

/// A failure that should make the queue deliver the job again (a store or queue outage).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The signed request for `job`, as the application will see it.
pub fn build_request(job: &CallbackJob, auth_token: &str) -> WebhookRequest {
    let (target, delivery) = Delivery::of(&job.url);
    let request = AppRequest::new(&target, job.method, &job.parameters, Some(auth_token));
    WebhookRequest {
        method: job.method,
        url: request.url,
        headers: vec![
            (SIGNATURE_HEADER, request.signature.unwrap_or_default()),
            (IDEMPOTENCY_HEADER, job.job_id.clone()),
        ],
        body: request.body,
        delivery,
    }
}

/// Whether `result` is worth another try under the job's retry policy.
fn retryable(result: &Result<u16, DeliveryError>, delivery: &Delivery) -> bool {
    let on = delivery.retry_on;
    match result {
        Ok(status) if (400..500).contains(status) => on.client_errors,
        Ok(_) => on.server_errors,
        Err(DeliveryError::ConnectTimeout | DeliveryError::Connect(_)) => on.connect,
        Err(DeliveryError::ReadTimeout) => on.read,
        Err(DeliveryError::Protocol(_)) => on.server_errors,
        Err(DeliveryError::Refused(_) | DeliveryError::TooLarge(_)) => false,
    }
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

async fn dead_letter(
    services: &CallbackServices,
    job: &CallbackJob,
    why: &str,
) -> Result<JobOutcome, JobError> {
    services
        .dead_letters
        .send(
            None,
            &OutgoingMessage::standard(job.to_json(), Duration::ZERO),
        )
        .await?;
    tracing::warn!(job_id = %job.job_id, call_sid = ?job.call_sid, conference_sid = ?job.conference_sid, reason = why, "callback job dead-lettered");
    Ok(JobOutcome::DeadLettered(why.to_owned()))
}

/// Handles one message of the callbacks queue.
pub async fn consume(services: &CallbackServices, message: &BatchMessage) -> Result<(), JobError> {
    run_job(services, &message.body).await.map(|_| ())
}

/// Delivers (or retries, or gives up) the job in `body`.
pub async fn run_job(services: &CallbackServices, body: &str) -> Result<JobOutcome, JobError> {
    let mut job = match CallbackJob::from_json(body) {
        Ok(job) => job,
        Err(err) => {
            services
                .dead_letters
                .send(
                    None,
                    &OutgoingMessage::standard(body.to_owned(), Duration::ZERO),
                )
                .await?;
            tracing::warn!(error = %err, "unreadable callback job dead-lettered");
            return Ok(JobOutcome::DeadLettered(format!("unreadable job: {err}")));
        }
    };
    let account = services
        .account_cache
        .account(
            services.accounts.as_ref(),
            &job.account_sid,
            services.clock.now(),
            services.config.account_cache_ttl,
            |_| true,
        )
        .await?;
    let Some(account) = account else {
        return dead_letter(services, &job, "the account no longer exists").await;
    };
    let request = build_request(&job, account.auth_token.expose());
    let delivery = request.delivery;
    let sent_at = services.clock.now();
    let started = std::time::Instant::now();
    let answer = services.webhooks.send(&request).await;
    let took = started.elapsed();
    let now = services.clock.now();
    log_attempt(services, &job, &request, sent_at, took, &answer).await;
    let outcome = match &answer {
        Ok(response) => response.status.to_string(),
        Err(err) => err.to_string(),
    };
    tracing::info!(
        job_id = %job.job_id,
        call_sid = job.call_sid.as_ref().map(tracing::field::display),
        conference_sid = job.conference_sid.as_ref().map(tracing::field::display),
        kind = ?job.kind,
        attempt = job.attempts + 1,
        outcome = %outcome,
        "callback attempt"
    );
    job.attempts += 1;
    job.history.push(AttemptRecord {
        at: now.millis(),
        outcome,
    });

    let delivered = matches!(&answer, Ok(response) if (200..300).contains(&response.status));
    if delivered {
        if job.kind == JobKind::Fallback {
            let text = answer.as_ref().map(|r| r.body.as_str()).unwrap_or_default();
            finish_fallback(services, &job, &request, text).await?;
        }
        return Ok(JobOutcome::Delivered);
    }

    let status = answer.as_ref().map(|r| r.status).map_err(Clone::clone);
    if job.attempts <= delivery.retries && retryable(&status, &delivery) {
        let delay = retry_delay(
            job.attempts,
            services.config.retry_base,
            services.config.retry_cap,
            random_unit(),
        );
        services
            .callbacks
            .send(None, &OutgoingMessage::standard(job.to_json(), delay))
            .await?;
        return Ok(JobOutcome::Retrying {
            attempts: job.attempts,
            delay,
        });
    }
    let last = job.history.last().map_or("", |h| h.outcome.as_str());
    let problem = if job.kind == JobKind::Fallback {
        let reason = format!(
            "FallbackUrl {} failed ({last}) after RCML error {}",
            job.url,
            job.parameters.get("ErrorCode").map_or("", String::as_str)
        );
        fail_call(services, &job, reason.clone()).await?;
        let code = match &answer {
            // No connection, or none in time (a refused address never gets one).
            Err(
                DeliveryError::Connect(_)
                | DeliveryError::ConnectTimeout
                | DeliveryError::ReadTimeout
                | DeliveryError::Refused(_),
            ) => 11205,
            // An answer that is not HTTP, or too large to be one.
            Err(DeliveryError::Protocol(_) | DeliveryError::TooLarge(_)) => 11206,
            // An answer, not 2xx.
            Ok(_) => 11200,
        };
        Problem::new(
            LogLevel::Error,
            code,
            format!("{reason}; the call was ended"),
        )
    } else {
        Problem::new(
            LogLevel::Warning,
            15003,
            format!(
                "{} got no 2xx answer in {} tries (last: {last}); it was given up",
                job.url.as_str().split('#').next().unwrap_or_default(),
                job.attempts
            ),
        )
    };
    log_problem(services, &job, &request, problem, now).await;
    dead_letter(services, &job, "no 2xx answer within its tries").await
}

/// Notes one try of `job` in its call's log (a conference's own events have no call, and no
/// log). The delivery matters more than its log: a failed write is only reported.
async fn log_attempt(
    services: &CallbackServices,
    job: &CallbackJob,
    request: &WebhookRequest,
    at: Timestamp,
    took: Duration,
    answer: &Result<WebhookResponse, DeliveryError>,
) {
    let Some(call_sid) = &job.call_sid else {
        return;
    };
    let response = match answer {
        Ok(answer) => LoggedResponse {
            status_code: Some(answer.status),
            content_type: answer.content_type.clone(),
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            body: Some(bounded(&answer.body, MAX_BODY_BYTES)),
            error: None,
        },
        Err(err) => LoggedResponse {
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            error: Some(err.to_string()),
            ..LoggedResponse::default()
        },
    };
    let logged = LoggedRequest {
        kind: job.log_kind(),
        url: request.url.clone(),
        method: request.method,
        parameters: job.parameters.clone(),
        signed: request
            .headers
            .iter()
            .any(|(name, _)| *name == SIGNATURE_HEADER),
        attempt: job.attempts + 1,
    };
    let entry = insight::request_entry(call_sid, &job.account_sid, at, logged, response);
    insight::note_or_warn(
        services.call_log.as_ref(),
        &entry,
        services.config.intent_retention,
    )
    .await;
}

/// Notes a problem `job` met as a notification of its call (if it has one).
async fn log_problem(
    services: &CallbackServices,
    job: &CallbackJob,
    request: &WebhookRequest,
    problem: Problem,
    at: Timestamp,
) {
    let Some(call_sid) = &job.call_sid else {
        return;
    };
    let mut problem = problem.at_request(request.url.clone(), request.method);
    problem.request_variables = encode_pairs(&job.parameters);
    let origin = format!("job {} attempt {}", job.job_id, job.attempts);
    let entry = insight::notification_entry(problem, call_sid, &job.account_sid, at, &origin);
    insight::note_or_warn(
        services.call_log.as_ref(),
        &entry,
        services.config.intent_retention,
    )
    .await;
}

/// The fallback answered: its RCML runs, or, if it is not RCML, the call fails.
async fn finish_fallback(
    services: &CallbackServices,
    job: &CallbackJob,
    request: &WebhookRequest,
    body: &str,
) -> Result<(), JobError> {
    match Rcml::parse(body.trim()) {
        Ok(rcml) => {
            let action = SystemAction::RunFallback {
                rcml,
                fallback_url: job.url.clone(),
            };
            system(services, job, &action).await
        }
        Err(problem) => {
            let reason = format!(
                "FallbackUrl {} answered a document that is not valid RCML: {problem}",
                job.url
            );
            let mut notice = Problem::new(
                LogLevel::Error,
                12100,
                format!("{reason}; the call was ended"),
            );
            notice.response_body = Some(body.to_owned());
            log_problem(services, job, request, notice, services.clock.now()).await;
            fail_call(services, job, reason).await
        }
    }
}

async fn fail_call(
    services: &CallbackServices,
    job: &CallbackJob,
    reason: String,
) -> Result<(), JobError> {
    system(services, job, &SystemAction::Fail { reason }).await
}

async fn system(
    services: &CallbackServices,
    job: &CallbackJob,
    action: &SystemAction,
) -> Result<(), JobError> {
    // Fallbacks are about a call; a job without one has no call to act on.
    let Some(call_sid) = &job.call_sid else {
        return Ok(());
    };
    let clock = services.clock.clone();
    let outcome = record_system_intent(
        services.calls.as_ref(),
        services.commands.as_ref(),
        call_sid,
        action,
        move || clock.now(),
        services.config.intent_retention,
        services.config.write_budget,
    )
    .await?;
    if outcome == SystemOutcome::Moot {
        tracing::info!(call_sid = %call_sid, "call ended before the fallback settled; nothing to do");
    }
    Ok(())
}
