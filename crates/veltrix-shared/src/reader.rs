//! [`Reader`]: a partition's committed batches from an offset: rows from the
//! catalog, bytes from the read cache or by ranged GETs (adjacent batches of
//! one object in one GET), each batch checked against its CRC32C.
//!
//! A batch's stored bytes are what the producer sent: the broker writes the
//! base offset the catalog assigned into them as it serves them.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::cache::Cache;
use crate::catalog::{BatchRow, Catalog};
use crate::error::{Error, Result};
use crate::limits::ReaderConfig;

/// A committed batch and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub bytes: Bytes,
}

/// The read path.
pub struct Reader<C> {
    catalog: Arc<C>,
    store: Arc<dyn ObjectStore>,
    cache: Mutex<Cache>,
    config: ReaderConfig,
    /// GET requests sent to the bucket, and the bytes they answered.
    gets: AtomicU64,
    bytes_read: AtomicU64,
}

impl<C: Catalog> Reader<C> {
    pub fn new(config: ReaderConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Self> {
        config.validate()?;
        Ok(Reader {
            catalog,
            store,
            cache: Mutex::new(Cache::new(config.cache_bytes_max)),
            config,
            gets: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        })
    }

    /// GET requests sent to the bucket so far, and the bytes they answered.
    pub fn gets(&self) -> (u64, u64) {
        (self.gets.load(Relaxed), self.bytes_read.load(Relaxed))
    }

    /// Bytes held by the read cache.
    pub fn cache_bytes(&self) -> usize {
        self.cache.lock().expect("cache lock").bytes()
    }

    /// The partition's next offset; `None` for an unknown partition.
    pub async fn end_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        self.catalog.end_offset(topic, partition).await
    }

    /// Committed batches from the one holding `offset`, up to `bytes_max`
    /// (at least one batch, as Kafka's fetch does). Empty at the end.
    ///
    /// At most `gets_per_read_max` objects are fetched for one read (the
    /// batches after the one that would need more are left for the next
    /// read), concurrently. An object of at most `whole_object_bytes_max` is
    /// fetched whole and cached whole, so the other partitions' batches in
    /// it (an object holds every partition's batches of one flush) are read
    /// from the cache next; a larger one by the range this read needs. When
    /// a fetch fails, the batches before that object's first are answered,
    /// and the error only when there are none.
    pub async fn read(&self, topic: &str, partition: i32, offset: i64, bytes_max: usize) -> Result<Vec<FetchedBatch>> {
        let mut rows = self
            .catalog
            .batches(topic, partition, offset, self.config.read_batches_max)
            .await?;
        let mut total = 0usize;
        let keep = rows
            .iter()
            .take_while(|r| {
                let fits = total == 0 || total + r.byte_len as usize <= bytes_max;
                total += r.byte_len as usize;
                fits
            })
            .count();
        rows.truncate(keep);
        let mut found: Vec<Option<Bytes>> = Vec::with_capacity(rows.len());
        for r in &rows {
            found.push(self.cached(r)?);
        }
        let fetches = self.plan(&mut rows, &mut found);
        let timeout = Duration::from_millis(self.config.get_timeout_ms);
        let results = futures_util::future::join_all(fetches.iter().map(|f| self.fetch(f, &rows, timeout))).await;
        let mut failed_at: Option<(usize, Error)> = None;
        for (f, result) in fetches.iter().zip(results) {
            match result {
                Ok(parts) => {
                    for (&i, bytes) in f.rows.iter().zip(parts) {
                        found[i] = Some(bytes);
                    }
                }
                Err(e) => {
                    let first = f.rows[0];
                    if failed_at.as_ref().is_none_or(|(at, _)| first < *at) {
                        failed_at = Some((first, e));
                    }
                }
            }
        }
        if let Some((at, e)) = failed_at {
            if at == 0 {
                return Err(e);
            }
            rows.truncate(at);
            found.truncate(at);
        }
        Ok(rows
            .into_iter()
            .zip(found)
            .map(|(r, bytes)| FetchedBatch {
                base_offset: r.base_offset,
                last_offset: r.last_offset,
                max_timestamp: r.max_timestamp,
                bytes: bytes.expect("every batch read or cached"),
            })
            .collect())
    }

    /// A batch from the cache: its own entry, or a slice of its whole
    /// object's, checked against its CRC32C.
    fn cached(&self, row: &BatchRow) -> Result<Option<Bytes>> {
        let key: Arc<str> = Arc::from(row.object_key.as_str());
        let mut cache = self.cache.lock().expect("cache lock");
        if let Some(bytes) = cache.get(&(key.clone(), row.byte_start)) {
            return Ok(Some(bytes));
        }
        let Some(whole) = cache.get(&(key, WHOLE)) else {
            return Ok(None);
        };
        check(row, &whole, 0).map(Some)
    }

