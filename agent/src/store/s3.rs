//! The S3 store, through aws-sdk-s3: credentials, region and endpoint from the standard AWS
//! chain (env, web identity / IRSA, profile, instance metadata), `AWS_ENDPOINT_URL` for
//! S3-compatible servers, a CRC32 checksum on every PUT, SDK retries with backoff and jitter,
//! and the configured object protection (encryption, storage class, Object Lock) on each PUT.

use super::{Content, ErrorKind, ObjectInfo, StoreError};
use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode, ServerSideEncryption, StorageClass};
use aws_sdk_s3::Client;
use bytes::Bytes;
use std::time::Duration;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    protection: Protection,
}

/// What every PutObject carries besides the body: `[store]` sse, sse_kms_key_id, storage_class,
/// object_lock_mode and object_lock_days, already validated by `Config::validate`.
#[derive(Clone, Debug, Default)]
pub struct Protection {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    /// Log objects only (see config/jobarchive.toml for why not manifests).
    pub storage_class: Option<StorageClass>,
    pub lock: Option<(ObjectLockMode, u32)>,
}

impl Protection {
    pub fn from_config(c: &crate::config::StoreConfig) -> Protection {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Protection {
            sse: some(&c.sse).map(|s| ServerSideEncryption::from(s.as_str())),
            kms_key_id: some(&c.sse_kms_key_id),
            storage_class: some(&c.storage_class).map(|s| StorageClass::from(s.as_str())),
            lock: some(&c.object_lock_mode)
                .map(|m| (ObjectLockMode::from(m.as_str()), c.object_lock_days)),
        }
    }

    /// Object Lock needs a Content-MD5 or an `x-amz-sdk-checksum-algorithm` header on the PUT;
    /// the CRC32 checksum every PUT carries provides the latter.
    fn apply(&self, req: PutObjectFluentBuilder, content: Content) -> PutObjectFluentBuilder {
        let req = req
            .set_server_side_encryption(self.sse.clone())
            .set_ssekms_key_id(self.kms_key_id.clone());
        let req = match content {
            Content::GzipNdjson => req.set_storage_class(self.storage_class.clone()),
            Content::GzipNdjsonDocument | Content::Json | Content::Ndjson => req,
        };
        match &self.lock {
            Some((mode, days)) => req
                .object_lock_mode(mode.clone())
                .object_lock_retain_until_date(retain_until(*days)),
            None => req,
        }
    }
}

/// Now plus `days`, whole seconds: retention counts from each upload, so a rewritten manifest's
/// new version is kept as long as the first.
fn retain_until(days: u32) -> DateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DateTime::from_secs((now + u64::from(days) * 86_400) as i64)
}

impl S3Store {
    /// `rest` is the URL after `s3://`: `BUCKET[/PREFIX]`. `ca_bundle`: a PEM file of extra
    /// trusted CAs (empty: env `AWS_CA_BUNDLE`, which aws-config itself does not read).
    pub async fn open(
        rest: &str,
        path_style: bool,
        ca_bundle: &str,
    ) -> Result<S3Store, StoreError> {
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
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(region);
        if let Some(client) = https_client(ca_bundle)? {
            loader = loader.http_client(client);
        }
        let sdk = loader.load().await;
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
            protection: Protection::default(),
        })
    }

    pub fn with_protection(self, protection: Protection) -> S3Store {
        S3Store { protection, ..self }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn put(&self, key: &str, body: Bytes, content: Content) -> Result<(), StoreError> {
        let (content_type, encoding) = match content {
            Content::GzipNdjson | Content::GzipNdjsonDocument => {
                ("application/x-ndjson", Some("gzip"))
            }
            Content::Json => ("application/json", None),
            Content::Ndjson => ("application/x-ndjson", None),
        };
        // Content-Encoding is deliberately not set for gzip NDJSON: clients would decompress
        // transparently and readers expecting `.gz` bytes (DuckDB, Athena) would break.
        let _ = encoding;
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .content_type(content_type)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body));
        self.protection
            .apply(req, content)
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

/// An HTTPS client that trusts the system roots plus a private CA bundle, when one is given.
/// Certificates are always verified; there is no switch to turn that off.
fn https_client(
    ca_bundle: &str,
) -> Result<Option<aws_sdk_s3::config::SharedHttpClient>, StoreError> {
    use aws_smithy_http_client::tls;
    let path = match ca_bundle {
        "" => std::env::var("AWS_CA_BUNDLE").unwrap_or_default(),
        p => p.to_string(),
    };
    if path.is_empty() {
        return Ok(None);
    }
    let pem = std::fs::read(&path)
        .map_err(|e| StoreError::fatal(format!("cannot read CA bundle {path}: {e}")))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(StoreError::fatal(format!(
            "CA bundle {path} holds no PEM certificate"
        )));
    }
    let trust = tls::TrustStore::default().with_pem_certificate(pem);
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| StoreError::fatal(format!("CA bundle {path}: {e}")))?;
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https();
    Ok(Some(client))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_ca_bundle_is_a_clear_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = https_client(missing.to_str().unwrap()).err().unwrap();
        assert!(err.message.contains("cannot read CA bundle"), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = https_client(junk.to_str().unwrap()).err().unwrap();
        assert!(err.message.contains("no PEM certificate"), "{err}");
        assert_eq!(err.kind, ErrorKind::Fatal);
    }
}
