//! The checkpoint stage: per pod, one small state file in the state dir holding its pinned
//! metadata and, per stream, where reading has got to (the committed offset with the file
//! position it maps to) and where the manifest has got to (the summary of what its written
//! parts list, plus the lines not written to a part yet). Its size does not grow with the pod's
//! history: written parts are not kept. Saved durably after the store (or the spool) confirmed
//! a batch, so a crash re-ships at most the batch in flight, to the same key, and re-writes at
//! most the pending part, to the same key.
//!
//! A save is one JSON line appended to the pod's file and fdatasync'd; the last complete line
//! is the state. A torn line (a crash mid-append) is not complete, so the line before it is.
//! The file is rewritten whole (temp + fsync + rename) at a pod's first save in a process and
//! when an append would take it past 64 KiB: creating and renaming a file per batch was about a
//! third of the agent's CPU with 2,000 live streams on ext4 (docs/performance.md).

use crate::contract::{
    ContainerManifest, Gap, Manifest, ObjectEntry, PartLine, PodIdentity, MANIFEST_FORMAT,
};
use crate::durable::write_atomically;
use crate::follow::{FileMark, StreamCheckpoint};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodState {
    pub identity: PodIdentity,
    /// First log line of the pod (ns since the epoch): numbers path-only attempts after restarts.
    pub first_line_nanos: Option<i128>,
    pub streams: Vec<StreamState>,
    /// The manifest in the store is behind: lines wait for a part, or a head write failed.
    /// Written again when due (and at the next start).
    #[serde(default)]
    pub manifest_pending: bool,
}

/// One stream of a pod: the reading checkpoint and the manifest's progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StreamState {
    pub checkpoint: StreamCheckpoint,
    /// The stream ended and everything up to its end is recorded: reading it again is pointless.
    #[serde(default)]
    pub complete: bool,
    /// The head's entry as of the last part written: totals over the written parts, and their
    /// end (`end_offset`), where the next part starts.
    pub written: ContainerManifest,
    /// Lines recorded since, in stream order: the next part.
    #[serde(default)]
    pub pending: Vec<PartLine>,
    /// Where what landed ends (`end_offset` of the next head) and the file position there.
    pub landed_end: u64,
    #[serde(default)]
    pub landed_file: Option<FileMark>,
}

impl StreamState {
    fn new(container: &str, restart: u32) -> StreamState {
        StreamState {
            checkpoint: StreamCheckpoint {
                container: container.to_string(),
                restart,
                ..StreamCheckpoint::default()
            },
            written: ContainerManifest {
                container: container.to_string(),
                restart,
                ..ContainerManifest::default()
            },
            ..StreamState::default()
        }
    }

    pub fn is(&self, container: &str, restart: u32) -> bool {
        self.checkpoint.container == container && self.checkpoint.restart == restart
    }

    /// Account for one committed batch, in stream order: the bytes between what was accounted
    /// for so far and where it starts as skipped (or, without records, up to where the stream's
    /// checkpoint now is), its gap if reading found bytes gone for good, and its object. A
    /// batch re-read after a crash from an earlier offset replaces the pending lines it covers.
    pub fn record(
        &mut self,
        entry: Option<ObjectEntry>,
        gap: Option<Gap>,
        checkpoint: &StreamCheckpoint,
        complete: bool,
    ) {
        let start = entry.as_ref().map_or(checkpoint.offset, |e| e.first_offset);
        let start = gap.as_ref().map_or(start, |g| g.first_offset.min(start));
        if start < self.landed_end {
            if start < self.written.end_offset {
                tracing::warn!(container = %checkpoint.container, offset = start, written = self.written.end_offset, "a batch starts inside a manifest part already written (the state file was older than the store); verify will report the overlap");
            }
            self.pending.retain(|l| l.span().0 < start);
            if let Some(PartLine::Skipped { end_offset, .. }) = self.pending.last_mut() {
                *end_offset = (*end_offset).min(start);
            }
            self.landed_end = self
                .pending
                .last()
                .map_or(self.written.end_offset, |l| l.span().1);
        }
        if let Some(g) = gap {
            self.skip_to(g.first_offset);
            self.landed_end = self.landed_end.max(g.end_offset);
            self.pending.push(PartLine::Gap(g));
        }
        match entry {
            Some(e) => {
                self.skip_to(e.first_offset);
                self.landed_end = self.landed_end.max(e.end_offset);
                self.pending.push(PartLine::Object(e));
            }
            None => self.skip_to(checkpoint.offset),
        }
        if self.landed_end == checkpoint.offset {
            self.landed_file = checkpoint.file.clone();
        }
        self.complete |= complete;
    }

