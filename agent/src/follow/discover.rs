//! Discovery: which container log streams exist under the log dir, and opening their files
//! without ever leaving the allowed roots.
//!
//! Layout (kubelet): `{log_dir}/{namespace}_{pod}_{uid}/{container}/{restart}.log`, rotated as
//! `{restart}.log.YYYYMMDD-hhmmss` (the newest) and `…-hhmmss.gz` (older ones).

use crate::meta::PodDir;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// All files of one container stream (pod, container, restart), oldest first.
#[derive(Clone, Debug)]
pub struct StreamFiles {
    pub pod: PodDir,
    pub pod_path: PathBuf,
    pub container: String,
    pub restart: u32,
    /// `N.log`, the file the runtime writes (may not exist yet, or any more).
    pub current: PathBuf,
    /// Rotated files, oldest first.
    pub rotated: Vec<RotatedFile>,
}

impl StreamFiles {
    /// Time of the stream's first log line: the first line of its oldest file (`None` while it
    /// has none); an error when that file cannot be opened.
    pub fn first_line_nanos(&self, roots: &[PathBuf]) -> std::io::Result<Option<i128>> {
        let (path, gz) = match self.rotated.first() {
            Some(r) => (r.path.clone(), r.gz),
            None => (self.current.clone(), false),
        };
        let file = open_checked(&path, roots)?;
        Ok(first_line_of(file, gz))
    }
}

fn first_line_of(file: File, gz: bool) -> Option<i128> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    reader.take(4096).read_to_end(&mut head).ok()?;
    let line = head.split(|&b| b == b'\n').next()?;
    let ts = if line.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        v.get("time")?.as_str()?.to_string()
    } else {
        std::str::from_utf8(line.split(|&b| b == b' ').next()?)
            .ok()?
            .to_string()
    };
    crate::clock::rfc3339_nanos(&ts)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedFile {
    pub path: PathBuf,
    /// `YYYYMMDD-hhmmss`
    pub stamp: String,
    pub gz: bool,
}

/// A log file name: `N.log`, `N.log.YYYYMMDD-hhmmss` or `N.log.YYYYMMDD-hhmmss.gz`.
#[derive(Debug, PartialEq, Eq)]
pub enum LogName {
    Current(u32),
    Rotated {
        restart: u32,
        stamp: String,
        gz: bool,
    },
}

impl LogName {
    pub fn parse(name: &str) -> Option<LogName> {
        let (restart, rest) = name.split_once(".log")?;
        let restart: u32 = restart
            .parse()
            .ok()
            .filter(|_| restart.bytes().all(|b| b.is_ascii_digit()))?;
        if rest.is_empty() {
            return Some(LogName::Current(restart));
        }
        let rest = rest.strip_prefix('.')?;
        let (stamp, gz) = match rest.strip_suffix(".gz") {
            Some(s) => (s, true),
            None => (rest, false),
        };
        let valid = stamp.len() == 15
            && stamp.as_bytes()[8] == b'-'
            && stamp
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 8 || b.is_ascii_digit());
        valid.then(|| LogName::Rotated {
            restart,
            stamp: stamp.to_string(),
            gz,
        })
    }
}

