//! `teleapi-media`: the SIP/RTP media worker, deployed. Its settings come from the environment
//! (`teleapi_media::deploy`, README "Media workers"); it creates its own commands queue if
//! missing, takes new calls from the shared one, and runs until SIGTERM, which drains it: no
//! new call, and it leaves once its calls have ended (a second SIGTERM leaves at once).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use teleapi_adapters::dynamodb::{DynamoStore, TableNames};
use teleapi_adapters::sqs::{SqsQueue, create_queue};
use teleapi_domain::Timestamp;
use teleapi_domain::sid::WorkerId;
use teleapi_worker::{SharedQueue, Stores, Worker, WorkerConfig, WorkerQueues};

#[tokio::main]
async fn main() -> ExitCode {
    teleapi_runtime::telemetry::init_local(teleapi_runtime::telemetry::LogFormat::for_stderr());
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("teleapi-media: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let deployment = teleapi_media::deploy::from_env(|name| std::env::var(name).ok())?;
    let config = teleapi_runtime::config::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let own_url = create_queue(
        &sqs,
        &deployment.own_queue_name,
        true,
        Duration::from_secs(60),
        None,
    )
    .await
    .map_err(|e| format!("its own commands queue {}: {e}", deployment.own_queue_name))?;
    let commands = Arc::new(SqsQueue::new(
        sqs.clone(),
        deployment.commands_queue.clone(),
    ));
    let events = Arc::new(SqsQueue::new(sqs, deployment.events_queue.clone()));
    // It reads accounts (to sign its requests), numbers (to take calls to them), call queues
    // (how many callers each holds) and the calls' `queue` index (how many wait in each).
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        TableNames {
            numbers: deployment.numbers_table.clone(),
            queues: deployment.queues_table.clone(),
            calls: deployment.calls_table.clone(),
            ..TableNames::accounts_only(deployment.accounts_table.clone())
        },
    ));
    let recordings =
        teleapi_runtime::config::recordings_media(&config, deployment.recordings_bucket.clone())
            .map_err(|e| e.to_string())?;
    let (media, offered) =
        teleapi_media::start(&deployment.sip, Some(Arc::new(recordings))).await?;
    let id = WorkerId::try_from(format!("{}.{}", deployment.name, Timestamp::now().millis()))?;
    let mut worker_config = WorkerConfig::new(id.clone());
    worker_config.public_url = deployment.public_url.clone();
    // The fleet's workers bridge their queued callers to each other's agents.
    worker_config.bridge_address = Some(media.address());
    if let Some(capacity) = deployment.capacity {
        worker_config.capacity = capacity;
    }
    let queues = WorkerQueues {
        commands: commands.clone(),
        own_url: own_url.clone(),
        shared: Some(SharedQueue {
            queue: commands,
            url: Some(deployment.commands_queue.clone()),
        }),
        events,
    };
    let worker = Worker::new(worker_config, queues, Arc::new(media.clone())).reading(Stores {
        accounts: store.clone(),
        queues: store.clone(),
    });
    let handle = worker.handle();
    let directory = teleapi_media::Directory {
        numbers: store.clone(),
        accounts: store,
    };
    tokio::spawn(teleapi_media::answer_offers(
        offered,
        media,
        directory,
        handle.clone(),
    ));
    tracing::info!(worker_id = %id, sip = %deployment.sip.sip, queue = %own_url, "teleapi-media: running");
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM can be handled");
        terminate.recv().await;
        tracing::info!("teleapi-media: draining (SIGTERM again to leave at once)");
        handle.drain();
        terminate.recv().await;
        std::process::exit(1);
    });
    worker.run().await;
    tracing::info!(worker_id = %id, "teleapi-media: left");
    Ok(())
}