    fn skip_to(&mut self, to: u64) {
        let from = self.landed_end;
        if from >= to {
            return;
        }
        match self.pending.last_mut() {
            Some(PartLine::Skipped { end_offset, .. }) if *end_offset == from => *end_offset = to,
            _ => self.pending.push(PartLine::Skipped {
                first_offset: from,
                end_offset: to,
            }),
        }
        self.landed_end = to;
    }

    /// The head's entry for this stream once the pending lines are written as a part.
    pub fn head(&self) -> ContainerManifest {
        let mut c = self.written.clone();
        if !self.pending.is_empty() {
            c.parts += 1;
        }
        for line in &self.pending {
            c.count(line);
        }
        c.end_offset = c.end_offset.max(self.landed_end);
        c.file = self.landed_file.clone().or(c.file);
        c.complete = self.complete;
        c
    }

    /// The pending lines were written as a part (or there were none): they are the head now.
    pub fn mark_written(&mut self) {
        self.written = self.head();
        self.pending.clear();
    }

    /// Bytes recorded (landed, skipped, lost) up to here.
    pub fn end(&self) -> u64 {
        self.landed_end
    }
}

impl PodState {
    pub fn new(identity: PodIdentity) -> PodState {
        PodState {
            identity,
            first_line_nanos: None,
            streams: Vec::new(),
            manifest_pending: false,
        }
    }

    /// A pod whose state file was lost, rebuilt from its manifest head in the store: every
    /// stream resumes where what landed ends. A head of format 1 lists its objects inline:
    /// they become the first part at the next write, so the manifest stays whole.
    pub fn from_manifest(manifest: Manifest) -> PodState {
        let streams = manifest
            .containers
            .into_iter()
            .map(|c| {
                let mut s = StreamState::new(&c.container, c.restart);
                s.checkpoint.offset = c.end_offset;
                s.checkpoint.file = c.file.clone();
                s.complete = c.complete;
                s.landed_end = c.end_offset;
                s.landed_file = c.file.clone();
                if c.inline() {
                    s.pending = c.inline_lines();
                    s.written.end_offset = 0;
                } else {
                    s.written = c;
                }
                s
            })
            .collect();
        PodState {
            identity: manifest.pod,
            first_line_nanos: None,
            streams,
            manifest_pending: false,
        }
    }

    pub fn identity(&self) -> &PodIdentity {
        &self.identity
    }

    pub fn stream(&self, container: &str, restart: u32) -> Option<&StreamCheckpoint> {
        self.find(container, restart).map(|s| &s.checkpoint)
    }

    pub fn find(&self, container: &str, restart: u32) -> Option<&StreamState> {
        self.streams.iter().find(|s| s.is(container, restart))
    }

    pub fn stream_mut(&mut self, container: &str, restart: u32) -> &mut StreamState {
        let i = match self.streams.iter().position(|s| s.is(container, restart)) {
            Some(i) => i,
            None => {
                self.streams.push(StreamState::new(container, restart));
                self.streams.sort_by(|a, b| {
                    let key =
                        |s: &StreamState| (s.checkpoint.container.clone(), s.checkpoint.restart);
                    key(a).cmp(&key(b))
                });
                self.streams
                    .iter()
                    .position(|s| s.is(container, restart))
                    .expect("just added")
            }
        };
        &mut self.streams[i]
    }

    pub fn set_stream(&mut self, cp: StreamCheckpoint) {
        let (container, restart) = (cp.container.clone(), cp.restart);
        self.stream_mut(&container, restart).checkpoint = cp;
    }

    /// The manifest head as it will be once every pending line is written.
    pub fn head(&self, updated: String) -> Manifest {
        Manifest {
            pod: self.identity.clone(),
            updated,
            format: MANIFEST_FORMAT,
            containers: self.streams.iter().map(StreamState::head).collect(),
        }
    }

    /// Streams with lines waiting for a part.
    pub fn has_pending(&self) -> bool {
        self.streams.iter().any(|s| !s.pending.is_empty())
    }

    /// First and last log-line timestamps of everything that landed.
    pub fn log_span(&self) -> Option<(String, String)> {
        let heads: Vec<ContainerManifest> = self.streams.iter().map(StreamState::head).collect();
        crate::contract::span_of(heads.iter().filter_map(ContainerManifest::span))
            .map(|(a, b)| (a.to_string(), b.to_string()))
    }
}