/// Unix seconds of a rotation stamp (the kubelet writes it in the node's time zone; nodes run UTC).
pub fn stamp_unix(stamp: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::PrimitiveDateTime::parse(stamp, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Every pod folder of the log dir, with the folder names that do not parse counted apart.
/// An unreadable log dir reads as empty.
pub fn pod_folders(log_dir: &Path) -> (Vec<(PodDir, PathBuf)>, usize) {
    read_pod_folders(log_dir).unwrap_or_default()
}

/// `pod_folders`, telling an unreadable log dir apart from an empty one: whoever concludes
/// from a missing folder that its pod is gone must not conclude it from a failed read.
pub fn read_pod_folders(log_dir: &Path) -> std::io::Result<(Vec<(PodDir, PathBuf)>, usize)> {
    let mut pods = Vec::new();
    let mut skipped = 0;
    let entries = std::fs::read_dir(log_dir)?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        match (name.to_str().and_then(PodDir::parse), entry.file_type()) {
            (Some(pod), Ok(ft)) if ft.is_dir() => pods.push((pod, entry.path())),
            _ => skipped += 1,
        }
    }
    // Siblings: comparing the bytes orders them as comparing paths would, without parsing them.
    pods.sort_by(|a, b| a.1.as_os_str().cmp(b.1.as_os_str()));
    Ok((pods, skipped))
}

/// The streams of one pod folder. Containers are folders; anything else is ignored.
pub fn pod_streams(pod: &PodDir, pod_path: &Path) -> Vec<StreamFiles> {
    let mut out: Vec<StreamFiles> = Vec::new();
    let Ok(containers) = std::fs::read_dir(pod_path) else {
        return out;
    };
    for c in containers.flatten() {
        let Some(container) = c.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !crate::contract::is_safe_segment(&container)
            || !c.file_type().map(|t| t.is_dir()).unwrap_or(false)
        {
            continue;
        }
        let Ok(files) = std::fs::read_dir(c.path()) else {
            continue;
        };
        for f in files.flatten() {
            let Some(name) = f.file_name().to_str().and_then(LogName::parse) else {
                continue;
            };
            let restart = match &name {
                LogName::Current(r) | LogName::Rotated { restart: r, .. } => *r,
            };
            let idx = match out
                .iter()
                .position(|s| s.container == container && s.restart == restart)
            {
                Some(i) => i,
                None => {
                    out.push(StreamFiles {
                        pod: pod.clone(),
                        pod_path: pod_path.to_path_buf(),
                        container: container.clone(),
                        restart,
                        current: c.path().join(format!("{restart}.log")),
                        rotated: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            if let LogName::Rotated { stamp, gz, .. } = name {
                out[idx].rotated.push(RotatedFile {
                    path: f.path(),
                    stamp,
                    gz,
                });
            }
        }
    }
    for s in &mut out {
        // A stamp can exist twice while the kubelet compresses (plain and .gz): keep the plain one.
        s.rotated
            .sort_by(|a, b| (&a.stamp, a.gz).cmp(&(&b.stamp, b.gz)));
        s.rotated.dedup_by(|b, a| a.stamp == b.stamp);
    }
    out.sort_by(|a, b| (&a.container, a.restart).cmp(&(&b.container, b.restart)));
    out
}

/// Modification times and sizes of a pod folder, its container folders and their files. A new
/// container folder changes the pod folder's time, a new or renamed log file its container
/// folder's, a line its file's: while nothing differs the folder needs no new listing, so a
/// rescan of a node with thousands of quiet pods costs a few stats per pod instead of listings.
#[derive(Debug)]
pub struct FolderStamp(Vec<(PathBuf, std::time::SystemTime, u64)>);

/// File times are coarse (a clock tick): one this recent may hide a change made just after the
/// listing, so such a folder is listed again next time.
const STAMP_SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The modification time of a folder, if it is old enough to be trusted (see
/// `STAMP_SETTLED`): while it stays the same, no entry of the folder was added or removed.
pub fn settled_mtime(path: &Path) -> Option<std::time::SystemTime> {
    let settled = std::time::SystemTime::now().checked_sub(STAMP_SETTLED)?;
    let modified = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
    (modified <= settled).then_some(modified)
}

impl FolderStamp {
    /// The stamp of `pod_path` as it is now; None when it cannot be read or changed too
    /// recently to be trusted.
    pub fn take(pod_path: &Path) -> Option<FolderStamp> {
        let settled = std::time::SystemTime::now().checked_sub(STAMP_SETTLED)?;
        let mut stamp = Vec::new();
        let mut add = |path: PathBuf| {
            let m = std::fs::symlink_metadata(&path).ok()?;
            let modified = m.modified().ok().filter(|t| *t <= settled)?;
            stamp.push((path, modified, m.len()));
            Some(m.is_dir())
        };
        add(pod_path.to_path_buf())?;
        for container in std::fs::read_dir(pod_path).ok()?.flatten() {
            if add(container.path())? {
                for file in std::fs::read_dir(container.path()).ok()?.flatten() {
                    add(file.path())?;
                }
            }
        }
        Some(FolderStamp(stamp))
    }

    /// True while no folder or file of the stamp changed.
    pub fn unchanged(&self) -> bool {
        self.0.iter().all(|(path, modified, len)| {
            std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.len() == *len && m.modified().is_ok_and(|t| t == *modified))
        })
    }
}

/// The allowed roots, resolved once (a root that does not exist on this node is dropped).
pub fn resolve_roots(roots: &[PathBuf]) -> Vec<PathBuf> {
    roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .collect()
}

/// Open a log file, then check what was really opened (via /proc/self/fd, so no symlink swap
/// between check and open can fool it) lies inside an allowed root.
pub fn open_checked(path: &Path, roots: &[PathBuf]) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO planted where a log should be would otherwise wait for a
    // writer forever, and the one reading thread with it. Regular files ignore the flag.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let real = real_path(&file).or_else(|_| std::fs::canonicalize(path))?;
    if !roots.iter().any(|r| real.starts_with(r)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} resolves to {}, outside the allowed roots",
                path.display(),
                real.display()
            ),
        ));
    }
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(file)
}

