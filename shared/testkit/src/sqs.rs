//! moto's SQS from a test's side: a fresh retry queue with its DLQ, and the Lambda event source's part.

use std::time::Duration;

use crmsync_queue::test_support::sqs_client;
use crmsync_queue::{ReceivedMessage, SqsRetryQueue};
use crmsync_sync::RetryDelivery;

/// A new retry queue and DLQ named `<prefix>-<process>-<nanos>`: a message moves to the DLQ after 2 receives, and
/// comes back 1 s after a receive.
pub async fn fresh_queue(prefix: &str) -> SqsRetryQueue {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let name = format!("{prefix}-{}-{nanos}", std::process::id());
    SqsRetryQueue::ensure_queues(sqs_client().await, &name, 2, Duration::from_secs(1))
        .await
        .expect("queues")
}

/// Receives from `queue` until a message arrives, or ten one-second waits pass (then nothing).
pub async fn receive_until_some(queue: &SqsRetryQueue) -> Vec<ReceivedMessage> {
    for _ in 0..10 {
        let messages = queue.receive(Duration::from_secs(1), None).await.expect("receive");
        if !messages.is_empty() {
            return messages;
        }
    }
    Vec::new()
}

/// The SQS messages as the Lambda's event hands them to the outbound sync's SQS handler.
pub fn deliveries(messages: &[ReceivedMessage]) -> Vec<RetryDelivery> {
    messages
        .iter()
        .map(|m| RetryDelivery {
            message_id: m.message_id.clone(),
            body: m.body.clone(),
        })
        .collect()
}
