//! The reading side shared by `fetch`, `ls`, `report`, `describe` and `verify`: find a job's runs
//! from the manifests, list its log objects in contract order, stream their records with bounded
//! parallelism, each record at most once, and load footprint documents, Job records and
//! attempts' Events.

use crate::contract::{
    decode_part, listing_prefix, scope_prefix, KeyParts, LogKey, Manifest, ObjectEntry, PartLine,
};
use crate::footprint::Footprint;
use crate::postmortem::describe::AttemptEvents;
use crate::postmortem::{EventSet, JobRecord};
use crate::store::{Store, StoreError};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};

/// Objects fetched at once: enough to hide latency, few enough to keep memory flat.
pub const FETCH_PARALLELISM: usize = 8;

/// One run of a job (a job_uid) as its manifests describe it.
#[derive(Debug, Default)]
pub struct JobRun {
    pub namespace: String,
    pub job: String,
    pub job_uid: String,
    pub cronjob: Option<String>,
    pub attempts: BTreeMap<u32, usize>,
    pub first_ts: String,
    pub last_ts: String,
    pub bytes: u64,
    pub records: u64,
    pub manifests: Vec<Manifest>,
}

/// Every manifest under a namespace (`None`: every namespace) and job, fetched with bounded
/// parallelism; unreadable ones are skipped with a warning (`verify` reports them instead: see
/// [`manifest_docs`]).
pub async fn manifests(
    store: &Store,
    cluster: &str,
    ns: Option<&str>,
    job: Option<&str>,
) -> Result<Vec<Manifest>, StoreError> {
    json_documents(store, &scope_prefix("manifests", cluster, ns, job), |_| {
        true
    })
    .await
}

/// Every footprint whose key starts with `prefix` (a job's folder, or `job={cronjob}-` for the
/// Jobs of a CronJob), fetched with bounded parallelism.
pub async fn footprints(store: &Store, prefix: &str) -> Result<Vec<Footprint>, StoreError> {
    json_documents(store, prefix, |_| true).await
}

