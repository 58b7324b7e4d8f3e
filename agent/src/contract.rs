//! Everything CONTRACT.md fixes, in one place for the writer and the reader: object keys,
//! the per-stream metadata of a log record, the record as read back, and the manifest.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Metadata shared by every record of one container stream (one pod, container and restart).
/// It is serialized once per stream by `encode`, never per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub cluster: String,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub container: String,
    pub restart: u32,
    pub job: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    pub attempt: u32,
    pub completion_index: Option<u32>,
}

/// Placeholder for `{uid}` in keys when the agent runs without the Kubernetes API.
pub const UNKNOWN_UID: &str = "unknown";

impl StreamMeta {
    fn uid_part(&self) -> &str {
        self.job_uid.as_deref().unwrap_or(UNKNOWN_UID)
    }

    /// `cluster=…/namespace=…/job=…/job_uid=…/attempt=…`, shared by the three trees.
    fn partition(&self) -> String {
        attempt_partition(
            &self.cluster,
            &self.namespace,
            &self.job,
            self.uid_part(),
            self.attempt,
        )
    }

    /// `logs/…/restart={r}/` — the folder of this stream's objects.
    pub fn log_dir_key(&self) -> String {
        format!(
            "logs/{}/pod={}/container={}/restart={}/",
            self.partition(),
            self.pod,
            self.container,
            self.restart
        )
    }

    /// Deterministic key of the batch whose first record starts at `offset`.
    pub fn log_key(&self, offset: u64) -> String {
        format!("{}{offset:020}.ndjson.gz", self.log_dir_key())
    }

    pub fn manifest_key(&self) -> String {
        self.attempt_doc_key("manifests")
    }

    pub fn footprint_key(&self) -> String {
        self.attempt_doc_key("footprints")
    }

    fn attempt_doc_key(&self, tree: &str) -> String {
        format!("{tree}/{}/pod={}.json", self.partition(), self.pod)
    }
}

fn attempt_partition(cluster: &str, ns: &str, job: &str, uid: &str, attempt: u32) -> String {
    format!("cluster={cluster}/namespace={ns}/job={job}/job_uid={uid}/attempt={attempt}")
}

/// `{tree}/cluster={c}/namespace={ns}/` and, with a job, `…/job={job}/`: listing prefixes.
pub fn listing_prefix(tree: &str, cluster: &str, ns: &str, job: Option<&str>) -> String {
    match job {
        Some(job) => format!("{tree}/cluster={cluster}/namespace={ns}/job={job}/"),
        None => format!("{tree}/cluster={cluster}/namespace={ns}/"),
    }
}

/// The listing prefix of a read command's scope: one namespace (and job) as
/// [`listing_prefix`], or with no namespace (`-A`) every namespace: `{tree}/cluster={c}/`.
pub fn scope_prefix(tree: &str, cluster: &str, ns: Option<&str>, job: Option<&str>) -> String {
    match ns {
        Some(ns) => listing_prefix(tree, cluster, ns, job),
        None => format!("{tree}/cluster={cluster}/"),
    }
}

/// The Hive partitions of a key (`name=value` path segments), in order, plus its file name.
pub struct KeyParts<'a> {
    pub parts: Vec<(&'a str, &'a str)>,
    pub file: &'a str,
}

impl<'a> KeyParts<'a> {
    pub fn parse(key: &'a str) -> KeyParts<'a> {
        let mut segments: Vec<&str> = key.split('/').collect();
        let file = segments.pop().unwrap_or("");
        let parts = segments.iter().filter_map(|s| s.split_once('=')).collect();
        KeyParts { parts, file }
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.parts.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    pub fn get_u64(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }
}

/// A log object's key, decoded: what `fetch` sorts and filters on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogKey {
    pub attempt: u32,
    pub container: String,
    pub restart: u32,
    pub pod: String,
    pub offset: u64,
    pub key: String,
}

impl LogKey {
    pub fn parse(key: &str) -> Option<LogKey> {
        let p = KeyParts::parse(key);
        let offset = p.file.strip_suffix(".ndjson.gz")?.parse().ok()?;
        Some(LogKey {
            attempt: p.get_u64("attempt")? as u32,
            container: p.get("container")?.to_string(),
            restart: p.get_u64("restart")? as u32,
            pod: p.get("pod")?.to_string(),
            offset,
            key: key.to_string(),
        })
    }
}

/// True when `s` is safe as a key segment and a Hive partition value: Kubernetes names
/// (DNS-1123 labels and subdomains), UIDs and cluster/node names qualify; anything with `/`,
/// `=`, `..`, control characters or spaces does not, so no crafted folder name can escape its
/// partition or forge another one.
pub fn is_safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// One log record as read back from the store (CONTRACT §4). Borrowed where the JSON allows.
#[derive(Debug, Deserialize)]
pub struct RecordRead<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    #[serde(default, borrow)]
    pub message_b64: Option<Cow<'a, str>>,
    #[serde(default)]
    pub truncated: bool,
    pub offset: u64,
    #[serde(borrow)]
    pub pod: Cow<'a, str>,
    #[serde(borrow)]
    pub pod_uid: Cow<'a, str>,
    #[serde(borrow)]
    pub container: Cow<'a, str>,
    pub restart: u32,
    pub attempt: u32,
}