fn real_path(file: &File) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// (device, inode) of a path, without following it into a new file.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names() {
        assert_eq!(LogName::parse("0.log"), Some(LogName::Current(0)));
        assert_eq!(
            LogName::parse("12.log.20261127-152300"),
            Some(LogName::Rotated {
                restart: 12,
                stamp: "20261127-152300".into(),
                gz: false
            })
        );
        assert_eq!(
            LogName::parse("1.log.20261127-152300.gz"),
            Some(LogName::Rotated {
                restart: 1,
                stamp: "20261127-152300".into(),
                gz: true
            })
        );
        for bad in [
            "x.log",
            "0.log.tmp",
            "0.log.20261127-152300.tmp",
            "-1.log",
            "0.txt",
            "0.logx",
        ] {
            assert_eq!(LogName::parse(bad), None, "{bad}");
        }
        assert_eq!(stamp_unix("19700101-000100"), Some(60));
    }

    #[test]
    fn a_folder_stamp_changes_with_new_files_and_containers() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("default_job-abcde_uid1");
        std::fs::create_dir_all(pod.join("main")).unwrap();
        std::fs::create_dir_all(pod.join("sidecar")).unwrap();
        let age = |path: &Path| {
            let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
            let f = File::open(path).unwrap();
            f.set_modified(old).unwrap();
        };
        assert!(
            FolderStamp::take(&pod).is_none(),
            "just changed: not trusted"
        );
        for p in [pod.join("main"), pod.join("sidecar"), pod.clone()] {
            age(&p);
        }
        let stamp = FolderStamp::take(&pod).unwrap();
        assert!(stamp.unchanged());
        std::fs::write(pod.join("main/0.log"), "x").unwrap();
        assert!(!stamp.unchanged(), "a new file in a container folder");
        age(&pod.join("main"));
        assert!(FolderStamp::take(&pod).is_none(), "a file just written");
        age(&pod.join("main/0.log"));
        let stamp = FolderStamp::take(&pod).unwrap();
        std::fs::write(pod.join("main/0.log"), "xy").unwrap();
        assert!(!stamp.unchanged(), "a file that grew");
        age(&pod.join("main/0.log"));
        let stamp = FolderStamp::take(&pod).unwrap();
        std::fs::write(pod.join("sidecar/0.log"), "x").unwrap();
        assert!(
            !stamp.unchanged(),
            "a new file in an empty container folder"
        );
        age(&pod.join("sidecar"));
        age(&pod.join("sidecar/0.log"));
        let stamp = FolderStamp::take(&pod).unwrap();
        std::fs::create_dir(pod.join("init")).unwrap();
        assert!(!stamp.unchanged(), "a new container");
        std::fs::remove_dir_all(&pod).unwrap();
        assert!(!stamp.unchanged(), "gone");
    }

    #[test]
    fn streams_and_symlink_policy() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("pods");
        let pod = logs.join("default_job-abcde_uid1");
        std::fs::create_dir_all(pod.join("main")).unwrap();
        std::fs::write(pod.join("main/0.log"), "x\n").unwrap();
        std::fs::write(pod.join("main/0.log.20261127-150000.gz"), "").unwrap();
        std::fs::write(pod.join("main/0.log.20261127-140000.gz"), "").unwrap();
        std::fs::write(pod.join("main/1.log"), "").unwrap();
        std::fs::write(pod.join("main/notes.txt"), "").unwrap();
        std::fs::write(logs.join("not-a-pod"), "").unwrap();
        let (pods, skipped) = pod_folders(&logs);
        assert_eq!((pods.len(), skipped), (1, 1));
        let streams = pod_streams(&pods[0].0, &pods[0].1);
        assert_eq!(
            streams
                .iter()
                .map(|s| (s.restart, s.rotated.len()))
                .collect::<Vec<_>>(),
            [(0, 2), (1, 0)]
        );
        assert_eq!(streams[0].rotated[0].stamp, "20261127-140000");

        let secret = dir.path().join("secret");
        std::fs::write(&secret, "token").unwrap();
        std::os::unix::fs::symlink(&secret, pod.join("main/2.log")).unwrap();
        let roots = resolve_roots(std::slice::from_ref(&logs));
        assert!(open_checked(&pod.join("main/0.log"), &roots).is_ok());
        let err = open_checked(&pod.join("main/2.log"), &roots).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(open_checked(&logs.join("default_job-abcde_uid1/../../secret"), &roots).is_err());
    }
}
