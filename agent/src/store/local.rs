//! The embedded local store: objects are files under a folder, named by their keys. A write
//! goes to a temporary name, is synced, then renamed, so a reader never sees half an object and
//! a synced object survives a crash.

use super::{ObjectInfo, StoreError};
use crate::durable::write_atomically;
use bytes::Bytes;
use std::path::{Path, PathBuf};

pub struct LocalStore {
    root: PathBuf,
    /// Opened by a read command: `put` refuses, so reading can never write.
    read_only: bool,
}

impl LocalStore {
    /// The agent's store: the folder is created if missing.
    pub fn open(path: &str) -> Result<LocalStore, StoreError> {
        let root = PathBuf::from(path);
        std::fs::create_dir_all(&root).map_err(|e| {
            StoreError::fatal(format!(
                "cannot create store folder {}: {e}",
                root.display()
            ))
        })?;
        Ok(LocalStore {
            root,
            read_only: false,
        })
    }

    /// A reader's store: the folder must exist. A typo in `--store` is then an error that
    /// names the path, not a new empty folder that reads as an empty archive.
    pub fn open_existing(path: &str) -> Result<LocalStore, StoreError> {
        let root = PathBuf::from(path);
        match std::fs::metadata(&root) {
            Ok(m) if m.is_dir() => Ok(LocalStore {
                root,
                read_only: true,
            }),
            Ok(_) => Err(StoreError::config(format!(
                "store {} is not a folder",
                root.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::config(format!(
                    "store folder {} does not exist (check --store or JOBARCHIVE_STORE; only the agent creates a store)",
                    root.display()
                )))
            }
            Err(e) => Err(StoreError::fatal(format!(
                "cannot open store folder {}: {e}",
                root.display()
            ))),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(StoreError::fatal(format!("refusing unsafe key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::fatal(format!(
                "local store {} is open for reading only: not writing {key}",
                self.root.display()
            )));
        }
        let path = self.path_of(key)?;
        tokio::task::spawn_blocking(move || write_atomically(&path, &body))
            .await
            .map_err(|e| StoreError::transient(e.to_string()))?
            .map_err(|e| StoreError::transient(format!("local store write {key}: {e}")))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::transient(format!(
                "local store read {key}: {e}"
            ))),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || list_sync(&root, &prefix))
            .await
            .map_err(|e| StoreError::transient(e.to_string()))?
    }

    pub fn check(&self) -> Result<(), StoreError> {
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => Err(StoreError::fatal(format!(
                "store folder {} is missing",
                self.root.display()
            ))),
        }
    }

    pub fn describe(&self) -> String {
        format!("local store {}", self.root.display())
    }
}

/// Walk only the folders that can hold keys under `prefix` (its folder part), so listing one
/// job does not read the whole store.
fn list_sync(root: &Path, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
    let dir_part = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let mut out = Vec::new();
    let mut stack = vec![root.join(dir_part)];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StoreError::transient(format!(
                    "local store list {}: {e}",
                    dir.display()
                )))
            }
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            let Some(key) = path.strip_prefix(root).ok().and_then(|k| k.to_str()) else {
                continue;
            };
            if ft.is_dir() {
                if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                    stack.push(path);
                }
            } else if ft.is_file()
                && key.starts_with(prefix)
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(ObjectInfo {
                    key: key.to_string(),
                    size,
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStore::open(dir.path().to_str().unwrap()).unwrap();
        s.put("logs/a=1/b=2/x.gz", Bytes::from_static(b"one"))
            .await
            .unwrap();
        s.put("logs/a=1/c=3/y.gz", Bytes::from_static(b"two"))
            .await
            .unwrap();
        s.put("manifests/a=1/z.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(s.get("logs/a=1/b=2/x.gz").await.unwrap().unwrap(), "one");
        assert_eq!(s.get("logs/missing").await.unwrap(), None);
        let keys: Vec<_> = s
            .list("logs/a=1/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["logs/a=1/b=2/x.gz", "logs/a=1/c=3/y.gz"]);
        assert_eq!(s.list("logs/a=1/b").await.unwrap().len(), 1);
        assert!(s.put("logs/../escape", Bytes::new()).await.is_err());
    }

    #[tokio::test]
    async fn a_reader_never_creates_or_writes_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let typo = dir.path().join("typo/path");
        let err = LocalStore::open_existing(typo.to_str().unwrap())
            .err()
            .unwrap();
        assert_eq!(err.kind, super::super::ErrorKind::Config);
        assert!(err.message.contains(&typo.display().to_string()), "{err}");
        assert!(!dir.path().join("typo").exists());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = LocalStore::open_existing(file.to_str().unwrap())
            .err()
            .unwrap();
        assert!(err.message.ends_with("is not a folder"), "{err}");

        let s = LocalStore::open_existing(dir.path().to_str().unwrap()).unwrap();
        assert!(s.put("logs/a.gz", Bytes::from_static(b"x")).await.is_err());
        assert!(!dir.path().join("logs").exists());
    }
}
