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
    /// The pod-level part: who the attempt is (the inverse of `PodIdentity::stream`).
    pub fn identity(&self) -> PodIdentity {
        PodIdentity {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            pod_uid: self.pod_uid.clone(),
            job: self.job.clone(),
            job_uid: self.job_uid.clone(),
            cronjob: self.cronjob.clone(),
            attempt: self.attempt,
            completion_index: self.completion_index,
        }
    }

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

/// The head of an attempt's manifest (docs/audit.md §1), at `manifests/…/pod={pod}.json`: who
/// the attempt is and, per container stream, a summary of what landed. The objects themselves
/// are listed in immutable parts (`PartLine`s under `manifest-parts/`), so writing the head
/// costs the same whatever the pod has shipped before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub pod: PodIdentity,
    pub updated: String,
    /// 2: objects are listed in parts. 1 (or absent): in the head itself, as agents before
    /// v1.1 wrote it; readers accept both.
    #[serde(default = "format_one")]
    pub format: u32,
    pub containers: Vec<ContainerManifest>,
}

fn format_one() -> u32 {
    1
}

/// The manifest format this agent writes.
pub const MANIFEST_FORMAT: u32 = 2;

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

    /// `manifest-parts/…/attempt={n}/pod={pod}/`: every part of the attempt's manifest.
    pub fn parts_prefix(&self) -> String {
        format!(
            "{PARTS_TREE}/{}/pod={}/",
            self.stream("", 0).partition(),
            self.pod
        )
    }
}

/// Where manifest parts live: a tree of its own, so that listing or globbing `manifests/`
/// reads one small head per attempt, not one document per batch.
pub const PARTS_TREE: &str = "manifest-parts";

impl StreamMeta {
    /// `manifest-parts/…/pod={pod}/container={c}/restart={r}/{first:020}.ndjson`: the part whose
    /// first line starts at stream offset `first`. Deterministic, like log keys: a part written
    /// again after a crash overwrites itself.
    pub fn part_key(&self, first: u64) -> String {
        format!(
            "{PARTS_TREE}/{}/pod={}/container={}/restart={}/{first:020}.ndjson",
            self.partition(),
            self.pod,
            self.container,
            self.restart
        )
    }
}

/// One container stream (container and restart) in a manifest head.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerManifest {
    pub container: String,
    pub restart: u32,
    /// The container terminated and every byte of its log up to `end_offset` has landed.
    pub complete: bool,
    /// Stream offset up to which everything is accounted for (landed, skipped or lost).
    pub end_offset: u64,
    /// Where `end_offset` lies in the node's files: lets an agent that lost its checkpoint
    /// resume exactly there (an addition to CONTRACT §3; readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileMark>,
    /// Format 2: how many parts list this stream's objects; they tile `[0, end_offset)`.
    #[serde(default)]
    pub parts: u64,
    /// Format 2: totals over the stream's objects, so `ls` and SQL need not read the parts.
    #[serde(default)]
    pub object_count: u64,
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<String>,
    /// Bytes of the stream that are gone for good (also listed in the parts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// Format 1 only: the objects, inline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<ObjectEntry>,
    /// Format 1 only: byte ranges `[from, to)` read past without a record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(u64, u64)>,
}

/// A position in a container log file: its identity and the stream offset of its first byte.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub dev: u64,
    pub ino: u64,
    pub base: u64,
    /// Unix seconds when this file was last seen as the current `N.log` (marks written before
    /// fingerprints: the first rotated file named later than this is the one it became).
    pub seen_unix: i64,
    /// Its first bytes: what identifies the file after a rotation gave it a new name, or
    /// compression a new inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

/// A digest of a file's first `bytes` bytes (decompressed, for `.gz` files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub bytes: u32,
    /// The first 8 bytes of their SHA-256, in hex.
    pub hash: String,
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

/// Stream bytes `[first_offset, end_offset)` that no object holds and never will: the file
/// holding them was gone before the agent could read it. `first_offset == end_offset` when
/// how many bytes were lost cannot be known (the stream continues at the same offset).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub first_offset: u64,
    pub end_offset: u64,
    pub reason: String,
}