/// Like [`footprints`], reading only the keys `keep` accepts: a CronJob's Jobs across every
/// namespace (`report --cronjob -A`) are a few folders of the whole cluster's listing.
pub async fn footprints_where(
    store: &Store,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Footprint>, StoreError> {
    json_documents(store, prefix, keep).await
}

/// The records of every run of a Job (`jobs/…/job={job}/job_uid={uid}.json`).
pub async fn job_records(
    store: &Store,
    cluster: &str,
    ns: &str,
    job: &str,
) -> Result<Vec<JobRecord>, StoreError> {
    json_documents(
        store,
        &listing_prefix("jobs", cluster, ns, Some(job)),
        |_| true,
    )
    .await
}

/// Every attempt's Events under `prefix` (a job's or a run's folder of `events/`), in key
/// order; an unreadable object is skipped with a warning.
pub async fn attempt_events(store: &Store, prefix: &str) -> Result<Vec<AttemptEvents>, StoreError> {
    let objects = store.list(prefix).await?;
    stream::iter(objects)
        .map(|o| async move {
            let parts = KeyParts::parse(&o.key);
            let pod = parts
                .file
                .strip_prefix("pod=")
                .and_then(|f| f.strip_suffix(".ndjson.gz"));
            let (Some(attempt), Some(pod)) = (parts.get_u64("attempt"), pod) else {
                return Ok(None);
            };
            let Some(gz) = store.get(&o.key).await? else {
                return Ok(None);
            };
            let mut body = Vec::new();
            if let Err(e) = crate::inflate::gunzip(&gz, &mut body) {
                tracing::warn!(key = %o.key, error = %e, "unreadable document skipped");
                return Ok(None);
            }
            Ok::<_, StoreError>(Some(AttemptEvents {
                attempt: attempt as u32,
                pod: pod.to_string(),
                events: EventSet::from_ndjson(&body).sorted(),
            }))
        })
        .buffered(FETCH_PARALLELISM)
        .try_filter_map(|d| async move { Ok(d) })
        .try_collect()
        .await
}

/// A one-line JSON document as found in the store: parsed, or why it could not be.
#[derive(Clone, Debug)]
pub struct Doc<T> {
    pub key: String,
    pub parsed: Result<T, String>,
}

pub type ManifestDoc = Doc<Manifest>;

/// A manifest part (docs/audit.md): its lines, or why they could not be read.
pub type PartDoc = Doc<Vec<PartLine>>;

/// Every manifest part under `prefix` (a namespace's or a job's folder of the parts tree), in
/// key order, readable or not.
pub async fn part_docs(store: &Store, prefix: &str) -> Result<Vec<PartDoc>, StoreError> {
    let objects = store.list(prefix).await?;
    stream::iter(objects.into_iter().filter(|o| o.key.ends_with(".ndjson")))
        .map(|o| async move {
            let Some(data) = store.get(&o.key).await? else {
                return Ok(None);
            };
            Ok::<_, StoreError>(Some(Doc {
                key: o.key,
                parsed: decode_part(&data),
            }))
        })
        .buffered(FETCH_PARALLELISM)
        .try_filter_map(|d| async move { Ok(d) })
        .try_collect()
        .await
}

/// Every object the manifests of one job run list: inline in heads of format 1, in parts for
/// format 2. Unreadable parts are skipped with a warning (`verify` reports them).
pub async fn listed_objects(
    store: &Store,
    cluster: &str,
    run: &JobRun,
) -> Result<Vec<ObjectEntry>, StoreError> {
    let mut out: Vec<ObjectEntry> = run
        .manifests
        .iter()
        .flat_map(|m| &m.containers)
        .flat_map(|c| &c.objects)
        .cloned()
        .collect();
    if run.manifests.iter().any(|m| m.format >= 2) {
        let prefix = format!(
            "{}job_uid={}/",
            listing_prefix(
                crate::contract::PARTS_TREE,
                cluster,
                &run.namespace,
                Some(&run.job)
            ),
            run.job_uid
        );
        for doc in part_docs(store, &prefix).await? {
            match doc.parsed {
                Ok(lines) => out.extend(lines.into_iter().filter_map(|l| match l {
                    PartLine::Object(o) => Some(o),
                    _ => None,
                })),
                Err(e) => {
                    tracing::warn!(key = %doc.key, error = %e, "unreadable manifest part skipped")
                }
            }
        }
    }
    Ok(out)
}

/// Every manifest object under a namespace (`None`: every namespace) and job, in key order,
/// readable or not.
pub async fn manifest_docs(
    store: &Store,
    cluster: &str,
    ns: Option<&str>,
    job: Option<&str>,
) -> Result<Vec<ManifestDoc>, StoreError> {
    parsed_documents(store, &scope_prefix("manifests", cluster, ns, job), |_| {
        true
    })
    .await
}

/// The one-line JSON documents under `prefix` (manifests, footprints), in key order; an
/// unreadable one is skipped with a warning rather than failing the whole read.
async fn json_documents<T: DeserializeOwned>(
    store: &Store,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<T>, StoreError> {
    let docs = parsed_documents(store, prefix, keep).await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| match d.parsed {
            Ok(doc) => Some(doc),
            Err(e) => {
                tracing::warn!(key = %d.key, error = %e, "unreadable document skipped");
                None
            }
        })
        .collect())
}