/// Per-attempt manifest (CONTRACT §3): every log object of the pod, per container and restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub pod: PodIdentity,
    pub updated: String,
    pub containers: Vec<ContainerManifest>,
}

/// The pod-level part of `StreamMeta`: who the attempt is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentity {
    pub cluster: String,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub job: String,
    pub job_uid: Option<String>,
    pub cronjob: Option<String>,
    pub attempt: u32,
    pub completion_index: Option<u32>,
}

impl PodIdentity {
    pub fn stream(&self, container: &str, restart: u32) -> StreamMeta {
        StreamMeta {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            pod_uid: self.pod_uid.clone(),
            container: container.to_string(),
            restart,
            job: self.job.clone(),
            job_uid: self.job_uid.clone(),
            cronjob: self.cronjob.clone(),
            attempt: self.attempt,
            completion_index: self.completion_index,
        }
    }

    pub fn manifest_key(&self) -> String {
        self.stream("", 0).manifest_key()
    }

    pub fn footprint_key(&self) -> String {
        self.stream("", 0).footprint_key()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContainerManifest {
    pub container: String,
    pub restart: u32,
    /// The container terminated and every byte of its log up to `end_offset` has landed.
    pub complete: bool,
    /// Stream offset up to which everything has landed.
    pub end_offset: u64,
    /// Where `end_offset` lies in the node's files: lets an agent that lost its checkpoint
    /// resume exactly there (an addition to CONTRACT §3; readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileMark>,
    pub objects: Vec<ObjectEntry>,
    /// Byte ranges `[from, to)` of the stream that the agent read past without a record
    /// (malformed lines, bytes cut off by a truncation), so no object covers them. Recorded so
    /// that `verify` can tell a deliberate skip from an object that went missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(u64, u64)>,
}

/// A position in a container log file: its identity and the stream offset of its first byte.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub dev: u64,
    pub ino: u64,
    pub base: u64,
    /// Unix seconds when this file was last seen as the current `N.log`: after a rotation the
    /// first rotated file named later than this is the one it became.
    pub seen_unix: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    pub key: String,
    pub first_offset: u64,
    pub end_offset: u64,
    pub records: u64,
    pub bytes: u64,
    pub sha256: String,
    pub first_ts: String,
    pub last_ts: String,
}

impl Manifest {
    /// The first and the last log-line timestamp of the attempt over every landed object.
    /// Runtimes trim trailing zeros of the fraction, so the stamps are compared as times.
    pub fn log_span(&self) -> Option<(&str, &str)> {
        let nanos = |ts: &str| crate::meta::rfc3339_nanos(ts).unwrap_or(i128::MIN);
        let objects = || self.containers.iter().flat_map(|c| &c.objects);
        let first = objects()
            .map(|o| o.first_ts.as_str())
            .filter(|ts| !ts.is_empty())
            .min_by_key(|ts| nanos(ts))?;
        let last = objects()
            .map(|o| o.last_ts.as_str())
            .filter(|ts| !ts.is_empty())
            .max_by_key(|ts| nanos(ts))?;
        Some((first, last))
    }

    pub fn container_mut(&mut self, container: &str, restart: u32) -> &mut ContainerManifest {
        let i = match self
            .containers
            .iter()
            .position(|c| c.container == container && c.restart == restart)
        {
            Some(i) => i,
            None => {
                self.containers.push(ContainerManifest {
                    container: container.to_string(),
                    restart,
                    complete: false,
                    end_offset: 0,
                    file: None,
                    objects: Vec::new(),
                    skipped: Vec::new(),
                });
                self.containers
                    .sort_by(|a, b| (&a.container, a.restart).cmp(&(&b.container, b.restart)));
                self.containers
                    .iter()
                    .position(|c| c.container == container && c.restart == restart)
                    .unwrap_or(0)
            }
        };
        &mut self.containers[i]
    }
}

impl ContainerManifest {
    /// Account for one committed batch, in stream order: its object if it had records, and the
    /// bytes between what was accounted for so far and where it starts (or, without records,
    /// where the stream's checkpoint now is) as skipped.
    pub fn record_batch(&mut self, entry: Option<ObjectEntry>, checkpoint: u64) {
        let accounted = self.end_offset;
        match entry {
            Some(entry) => {
                self.note_skipped(accounted, entry.first_offset);
                self.add_object(entry);
            }
            None => self.note_skipped(accounted, checkpoint),
        }
        self.end_offset = self.end_offset.max(checkpoint);
    }

