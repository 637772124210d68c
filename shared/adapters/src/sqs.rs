//! Queues on SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use teleapi_ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    default_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, default_url: impl Into<String>) -> Self {
        Self {
            client,
            default_url: default_url.into(),
        }
    }

    fn url<'a>(&'a self, queue: Option<&'a str>) -> &'a str {
        queue.unwrap_or(&self.default_url)
    }
}

fn queue_error<E, R>(err: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            QueueError::Unavailable(format!("{err:?}"))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            let transient = code.contains("Throttl")
                || code.contains("RequestThrottled")
                || code.contains("InternalError")
                || code.contains("ServiceUnavailable")
                || code.contains("KmsThrottled");
            if transient {
                QueueError::Unavailable(format!("{code}: {message}"))
            } else {
                QueueError::Failed(format!("{code}: {message}"))
            }
        }
        _ => QueueError::Failed(format!("{err:?}")),
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError> {
        let delay = i32::try_from(message.delay.as_secs().min(900)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(self.url(queue))
            .message_body(&message.body)
            .set_message_group_id(message.group.clone())
            .set_message_deduplication_id(message.dedup_id.clone())
            .set_delay_seconds((delay > 0).then_some(delay))
            .send()
            .await
            .map_err(queue_error)?;
        Ok(())
    }

    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(self.url(queue))
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(queue_error)?;
        Ok(output
            .messages()
            .iter()
            .map(|m| {
                let attribute = |name| m.attributes().and_then(|a| a.get(&name)).cloned();
                ReceivedMessage {
                    body: m.body().unwrap_or_default().to_owned(),
                    receipt: m.receipt_handle().unwrap_or_default().to_owned(),
                    group: attribute(MessageSystemAttributeName::MessageGroupId),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                }
            })
            .collect())
    }

    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(queue_error)?;
        Ok(())
    }

    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(self.url(queue))
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(queue_error)?;
        Ok(())
    }
}

/// Creates a queue (FIFO: the name gets `.fifo` if it lacks it, high-throughput mode) and returns
/// its URL; an
/// existing queue of that name is returned as it is. With `redrive`, messages received that many
/// times move to the queue with that URL (which must be of the same kind).
pub async fn create_queue(
    client: &Client,
    name: &str,
    fifo: bool,
    visibility: std::time::Duration,
    redrive: Option<(&str, u32)>,
) -> Result<String, QueueError> {
    let name = match (fifo, name.ends_with(".fifo")) {
        (true, false) => format!("{name}.fifo"),
        _ => name.to_owned(),
    };
    let mut request = client.create_queue().queue_name(name).attributes(
        QueueAttributeName::VisibilityTimeout,
        visibility.as_secs().to_string(),
    );
    if fifo {
        // High-throughput FIFO, as deployed (infra/template.yaml): order and deduplication per
        // message group, which is all the contracts need.
        request = request
            .attributes(QueueAttributeName::FifoQueue, "true")
            .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
            .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId");
    }
    if let Some((dead_letters, max_receives)) = redrive {
        let arn = client
            .get_queue_attributes()
            .queue_url(dead_letters)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(queue_error)?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| QueueError::Failed("the dead-letter queue has no ARN".into()))?;
        let policy =
            format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let output = request.send().await.map_err(queue_error)?;
    output
        .queue_url
        .ok_or_else(|| QueueError::Failed("CreateQueue returned no URL".into()))
}
