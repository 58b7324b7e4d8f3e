//! The store stage: where objects land. One small interface, two implementations: the embedded
//! local store (a folder, same keys as files) and S3 (or any S3-compatible server); and an
//! in-memory one that unit tests can take down on demand.

pub mod local;
pub mod memory;
pub mod s3;

use crate::retry::{Backoff, STORE_START};
use bytes::Bytes;
use std::fmt;

/// How a store failure should be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, 5xx, throttling, timeouts: retry with backoff.
    Transient,
    /// Wrong credentials, missing bucket, bad URL: retrying soon will not help.
    Fatal,
    /// The store named is not there at all (a local folder that does not exist): a mistake
    /// on the command line or in the config, not trouble with the store.
    Config,
}

#[derive(Debug)]
pub struct StoreError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn transient(message: impl Into<String>) -> Self {
        StoreError {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }
    pub fn fatal(message: impl Into<String>) -> Self {
        StoreError {
            kind: ErrorKind::Fatal,
            message: message.into(),
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        StoreError {
            kind: ErrorKind::Config,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

enum Url<'a> {
    /// After `s3://`.
    S3(&'a str),
    Local(&'a str),
}

fn parse_url(url: &str) -> Result<Url<'_>, StoreError> {
    if url.is_empty() {
        return Err(StoreError::fatal(
            "no store given: use --store URL or JOBARCHIVE_STORE (s3://BUCKET/PREFIX or a folder)",
        ));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        return Ok(Url::S3(rest));
    }
    if url.contains("://") && !url.starts_with("file://") {
        return Err(StoreError::fatal(format!(
            "unsupported store URL {url:?}: use s3://BUCKET/PREFIX or file:///PATH"
        )));
    }
    Ok(Url::Local(url.strip_prefix("file://").unwrap_or(url)))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store's prefix.
    pub key: String,
    pub size: u64,
}

/// What an object holds, for its Content-Type and Content-Encoding.
#[derive(Clone, Copy, Debug)]
pub enum Content {
    /// A log object, written once: `store.storage_class` applies.
    GzipNdjson,
    /// Gzip NDJSON rewritten as it grows (an attempt's Events): STANDARD, like the documents.
    GzipNdjsonDocument,
    Json,
    /// Plain NDJSON (manifest parts).
    Ndjson,
}

/// What a PUT writes, by the tree its key is in: S3 bills per request, so /metrics counts
/// requests and bytes per class (the agent's cost, in the bill's own units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutClass {
    Logs,
    Manifests,
    Footprints,
    Events,
    Jobs,
    Other,
}

impl PutClass {
    pub const ALL: [PutClass; 6] = [
        PutClass::Logs,
        PutClass::Manifests,
        PutClass::Footprints,
        PutClass::Events,
        PutClass::Jobs,
        PutClass::Other,
    ];

    /// Heads and parts are both the manifest's cost.
    pub fn of(key: &str) -> PutClass {
        match key.split('/').next().unwrap_or("") {
            "logs" => PutClass::Logs,
            "manifests" | crate::contract::PARTS_TREE => PutClass::Manifests,
            "footprints" => PutClass::Footprints,
            "events" => PutClass::Events,
            "jobs" => PutClass::Jobs,
            _ => PutClass::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PutClass::Logs => "logs",
            PutClass::Manifests => "manifests",
            PutClass::Footprints => "footprints",
            PutClass::Events => "events",
            PutClass::Jobs => "jobs",
            PutClass::Other => "other",
        }
    }
}

/// PUT requests sent (failed ones included: they are billed too) and body bytes, per class.
#[derive(Debug, Default)]
pub struct PutCounters {
    requests: [std::sync::atomic::AtomicU64; 6],
    bytes: [std::sync::atomic::AtomicU64; 6],
}

impl PutCounters {
    fn add(&self, class: PutClass, bytes: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests[class as usize].fetch_add(1, Relaxed);
        self.bytes[class as usize].fetch_add(bytes as u64, Relaxed);
    }

    /// (requests, bytes) of a class so far.
    pub fn get(&self, class: PutClass) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.requests[class as usize].load(Relaxed),
            self.bytes[class as usize].load(Relaxed),
        )
    }
}

pub struct Store {
    backend: Backend,
    puts: PutCounters,
}

enum Backend {
    Local(local::LocalStore),
    S3(s3::S3Store),
    Memory(memory::MemoryStore),
}

impl Store {
    fn new(backend: Backend) -> Store {
        Store {
            backend,
            puts: PutCounters::default(),
        }
    }

