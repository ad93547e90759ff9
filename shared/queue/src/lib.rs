//! `SqsRetryQueue`: the SQS retry queue adapter. Failed sync items are sent as delayed messages (DelaySeconds =
//! the backoff, at most 900); the queue's redrive policy moves a message to the DLQ after maxReceiveCount
//! receives. The fast path's drain requests (`{"kind": "drain"}`) travel on the same queue, delayed by the debounce
//! window. Locally the queues live in moto's server, reached through `AWS_ENDPOINT_URL`.

#[cfg(feature = "test-util")]
pub mod test_support;

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use crmsync_domain::DomainError;
use crmsync_domain::kick::DrainRequest;
use crmsync_domain::ports::RetryQueue;
use crmsync_domain::sync::{MAX_SQS_DELAY, RetryMessage};

/// SendMessageBatch takes at most 10 entries:
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>
const SEND_BATCH_LIMIT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("SQS {operation} failed: {message}")]
    Sqs { operation: &'static str, message: String },
    #[error("SQS answered {operation} without {what}")]
    MissingField {
        operation: &'static str,
        what: &'static str,
    },
}

fn sqs_error(operation: &'static str, error: impl std::fmt::Display) -> QueueError {
    QueueError::Sqs {
        operation,
        message: error.to_string(),
    }
}

/// The retry queue, and its DLQ when known.
#[derive(Debug, Clone)]
pub struct SqsRetryQueue {
    client: Client,
    queue_url: String,
    dlq_url: Option<String>,
}

/// A message read from a queue.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
}

impl SqsRetryQueue {
    pub fn new(client: Client, queue_url: String, dlq_url: Option<String>) -> Self {
        Self {
            client,
            queue_url,
            dlq_url,
        }
    }

