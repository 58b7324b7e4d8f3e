//! The spool: compressed batches that could not reach the store, kept durably in
//! `state_dir/spool/` (one file per batch, temp + fsync + rename) until they can be uploaded.
//!
//! A batch counts as done for its stream's checkpoint once it is spooled, so reading goes on
//! through a store outage and a pod deleted meanwhile loses nothing. Files are named by a
//! sequence number, so "oldest first" is name order and a stream's batches land in the order
//! they were read. The spool is bounded: when it is full, `put` waits, and so does reading.

use crate::contract::{Gap, ObjectEntry, PodIdentity};
use crate::durable::write_atomically;
use crate::follow::StreamCheckpoint;
use crate::metrics::Metrics;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Everything needed to land a spooled batch and record it, without the follower's help.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpoolHeader {
    pub pod: PodIdentity,
    pub checkpoint: StreamCheckpoint,
    pub complete: bool,
    /// `None`: the batch only moved the checkpoint (no records) or ended the stream.
    pub entry: Option<ObjectEntry>,
    /// Bytes found gone for good before this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
}

impl SpoolHeader {
    pub fn stream(&self) -> StreamId {
        (
            self.pod.pod_uid.clone(),
            self.checkpoint.container.clone(),
            self.checkpoint.restart,
        )
    }
}

/// (pod uid, container, restart)
pub type StreamId = (String, String, u32);

/// One spooled batch, as the index knows it.
#[derive(Clone, Debug)]
pub struct Spooled {
    pub seq: u64,
    pub path: PathBuf,
    stream: StreamId,
    bytes: u64,
}

/// Room reserved in the spool for one batch.
pub struct Room {
    seq: u64,
    size: u64,
}

#[derive(Default)]
struct Index {
    items: BTreeMap<u64, Spooled>,
    streams: HashMap<StreamId, usize>,
    /// Bytes on disk plus bytes reserved by writes in progress.
    bytes: u64,
    next_seq: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    freed: Notify,
    added: Notify,
    full_reported: AtomicBool,
    metrics: Arc<Metrics>,
}

const SUFFIX: &str = ".batch";

impl Spool {
    /// Open (and index) the spool folder; batches left by an earlier run are uploaded first.
    pub fn open(state_dir: &Path, max_bytes: u64, metrics: Arc<Metrics>) -> Result<Spool, String> {
        let dir = state_dir.join("spool");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create spool dir {}: {e}", dir.display()))?;
        let spool = Spool {
            dir,
            max_bytes,
            index: Mutex::new(Index::default()),
            freed: Notify::new(),
            added: Notify::new(),
            full_reported: AtomicBool::new(false),
            metrics,
        };
        spool.load();
        Ok(spool)
    }

    fn load(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut idx = self.lock();
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A write interrupted by a crash: its batch was never counted as done.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            match read_file(&path) {
                Ok((header, body)) => {
                    let item = Spooled {
                        seq,
                        path,
                        stream: header.stream(),
                        bytes: body.len() as u64,
                    };
                    idx.insert(item);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable spool file set aside");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
            }
        }
        idx.next_seq = idx.items.keys().next_back().map_or(0, |s| s + 1);
        if !idx.items.is_empty() {
            tracing::info!(
                batches = idx.items.len(),
                bytes = idx.bytes,
                "spooled batches from an earlier run will be uploaded"
            );
        }
        self.publish(&idx);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, idx: &Index) {
        self.metrics.spool_bytes.store(idx.bytes, Relaxed);
        self.metrics
            .spool_batches
            .store(idx.items.len() as u64, Relaxed);
    }

    /// A stream with spooled batches must send its next ones through the spool too, so its
    /// commits stay in offset order.
    pub fn holds_stream(&self, id: &StreamId) -> bool {
        self.lock().streams.contains_key(id)
    }

