use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;

use super::{ArtifactKey, DestinationResult, Piece, Tally, next_piece, stopped};
use crate::error::DestinationError;

/// Parts of 16 MiB: S3 allows 10,000 parts, so objects up to ~156 GiB fit
/// (object_store's default 5 MiB caps them at ~48 GiB). One fixed size, as R2 needs.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// An S3-compatible target as the user configures it.
#[derive(Clone)]
pub struct S3Config {
    pub label: String,
    /// `https://s3.eu-central-1.amazonaws.com`, `http://127.0.0.1:9000`, …
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Prepended to every key, without a trailing `/` (may be empty).
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// At least 5 MiB (S3's minimum for all but the last part).
    pub part_size: usize,
    /// Parts in flight at once; memory is about (this + 1) × part_size.
    pub max_concurrent_parts: usize,
    /// Retries of one request, with backoff, before the upload fails.
    pub max_retries: usize,
    pub request_timeout: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("label", &self.label)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// A config with berth's defaults for everything but the connection.
    pub fn new(
        label: impl Into<String>,
        endpoint: impl Into<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
    ) -> Self {
        Self {
            label: label.into(),
            endpoint: endpoint.into(),
            region: region.into(),
            bucket: bucket.into(),
            prefix: String::new(),
            access_key_id: access_key_id.into(),
            secret_access_key,
            path_style: true,
            part_size: DEFAULT_PART_SIZE,
            max_concurrent_parts: 2,
            max_retries: 3,
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// A connected S3 destination (no request is made until it is used).
#[derive(Clone)]
pub struct S3Destination {
    config: S3Config,
    store: Arc<AmazonS3>,
}

impl fmt::Debug for S3Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("S3Destination").field(&self.config).finish()
    }
}

impl S3Destination {
    pub fn new(config: S3Config) -> Result<Self, DestinationError> {
        if config.part_size < 5 * 1024 * 1024 {
            return Err(DestinationError::S3Config(
                "parts must be at least 5 MiB".into(),
            ));
        }
        let options = ClientOptions::new()
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_timeout(config.request_timeout)
            .with_connect_timeout(Duration::from_secs(10));
        let retry = RetryConfig {
            max_retries: config.max_retries,
            ..RetryConfig::default()
        };
        let store = AmazonS3Builder::new()
            .with_endpoint(&config.endpoint)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(config.secret_access_key.expose_secret())
            .with_virtual_hosted_style_request(!config.path_style)
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| DestinationError::S3Config(e.to_string()))?;
        Ok(Self {
            config,
            store: Arc::new(store),
        })
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn path(&self, key: &str) -> Path {
        let prefix = self.config.prefix.trim_matches('/');
        if prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{prefix}/{key}"))
        }
    }

    pub fn location(&self, key: &ArtifactKey) -> String {
        format!("s3://{}/{}", self.config.bucket, self.path(key.as_str()))
    }

    /// A multipart upload with fixed-size parts, at most
    /// `max_concurrent_parts` in flight; completed only on commit, aborted
    /// otherwise, so a failed backup leaves no object (and no billed parts).
    pub(crate) async fn write(
        &self,
        key: &ArtifactKey,
        mut rx: mpsc::Receiver<Piece>,
        cancel: CancellationToken,
    ) -> DestinationResult {
        let path = self.path(key.as_str());
        let mut tally = Tally::new();
        let outcome = async {
            let upload = self.store.put_multipart(&path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, self.config.part_size);
            // The parts, until the commit's checksum; any failure aborts the upload.
            let received = async {
                while let Some(piece) = next_piece(&mut rx, &cancel).await {
                    match piece {
                        Piece::Data(bytes) => {
                            tokio::select! {
                                biased;
                                () = cancel.cancelled() => return Err(stopped(&cancel)),
                                r = writer.wait_for_capacity(self.config.max_concurrent_parts) => r?,
                            }
                            tally.add(&bytes);
                            writer.put(bytes);
                        }
                        Piece::Commit(expected) => return tally.check(&expected),
                    }
                }
                Err(stopped(&cancel))
            }
            .await;
            match received {
                // finish() aborts the upload itself when it fails.
                Ok(sum) => writer.finish().await.map(|_| sum).map_err(Into::into),
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        }
        .await;
        tally.result(&self.config.label, self.location(key), outcome)
    }

    pub(crate) async fn open(
        &self,
        key: &ArtifactKey,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, DestinationError> {
        let got = self.store.get(&self.path(key.as_str())).await?;
        let stream = got.into_stream().map_err(std::io::Error::other);
        Ok(Box::new(StreamReader::new(stream)))
    }

    pub(crate) async fn delete(&self, key: &ArtifactKey) -> Result<(), DestinationError> {
        match self.store.delete(&self.path(key.as_str())).await {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The "Test" button: writes a small object, reads it back, compares
    /// and deletes it. Listing alone is not enough: coolify#11084 passed
    /// its list-based test and then failed every upload.
    pub async fn test(&self) -> Result<(), DestinationError> {
        let name = format!("berth-test-{:016x}", rand::random::<u64>());
        let path = self.path(&name);
        let body = format!("berth destination test {name}\n").into_bytes();
        self.store
            .put(&path, PutPayload::from(body.clone()))
            .await?;
        let outcome = async {
            let back = self.store.get(&path).await?.bytes().await?;
            if back.as_ref() != body.as_slice() {
                return Err(DestinationError::TestReadBack);
            }
            Ok(())
        }
        .await;
        let deleted = self.store.delete(&path).await;
        outcome?;
        deleted?;
        Ok(())
    }
}
