//! Durable snapshots of a [`DedupIndex`](super::DedupIndex), behind a narrow
//! interface so that a store on a database can replace the file.
//!
//! A snapshot is only a shortcut: the index is rebuilt from it plus the ids of
//! the durable records after it in each partition's log, so a snapshot that is
//! old, missing, torn or damaged costs a longer walk of the log, never a
//! forgotten id. That is why a snapshot that fails its checks is ignored with
//! a warning rather than refusing to start.
//!
//! The file, big-endian: the magic `VXDD`, a `u32` version, the time it was
//! taken (`i64` ms), the counts of covered partitions and of entries (`u32`
//! each), the covered partitions (`i32` partition, `i64` offset), the entries
//! (`i64` commit time, `i32` partition, `i64` offset, `u16` id length, the id)
//! and a CRC32C of everything before it. Its decoder reads any bytes without
//! panicking and sizes nothing from a count the bytes cannot back.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use veltrix_log::io::{OpenMode, Storage, child};

use super::index::{DEDUP_ID_BYTES_MAX, DEDUP_IDS_MAX, DedupConfig};
use crate::error::{CoreError, Result};

/// The snapshot's file name in its directory.
pub const DEDUP_SNAPSHOT_FILE: &str = "dedup.snapshot";
/// The most partitions a snapshot names.
pub const DEDUP_PARTITIONS_MAX: usize = 100_000;
const MAGIC: &[u8; 4] = b"VXDD";
const VERSION: u32 = 1;
/// Magic, version, time and the two counts.
const HEADER_BYTES: usize = 4 + 4 + 8 + 4 + 4;
const COVERED_BYTES: usize = 4 + 8;
/// An entry without its id's bytes.
const ENTRY_FIXED_BYTES: usize = 8 + 4 + 8 + 2;
const CRC_BYTES: usize = 4;

/// The committed ids of one topic's index, and how far into each partition's
/// log they account for every record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub taken_ms: i64,
    /// (partition, offset): every durable record with an id below the offset
    /// has its id in `entries` (unless its window ended). Records at or past
    /// it are read from the log at restore.
    pub covered: Vec<(i32, i64)>,
    /// Oldest first.
    pub entries: Vec<SnapshotEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    pub id: Vec<u8>,
    pub committed_ms: i64,
    pub partition: i32,
    pub offset: i64,
}

pub trait DedupStore: Send + Sync + Debug {
    /// The newest snapshot saved; `None` if there is none or it fails its
    /// checks (logged): the caller then rebuilds from the log tails alone.
    fn load(&self) -> Result<Option<Snapshot>>;
    /// Replaces the snapshot durably: after a crash, `load` finds this one or
    /// the one before, whole.
    fn save(&self, snapshot: &Snapshot) -> Result<()>;
}

/// The snapshot's bytes. Panics past the limits the index keeps.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    assert!(snapshot.covered.len() <= DEDUP_PARTITIONS_MAX && snapshot.entries.len() <= DEDUP_IDS_MAX);
    let ids: usize = snapshot.entries.iter().map(|e| e.id.len()).sum();
    let mut out = Vec::with_capacity(
        HEADER_BYTES
            + snapshot.covered.len() * COVERED_BYTES
            + snapshot.entries.len() * ENTRY_FIXED_BYTES
            + ids
            + CRC_BYTES,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&snapshot.taken_ms.to_be_bytes());
    out.extend_from_slice(&(snapshot.covered.len() as u32).to_be_bytes());
    out.extend_from_slice(&(snapshot.entries.len() as u32).to_be_bytes());
    for (partition, offset) in &snapshot.covered {
        out.extend_from_slice(&partition.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
    }
    for e in &snapshot.entries {
        assert!(e.id.len() <= DEDUP_ID_BYTES_MAX);
        out.extend_from_slice(&e.committed_ms.to_be_bytes());
        out.extend_from_slice(&e.partition.to_be_bytes());
        out.extend_from_slice(&e.offset.to_be_bytes());
        out.extend_from_slice(&(e.id.len() as u16).to_be_bytes());
        out.extend_from_slice(&e.id);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Reads a snapshot, checking everything: size, checksum, magic, version,
/// counts against the bytes that follow, id lengths, no bytes left over.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, String> {
    let body_len = bytes
        .len()
        .checked_sub(CRC_BYTES)
        .filter(|&n| n >= HEADER_BYTES)
        .ok_or("too short")?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader(body);
    if r.take(4)? != MAGIC {
        return Err("not a dedup snapshot".into());
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(format!("version {version} is not {VERSION}"));
    }
    let taken_ms = r.i64()?;
    let covered_count = r.count(DEDUP_PARTITIONS_MAX, COVERED_BYTES)?;
    let entries_count = r.count(DEDUP_IDS_MAX, ENTRY_FIXED_BYTES + 1)?;
    let mut covered = Vec::with_capacity(covered_count);
    for _ in 0..covered_count {
        covered.push((r.i32()?, r.i64()?));
    }
    let mut entries = Vec::with_capacity(entries_count.min(r.0.len() / (ENTRY_FIXED_BYTES + 1)));
    for _ in 0..entries_count {
        entries.push(r.entry()?);
    }
    if !r.0.is_empty() {
        return Err(format!("{} bytes past the last entry", r.0.len()));
    }
    Ok(Snapshot {
        taken_ms,
        covered,
        entries,
    })
}

/// Reads big-endian fields off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A count of at most `max` items of at least `item_bytes` each.
    fn count(&mut self, max: usize, item_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n > max || n > self.0.len() / item_bytes {
            return Err(format!("count {n} is more than the limit or the bytes left"));
        }
        Ok(n)
    }

    fn entry(&mut self) -> Result<SnapshotEntry, String> {
        let committed_ms = self.i64()?;
        let partition = self.i32()?;
        let offset = self.i64()?;
        let len = u16::from_be_bytes(self.array()?) as usize;
        if !(1..=DEDUP_ID_BYTES_MAX).contains(&len) {
            return Err(format!("id length {len} is not 1..={DEDUP_ID_BYTES_MAX}"));
        }
        Ok(SnapshotEntry {
            id: self.take(len)?.to_vec(),
            committed_ms,
            partition,
            offset,
        })
    }
}