    fn note_skipped(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        match self.skipped.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => self.skipped.push((from, to)),
        }
    }

    /// Record a landed object. A re-shipped batch has the same key and replaces its entry, and
    /// any entry it now covers (a shorter batch shipped before a crash) goes with it.
    pub fn add_object(&mut self, entry: ObjectEntry) {
        self.objects.retain(|o| {
            o.key != entry.key
                && !(o.first_offset >= entry.first_offset && o.first_offset < entry.end_offset)
        });
        let (first, end) = (entry.first_offset, entry.end_offset);
        let at = self
            .objects
            .partition_point(|o| o.first_offset < entry.first_offset);
        self.objects.insert(at, entry);
        // A batch re-read after a lost checkpoint may now hold records where bytes were skipped.
        self.skipped
            .retain(|&(from, _)| from < first || from >= end);
        self.end_offset = self.end_offset.max(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> StreamMeta {
        StreamMeta {
            cluster: "c1".into(),
            node: "n1".into(),
            namespace: "default".into(),
            pod: "exit-nonzero-szsld".into(),
            pod_uid: "u-1".into(),
            container: "main".into(),
            restart: 2,
            job: "exit-nonzero".into(),
            job_uid: None,
            cronjob: None,
            attempt: 3,
            completion_index: None,
        }
    }

    #[test]
    fn keys_follow_the_contract_layout() {
        let m = meta();
        assert_eq!(
            m.log_key(42),
            "logs/cluster=c1/namespace=default/job=exit-nonzero/job_uid=unknown/attempt=3/pod=exit-nonzero-szsld/container=main/restart=2/00000000000000000042.ndjson.gz"
        );
        assert_eq!(
            m.manifest_key(),
            "manifests/cluster=c1/namespace=default/job=exit-nonzero/job_uid=unknown/attempt=3/pod=exit-nonzero-szsld.json"
        );
        let k = LogKey::parse(&m.log_key(42)).unwrap();
        assert_eq!(
            (k.attempt, k.container.as_str(), k.restart, k.offset),
            (3, "main", 2, 42)
        );
    }

    #[test]
    fn unsafe_segments_are_rejected() {
        for bad in ["", "..", "a/b", "a=b", "a b", "x\n", "é"] {
            assert!(!is_safe_segment(bad), "{bad:?}");
        }
        assert!(is_safe_segment("cron-fail-29929854-abcde"));
        assert!(is_safe_segment("f5d2a146-ed30-42ed-96d6-8cdba53b70dd"));
    }

    fn entry(first: u64, end: u64) -> ObjectEntry {
        ObjectEntry {
            key: format!("k{first}"),
            first_offset: first,
            end_offset: end,
            records: 1,
            bytes: 1,
            sha256: String::new(),
            first_ts: String::new(),
            last_ts: String::new(),
        }
    }

    #[test]
    fn reshipped_batches_replace_their_entries() {
        let mut c = ContainerManifest {
            container: "c".into(),
            restart: 0,
            complete: false,
            end_offset: 0,
            file: None,
            objects: vec![],
            skipped: vec![],
        };
        c.add_object(entry(0, 10));
        c.add_object(entry(10, 20));
        c.add_object(entry(20, 25));
        // After a crash the batch at 20 is re-read with more lines and replaces the shorter one.
        c.add_object(entry(20, 40));
        assert_eq!(
            c.objects
                .iter()
                .map(|o| (o.first_offset, o.end_offset))
                .collect::<Vec<_>>(),
            vec![(0, 10), (10, 20), (20, 40)]
        );
        assert_eq!(c.end_offset, 40);
    }

    #[test]
    fn bytes_passed_without_records_are_recorded_as_skipped() {
        let mut c = ContainerManifest {
            container: "c".into(),
            restart: 0,
            complete: false,
            end_offset: 0,
            objects: vec![],
            skipped: vec![],
            file: None,
        };
        c.record_batch(Some(entry(0, 10)), 10);
        // A batch of malformed lines only, then one more that extends the same skip.
        c.record_batch(None, 15);
        c.record_batch(None, 18);
        c.record_batch(Some(entry(18, 30)), 30);
        // Bytes dropped between batches (a truncation) show up as a skip before the next object.
        c.record_batch(Some(entry(34, 40)), 40);
        assert_eq!(c.skipped, vec![(10, 18), (30, 34)]);
        assert_eq!(c.end_offset, 40);
        // Re-read after a lost checkpoint, the skipped bytes at 30 now belong to an object.
        c.record_batch(Some(entry(30, 40)), 40);
        assert_eq!(c.skipped, vec![(10, 18)]);
    }
}