/// The state file as agents before manifest parts wrote it: the whole manifest inside.
#[derive(Deserialize)]
struct StateV1 {
    manifest: Manifest,
    first_line_nanos: Option<i128>,
    streams: Vec<StreamCheckpoint>,
    #[serde(default)]
    manifest_pending: bool,
}

impl From<StateV1> for PodState {
    /// The inline manifest becomes pending lines (its first part at the next write).
    fn from(old: StateV1) -> PodState {
        let mut state = PodState::from_manifest(old.manifest);
        state.first_line_nanos = old.first_line_nanos;
        for cp in old.streams {
            state.set_stream(cp);
        }
        state.manifest_pending = old.manifest_pending || state.has_pending();
        state
    }
}

/// A state file of either format: the previous one is told by its `manifest` field.
fn parse_state(data: &[u8]) -> Result<PodState, String> {
    let old = memchr::memmem::find(data, b"\"manifest\":").is_some()
        && memchr::memmem::find(data, b"\"identity\":").is_none();
    if old {
        return serde_json::from_slice::<StateV1>(data)
            .map(PodState::from)
            .map_err(|e| e.to_string());
    }
    serde_json::from_slice::<PodState>(data).map_err(|e| e.to_string())
}

/// A pod's state file is rewritten whole rather than appended to past this size, so it is never
/// bigger than this or one state (reading it stays cheap).
const APPEND_MAX: u64 = 64 << 10;

/// The state dir's `pods/` folder.
#[derive(Clone)]
pub struct StateDir {
    pods: PathBuf,
    /// Per pod, the size of its file as this process last saved it: such a file ends with a
    /// complete line and may be appended to. A pod not here is rewritten whole at its next save
    /// (its file may end with a torn line from before a crash).
    sizes: std::sync::Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

/// The last complete state line of a file's `data` (a file of earlier agents is one JSON
/// document without a newline: that is its line).
fn last_state(data: &[u8]) -> Result<PodState, String> {
    let mut error = "empty state file".to_string();
    for line in data.rsplit(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_state(line) {
            Ok(state) => return Ok(state),
            Err(e) => error = e,
        }
    }
    Err(error)
}

/// Inode, modification time and size of a state file: see [`StateDir::version`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateVersion(u64, i64, i64, u64);

impl StateDir {
    pub fn open(state_dir: &Path) -> Result<StateDir, String> {
        let pods = state_dir.join("pods");
        std::fs::create_dir_all(&pods)
            .map_err(|e| format!("cannot create state dir {}: {e}", pods.display()))?;
        Ok(StateDir {
            pods,
            sizes: Default::default(),
        })
    }

    fn path(&self, pod_uid: &str) -> PathBuf {
        self.pods.join(format!("{pod_uid}.json"))
    }

    /// Save a pod's state: appended as a line while its file is small, else written whole.
    /// One writer per pod at a time (the shipper holds the pod's lock).
    pub fn save(&self, state: &PodState) -> std::io::Result<()> {
        let uid = &state.identity().pod_uid;
        let mut line = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let len = line.len() as u64;
        let path = self.path(uid);
        let known = self.lock_sizes().remove(uid);
        let appended = known
            .filter(|size| size + len <= APPEND_MAX)
            .and_then(|size| append_synced(&path, &line).ok().map(|()| size + len));
        let size = match appended {
            Some(size) => size,
            None => {
                write_atomically(&path, &line)?;
                len
            }
        };
        self.lock_sizes().insert(uid.clone(), size);
        Ok(())
    }

    fn lock_sizes(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One pod's state, if it has a readable one (`load_all` deals with corrupt files).
    pub fn load(&self, pod_uid: &str) -> Option<PodState> {
        let data = std::fs::read(self.path(pod_uid)).ok()?;
        last_state(&data).ok()
    }

    /// Which version of a pod's state file is there, without reading it: a save replaces the
    /// file (new inode), so readers that poll (the footprint recorder) can skip what they read.
    pub fn version(&self, pod_uid: &str) -> Option<StateVersion> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(self.path(pod_uid)).ok()?;
        Some(StateVersion(m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
    }

    /// Every readable pod state. A corrupt file is reported and set aside (renamed `.corrupt`),
    /// never fatal: that pod resumes from its manifest in the store (`Shipper::recover`), or,
    /// failing that, from the beginning of its files, the deterministic keys making re-shipped
    /// batches overwrite what is already there.
    pub fn load_all(&self) -> HashMap<String, PodState> {
        let mut out = HashMap::new();
        let Ok(entries) = std::fs::read_dir(&self.pods) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|d| last_state(&d))
            {
                Ok(state) => {
                    out.insert(state.identity().pod_uid.clone(), state);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "corrupt checkpoint set aside; its pod resumes from its manifest in the store");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
            }
        }
        out
    }

