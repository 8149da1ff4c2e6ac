//! WASMHTTP_KEYVALUE=memory: one store in the container's memory, shared by
//! all of its instances (fresh, reused, 0.3 shared alike), held to
//! WASMHTTP_KEYVALUE_MEMORY_LIMIT bytes of keys and values, gone when the
//! container exits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::{Counter, Page, StoreResult};

/// Keys one `list-keys` call returns at most.
const PAGE: usize = 1000;

pub struct MemoryStore {
    limit: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// keys' and values' bytes, over all buckets
    used: u64,
    buckets: HashMap<String, BTreeMap<String, Vec<u8>>>,
}

fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl MemoryStore {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            inner: Mutex::default(),
        }
    }

    pub fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let inner = self.inner.lock().unwrap();
        Ok(inner.buckets.get(bucket).and_then(|b| b.get(key)).cloned())
    }

    pub fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> StoreResult<()> {
        self.set_many(bucket, vec![(key.to_string(), value)])
    }

    /// All or nothing: a batch that does not fit writes none of its values.
    pub fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> StoreResult<()> {
        let mut inner = self.inner.lock().unwrap();
        let existing = inner.buckets.get(bucket);
        let mut after = inner.used;
        for (key, value) in &pairs {
            let before = existing
                .and_then(|b| b.get(key))
                .map_or(0, |old| cost(key, old));
            after = after - before + cost(key, value);
        }
        if after > self.limit {
            return Err(format!(
                "the memory store is full: WASMHTTP_KEYVALUE_MEMORY_LIMIT is {} bytes, {} are in use and this write needs {} more",
                self.limit,
                inner.used,
                after - inner.used
            ));
        }
        inner.used = after;
        let map = inner.buckets.entry(bucket.to_string()).or_default();
        for (key, value) in pairs {
            map.insert(key, value);
        }
        Ok(())
    }

    pub fn delete_many(&self, bucket: &str, keys: &[String]) -> StoreResult<()> {
        let mut inner = self.inner.lock().unwrap();
        let mut freed = 0;
        if let Some(map) = inner.buckets.get_mut(bucket) {
            for key in keys {
                if let Some(old) = map.remove(key) {
                    freed += cost(key, &old);
                }
            }
        }
        inner.used -= freed;
        Ok(())
    }

    pub fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        Ok(self.get(bucket, key)?.is_some())
    }

    /// The cursor is how many keys, in order, came before.
    pub fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> StoreResult<Page> {
        let inner = self.inner.lock().unwrap();
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let Some(map) = inner.buckets.get(bucket) else {
            return Ok(Page::default());
        };
        let keys: Vec<String> = map.keys().skip(skip).take(PAGE).cloned().collect();
        let next = skip + keys.len();
        Ok(Page {
            cursor: (next < map.len()).then_some(next as u64),
            keys,
        })
    }

    pub fn get_many(&self, bucket: &str, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let inner = self.inner.lock().unwrap();
        let map = inner.buckets.get(bucket);
        Ok(keys
            .iter()
            .map(|key| map.and_then(|m| m.get(key)).cloned())
            .collect())
    }

    /// As Redis' INCRBY does: the value is a decimal number, a missing one 0.
    pub fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        let mut inner = self.inner.lock().unwrap();
        let old = inner.buckets.get(bucket).and_then(|b| b.get(key));
        let next = Counter::parse(old.map(Vec::as_slice))?.add(delta)?;
        let value = next.to_string().into_bytes();
        let after = inner.used - old.map_or(0, |old| cost(key, old)) + cost(key, &value);
        if after > self.limit {
            return Err(format!(
                "the memory store is full: WASMHTTP_KEYVALUE_MEMORY_LIMIT is {} bytes, {} are in use",
                self.limit, inner.used
            ));
        }
        inner.used = after;
        inner
            .buckets
            .entry(bucket.to_string())
            .or_default()
            .insert(key.to_string(), value);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_buckets_apart() {
        let store = MemoryStore::new(1 << 20);
        store.set("a", "k", b"v1".to_vec()).unwrap();
        store.set("b", "k", b"v2".to_vec()).unwrap();
        assert_eq!(store.get("a", "k").unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(store.get("b", "k").unwrap().as_deref(), Some(&b"v2"[..]));
        assert!(store.exists("a", "k").unwrap());
        store.delete_many("a", &["k".into()]).unwrap();
        assert!(!store.exists("a", "k").unwrap());
        assert_eq!(store.increment("a", "n", 5).unwrap(), 5);
        assert_eq!(store.increment("a", "n", 2).unwrap(), 7);
        assert_eq!(store.get("a", "n").unwrap().as_deref(), Some(&b"7"[..]));
        store.set("a", "text", b"abc".to_vec()).unwrap();
        assert!(
            store
                .increment("a", "text", 1)
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn list_keys_pages_with_its_cursor() {
        let store = MemoryStore::new(1 << 20);
        let pairs: Vec<(String, Vec<u8>)> =
            (0..2500).map(|i| (format!("key{i:05}"), vec![1])).collect();
        store.set_many("b", pairs).unwrap();
        let (mut seen, mut cursor, mut calls) = (Vec::new(), None, 0);
        loop {
            let page = store.list_keys("b", cursor).unwrap();
            seen.extend(page.keys);
            calls += 1;
            cursor = page.cursor;
            if cursor.is_none() || calls > 10 {
                break;
            }
        }
        assert_eq!(calls, 3);
        assert_eq!(seen.len(), 2500);
        assert_eq!(seen[0], "key00000");
        assert_eq!(seen[2499], "key02499");
    }

    #[test]
    fn the_limit_refuses_a_write_that_does_not_fit_and_frees_on_delete() {
        let store = MemoryStore::new(100);
        store.set("b", "k1", vec![0; 40]).unwrap();
        let err = store.set("b", "k2", vec![0; 60]).unwrap_err();
        assert!(err.contains("full") && err.contains("100 bytes"), "{err}");
        // a batch is all or nothing
        let batch = vec![("k3".into(), vec![0; 10]), ("k4".into(), vec![0; 60])];
        assert!(store.set_many("b", batch).is_err());
        assert_eq!(store.get("b", "k3").unwrap(), None);
        // overwriting counts the new size only
        store.set("b", "k1", vec![0; 90]).unwrap();
        store.delete_many("b", &["k1".into()]).unwrap();
        store.set("b", "k2", vec![0; 90]).unwrap();
    }
}
