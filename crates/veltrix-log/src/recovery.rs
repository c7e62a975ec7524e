//! Opening a partition directory: what is trusted, what is scanned, what is cut.
//!
//! Sealed segments (all but the newest) were fsynced with their index before the
//! next segment was created, so a valid index footer whose recorded size matches
//! the file is enough to trust one without reading it. A sealed segment with a
//! missing or damaged index is scanned and its index rebuilt. The newest segment is
//! scanned unless the last shutdown was clean. Recovery time is therefore bounded
//! by one segment's size plus one small read per sealed segment, not by the total
//! size of the log.
//!
//! A torn tail of the newest segment is truncated and the result fsynced before the
//! log accepts appends, so everything that survives recovery is durable.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::LogConfig;
use crate::env::Env;
use crate::error::{LogError, Result};
use crate::index::{self, read_footer, read_sealed_entries};
use crate::io::{OpenMode, Storage, StorageFile, child};
use crate::log::{Active, CLEAN_SHUTDOWN_FILE, LOG_START_FILE, LogStats, Sealed, State};
use crate::segment::{self, ScanResult, index_file_name, log_file_name, parse_file_name};

const CHECKPOINT_BYTES: usize = 12;

/// Durably replaces the log start checkpoint: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory.
pub(crate) fn write_log_start(storage: &dyn Storage, dir: &Path, offset: i64) -> io::Result<()> {
    let mut buf = [0u8; CHECKPOINT_BYTES];
    buf[0..8].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&buf[0..8]);
    buf[8..12].copy_from_slice(&crc.to_be_bytes());
    let tmp = child(dir, &format!("{LOG_START_FILE}.tmp"));
    let file = storage.open(&tmp, OpenMode::CreateOrOpen)?;
    file.set_len(0)?;
    file.write_all_at(&buf, 0)?;
    file.sync()?;
    storage.rename(&tmp, &child(dir, LOG_START_FILE))?;
    storage.sync_dir(dir)
}

fn read_log_start(storage: &dyn Storage, dir: &Path) -> Result<Option<i64>> {
    let path = child(dir, LOG_START_FILE);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let file = storage
        .open(&path, OpenMode::Existing)
        .map_err(|e| LogError::io("open", &path, e))?;
    let mut buf = [0u8; CHECKPOINT_BYTES];
    let corrupt = |reason: &str| LogError::Corrupt {
        path: path.clone(),
        position: 0,
        reason: reason.into(),
    };
    if file.len().map_err(|e| LogError::io("stat", &path, e))? != CHECKPOINT_BYTES as u64 {
        return Err(corrupt("log start checkpoint has the wrong size"));
    }
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| LogError::io("read", &path, e))?;
    let crc = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    if crc32c::crc32c(&buf[0..8]) != crc {
        return Err(corrupt("log start checkpoint fails its checksum"));
    }
    Ok(Some(i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes"))))
}

/// Opens the directory and rebuilds the in-memory state of the log.
pub(crate) fn recover(env: &Env, dir: &Path, config: &LogConfig) -> Result<(State, LogStats)> {
    let storage = &*env.storage;
    let stats = LogStats::default();
    storage
        .create_dir_all(dir)
        .map_err(|e| LogError::io("create directory", dir, e))?;
    let names = storage.list_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN_FILE);
    let mut logs = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for name in &names {
        if let Some(base) = parse_file_name(name, "log") {
            logs.insert(base);
        } else if let Some(base) = parse_file_name(name, "index") {
            indexes.insert(base);
        } else if name.ends_with(".tmp") {
            let path = child(dir, name);
            storage
                .remove_file(&path)
                .map_err(|e| LogError::io("remove", &path, e))?;
        }
    }
    // An index whose segment is gone is left over from an interrupted deletion.
    for base in indexes.difference(&logs) {
        let path = child(dir, &index_file_name(*base));
        storage
            .remove_file(&path)
            .map_err(|e| LogError::io("remove", &path, e))?;
    }
    let checkpoint = read_log_start(storage, dir)?;
    let bases: Vec<i64> = logs.into_iter().collect();
    let mut sealed = VecDeque::with_capacity(bases.len().saturating_sub(1));
    let active = match bases.split_last() {
        None => {
            let base = checkpoint.unwrap_or(0).max(0);
            let path = child(dir, &log_file_name(base));
            let file = storage
                .open(&path, OpenMode::CreateNew)
                .map_err(|e| LogError::io("create", &path, e))?;
            storage
                .sync_dir(dir)
                .map_err(|e| LogError::io("sync directory", dir, e))?;
            empty_active(base, file)
        }
        Some((&last, older)) => {
            for &base in older {
                sealed.push_back(load_sealed(storage, dir, base, config, &stats)?);
            }
            load_active(storage, dir, last, clean, config, &stats)?
        }
    };
    let mut expected = sealed.front().map_or(active.base, |s: &Sealed| s.base);
    for (base, next) in sealed
        .iter()
        .map(|s| (s.base, s.next))
        .chain([(active.base, active.next)])
    {
        if base != expected {
            tracing::error!(dir = %dir.display(), expected, found = base, "offsets missing between segments");
            stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
        }
        expected = next;
    }
    if clean {
        let marker = child(dir, CLEAN_SHUTDOWN_FILE);
        storage
            .remove_file(&marker)
            .map_err(|e| LogError::io("remove", &marker, e))?;
        storage
            .sync_dir(dir)
            .map_err(|e| LogError::io("sync directory", dir, e))?;
    }
    let first = sealed.front().map_or(active.base, |s| s.base);
    let mut log_start = checkpoint.unwrap_or(first).max(first);
    if log_start > active.next {
        tracing::error!(
            dir = %dir.display(),
            log_start,
            log_end = active.next,
            "log start checkpoint is past the recovered end; records after the end were lost"
        );
        log_start = active.next;
    }
    let state = State {
        sealed,
        active,
        log_start,
        unsynced_batches: 0,
        last_flush_ms: env.clock.monotonic_ms(),
    };
    Ok((state, stats))
}