    pub fn describe(&self) -> String {
        self.pods.display().to_string()
    }

    pub fn remove(&self, pod_uid: &str) {
        self.lock_sizes().remove(pod_uid);
        let _ = std::fs::remove_file(self.path(pod_uid));
    }
}

/// Append `line` to an existing file and wait until it is on disk (no create: a file that
/// vanished is written whole again by the caller).
fn append_synced(path: &Path, line: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(line)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> PodIdentity {
        PodIdentity {
            cluster: "c".into(),
            node: "n".into(),
            namespace: "default".into(),
            pod: "job-abcde".into(),
            pod_uid: "u1".into(),
            job: "job".into(),
            job_uid: None,
            cronjob: None,
            attempt: 1,
            completion_index: None,
        }
    }

    fn entry(first: u64, end: u64) -> ObjectEntry {
        ObjectEntry {
            key: identity().stream("main", 0).log_key(first),
            first_offset: first,
            end_offset: end,
            records: 1,
            bytes: 100,
            sha256: "00".into(),
            first_ts: "2026-11-27T14:00:00Z".into(),
            last_ts: "2026-11-27T14:00:00Z".into(),
        }
    }

    fn cp(offset: u64) -> StreamCheckpoint {
        StreamCheckpoint {
            container: "main".into(),
            restart: 0,
            offset,
            file: None,
        }
    }

    fn spans(s: &StreamState) -> Vec<(u64, u64)> {
        s.pending.iter().map(PartLine::span).collect()
    }

    #[test]
    fn batches_become_pending_lines_that_tile_the_stream() {
        let mut state = PodState::new(identity());
        let s = state.stream_mut("main", 0);
        s.record(Some(entry(0, 10)), None, &cp(10), false);
        // Malformed lines only, then bytes dropped between batches (a truncation).
        s.record(None, None, &cp(15), false);
        s.record(Some(entry(18, 30)), None, &cp(30), false);
        assert_eq!(spans(s), [(0, 10), (10, 18), (18, 30)]);
        // A gap found when resuming comes before the batch that follows it.
        let gap = Gap {
            first_offset: 30,
            end_offset: 30,
            reason: "gone".into(),
        };
        s.record(Some(entry(30, 40)), Some(gap), &cp(40), true);
        assert_eq!(spans(s), [(0, 10), (10, 18), (18, 30), (30, 30), (30, 40)]);
        let head = s.head();
        assert_eq!(
            (head.parts, head.object_count, head.records, head.end_offset),
            (1, 3, 3, 40)
        );
        assert!(head.complete);
        assert_eq!(head.gaps.len(), 1);
        // Written: the lines are the head's now, and the next part starts at its end.
        s.mark_written();
        assert!(s.pending.is_empty());
        s.record(Some(entry(40, 50)), None, &cp(50), false);
        let head = s.head();
        assert_eq!((head.parts, head.object_count, head.end_offset), (2, 4, 50));
        assert_eq!(spans(s), [(40, 50)]);
    }

    #[test]
    fn a_batch_read_again_replaces_what_it_covers() {
        let mut state = PodState::new(identity());
        let s = state.stream_mut("main", 0);
        s.record(Some(entry(0, 10)), None, &cp(10), false);
        s.record(Some(entry(10, 20)), None, &cp(20), false);
        // The state saved after the first batch only: the second is read again, longer.
        s.record(Some(entry(10, 35)), None, &cp(35), false);
        assert_eq!(spans(s), [(0, 10), (10, 35)]);
        assert_eq!(s.head().object_count, 2);
    }

    #[test]
    fn state_files_of_the_previous_format_keep_their_manifest() {
        let old = serde_json::json!({
            "manifest": {
                "cluster": "c", "node": "n", "namespace": "default", "pod": "job-abcde",
                "pod_uid": "u1", "job": "job", "job_uid": null, "cronjob": null, "attempt": 1,
                "completion_index": null, "updated": "",
                "containers": [{
                    "container": "main", "restart": 0, "complete": false, "end_offset": 20,
                    "objects": [entry(0, 10), entry(12, 20)], "skipped": [[10, 12]]
                }]
            },
            "first_line_nanos": 5,
            "streams": [{"container": "main", "restart": 0, "offset": 20, "file": null}],
            "manifest_pending": false
        });
        let state = parse_state(old.to_string().as_bytes()).unwrap();
        assert_eq!(state.first_line_nanos, Some(5));
        assert!(state.manifest_pending, "its objects go to a first part");
        let s = state.find("main", 0).unwrap();
        assert_eq!(s.checkpoint.offset, 20);
        assert_eq!(spans(s), [(0, 10), (10, 12), (12, 20)]);
        let head = state.head(String::new());
        assert_eq!(head.format, MANIFEST_FORMAT);
        assert_eq!(
            (head.containers[0].parts, head.containers[0].records),
            (1, 2)
        );
        // The current format round-trips through the file.
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::open(dir.path()).unwrap();
        states.save(&state).unwrap();
        let again = states.load("u1").unwrap();
        assert_eq!(spans(again.find("main", 0).unwrap()), spans(s));
    }

    fn state_at(n: i128) -> PodState {
        let mut state = PodState::new(identity());
        state.first_line_nanos = Some(n);
        state
    }

    fn file_lines(path: &Path) -> usize {
        std::fs::read(path)
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    #[test]
    fn saves_append_lines_and_the_file_is_rewritten_before_it_grows_big() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::open(dir.path()).unwrap();
        let path = states.path("u1");
        states.save(&state_at(0)).unwrap();
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let first = ino(&path);
        states.save(&state_at(1)).unwrap();
        states.save(&state_at(2)).unwrap();
        // Appended to the same file, and the last line is the state.
        assert_eq!((ino(&path), file_lines(&path)), (first, 3));
        assert_eq!(states.load("u1").unwrap().first_line_nanos, Some(2));
        let line = std::fs::metadata(&path).unwrap().len() / 3;
        let mut rewritten = false;
        for n in 3..(2 * APPEND_MAX / line) as i128 {
            states.save(&state_at(n)).unwrap();
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= APPEND_MAX, "{size} bytes after {n} saves");
            rewritten |= file_lines(&path) == 1;
            assert_eq!(states.load("u1").unwrap().first_line_nanos, Some(n));
        }
        assert!(rewritten, "rewritten whole when full");
        // Other pods, and a reader of the whole dir, see the same.
        states.save(&state_at(7).clone()).unwrap();
        assert_eq!(states.load_all()["u1"].first_line_nanos, Some(7));
        states.remove("u1");
        assert!(!path.exists() && states.load("u1").is_none());
        // A removed pod's next save starts a new file.
        states.save(&state_at(8)).unwrap();
        assert_eq!(file_lines(&path), 1);
    }