    /// The objects to fetch for the rows not found, at most
    /// `gets_per_read_max`; the rows (and `found`) are cut before the first
    /// row whose object would pass it.
    fn plan(&self, rows: &mut Vec<BatchRow>, found: &mut Vec<Option<Bytes>>) -> Vec<Fetch> {
        let mut fetches: Vec<Fetch> = Vec::new();
        for i in 0..rows.len() {
            if found[i].is_some() {
                continue;
            }
            let key = rows[i].object_key.as_str();
            if let Some(f) = fetches.iter_mut().find(|f| &*f.key == key) {
                f.rows.push(i);
                continue;
            }
            if fetches.len() == self.config.gets_per_read_max {
                rows.truncate(i);
                found.truncate(i);
                break;
            }
            fetches.push(Fetch {
                key: Arc::from(key),
                rows: vec![i],
            });
        }
        fetches
    }

    /// One object's bytes for its rows: the whole object when it is small
    /// enough (cached whole), else one ranged GET over the rows (each batch
    /// cached); each batch checked.
    async fn fetch(&self, f: &Fetch, rows: &[BatchRow], timeout: Duration) -> Result<Vec<Bytes>> {
        let path = Path::from(&*f.key);
        let started = tokio::time::Instant::now();
        self.gets.fetch_add(1, Relaxed);
        let got = tokio::time::timeout(timeout, self.store.get(&path))
            .await
            .map_err(|_| Error::StoreUnavailable(format!("GET timed out after {timeout:?}")))?
            .map_err(|e| store_error(&f.key, e))?;
        if got.meta.size <= self.config.whole_object_bytes_max as u64 {
            let left = timeout.saturating_sub(started.elapsed());
            let whole = tokio::time::timeout(left, got.bytes())
                .await
                .map_err(|_| Error::StoreUnavailable(format!("GET timed out after {timeout:?}")))?
                .map_err(|e| store_error(&f.key, e))?;
            self.bytes_read.fetch_add(whole.len() as u64, Relaxed);
            let parts = f
                .rows
                .iter()
                .map(|&i| check(&rows[i], &whole, 0))
                .collect::<Result<Vec<_>>>()?;
            self.cache
                .lock()
                .expect("cache lock")
                .insert((f.key.clone(), WHOLE), whole);
            return Ok(parts);
        }
        drop(got);
        let start = f.rows.iter().map(|&i| rows[i].byte_start).min().unwrap_or(0);
        let end = f
            .rows
            .iter()
            .map(|&i| rows[i].byte_start + u64::from(rows[i].byte_len))
            .max()
            .unwrap_or(0);
        self.gets.fetch_add(1, Relaxed);
        let bytes = tokio::time::timeout(timeout, self.store.get_range(&path, start..end))
            .await
            .map_err(|_| Error::StoreUnavailable(format!("GET timed out after {timeout:?}")))?
            .map_err(|e| store_error(&f.key, e))?;
        self.bytes_read.fetch_add(bytes.len() as u64, Relaxed);
        let parts = f
            .rows
            .iter()
            .map(|&i| check(&rows[i], &bytes, start))
            .collect::<Result<Vec<_>>>()?;
        let mut cache = self.cache.lock().expect("cache lock");
        for (&i, part) in f.rows.iter().zip(&parts) {
            cache.insert((f.key.clone(), rows[i].byte_start), part.clone());
        }
        Ok(parts)
    }
}

/// The cache key of an object cached whole.
const WHOLE: u64 = u64::MAX;

/// One object to fetch for a read, and the rows (indexes) it holds.
struct Fetch {
    key: Arc<str>,
    rows: Vec<usize>,
}

/// A row's batch out of `bytes`, which start at byte `from` of its object:
/// whole and matching its CRC32C, or [`Error::ObjectCorrupt`].
fn check(row: &BatchRow, bytes: &Bytes, from: u64) -> Result<Bytes> {
    let corrupt = || Error::ObjectCorrupt {
        key: row.object_key.clone(),
        start: row.byte_start,
        end: row.byte_start + u64::from(row.byte_len),
    };
    let at = row.byte_start.checked_sub(from).ok_or_else(corrupt)? as usize;
    let end = at.checked_add(row.byte_len as usize).ok_or_else(corrupt)?;
    if end > bytes.len() {
        return Err(corrupt());
    }
    let part = bytes.slice(at..end);
    if crc32c::crc32c(&part) == row.crc32c {
        Ok(part)
    } else {
        Err(corrupt())
    }
}

/// A GET's failure: a missing object, one shorter than committed, or the
/// bucket unavailable.
fn store_error(key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::ObjectMissing(key.to_owned()),
        e if e.to_string().contains("Range") => Error::ObjectCorrupt {
            key: key.to_owned(),
            start: 0,
            end: 0,
        },
        e => Error::StoreUnavailable(e.to_string()),
    }
}