fn empty_active(base: i64, file: Arc<dyn StorageFile>) -> Active {
    Active {
        base,
        next: base,
        size: 0,
        max_timestamp: i64::MIN,
        file,
        entries: Vec::new(),
        bytes_since_index: 0,
        first_append_ms: None,
    }
}

fn open_existing(storage: &dyn Storage, path: &Path) -> Result<(Arc<dyn StorageFile>, u64)> {
    let file = storage
        .open(path, OpenMode::Existing)
        .map_err(|e| LogError::io("open", path, e))?;
    let len = file.len().map_err(|e| LogError::io("stat", path, e))?;
    Ok((file, len))
}

/// The footer of a segment's index, if the index exists, is valid, and describes a
/// segment file of exactly `log_len` bytes.
fn trusted_footer(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    log_len: u64,
) -> Option<(Arc<dyn StorageFile>, index::Footer)> {
    let path = child(dir, &index_file_name(base));
    if !storage.exists(&path) {
        return None;
    }
    let (file, len) = open_existing(storage, &path).ok()?;
    let footer = read_footer(&*file, len)?;
    (u64::from(footer.size) == log_len).then_some((file, footer))
}

fn scan_segment(
    file: &dyn StorageFile,
    path: &Path,
    base: i64,
    config: &LogConfig,
    stats: &LogStats,
) -> Result<ScanResult> {
    let result = segment::scan(file, base, config.index_interval_bytes).map_err(|e| LogError::io("scan", path, e))?;
    for c in &result.corrupt {
        stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            path = %path.display(),
            position = c.position,
            bytes = c.bytes,
            first_offset = c.first_offset,
            next_offset = c.next_offset,
            "corrupt batches kept in place; these offsets cannot be read"
        );
    }
    Ok(result)
}

fn load_sealed(storage: &dyn Storage, dir: &Path, base: i64, config: &LogConfig, stats: &LogStats) -> Result<Sealed> {
    let path = child(dir, &log_file_name(base));
    let (file, len) = open_existing(storage, &path)?;
    if let Some((_, footer)) = trusted_footer(storage, dir, base, len) {
        return Ok(Sealed {
            base,
            next: base + i64::from(footer.next_rel_offset),
            size: u64::from(footer.size),
            max_timestamp: footer.max_timestamp,
            entry_count: footer.entry_count,
        });
    }
    tracing::warn!(path = %path.display(), "index of a sealed segment is missing or damaged; rebuilding it");
    let scan = scan_segment(&*file, &path, base, config, stats)?;
    let rel_next = (scan.next_offset - base) as u32;
    let bytes = index::encode_sealed(&scan.entries, rel_next, scan.valid_end as u32, scan.max_timestamp);
    let index_path = child(dir, &index_file_name(base));
    let write = || -> io::Result<()> {
        let f = storage.open(&index_path, OpenMode::CreateOrOpen)?;
        f.set_len(0)?;
        f.write_all_at(&bytes, 0)?;
        f.sync()
    };
    write().map_err(|e| LogError::io("write", &index_path, e))?;
    Ok(Sealed {
        base,
        next: scan.next_offset,
        size: scan.valid_end,
        max_timestamp: scan.max_timestamp,
        entry_count: scan.entries.len() as u32,
    })
}

fn load_active(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    clean: bool,
    config: &LogConfig,
    stats: &LogStats,
) -> Result<Active> {
    let path = child(dir, &log_file_name(base));
    let (file, len) = open_existing(storage, &path)?;
    if clean
        && let Some((index_file, footer)) = trusted_footer(storage, dir, base, len)
        && let Some(entries) = read_sealed_entries(&*index_file, &footer)
    {
        return Ok(Active {
            next: base + i64::from(footer.next_rel_offset),
            size: u64::from(footer.size),
            max_timestamp: footer.max_timestamp,
            entries,
            // Unknown after a restart; the next append starts a fresh index entry.
            bytes_since_index: config.index_interval_bytes,
            ..empty_active(base, file)
        });
    }
    let scan = scan_segment(&*file, &path, base, config, stats)?;
    if scan.valid_end < len {
        let cut = len - scan.valid_end;
        tracing::warn!(path = %path.display(), valid_bytes = scan.valid_end, cut_bytes = cut, "truncating torn tail");
        stats.recovery_truncated_bytes.fetch_add(cut, Ordering::Relaxed);
        file.set_len(scan.valid_end)
            .map_err(|e| LogError::io("truncate", &path, e))?;
    }
    file.sync().map_err(|e| LogError::io("fsync", &path, e))?;
    Ok(Active {
        next: scan.next_offset,
        size: scan.valid_end,
        max_timestamp: scan.max_timestamp,
        entries: scan.entries,
        bytes_since_index: scan.bytes_since_index,
        ..empty_active(base, file)
    })
}