    /// A store in memory (for tests of what writes to a store): `memory` keeps the handle that
    /// reads its objects and takes it down.
    pub fn memory(memory: memory::MemoryStore) -> Store {
        Store::new(Backend::Memory(memory))
    }

    /// PUTs sent through this store so far, by class.
    pub fn puts(&self) -> &PutCounters {
        &self.puts
    }

    /// A store to write to: `s3://BUCKET/PREFIX`, `file:///ABS/PATH` or a plain path
    /// (CONTRACT §2); a local folder is created if missing. Only the agent writes.
    /// `ca_bundle`: extra trusted CAs (PEM file) for an S3 store behind a private CA.
    pub async fn open(url: &str, path_style: bool, ca_bundle: &str) -> Result<Store, StoreError> {
        match parse_url(url)? {
            Url::S3(rest) => Ok(Store::new(Backend::S3(
                s3::S3Store::open(rest, path_style, ca_bundle).await?,
            ))),
            Url::Local(path) => Ok(Store::new(Backend::Local(local::LocalStore::open(path)?))),
        }
    }

    /// A store to read from (`fetch`, `ls`, `report`, `verify`): nothing is created, and a
    /// store that is not there fails here with one clear line, rather than reading as an empty
    /// archive: a missing local folder is [`ErrorKind::Config`], a bucket that does not exist
    /// or cannot be reached (one small listing of the prefix) an S3 error.
    pub async fn open_read_only(url: &str, path_style: bool) -> Result<Store, StoreError> {
        match parse_url(url)? {
            Url::S3(rest) => {
                let s = s3::S3Store::open(rest, path_style, "").await?;
                s.check().await?;
                Ok(Store::new(Backend::S3(s)))
            }
            Url::Local(path) => Ok(Store::new(Backend::Local(
                local::LocalStore::open_existing(path)?,
            ))),
        }
    }

    /// The agent's store: `open`, plus the object protection of `[store]` on S3.
    pub async fn open_for_agent(cfg: &crate::config::StoreConfig) -> Result<Store, StoreError> {
        let store = Store::open(&cfg.url, cfg.path_style, &cfg.ca_bundle).await?;
        match store.backend {
            Backend::S3(s) => Ok(Store::new(Backend::S3(
                s.with_protection(s3::Protection::from_config(cfg)),
            ))),
            Backend::Memory(s) => Ok(Store::new(Backend::Memory(s))),
            Backend::Local(s) => {
                if cfg.protects() {
                    tracing::warn!("store.sse, storage_class and object_lock_* apply to S3 only; the local store ignores them");
                }
                Ok(Store::new(Backend::Local(s)))
            }
        }
    }

    pub async fn put(&self, key: &str, body: Bytes, content: Content) -> Result<(), StoreError> {
        self.puts.add(PutClass::of(key), body.len());
        match &self.backend {
            Backend::Local(s) => s.put(key, body).await,
            Backend::S3(s) => s.put(key, body, content).await,
            Backend::Memory(s) => s.put(key, body),
        }
    }

    /// `put`, tried again on a transient error up to `retries` more times with the agent's
    /// backoff (up to 10 s apart): for writers that have no spool behind them (footprints,
    /// post-mortem records), whose next pass tries again anyway. A fatal error, or the last
    /// transient one, is returned.
    pub async fn put_with_retries(
        &self,
        key: &str,
        body: Bytes,
        content: Content,
        retries: u32,
    ) -> Result<(), StoreError> {
        let mut backoff = Backoff::new(STORE_START, std::time::Duration::from_secs(10));
        let mut tries = 0;
        loop {
            match self.put(key, body.clone(), content).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind == ErrorKind::Fatal || tries >= retries => return Err(e),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
    }

    /// `Ok(None)` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match &self.backend {
            Backend::Local(s) => s.get(key).await,
            Backend::S3(s) => s.get(key).await,
            Backend::Memory(s) => s.get(key),
        }
    }

    /// Every object under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match &self.backend {
            Backend::Local(s) => s.list(prefix).await,
            Backend::S3(s) => s.list(prefix).await,
            Backend::Memory(s) => s.list(prefix),
        }
    }

    /// Is the store there and are we allowed in? (readiness, early failure of a bad setup)
    pub async fn check(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Local(s) => s.check(),
            Backend::S3(s) => s.check().await,
            Backend::Memory(s) => s.check(),
        }
    }

    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(s) => s.describe(),
            Backend::S3(s) => s.describe(),
            Backend::Memory(_) => "memory store".to_string(),
        }
    }
}