    pub fn holds_pod(&self, pod_uid: &str) -> bool {
        self.lock().streams.keys().any(|k| k.0 == pod_uid)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    pub fn oldest(&self) -> Option<Spooled> {
        self.lock().items.values().next().cloned()
    }

    /// Write a batch durably; waits while the spool is full (back-pressure, never a drop).
    pub async fn put(&self, header: &SpoolHeader, body: Bytes) -> std::io::Result<()> {
        let room = self.reserve(body.len() as u64).await;
        self.write(room, header, body).await
    }

    /// Write into room reserved before: the batch is durable when this returns `Ok`.
    pub async fn write(
        &self,
        room: Room,
        header: &SpoolHeader,
        body: Bytes,
    ) -> std::io::Result<()> {
        let path = self.dir.join(format!("{:020}{SUFFIX}", room.seq));
        let data = encode(header, &body)?;
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&target, &data))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        let mut idx = self.lock();
        idx.bytes -= room.size;
        if written.is_ok() {
            idx.insert(Spooled {
                seq: room.seq,
                path,
                stream: header.stream(),
                bytes: room.size,
            });
        }
        self.publish(&idx);
        drop(idx);
        self.added.notify_waiters();
        self.freed.notify_waiters();
        written
    }

    /// A sequence number and room for `size` bytes. An empty spool takes any batch, so one batch
    /// larger than the limit cannot wait forever.
    /// Waiting here can be abandoned (shutdown); nothing is held until it returns.
    pub async fn reserve(&self, size: u64) -> Room {
        loop {
            let freed = self.freed.notified();
            {
                let mut idx = self.lock();
                if idx.bytes == 0 || idx.bytes + size <= self.max_bytes {
                    idx.bytes += size;
                    let seq = idx.next_seq;
                    idx.next_seq += 1;
                    return Room { seq, size };
                }
            }
            if !self.full_reported.swap(true, Relaxed) {
                tracing::warn!(
                    max_bytes = self.max_bytes,
                    "spool full: reading pauses until the store takes batches again"
                );
            }
            freed.await;
        }
    }

    /// A file that cannot be read back: set aside for a human, out of the way of the others.
    pub fn set_aside(&self, item: &Spooled) {
        let _ = std::fs::rename(&item.path, item.path.with_extension("corrupt"));
        self.remove(item);
    }

    /// The batch landed and is recorded: forget it.
    pub fn remove(&self, item: &Spooled) {
        let _ = std::fs::remove_file(&item.path);
        let mut idx = self.lock();
        if let Some(it) = idx.items.remove(&item.seq) {
            idx.bytes -= it.bytes;
            if idx.items.is_empty() {
                // Said once per outage, not once per batch.
                self.full_reported.store(false, Relaxed);
            }
            if let Some(n) = idx.streams.get_mut(&it.stream) {
                *n -= 1;
                if *n == 0 {
                    idx.streams.remove(&it.stream);
                }
            }
        }
        self.publish(&idx);
        drop(idx);
        self.freed.notify_waiters();
    }

    /// Resolves once a batch is added after this call (the uploader sleeps on it while the
    /// spool is empty; take it before looking, so no addition is missed).
    pub fn added(&self) -> tokio::sync::futures::Notified<'_> {
        self.added.notified()
    }

    pub async fn read(item: &Spooled) -> std::io::Result<(SpoolHeader, Bytes)> {
        let path = item.path.clone();
        tokio::task::spawn_blocking(move || read_file(&path))
            .await
            .map_err(std::io::Error::other)?
    }
}

impl Index {
    fn insert(&mut self, item: Spooled) {
        self.bytes += item.bytes;
        *self.streams.entry(item.stream.clone()).or_default() += 1;
        self.items.insert(item.seq, item);
    }
}

/// A header line of JSON, then the gzip body as it will be uploaded.
fn encode(header: &SpoolHeader, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut data = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    data.push(b'\n');
    data.extend_from_slice(body);
    Ok(data)
}

fn read_file(path: &Path) -> std::io::Result<(SpoolHeader, Bytes)> {
    let data = std::fs::read(path)?;
    let nl = memchr::memchr(b'\n', &data)
        .ok_or_else(|| std::io::Error::other("spool file has no header line"))?;
    let header: SpoolHeader = serde_json::from_slice(&data[..nl]).map_err(std::io::Error::other)?;
    let body = Bytes::from(data).slice(nl + 1..);
    if let Some(e) = &header.entry {
        if e.bytes != body.len() as u64 {
            return Err(std::io::Error::other("spool file body is truncated"));
        }
    }
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(uid: &str, first: u64) -> SpoolHeader {
        SpoolHeader {
            pod: PodIdentity {
                cluster: "c".into(),
                node: "n".into(),
                namespace: "ns".into(),
                pod: "p".into(),
                pod_uid: uid.into(),
                job: "j".into(),
                job_uid: None,
                cronjob: None,
                attempt: 1,
                completion_index: None,
            },
            checkpoint: StreamCheckpoint {
                container: "c".into(),
                restart: 0,
                offset: first + 10,
                file: None,
            },
            complete: false,
            gap: None,
            entry: Some(ObjectEntry {
                key: format!("k{first}"),
                first_offset: first,
                end_offset: first + 10,
                records: 1,
                bytes: 4,
                sha256: String::new(),
                first_ts: String::new(),
                last_ts: String::new(),
            }),
        }
    }

    #[tokio::test]
    async fn batches_survive_a_restart_and_come_back_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let spool = Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap();
        spool
            .put(&header("a", 0), Bytes::from_static(b"gz-1"))
            .await
            .unwrap();
        spool
            .put(&header("a", 10), Bytes::from_static(b"gz-2"))
            .await
            .unwrap();
        assert!(spool.holds_stream(&("a".into(), "c".into(), 0)));
        assert_eq!(metrics.spool_bytes.load(Relaxed), 8);
        drop(spool);

        let spool = Spool::open(dir.path(), 1 << 20, metrics.clone()).unwrap();
        let first = spool.oldest().unwrap();
        let (h, body) = Spool::read(&first).await.unwrap();
        assert_eq!(
            (h.entry.unwrap().first_offset, &body[..]),
            (0, &b"gz-1"[..])
        );
        spool.remove(&first);
        let second = spool.oldest().unwrap();
        assert_eq!(Spool::read(&second).await.unwrap().1, "gz-2");
        spool.remove(&second);
        assert!(spool.is_empty() && !spool.holds_pod("a"));
        assert_eq!(metrics.spool_bytes.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_full_spool_makes_writers_wait_instead_of_dropping() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path(), 6, Arc::new(Metrics::default())).unwrap());
        spool
            .put(&header("a", 0), Bytes::from_static(b"gz-1"))
            .await
            .unwrap();
        let writer = {
            let spool = spool.clone();
            tokio::spawn(async move {
                spool
                    .put(&header("a", 10), Bytes::from_static(b"gz-2"))
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "second batch waits for room");
        spool.remove(&spool.oldest().unwrap());
        writer.await.unwrap().unwrap();
        assert_eq!(
            Spool::read(&spool.oldest().unwrap()).await.unwrap().1,
            "gz-2"
        );
    }
}
