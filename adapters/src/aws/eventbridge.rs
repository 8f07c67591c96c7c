//! Publishing to an EventBridge bus with `PutEvents`: batches of at most
//! [`MAX_BATCH_ENTRIES`] entries and [`MAX_BATCH_BYTES`], retrying only the entries the
//! service reports as failed.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::AwsError;

/// The most entries `PutEvents` takes per call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The most bytes `PutEvents` takes per call (entries' sizes as AWS counts them).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How often the failed entries of a batch are retried before giving up.
pub const MAX_ATTEMPTS: u32 = 5;

/// One event to put on a bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// `Source` (e.g. `casebook`).
    pub source: String,
    /// `DetailType` (the event type).
    pub detail_type: String,
    /// `Detail`: a JSON object.
    pub detail: String,
}

impl BusEntry {
    /// The entry's size as AWS counts it: source, detail type and detail in UTF-8 bytes, plus
    /// 14 bytes for the time stamp.
    pub fn size(&self) -> usize {
        14 + self.source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// Splits `entries` into consecutive batches within the count and size limits. An entry
/// larger than [`MAX_BATCH_BYTES`] on its own is an error.
pub fn batches(entries: &[BusEntry]) -> Result<Vec<&[BusEntry]>, AwsError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, entry) in entries.iter().enumerate() {
        let size = entry.size();
        if size > MAX_BATCH_BYTES {
            return Err(AwsError::Invalid {
                operation: "PutEvents",
                reason: format!(
                    "entry {} is {size} bytes, over {MAX_BATCH_BYTES}",
                    entry.detail_type
                ),
            });
        }
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    Ok(out)
}

/// A client for one custom bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
    bus_name: String,
}

impl EventBus {
    /// A client for the bus `bus_name`.
    pub fn new(shared: &SdkConfig, bus_name: impl Into<String>) -> Self {
        Self {
            client: Client::new(shared),
            bus_name: bus_name.into(),
        }
    }

    /// The bus' name.
    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Puts every entry on the bus, in batches; an entry the service refuses is retried
    /// (alone with the other refused ones of its batch) up to [`MAX_ATTEMPTS`] times.
    pub async fn put(&self, entries: &[BusEntry]) -> Result<(), AwsError> {
        for batch in batches(entries)? {
            self.put_batch(batch).await?;
        }
        Ok(())
    }

    async fn put_batch(&self, batch: &[BusEntry]) -> Result<(), AwsError> {
        let mut pending: Vec<&BusEntry> = batch.iter().collect();
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let request: Vec<PutEventsRequestEntry> = pending
                .iter()
                .map(|entry| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&entry.source)
                        .detail_type(&entry.detail_type)
                        .detail(&entry.detail)
                        .build()
                })
                .collect();
            let output = self
                .client
                .put_events()
                .set_entries(Some(request))
                .send()
                .await
                .map_err(|err| AwsError::call("PutEvents", err))?;
            if output.failed_entry_count() == 0 {
                return Ok(());
            }
            // Results are in request order; an entry with an error code failed.
            let results = output.entries();
            let mut still = Vec::new();
            for (i, entry) in pending.iter().enumerate() {
                match results.get(i) {
                    Some(result) if result.error_code().is_none() => {}
                    Some(result) => {
                        last_error = format!(
                            "{}: {}",
                            result.error_code().unwrap_or_default(),
                            result.error_message().unwrap_or_default()
                        );
                        still.push(*entry);
                    }
                    None => still.push(*entry),
                }
            }
            tracing::warn!(failed = still.len(), attempt, error = %last_error, "PutEvents refused entries; retrying them");
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if attempt < MAX_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(AwsError::EntriesFailed {
            operation: "PutEvents",
            failed: pending.len(),
            attempts: MAX_ATTEMPTS,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(detail_len: usize) -> BusEntry {
        BusEntry {
            source: "casebook".into(),
            detail_type: "T".into(),
            detail: "x".repeat(detail_len),
        }
    }

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<_> = (0..25).map(|_| entry(10)).collect();
        let sizes: Vec<_> = batches(&small).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);

        let big: Vec<_> = (0..5).map(|_| entry(100 * 1024)).collect();
        let sizes: Vec<_> = batches(&big).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(batches(&big)
            .unwrap()
            .iter()
            .all(|b| b.iter().map(BusEntry::size).sum::<usize>() <= MAX_BATCH_BYTES));

        assert!(batches(&[entry(MAX_BATCH_BYTES)]).is_err());
        assert!(batches(&[]).unwrap().is_empty());
    }
}
