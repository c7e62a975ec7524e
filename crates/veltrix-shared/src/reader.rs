//! [`Reader`]: a partition's committed batches from an offset: rows from the
//! catalog, bytes from the read cache or by ranged GETs (adjacent batches of
//! one object in one GET), each batch checked against its CRC32C.
//!
//! A batch's stored bytes are what the producer sent: the broker writes the
//! base offset the catalog assigned into them as it serves them.

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
}

/// Adjacent batches of one object, read with one GET.
struct Run {
    key: Arc<str>,
    start: u64,
    end: u64,
    /// Indexes into the rows.
    rows: Vec<usize>,
}

impl<C: Catalog> Reader<C> {
    pub fn new(config: ReaderConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Self> {
        config.validate()?;
        Ok(Reader {
            catalog,
            store,
            cache: Mutex::new(Cache::new(config.cache_bytes_max)),
            config,
        })
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
        let mut found: Vec<Option<Bytes>> = {
            let mut cache = self.cache.lock().expect("cache lock");
            rows.iter()
                .map(|r| cache.get(&(Arc::from(r.object_key.as_str()), r.byte_start)))
                .collect()
        };
        let runs = runs(&rows, &found);
        let timeout = Duration::from_millis(self.config.get_timeout_ms);
        let reads = runs.iter().map(|run| self.get_run(run, &rows, timeout));
        for (run, parts) in runs.iter().zip(futures_util::future::try_join_all(reads).await?) {
            let mut cache = self.cache.lock().expect("cache lock");
            for (&i, bytes) in run.rows.iter().zip(parts) {
                cache.insert((run.key.clone(), rows[i].byte_start), bytes.clone());
                found[i] = Some(bytes);
            }
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

    /// One ranged GET, split into its batches, each checked.
    async fn get_run(&self, run: &Run, rows: &[BatchRow], timeout: Duration) -> Result<Vec<Bytes>> {
        let path = Path::from(&*run.key);
        let got = tokio::time::timeout(timeout, self.store.get_range(&path, run.start..run.end))
            .await
            .map_err(|_| Error::StoreUnavailable(format!("GET timed out after {timeout:?}")))?;
        let bytes = match got {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::ObjectMissing(run.key.to_string()));
            }
            // A range past the object's end: it is shorter than committed.
            Err(e) if e.to_string().contains("Range") => {
                return Err(Error::ObjectCorrupt {
                    key: run.key.to_string(),
                    start: run.start,
                    end: run.end,
                });
            }
            Err(e) => return Err(Error::StoreUnavailable(e.to_string())),
        };
        let corrupt = |start: u64, end: u64| Error::ObjectCorrupt {
            key: run.key.to_string(),
            start,
            end,
        };
        if bytes.len() as u64 != run.end - run.start {
            return Err(corrupt(run.start, run.end));
        }
        run.rows
            .iter()
            .map(|&i| {
                let row = &rows[i];
                let from = (row.byte_start - run.start) as usize;
                let part = bytes.slice(from..from + row.byte_len as usize);
                if crc32c::crc32c(&part) == row.crc32c {
                    Ok(part)
                } else {
                    Err(corrupt(row.byte_start, row.byte_start + u64::from(row.byte_len)))
                }
            })
            .collect()
    }
}

/// The rows not cached, grouped into runs of adjacent bytes in one object.
fn runs(rows: &[BatchRow], cached: &[Option<Bytes>]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if cached[i].is_some() {
            continue;
        }
        let end = row.byte_start + u64::from(row.byte_len);
        if let Some(last) = runs.last_mut()
            && *last.key == *row.object_key
            && last.end == row.byte_start
        {
            last.end = end;
            last.rows.push(i);
            continue;
        }
        runs.push(Run {
            key: Arc::from(row.object_key.as_str()),
            start: row.byte_start,
            end,
            rows: vec![i],
        });
    }
    runs
}
