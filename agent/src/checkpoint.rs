//! The checkpoint stage: per pod, one small state file in the state dir holding its pinned
//! metadata, the manifest of what has landed, and per stream the committed offset with the file
//! position it maps to. Written atomically (temp + fsync + rename) only after the store
//! confirmed the batch, so a crash re-ships at most the batch in flight, to the same key.

use crate::contract::{Manifest, PodIdentity};
use crate::store::local::write_atomically;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodState {
    pub manifest: Manifest,
    /// First log line of the pod (ns since the epoch): numbers path-only attempts after restarts.
    pub first_line_nanos: Option<i128>,
    pub streams: Vec<StreamCheckpoint>,
    /// The manifest in the store is behind this one (the store failed right after an upload):
    /// it is written again when the store answers, even after a restart.
    #[serde(default)]
    pub manifest_pending: bool,
}

/// Where a stream's committed data ends, in stream offsets and in the file that held it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    pub container: String,
    pub restart: u32,
    pub offset: u64,
    /// The file being read at `offset`: identity and the stream offset of its first byte.
    pub file: Option<FileMark>,
}

pub use crate::contract::FileMark;

impl PodState {
    pub fn new(identity: PodIdentity) -> PodState {
        PodState {
            manifest: Manifest {
                pod: identity,
                updated: String::new(),
                containers: Vec::new(),
            },
            first_line_nanos: None,
            streams: Vec::new(),
            manifest_pending: false,
        }
    }

    /// A pod whose state file was lost, rebuilt from its manifest in the store: every stream
    /// resumes where its landed objects end.
    pub fn from_manifest(manifest: Manifest) -> PodState {
        let streams = manifest
            .containers
            .iter()
            .map(|c| StreamCheckpoint {
                container: c.container.clone(),
                restart: c.restart,
                offset: c.end_offset,
                file: c.file.clone(),
            })
            .collect();
        PodState {
            manifest,
            first_line_nanos: None,
            streams,
            manifest_pending: false,
        }
    }

    pub fn identity(&self) -> &PodIdentity {
        &self.manifest.pod
    }

    pub fn stream(&self, container: &str, restart: u32) -> Option<&StreamCheckpoint> {
        self.streams
            .iter()
            .find(|s| s.container == container && s.restart == restart)
    }

    pub fn set_stream(&mut self, cp: StreamCheckpoint) {
        match self
            .streams
            .iter_mut()
            .find(|s| s.container == cp.container && s.restart == cp.restart)
        {
            Some(s) => *s = cp,
            None => self.streams.push(cp),
        }
    }
}

/// The state dir's `pods/` folder.
#[derive(Clone)]
pub struct StateDir {
    pods: PathBuf,
}

/// Inode, modification time and size of a state file: see [`StateDir::version`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateVersion(u64, i64, i64, u64);

impl StateDir {
    pub fn open(state_dir: &Path) -> Result<StateDir, String> {
        let pods = state_dir.join("pods");
        std::fs::create_dir_all(&pods)
            .map_err(|e| format!("cannot create state dir {}: {e}", pods.display()))?;
        Ok(StateDir { pods })
    }

    fn path(&self, pod_uid: &str) -> PathBuf {
        self.pods.join(format!("{pod_uid}.json"))
    }

    pub fn save(&self, state: &PodState) -> std::io::Result<()> {
        let data = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        write_atomically(&self.path(&state.identity().pod_uid), &data)
    }

    /// One pod's state, if it has a readable one (`load_all` deals with corrupt files).
    pub fn load(&self, pod_uid: &str) -> Option<PodState> {
        let data = std::fs::read(self.path(pod_uid)).ok()?;
        serde_json::from_slice(&data).ok()
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
                .and_then(|d| serde_json::from_slice::<PodState>(&d).map_err(|e| e.to_string()))
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
        let _ = std::fs::remove_file(self.path(pod_uid));
    }
}
