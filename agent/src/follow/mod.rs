//! Following files: the core of the reading side, on its own. Given a log dir it finds the
//! container streams (`discover`), and given a stream's files and where reading got to (a
//! `StreamCheckpoint`: positions in) it reads the stream as records in batches (`StreamTail`,
//! `Sealed`: streams out), through rotation, compression of rotated files, truncation, deletion
//! and restarts of the agent (`plan`, `fingerprint`).
//!
//! It knows nothing of metadata sources, the store or the shipper: the follower (`watch`)
//! drives it, deciding which streams to pump and when their batches close. Its tests (in
//! `tests.rs`) run on temp dirs laid out as the kubelet lays out a node.
//!
//! - `discover`: which pods and streams exist, and opening their files only inside the allowed
//!   roots.
//! - `tail`: one `StreamTail` per stream: the open file, its position and partial lines, bytes
//!   to records to the open batch.
//! - `plan`: which files a stream reads and where it starts in each, after a restart found by
//!   content wherever the kubelet's rotation put them.
//! - `fingerprint`: a file's identity by its first bytes, through gzip too.

mod discover;
mod fingerprint;
mod plan;
mod tail;
#[cfg(test)]
mod tests;

pub use crate::contract::FileMark;
pub use discover::{
    pod_folders, pod_streams, read_pod_folders, resolve_roots, settled_mtime, FolderStamp, LogName,
    RotatedFile, StreamFiles,
};
pub use tail::{PumpState, Sealed, StreamTail, TailContext};

use serde::{Deserialize, Serialize};

/// Where a stream's committed data ends, in stream offsets and in the file that held it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    pub container: String,
    pub restart: u32,
    pub offset: u64,
    /// The file being read at `offset`: identity and the stream offset of its first byte.
    pub file: Option<FileMark>,
}