/// One line of a manifest part (NDJSON): an object, a range read past without a record, or a
/// gap. The lines of a stream's parts, in order, tile it from byte 0 to the head's
/// `end_offset`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PartLine {
    Object(ObjectEntry),
    Skipped { first_offset: u64, end_offset: u64 },
    Gap(Gap),
}

impl PartLine {
    /// `[first, end)` in stream offsets.
    pub fn span(&self) -> (u64, u64) {
        match self {
            PartLine::Object(o) => (o.first_offset, o.end_offset),
            PartLine::Skipped {
                first_offset,
                end_offset,
            } => (*first_offset, *end_offset),
            PartLine::Gap(g) => (g.first_offset, g.end_offset),
        }
    }

    pub fn object(&self) -> Option<&ObjectEntry> {
        match self {
            PartLine::Object(o) => Some(o),
            _ => None,
        }
    }
}

/// The NDJSON body of a part.
pub fn encode_part(lines: &[PartLine]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() * 320);
    for line in lines {
        serde_json::to_writer(&mut out, line).expect("part lines serialize");
        out.push(b'\n');
    }
    out
}

/// A part's lines; an error names the first line that is not one.
pub fn decode_part(body: &[u8]) -> Result<Vec<PartLine>, String> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| serde_json::from_slice(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

impl Manifest {
    /// The first and the last log-line timestamp of the attempt over every landed object.
    pub fn log_span(&self) -> Option<(&str, &str)> {
        span_of(self.containers.iter().filter_map(|c| c.span()))
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
                    ..ContainerManifest::default()
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

/// The earliest first and the latest last of `(first, last)` timestamps. Runtimes trim trailing
/// zeros of the fraction, so the stamps are compared as times.
pub fn span_of<'a>(spans: impl Iterator<Item = (&'a str, &'a str)>) -> Option<(&'a str, &'a str)> {
    let nanos = |ts: &str| crate::clock::rfc3339_nanos(ts).unwrap_or(i128::MIN);
    let mut out: Option<(&str, &str)> = None;
    for (first, last) in spans.filter(|(f, l)| !f.is_empty() && !l.is_empty()) {
        out = Some(match out {
            None => (first, last),
            Some((f, l)) => (
                if nanos(first) < nanos(f) { first } else { f },
                if nanos(last) > nanos(l) { last } else { l },
            ),
        });
    }
    out
}

impl ContainerManifest {
    /// Whether the objects are inline (format 1) rather than in parts.
    pub fn inline(&self) -> bool {
        !self.objects.is_empty() || !self.skipped.is_empty()
    }

    /// Log records of the stream that landed.
    pub fn record_count(&self) -> u64 {
        if self.inline() {
            self.objects.iter().map(|o| o.records).sum()
        } else {
            self.records
        }
    }

    /// Compressed bytes of the stream's objects.
    pub fn byte_count(&self) -> u64 {
        if self.inline() {
            self.objects.iter().map(|o| o.bytes).sum()
        } else {
            self.bytes
        }
    }

    pub fn object_total(&self) -> u64 {
        if self.inline() {
            self.objects.len() as u64
        } else {
            self.object_count
        }
    }

    /// First and last log-line timestamps of the stream's objects.
    pub fn span(&self) -> Option<(&str, &str)> {
        if self.inline() {
            return span_of(
                self.objects
                    .iter()
                    .map(|o| (o.first_ts.as_str(), o.last_ts.as_str())),
            );
        }
        Some((self.first_ts.as_deref()?, self.last_ts.as_deref()?))
    }

    /// A format-1 stream's objects and skips as part lines, in offset order.
    pub fn inline_lines(&self) -> Vec<PartLine> {
        let mut lines: Vec<PartLine> = self
            .objects
            .iter()
            .cloned()
            .map(PartLine::Object)
            .chain(self.skipped.iter().map(|&(a, b)| PartLine::Skipped {
                first_offset: a,
                end_offset: b,
            }))
            .collect();
        lines.sort_by_key(|l| l.span());
        lines
    }

    /// Account for a line in the summary (counts, times, end, gaps). Lines come in stream
    /// order; a line replacing one counted before (a batch re-read after a crash) is counted
    /// again, so the summary is rebuilt from the lines when that happens (`summarize`).
    pub fn count(&mut self, line: &PartLine) {
        let (_, end) = line.span();
        match line {
            PartLine::Object(o) => {
                self.object_count += 1;
                self.records += o.records;
                self.bytes += o.bytes;
                let widen = span_of(
                    self.span()
                        .into_iter()
                        .chain(std::iter::once((o.first_ts.as_str(), o.last_ts.as_str()))),
                )
                .map(|(f, l)| (f.to_string(), l.to_string()));
                if let Some((f, l)) = widen {
                    self.first_ts = Some(f);
                    self.last_ts = Some(l);
                }
            }
            PartLine::Skipped { .. } => {}
            PartLine::Gap(g) => self.gaps.push(g.clone()),
        }
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

    #[test]
    fn part_keys_follow_the_stream_and_lines_round_trip() {
        let m = meta();
        assert_eq!(
            m.part_key(42),
            "manifest-parts/cluster=c1/namespace=default/job=exit-nonzero/job_uid=unknown/attempt=3/pod=exit-nonzero-szsld/container=main/restart=2/00000000000000000042.ndjson"
        );
        let id = m.identity();
        assert_eq!(id.stream(&m.container, m.restart), m);
        assert!(m.part_key(0).starts_with(&id.parts_prefix()));
        let lines = vec![
            PartLine::Skipped {
                first_offset: 0,
                end_offset: 7,
            },
            PartLine::Gap(Gap {
                first_offset: 7,
                end_offset: 7,
                reason: "gone".into(),
            }),
            PartLine::Object(ObjectEntry {
                key: m.log_key(7),
                first_offset: 7,
                end_offset: 90,
                records: 3,
                bytes: 60,
                sha256: "ab".into(),
                first_ts: "2026-11-27T14:00:00Z".into(),
                last_ts: "2026-11-27T14:00:01Z".into(),
            }),
        ];
        let body = encode_part(&lines);
        assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 3);
        assert!(String::from_utf8_lossy(&body).starts_with("{\"kind\":\"skipped\""));
        assert_eq!(decode_part(&body).unwrap(), lines);
        assert!(decode_part(b"{\"kind\":\"object\"}\n")
            .unwrap_err()
            .starts_with("line 1"));
    }

    #[test]
    fn heads_of_both_formats_give_the_same_totals() {
        let objects = vec![
            ObjectEntry {
                key: "a".into(),
                first_offset: 0,
                end_offset: 10,
                records: 2,
                bytes: 30,
                sha256: String::new(),
                first_ts: "2026-11-27T14:00:00.5Z".into(),
                last_ts: "2026-11-27T14:00:01Z".into(),
            },
            ObjectEntry {
                key: "b".into(),
                first_offset: 10,
                end_offset: 20,
                records: 3,
                bytes: 40,
                sha256: String::new(),
                first_ts: "2026-11-27T14:00:02Z".into(),
                last_ts: "2026-11-27T14:00:03.25Z".into(),
            },
        ];
        let old = ContainerManifest {
            objects: objects.clone(),
            ..ContainerManifest::default()
        };
        let mut new = ContainerManifest::default();
        for o in objects {
            new.count(&PartLine::Object(o));
        }
        for c in [&old, &new] {
            assert_eq!(
                (c.record_count(), c.byte_count(), c.object_total()),
                (5, 70, 2)
            );
            assert_eq!(
                c.span(),
                Some(("2026-11-27T14:00:00.5Z", "2026-11-27T14:00:03.25Z"))
            );
        }
        assert_eq!(new.end_offset, 20);
        // A format-1 head (no `format` field) reads as format 1.
        let json = r#"{"cluster":"c","node":"n","namespace":"d","pod":"p","pod_uid":"u","job":"j","job_uid":null,"cronjob":null,"attempt":1,"completion_index":null,"updated":"","containers":[]}"#;
        assert_eq!(serde_json::from_str::<Manifest>(json).unwrap().format, 1);
    }
}
