//! Where a stream's bytes go: stdout, a file, or an S3 object written by a multipart
//! upload. Every sink holds a bounded buffer (S3: one part), so memory stays constant
//! whatever the stream's size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::str::FromStr;

use casebook_adapters::aws::aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use casebook_adapters::aws::aws_sdk_s3::Client;
use casebook_adapters::aws::{s3, shared_config};

use crate::Error;

/// S3 parts are at least 5 MiB (but the last); 8 MiB keeps the part count of a 1 GB export
/// at 125, far below the 10,000 limit, with one part in memory.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// An `--out` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local file (created or truncated).
    File(PathBuf),
    /// An S3 object.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
    },
}

/// An `s3://` URL without a bucket or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected s3://bucket/key, got {0:?}")]
pub struct InvalidDestination(String);

impl FromStr for Destination {
    type Err = InvalidDestination;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix("s3://") else {
            return Ok(Destination::File(PathBuf::from(s)));
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Destination::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(InvalidDestination(s.to_owned())),
        }
    }
}

/// An open output.
pub enum Sink {
    /// Standard output.
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    /// A local file.
    File(BufWriter<File>),
    /// An S3 multipart upload in progress.
    S3(Box<MultipartUpload>),
}

impl Sink {
    /// Opens `destination` (stdout when `None`).
    pub async fn open(destination: Option<&Destination>) -> Result<Self, Error> {
        Ok(match destination {
            None => Sink::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
            Some(Destination::File(path)) => {
                Sink::File(BufWriter::with_capacity(1 << 16, File::create(path)?))
            }
            Some(Destination::S3 { bucket, key }) => {
                let client = s3::client(&shared_config().await);
                Sink::S3(Box::new(MultipartUpload::start(client, bucket, key).await?))
            }
        })
    }

    /// Appends `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        match self {
            Sink::Stdout(out) => out.write_all(bytes)?,
            Sink::File(out) => out.write_all(bytes)?,
            Sink::S3(upload) => upload.write(bytes).await?,
        }
        Ok(())
    }

    /// Flushes everything and, for S3, completes the upload.
    pub async fn finish(self) -> Result<(), Error> {
        match self {
            Sink::Stdout(mut out) => out.flush()?,
            Sink::File(out) => out
                .into_inner()
                .map_err(|err| err.into_error())?
                .sync_all()?,
            Sink::S3(upload) => upload.complete().await?,
        }
        Ok(())
    }

    /// Gives up: an S3 upload is aborted, so no partial object appears.
    pub async fn abort(self) {
        if let Sink::S3(upload) = self {
            upload.abort().await;
        }
    }
}

/// An S3 multipart upload fed a part at a time.
pub struct MultipartUpload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<CompletedPart>,
}

fn s3_error(
    operation: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |source| Error::S3 { operation, source }
}

impl MultipartUpload {
    async fn start(client: Client, bucket: &str, key: &str) -> Result<Self, Error> {
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .send()
            .await
            .map_err(|err| s3_error("CreateMultipartUpload")(err.into()))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        Ok(Self {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            buffer: Vec::with_capacity(PART_SIZE + (1 << 16)),
            parts: Vec::new(),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= PART_SIZE {
            self.upload_part().await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self) -> Result<(), Error> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE + (1 << 16)));
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(body.into())
            .send()
            .await
            .map_err(|err| s3_error("UploadPart")(err.into()))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn complete(mut self) -> Result<(), Error> {
        // The last part may be short (or empty, for an empty stream: S3 needs one part).
        if !self.buffer.is_empty() || self.parts.is_empty() {
            if let Err(err) = self.upload_part().await {
                self.abort().await;
                return Err(err);
            }
        }
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await;
        if let Err(err) = completed {
            self.abort().await;
            return Err(s3_error("CompleteMultipartUpload")(err.into()));
        }
        Ok(())
    }

    async fn abort(self) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(err) = aborted {
            tracing::warn!(error = %err, upload_id = %self.upload_id, "cannot abort the multipart upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_name_a_bucket_and_a_key_and_anything_else_is_a_file() {
        assert_eq!(
            "s3://archive/t/2026/05/03.jsonl".parse(),
            Ok(Destination::S3 {
                bucket: "archive".into(),
                key: "t/2026/05/03.jsonl".into()
            })
        );
        assert_eq!(
            "out.jsonl".parse(),
            Ok(Destination::File(PathBuf::from("out.jsonl")))
        );
        assert!("s3://archive".parse::<Destination>().is_err());
        assert!("s3:///key".parse::<Destination>().is_err());
    }
}