    /// An SQS client from the standard AWS environment (`AWS_REGION`, credentials, and `AWS_ENDPOINT_URL` for
    /// moto locally).
    pub async fn client_from_env() -> Client {
        let config = aws_config::load_from_env().await;
        Client::new(&config)
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn dlq_url(&self) -> Option<&str> {
        self.dlq_url.as_deref()
    }

    /// Creates (or finds) `name` and `name-dlq` with a redrive policy of `max_receive_count`: the local stack's
    /// start-up step; in AWS, template.yaml declares both.
    pub async fn ensure_queues(
        client: Client,
        name: &str,
        max_receive_count: u32,
        visibility_timeout: Duration,
    ) -> Result<Self, QueueError> {
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
            .send()
            .await
            .map_err(|e| sqs_error("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let dlq_url = dlq.queue_url.ok_or(QueueError::MissingField {
            operation: "CreateQueue",
            what: "QueueUrl",
        })?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or(QueueError::MissingField {
                operation: "GetQueueAttributes",
                what: "QueueArn",
            })?;
        let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count });
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout.as_secs().to_string(),
            )
            .send()
            .await
            .map_err(|e| sqs_error("CreateQueue", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        let queue_url = queue.queue_url.ok_or(QueueError::MissingField {
            operation: "CreateQueue",
            what: "QueueUrl",
        })?;
        Ok(Self {
            client,
            queue_url,
            dlq_url: Some(dlq_url),
        })
    }

    /// Sends delayed messages, ten per call.
    pub async fn send(&self, messages: &[(RetryMessage, Duration)]) -> Result<(), QueueError> {
        for chunk in messages.chunks(SEND_BATCH_LIMIT) {
            let mut request = self.client.send_message_batch().queue_url(&self.queue_url);
            for (index, (message, delay)) in chunk.iter().enumerate() {
                let body = serde_json::to_string(message).map_err(|e| sqs_error("SendMessageBatch", e))?;
                let delay_seconds = i32::try_from(delay.min(&MAX_SQS_DELAY).as_secs()).unwrap_or(900);
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .message_body(body)
                    .delay_seconds(delay_seconds)
                    .build()
                    .map_err(|e| sqs_error("SendMessageBatch", e))?;
                request = request.entries(entry);
            }
            let answer = request
                .send()
                .await
                .map_err(|e| sqs_error("SendMessageBatch", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
            if let Some(failed) = answer.failed.first() {
                return Err(sqs_error(
                    "SendMessageBatch",
                    format!("entry {} failed: {:?}", failed.id, failed.message),
                ));
            }
        }
        Ok(())
    }

    /// Sends one drain request (the fast path's kick), delivered after `delay` (at most 900 s).
    pub async fn send_drain_request(&self, request: &DrainRequest, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(request).map_err(|e| sqs_error("SendMessage", e))?;
        let delay_seconds = i32::try_from(delay.min(MAX_SQS_DELAY).as_secs()).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay_seconds)
            .send()
            .await
            .map_err(|e| sqs_error("SendMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    /// Long-polls the retry queue for up to `wait` (at most 20 s), at most 10 messages.
    pub async fn receive(
        &self,
        wait: Duration,
        visibility_timeout: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        receive(&self.client, &self.queue_url, wait, visibility_timeout).await
    }

    /// Reads up to 10 messages from the DLQ (they become visible again after `visibility_timeout`).
    pub async fn receive_dead(&self, visibility_timeout: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        match &self.dlq_url {
            Some(url) => receive(&self.client, url, Duration::ZERO, Some(visibility_timeout)).await,
            None => Ok(Vec::new()),
        }
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        delete(&self.client, &self.queue_url, receipt_handle).await
    }

    pub async fn delete_dead(&self, receipt_handle: &str) -> Result<(), QueueError> {
        match &self.dlq_url {
            Some(url) => delete(&self.client, url, receipt_handle).await,
            None => Ok(()),
        }
    }

    /// Checks that the retry queue and the DLQ (when configured) answer GetQueueAttributes: returns the retry
    /// queue's approximate depth (visible messages); an error names the queue URL that failed.
    pub async fn check_reachable(&self) -> Result<i64, QueueError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| {
                sqs_error(
                    "GetQueueAttributes",
                    format!("{}: {}", self.queue_url, aws_sdk_sqs::error::DisplayErrorContext(e)),
                )
            })?
            .attributes
            .unwrap_or_default();
        if let Some(dlq) = &self.dlq_url {
            self.dlq_depth()
                .await
                .map_err(|e| sqs_error("GetQueueAttributes", format!("{dlq}: {e}")))?;
        }
        Ok(attributes
            .get(&QueueAttributeName::ApproximateNumberOfMessages)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// The DLQ's approximate depth (visible plus in-flight messages), when a DLQ is configured.
    pub async fn dlq_depth(&self) -> Result<Option<i64>, QueueError> {
        let Some(url) = &self.dlq_url else { return Ok(None) };
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .attributes
            .unwrap_or_default();
        let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Ok(Some(
            count(QueueAttributeName::ApproximateNumberOfMessages)
                + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

async fn receive(
    client: &Client,
    url: &str,
    wait: Duration,
    visibility_timeout: Option<Duration>,
) -> Result<Vec<ReceivedMessage>, QueueError> {
    let mut request = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20));
    if let Some(timeout) = visibility_timeout {
        request = request.visibility_timeout(i32::try_from(timeout.as_secs()).unwrap_or(43_200));
    }
    let answer = request
        .send()
        .await
        .map_err(|e| sqs_error("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(answer
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            Some(ReceivedMessage {
                message_id: m.message_id?,
                receipt_handle: m.receipt_handle?,
                body: m.body?,
            })
        })
        .collect())
}

async fn delete(client: &Client, url: &str, receipt_handle: &str) -> Result<(), QueueError> {
    client
        .delete_message()
        .queue_url(url)
        .receipt_handle(receipt_handle)
        .send()
        .await
        .map_err(|e| sqs_error("DeleteMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(())
}

impl RetryQueue for SqsRetryQueue {
    fn schedule<'a>(
        &'a self,
        messages: &'a [(RetryMessage, Duration)],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DomainError>> + Send + 'a>> {
        Box::pin(async move {
            self.send(messages)
                .await
                .map_err(|e| DomainError::Unavailable(Box::new(e)))
        })
    }
}
