//! An in-memory store: objects in a map, and a switch that makes every request fail as an
//! unreachable store would. It is what unit tests of the writers (the shipper, its spool and
//! manifests) run against, so they need neither S3 nor a folder and can take the store down
//! and bring it back at any point. Nothing opens one from a URL: the agent never uses it.

use super::{ObjectInfo, StoreError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

/// Cheap to clone: clones share the objects and the switch.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    objects: Mutex<BTreeMap<String, Bytes>>,
    /// Keys of the PUTs that succeeded, in order (a key written twice is listed twice).
    landed: Mutex<Vec<String>>,
    down: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// `true`: every request fails (transient) from now on; `false`: the store answers again.
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, SeqCst);
    }

    /// Keys of the successful PUTs, in the order they landed.
    pub fn landed(&self) -> Vec<String> {
        lock(&self.inner.landed).clone()
    }

    /// An object's body, read without going through the switch.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        lock(&self.inner.objects).get(key).cloned()
    }

    fn answering(&self) -> Result<(), StoreError> {
        if self.inner.down.load(SeqCst) {
            return Err(StoreError::transient("memory store is down"));
        }
        Ok(())
    }

    pub fn put(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.answering()?;
        lock(&self.inner.objects).insert(key.to_string(), body);
        lock(&self.inner.landed).push(key.to_string());
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.answering()?;
        Ok(self.object(key))
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.answering()?;
        let objects = lock(&self.inner.objects);
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(key, body)| ObjectInfo {
                key: key.clone(),
                size: body.len() as u64,
            })
            .collect())
    }

    pub fn check(&self) -> Result<(), StoreError> {
        self.answering()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_down_fails_every_request_and_keeps_what_it_had() {
        let s = MemoryStore::new();
        s.put("logs/a/1.gz", Bytes::from_static(b"one")).unwrap();
        s.put("logs/b/2.gz", Bytes::from_static(b"two")).unwrap();
        s.set_down(true);
        assert!(s.put("logs/a/3.gz", Bytes::new()).is_err());
        assert!(s.get("logs/a/1.gz").is_err() && s.list("logs/").is_err() && s.check().is_err());
        s.set_down(false);
        assert_eq!(s.get("logs/a/1.gz").unwrap().unwrap(), "one");
        let keys: Vec<String> = s
            .list("logs/a/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["logs/a/1.gz"]);
        assert_eq!(s.landed(), ["logs/a/1.gz", "logs/b/2.gz"]);
    }
}
