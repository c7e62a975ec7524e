//! The read cache: committed batches' bytes, least recently used evicted
//! first, at most `bytes_max` bytes. A batch is immutable once committed, so
//! an entry never goes stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

/// A batch's place: its object and first byte.
pub(crate) type CacheKey = (Arc<str>, u64);

#[derive(Debug)]
pub(crate) struct Cache {
    bytes_max: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<CacheKey, (Bytes, u64)>,
    by_use: BTreeMap<u64, CacheKey>,
}

impl Cache {
    pub(crate) fn new(bytes_max: usize) -> Self {
        Cache {
            bytes_max,
            bytes: 0,
            tick: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&mut self, key: &CacheKey) -> Option<Bytes> {
        self.tick += 1;
        let (bytes, used) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = self.tick;
        self.by_use.insert(self.tick, key.clone());
        Some(bytes.clone())
    }

    /// Keeps `value` unless it is larger than the whole cache.
    pub(crate) fn insert(&mut self, key: CacheKey, value: Bytes) {
        if value.len() > self.bytes_max {
            return;
        }
        self.tick += 1;
        if let Some((old, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
            self.bytes -= old.len();
        }
        while self.bytes + value.len() > self.bytes_max {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&oldest) {
                self.bytes -= old.len();
            }
        }
        self.bytes += value.len();
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(key, (value, self.tick));
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> CacheKey {
        (Arc::from("o"), n)
    }

    #[test]
    fn evicts_the_least_recently_used_within_its_bytes() {
        let mut cache = Cache::new(10);
        cache.insert(key(1), Bytes::from_static(b"aaaa"));
        cache.insert(key(2), Bytes::from_static(b"bbbb"));
        assert!(cache.get(&key(1)).is_some());
        cache.insert(key(3), Bytes::from_static(b"cccc"));
        assert!(cache.get(&key(2)).is_none(), "2 was the least recently used");
        assert!(cache.get(&key(1)).is_some());
        assert!(cache.get(&key(3)).is_some());
        assert_eq!(cache.bytes(), 8);
        cache.insert(key(4), Bytes::from(vec![0; 11]));
        assert!(cache.get(&key(4)).is_none(), "larger than the cache: not kept");
        assert_eq!(cache.bytes(), 8);
    }
}