/// The longest snapshot an index of `config` writes, covering `DEDUP_PARTITIONS_MAX`.
fn snapshot_bytes_max(config: &DedupConfig) -> u64 {
    (HEADER_BYTES
        + DEDUP_PARTITIONS_MAX * COVERED_BYTES
        + config.ids_max * (ENTRY_FIXED_BYTES + config.id_bytes_max)
        + CRC_BYTES) as u64
}

fn ignore_unreadable(path: &Path, reason: &str) -> Option<Snapshot> {
    tracing::warn!(path = %path.display(), reason, "ignoring an unreadable dedup snapshot; the window is rebuilt from the partitions' logs");
    None
}

/// The snapshot in a file of its own directory, replaced durably (temporary
/// file, fsync, rename, fsync of the directory).
#[derive(Debug)]
pub struct LogDedupStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// A larger file is not read: no index of this config wrote it.
    bytes_max: u64,
}

impl LogDedupStore {
    /// A store in `dir`, created if missing, for an index of `config`.
    pub fn open(storage: Arc<dyn Storage>, dir: &Path, config: &DedupConfig) -> Result<LogDedupStore> {
        storage.create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
        Ok(LogDedupStore {
            storage,
            dir: dir.to_path_buf(),
            bytes_max: snapshot_bytes_max(config),
        })
    }
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> CoreError {
    CoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl DedupStore for LogDedupStore {
    fn load(&self) -> Result<Option<Snapshot>> {
        let path = child(&self.dir, DEDUP_SNAPSHOT_FILE);
        if !self.storage.exists(&path) {
            return Ok(None);
        }
        let file = self
            .storage
            .open(&path, OpenMode::Existing)
            .map_err(|e| io_error("open", &path, e))?;
        let len = file.len().map_err(|e| io_error("stat", &path, e))?;
        if len > self.bytes_max {
            return Ok(ignore_unreadable(&path, "larger than this window's snapshots can be"));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)
            .map_err(|e| io_error("read", &path, e))?;
        Ok(decode_snapshot(&bytes).map_or_else(|reason| ignore_unreadable(&path, &reason), Some))
    }

    fn save(&self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.covered.len() > DEDUP_PARTITIONS_MAX {
            return Err(CoreError::LimitReached(format!(
                "a dedup snapshot names at most {DEDUP_PARTITIONS_MAX} partitions"
            )));
        }
        let bytes = encode_snapshot(snapshot);
        veltrix_log::checkpoint::replace_file(&*self.storage, &self.dir, DEDUP_SNAPSHOT_FILE, &bytes)
            .map_err(|e| io_error("write", &child(&self.dir, DEDUP_SNAPSHOT_FILE), e))
    }
}

/// A store in memory, for tests: it keeps the encoded bytes, so tests run the
/// codec and can damage them.
#[derive(Debug, Default)]
pub struct MemDedupStore {
    bytes: Mutex<Option<Vec<u8>>>,
}

impl MemDedupStore {
    pub fn bytes(&self) -> Option<Vec<u8>> {
        self.bytes.lock().expect("not poisoned").clone()
    }

    pub fn set_bytes(&self, bytes: Option<Vec<u8>>) {
        *self.bytes.lock().expect("not poisoned") = bytes;
    }
}

impl DedupStore for MemDedupStore {
    fn load(&self) -> Result<Option<Snapshot>> {
        Ok(self
            .bytes()
            .and_then(|b| decode_snapshot(&b).map_or_else(|r| ignore_unreadable(Path::new("memory"), &r), Some)))
    }

    fn save(&self, snapshot: &Snapshot) -> Result<()> {
        self.set_bytes(Some(encode_snapshot(snapshot)));
        Ok(())
    }
}
