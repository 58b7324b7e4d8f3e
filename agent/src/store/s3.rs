//! The S3 store, through aws-sdk-s3: credentials, region and endpoint from the standard AWS
//! chain (env, web identity / IRSA, profile, instance metadata), `AWS_ENDPOINT_URL` for
//! S3-compatible servers, a CRC32 checksum on every PUT, SDK retries with backoff and jitter.

use super::{Content, ErrorKind, ObjectInfo, StoreError};
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::time::Duration;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
}

impl S3Store {
    /// `rest` is the URL after `s3://`: `BUCKET[/PREFIX]`.
    pub async fn open(rest: &str, path_style: bool) -> Result<S3Store, StoreError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::fatal(
                "store URL s3:// has no bucket: use s3://BUCKET/PREFIX",
            ));
        }
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let region = RegionProviderChain::default_provider().or_else("us-east-1");
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .load()
            .await;
        let path_style = path_style || env_flag("JOBARCHIVE_S3_PATH_STYLE");
        let conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build();
        Ok(S3Store {
            client: Client::from_conf(conf),
            bucket: bucket.to_string(),
            prefix,
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn put(&self, key: &str, body: Bytes, content: Content) -> Result<(), StoreError> {
        let (content_type, encoding) = match content {
            Content::GzipNdjson => ("application/x-ndjson", Some("gzip")),
            Content::Json => ("application/json", None),
        };
        // Content-Encoding is deliberately not set for gzip NDJSON: clients would decompress
        // transparently and readers expecting `.gz` bytes (DuckDB, Athena) would break.
        let _ = encoding;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        let out = match resp {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) if se.err().is_no_such_key() => return Ok(None),
            Err(e) => return Err(self.error("GetObject", key, e)),
        };
        let data = out.body.collect().await.map_err(|e| {
            StoreError::transient(format!("S3 GetObject {}: reading body: {e}", self.url(key)))
        })?;
        Ok(Some(data.into_bytes()))
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            for obj in page.contents() {
                let Some(key) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        // A one-key listing of our own prefix, not HeadBucket: the least-privilege policy allows
        // s3:ListBucket only with an s3:prefix condition, which HeadBucket cannot satisfy.
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", "", e))?;
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    /// One line that says what failed and why; credentials never appear in SDK error texts.
    fn error<E, R>(&self, op: &str, key: &str, e: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (kind, detail) = match &e {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("");
                let msg = se.err().message().unwrap_or("");
                let kind = if is_fatal_code(code) {
                    ErrorKind::Fatal
                } else {
                    ErrorKind::Transient
                };
                let detail = if code.is_empty() {
                    format!("{}", DisplayErrorContext(&e))
                } else {
                    format!("{code}: {msg}")
                };
                (kind, detail)
            }
            SdkError::ConstructionFailure(_) => {
                (ErrorKind::Fatal, format!("{}", DisplayErrorContext(&e)))
            }
            _ => (ErrorKind::Transient, format!("{}", DisplayErrorContext(&e))),
        };
        StoreError {
            kind,
            message: format!("S3 {op} {}: {}", self.url(key), one_line(&detail)),
        }
    }
}

fn is_fatal_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "NoSuchBucket"
            | "InvalidBucketName"
            | "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "InvalidToken"
            | "ExpiredToken"
            | "Forbidden"
            | "NotFound"
    )
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
        .unwrap_or(false)
}
