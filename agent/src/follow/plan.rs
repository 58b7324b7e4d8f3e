//! Where a stream starts reading: which of its files, oldest first, and where in each. After a
//! restart of the agent that is right after the checkpointed position, in the file that held
//! it, found by its content wherever rotation and compression have put it since.

use super::discover::{file_id, open_checked, stamp_unix, StreamFiles};
use super::{fingerprint, StreamCheckpoint};
use crate::contract::Gap;
use std::collections::VecDeque;
use std::path::PathBuf;

/// The stream offset of a file's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Base {
    /// Known: the checkpointed file's, or where the bytes lost before it end.
    At(u64),
    /// Where the file read before it ended: offsets continue across rotations.
    AfterPrevious,
}

/// A file still to read, with where to start in it.
#[derive(Debug)]
pub(super) struct Pending {
    pub path: PathBuf,
    pub gz: bool,
    pub base: Base,
    /// File bytes to skip (already read before the restart).
    pub skip: u64,
}

/// What a stream reads when it starts.
pub(super) struct Plan {
    pub pending: VecDeque<Pending>,
    /// Stream offset of the first file when its base follows the one before (none did).
    pub next_base: u64,
    /// Stream offset before which everything has landed, when only that is known: files are
    /// skipped up to it.
    pub resume_at: u64,
    /// Bytes found gone for good: recorded with the stream's next batch.
    pub lost: Option<Gap>,
}

/// (path, gzip, (dev, ino), rotation time)
type PlannedFile = (PathBuf, bool, Option<(u64, u64)>, Option<i64>);

impl Plan {
    /// Decide which files to read, oldest first, and where to start: right after the
    /// checkpointed position, in the file that held it. If that file is gone for good (the
    /// kubelet deleted it while the agent was down), every file present came after it: read
    /// them all, and record the bytes in between as a gap. `stream` names the stream in logs.
    pub fn new(
        files: &StreamFiles,
        cp: Option<&StreamCheckpoint>,
        roots: &[PathBuf],
        stream: &str,
    ) -> Plan {
        let offset = cp.map(|c| c.offset).unwrap_or(0);
        let mut plan = Plan {
            pending: VecDeque::new(),
            next_base: offset,
            resume_at: 0,
            lost: None,
        };
        let mut list: Vec<PlannedFile> = files
            .rotated
            .iter()
            .map(|r| (r.path.clone(), r.gz, file_id(&r.path), stamp_unix(&r.stamp)))
            .collect();
        list.push((files.current.clone(), false, file_id(&files.current), None));
        let Some(mark) = cp.and_then(|c| c.file.clone()) else {
            // Only a bare offset is known (a manifest written without file positions): count
            // it from the start of the oldest file, which is exact while the kubelet has kept
            // every rotated file of the stream.
            plan.resume_at = offset;
            plan.next_base = 0;
            plan.pending
                .extend(list.into_iter().map(|(path, gz, _, _)| Pending {
                    path,
                    gz,
                    base: Base::AfterPrevious,
                    skip: 0,
                }));
            return plan;
        };
        let by_id = list
            .iter()
            .position(|(_, _, id, _)| *id == Some((mark.dev, mark.ino)));
        let start = match &mark.fingerprint {
            Some(fp) => {
                let same = |i: &usize| {
                    let (path, gz, _, _) = &list[*i];
                    open_checked(path, roots).is_ok_and(|f| fingerprint::matches(&f, *gz, fp))
                };
                // The same inode is the likely one (unless the number was reused).
                by_id.filter(same).or_else(|| (0..list.len()).find(same))
            }
            // A mark from an agent without fingerprints: its inode, or the rotation after it.
            None => by_id.or_else(|| {
                list.iter()
                    .position(|(_, _, _, stamp)| stamp.is_some_and(|s| s >= mark.seen_unix))
            }),
        };
        match start {
            Some(i) => {
                for (n, (path, gz, _, _)) in list.into_iter().enumerate().skip(i) {
                    let (base, skip) = if n == i {
                        (Base::At(mark.base), offset.saturating_sub(mark.base))
                    } else {
                        (Base::AfterPrevious, 0)
                    };
                    plan.pending.push_back(Pending {
                        path,
                        gz,
                        base,
                        skip,
                    });
                }
            }
            None => {
                tracing::warn!(stream = %stream, offset, "the checkpointed log file is gone (rotated and deleted while the agent was not running); its unread bytes are lost, recorded as a gap in the manifest");
                plan.lost = Some(Gap {
                    first_offset: offset,
                    end_offset: offset,
                    reason: format!(
                        "the file holding the stream's bytes from offset {offset} on was rotated and deleted before the agent read it; how many bytes were lost is unknown"
                    ),
                });
                // With fingerprints, everything left came after it. Without, the current file
                // is the only one known to.
                let keep = if mark.fingerprint.is_some() {
                    0
                } else {
                    list.len() - 1
                };
                for (n, (path, gz, _, _)) in list.into_iter().enumerate().skip(keep) {
                    plan.pending.push_back(Pending {
                        path,
                        gz,
                        base: if n == keep {
                            Base::At(offset)
                        } else {
                            Base::AfterPrevious
                        },
                        skip: 0,
                    });
                }
            }
        }
        plan
    }
}
