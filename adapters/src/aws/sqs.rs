//! SQS: sending, long-poll receiving and deleting messages on one queue.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use aws_sdk_sqs::Client;

use super::AwsError;

/// A client for one queue.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    url: String,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The SQS message id.
    pub message_id: String,
    /// What deletes it (or changes its visibility).
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// The string message attributes.
    pub attributes: HashMap<String, String>,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
}

impl Queue {
    /// A client for the queue at `url`.
    pub fn new(shared: &SdkConfig, url: impl Into<String>) -> Self {
        Self::from_client(Client::new(shared), url)
    }

    /// A client for the queue at `url` over an existing SDK client.
    pub fn from_client(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends `body` with string message `attributes`; returns the message id.
    pub async fn send(&self, body: &str, attributes: &[(&str, &str)]) -> Result<String, AwsError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|err| AwsError::call("SendMessage", err))?;
            request = request.message_attributes(*name, value);
        }
        let output = request
            .send()
            .await
            .map_err(|err| AwsError::call("SendMessage", err))?;
        output
            .message_id()
            .map(str::to_owned)
            .ok_or(AwsError::Missing {
                operation: "SendMessage",
                what: "MessageId",
            })
    }

    /// Receives up to `max` (1..=10) messages, waiting up to `wait_seconds` (long poll).
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Received>, AwsError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds.clamp(0, 20))
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| AwsError::call("ReceiveMessage", err))?;
        Ok(output.messages().iter().map(received).collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|err| AwsError::call("DeleteMessage", err))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (0: at once).
    pub async fn release(&self, receipt_handle: &str, seconds: i32) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|err| AwsError::call("ChangeMessageVisibility", err))?;
        Ok(())
    }
}

fn received(message: &Message) -> Received {
    let attributes = message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|(name, value)| {
                    value.string_value().map(|v| (name.clone(), v.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let receive_count = message
        .attributes()
        .and_then(|attrs| attrs.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    Received {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        receipt_handle: message.receipt_handle().unwrap_or_default().to_owned(),
        body: message.body().unwrap_or_default().to_owned(),
        attributes,
        receive_count,
    }
}
