//! Consuming SQS batches: the partial-batch-failure rule shared by the Lambda functions (which
//! get batches from the event source mapping, teleapi_runtime::lambda) and `teleapi-local`
//! (which polls).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use teleapi_ports::{Queue, QueueError};

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    /// The id reported back on failure (SQS message id, or receipt handle when polling).
    pub id: String,
    pub body: String,
    /// FIFO message group, if any.
    pub group: Option<String>,
}

/// Runs `handle` over the batch and returns the ids of the messages that failed, in batch order.
/// Each call gets its own copy of the message, so that its future may outlive the borrow.
///
/// Messages of one FIFO group run one after the other, in order; different groups (and every
/// message without a group) run concurrently, so that a batch takes as long as its longest
/// group rather than the sum of all (a batch of ten callbacks waits for the slowest
/// application, not for all ten). Once a message of a group fails, the later messages of that
/// group are not run and fail too: running them would break the group's order.
pub async fn process_batch<F, Fut, E>(messages: &[BatchMessage], handle: F) -> Vec<String>
where
    F: Fn(BatchMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let mut chains: Vec<Vec<&BatchMessage>> = Vec::new();
    for message in messages {
        let same_group = message.group.as_deref().and_then(|group| {
            chains
                .iter()
                .position(|chain| chain[0].group.as_deref() == Some(group))
        });
        match same_group {
            Some(at) => chains[at].push(message),
            None => chains.push(vec![message]),
        }
    }
    let handle = &handle;
    let failed = futures_util::future::join_all(chains.into_iter().map(|chain| async move {
        let mut failed: Vec<&str> = Vec::new();
        for message in chain {
            if !failed.is_empty() {
                failed.push(&message.id);
                continue;
            }
            if let Err(err) = handle(message.clone()).await {
                tracing::warn!(message_id = %message.id, error = %err, "message failed; it will be delivered again");
                failed.push(&message.id);
            }
        }
        failed
    }))
    .await
    .concat();
    messages
        .iter()
        .filter(|m| failed.contains(&m.id.as_str()))
        .map(|m| m.id.clone())
        .collect()
}

/// Receives one batch from `queue` (waiting up to `wait`), handles it, and deletes what
/// succeeded; failures stay on the queue and come back after their visibility timeout. Returns
/// how many messages were received.
pub async fn poll_once<F, Fut, E>(
    queue: &dyn Queue,
    wait: Duration,
    handle: F,
) -> Result<usize, QueueError>
where
    F: Fn(BatchMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let received = queue.receive(None, 10, wait).await?;
    let batch: Vec<BatchMessage> = received
        .iter()
        .map(|m| BatchMessage {
            id: m.receipt.clone(),
            body: m.body.clone(),
            group: m.group.clone(),
        })
        .collect();
    let failed = process_batch(&batch, handle).await;
    for message in &batch {
        if !failed.contains(&message.id) {
            queue.delete(None, &message.id).await?;
        }
    }
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, group: &str, body: &str) -> BatchMessage {
        BatchMessage {
            id: id.into(),
            body: body.into(),
            group: Some(group.into()),
        }
    }

    #[tokio::test]
    async fn a_failure_holds_back_the_rest_of_its_group_only() {
        let batch = [
            message("1", "A", "ok"),
            message("2", "B", "bad"),
            message("3", "A", "ok"),
            message("4", "B", "ok"),
            message("5", "C", "ok"),
        ];
        let ran = std::sync::Mutex::new(Vec::new());
        let failed = process_batch(&batch, |m| {
            ran.lock().unwrap().push(m.id.clone());
            let result = if m.body == "bad" { Err("boom") } else { Ok(()) };
            std::future::ready(result)
        })
        .await;
        assert_eq!(failed, ["2", "4"]);
        let mut ran = ran.into_inner().unwrap();
        let a: Vec<&String> = ran
            .iter()
            .filter(|id| ["1", "3"].contains(&id.as_str()))
            .collect();
        assert_eq!(a, ["1", "3"], "a group runs in order");
        ran.sort();
        assert_eq!(
            ran,
            ["1", "2", "3", "5"],
            "4 never ran: it would have overtaken 2"
        );
    }

    /// Two groups, each waiting for the other to start: only concurrent groups finish.
    #[tokio::test]
    async fn groups_run_concurrently() {
        let batch = [
            message("1", "A", "x"),
            message("2", "B", "x"),
            BatchMessage {
                id: "3".into(),
                body: "x".into(),
                group: None,
            },
        ];
        let started = tokio::sync::Barrier::new(3);
        let failed = tokio::time::timeout(
            Duration::from_secs(5),
            process_batch(&batch, |_| async {
                started.wait().await;
                Ok::<(), &str>(())
            }),
        )
        .await
        .expect("the three chains ran at once");
        assert!(failed.is_empty());
    }
}