async fn parsed_documents<T: DeserializeOwned>(
    store: &Store,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Doc<T>>, StoreError> {
    let objects = store.list(prefix).await?;
    let wanted = objects
        .into_iter()
        .filter(|o| o.key.ends_with(".json") && keep(&o.key));
    stream::iter(wanted)
        .map(|o| async move {
            // Listed a moment ago, gone now: a concurrent delete, nothing to judge.
            let Some(data) = store.get(&o.key).await? else {
                return Ok(None);
            };
            let parsed = serde_json::from_slice::<T>(&data).map_err(|e| e.to_string());
            Ok::<_, StoreError>(Some(Doc { key: o.key, parsed }))
        })
        .buffered(FETCH_PARALLELISM)
        .try_filter_map(|d| async move { Ok(d) })
        .try_collect()
        .await
}

/// Group manifests into job runs, most recent last.
pub fn job_runs(manifests: Vec<Manifest>) -> Vec<JobRun> {
    let mut runs: HashMap<(String, String), JobRun> = HashMap::new();
    for m in manifests {
        let uid = m
            .pod
            .job_uid
            .clone()
            .unwrap_or_else(|| crate::contract::UNKNOWN_UID.to_string());
        let run = runs
            .entry((m.pod.job.clone(), uid.clone()))
            .or_insert_with(|| JobRun {
                namespace: m.pod.namespace.clone(),
                job: m.pod.job.clone(),
                job_uid: uid,
                cronjob: m.pod.cronjob.clone(),
                ..JobRun::default()
            });
        *run.attempts.entry(m.pod.attempt).or_default() += 1;
        for c in &m.containers {
            run.bytes += c.byte_count();
            run.records += c.record_count();
        }
        if let Some((first, last)) = m.log_span() {
            if run.first_ts.is_empty() || earlier(first, &run.first_ts) {
                run.first_ts = first.to_string();
            }
            if run.last_ts.is_empty() || earlier(&run.last_ts, last) {
                run.last_ts = last.to_string();
            }
        }
        run.manifests.push(m);
    }
    let mut out: Vec<JobRun> = runs.into_values().collect();
    out.sort_by(|a, b| (&a.job, nanos(&a.last_ts)).cmp(&(&b.job, nanos(&b.last_ts))));
    out
}

fn nanos(ts: &str) -> i128 {
    crate::clock::rfc3339_nanos(ts).unwrap_or(i128::MIN)
}

fn earlier(a: &str, b: &str) -> bool {
    nanos(a) < nanos(b)
}

/// The log objects of one job run, in output order (attempt, container, restart, offset).
pub async fn log_keys(
    store: &Store,
    cluster: &str,
    ns: &str,
    job: &str,
    job_uid: &str,
) -> Result<Vec<LogKey>, StoreError> {
    let listing = log_listing(store, cluster, ns, job, job_uid).await?;
    Ok(listing.into_iter().map(|(k, _)| k).collect())
}

/// Like [`log_keys`], with each object's size: `fetch --follow` notices an object rewritten in
/// place (a batch re-shipped with more records after a lost checkpoint) by its size.
pub async fn log_listing(
    store: &Store,
    cluster: &str,
    ns: &str,
    job: &str,
    job_uid: &str,
) -> Result<Vec<(LogKey, u64)>, StoreError> {
    let prefix = format!(
        "{}job_uid={job_uid}/",
        listing_prefix("logs", cluster, ns, Some(job))
    );
    let mut keys: Vec<(LogKey, u64)> = store
        .list(&prefix)
        .await?
        .iter()
        .filter_map(|o| Some((LogKey::parse(&o.key)?, o.size)))
        .collect();
    keys.sort();
    Ok(keys)
}

/// (pod_uid, container, restart): one log stream of CONTRACT §4.
pub type StreamKey = (String, String, u32);

/// Drops records already printed: within a stream, objects come in offset order, so anything at
/// or below the last printed offset was printed (an object re-shipped after a lost checkpoint).
#[derive(Default)]
pub struct Dedup {
    next: HashMap<StreamKey, u64>,
}

impl Dedup {
    /// The lowest offset of `stream` not printed yet.
    pub fn next(&self, stream: &StreamKey) -> u64 {
        self.next.get(stream).copied().unwrap_or(0)
    }

    /// Everything of `stream` below `next` has been printed.
    pub fn advance(&mut self, stream: &StreamKey, next: u64) {
        match self.next.get_mut(stream) {
            Some(n) => *n = next.max(*n),
            None => {
                self.next.insert(stream.clone(), next);
            }
        }
    }
}

/// Fetch objects in order with up to FETCH_PARALLELISM in flight; each decompressed body goes
/// through `render` on the blocking pool (so parsing uses every core), and the results reach
/// `each` in key order.
pub async fn for_each_object<T, R, F>(
    store: &Store,
    keys: &[LogKey],
    render: R,
    mut each: F,
) -> Result<(), StoreError>
where
    T: Send + 'static,
    R: Fn(&[u8]) -> T + Clone + Send + 'static,
    F: FnMut(&LogKey, T) -> std::io::Result<()>,
{
    let mut bodies = stream::iter(keys.iter())
        .map(|k| {
            let render = render.clone();
            async move {
                let data = store.get(&k.key).await?.ok_or_else(|| {
                    StoreError::transient(format!("object {} vanished while reading", k.key))
                })?;
                tokio::task::spawn_blocking(move || inflate_and(&data, render))
                    .await
                    .map_err(|e| StoreError::fatal(e.to_string()))?
                    .map(|d| (k, d))
            }
        })
        .buffered(FETCH_PARALLELISM);
    while let Some(item) = bodies.next().await {
        let (key, rendered) = item?;
        if let Err(e) = each(key, rendered) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(StoreError::fatal(format!("writing output: {e}")));
        }
    }
    Ok(())
}

thread_local! {
    /// A decompressed object, kept per thread of the blocking pool: a fresh multi-MiB buffer
    /// per object cost page faults on every one of its pages.
    static BODY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn inflate_and<T>(gz: &[u8], render: impl Fn(&[u8]) -> T) -> Result<T, StoreError> {
    BODY.with_borrow_mut(|body| {
        crate::inflate::gunzip(gz, body)
            .map_err(|e| StoreError::fatal(format!("corrupt log object: {e}")))?;
        Ok(render(body))
    })
}
