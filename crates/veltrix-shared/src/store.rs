//! The bucket: an S3-compatible object store, and the objects' keys.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Error, Result};
use crate::limits::check;

/// Where the bucket is. Credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, and
/// the other `AWS_*` variables `object_store` reads), never from a file of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Plain HTTP to the endpoint: for tests on loopback only.
    pub allow_http: bool,
    /// TCP and TLS connection (100..=60,000 ms).
    pub connect_timeout_ms: u64,
    /// One HTTP request (100..=300,000 ms).
    pub request_timeout_ms: u64,
    /// Retries of a failed request, inside the caller's deadline (0..=10).
    pub retries_max: usize,
    /// An access key and secret given here rather than by the environment:
    /// for tests against a local S3 server.
    pub static_credentials: Option<(String, String)>,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            bucket: "veltrix".into(),
            endpoint: None,
            region: "us-east-1".into(),
            allow_http: false,
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            retries_max: 2,
            static_credentials: None,
        }
    }
}

impl S3Config {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("connect_timeout_ms", self.connect_timeout_ms, 100, 60_000)?;
        check("request_timeout_ms", self.request_timeout_ms, 100, 300_000)?;
        check("retries_max", self.retries_max as u64, 0, 10)
    }

    /// The store, with credentials from the environment.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>> {
        self.validate()?;
        let request = Duration::from_millis(self.request_timeout_ms);
        let options = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .with_timeout(request);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: self.retries_max,
            retry_timeout: request * (self.retries_max as u32 + 1),
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_client_options(options)
            .with_retry(retry);
        if let Some((key, secret)) = &self.static_credentials {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(self.allow_http);
        }
        let store = builder
            .build()
            .map_err(|e| Error::Other(format!("object store settings: {e}")))?;
        Ok(Arc::new(store))
    }
}

/// Where a writer's objects are: `<prefix>/objects/`.
pub(crate) fn objects_prefix(prefix: &str) -> String {
    format!("{prefix}/objects/")
}

/// A new object's key: the prefix, the time it was made (so listings are
/// roughly by age), the writer and a random part, so keys are never reused
/// across writers or restarts.
pub(crate) fn object_key(prefix: &str, writer_id: &str, unix_ms: u64, sequence: u64) -> String {
    let random: u64 = rand::random();
    format!(
        "{}{unix_ms:013}-{writer_id}-{sequence:08x}-{random:016x}",
        objects_prefix(prefix)
    )
}

/// An error of the store on the write path: retriable, nothing committed.
pub(crate) fn store_unavailable(e: &object_store::Error) -> Error {
    Error::StoreUnavailable(e.to_string())
}