    #[test]
    fn a_line_torn_by_a_crash_falls_back_to_the_one_before_and_is_dropped_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let states = StateDir::open(dir.path()).unwrap();
        let path = states.path("u1");
        states.save(&state_at(1)).unwrap();
        states.save(&state_at(2)).unwrap();
        // A crash mid-append: part of a line, or a block of zeros where its data never reached
        // the disk.
        for torn in [&b"{\"identity\":{\"pod_uid\":\"u1\""[..], &[0u8; 512][..]] {
            let mut data = std::fs::read(&path).unwrap();
            data.extend_from_slice(torn);
            std::fs::write(&path, &data).unwrap();
            let next_run = StateDir::open(dir.path()).unwrap();
            assert_eq!(next_run.load("u1").unwrap().first_line_nanos, Some(2));
            assert_eq!(next_run.load_all()["u1"].first_line_nanos, Some(2));
            // The next run's first save writes the file whole: nothing is appended after the
            // torn line (which would hide every later line).
            next_run.save(&state_at(3)).unwrap();
            assert_eq!(file_lines(&path), 1);
            assert_eq!(
                StateDir::open(dir.path())
                    .unwrap()
                    .load("u1")
                    .unwrap()
                    .first_line_nanos,
                Some(3)
            );
            next_run.save(&state_at(2)).unwrap();
        }
        // Nothing complete at all: the file is set aside as corrupt.
        std::fs::write(&path, b"\x00{not json").unwrap();
        assert!(StateDir::open(dir.path()).unwrap().load_all().is_empty());
        assert!(path.with_extension("corrupt").exists());
    }
}
