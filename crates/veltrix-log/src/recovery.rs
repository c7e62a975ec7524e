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
//!
//! Offsets are never handed out twice. If the log start checkpoint lies past the
//! recovered end (the end was damaged and cut), the log continues in a new segment
//! based at the checkpoint, as Kafka does, rather than reusing offsets that the
//! checkpoint already declared deleted.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::read_checkpoint;
use crate::config::LogConfig;
use crate::env::Env;
use crate::error::{LogError, Result};
use crate::index::{self, read_footer, read_sealed_entries};
use crate::io::{OpenMode, Storage, StorageFile, child};
use crate::log::{Active, CLEAN_SHUTDOWN_FILE, LOG_START_FILE, LogStats, RECOVERY_POINT_FILE, Sealed, State};
use crate::producer::{self, Producers};
use crate::segment::{self, ScanResult, index_file_name, log_file_name, parse_file_name};

/// What a partition directory holds, once leftovers are removed.
struct DirListing {
    /// The base offsets of its segment files.
    logs: BTreeSet<i64>,
    /// Whether the last close was clean (the marker is there).
    clean: bool,
}

/// Lists the directory and removes what an interrupted operation left:
/// temporary files, and indexes whose segment is gone.
fn list_dir(storage: &dyn Storage, dir: &Path) -> Result<DirListing> {
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
    Ok(DirListing { logs, clean })
}

/// Opens the directory and rebuilds the in-memory state of the log.
pub(crate) fn recover(env: &Env, dir: &Path, config: &LogConfig) -> Result<(State, LogStats)> {
    let storage = &*env.storage;
    let stats = LogStats::default();
    storage
        .create_dir_all(dir)
        .map_err(|e| LogError::io("create directory", dir, e))?;
    crate::swap::finish_interrupted(storage, dir)?;
    let DirListing { logs, clean } = list_dir(storage, dir)?;
    let checkpoint = read_checkpoint(storage, dir, LOG_START_FILE)?;
    // The recovery point is a hint; without it, damage anywhere in the newest
    // segment is taken for a torn tail.
    let recovery_point = read_checkpoint(storage, dir, RECOVERY_POINT_FILE).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable recovery point");
        None
    });
    let bases: Vec<i64> = logs.into_iter().collect();
    let mut sealed = VecDeque::with_capacity(bases.len().saturating_sub(1));
    let active = match bases.split_last() {
        None => create_active(env, dir, checkpoint.unwrap_or(0).max(0))?,
        Some((&last, older)) => {
            let ctx = Ctx {
                env,
                storage,
                dir,
                config,
                now_ms: env.clock.now_ms(),
                stats: &stats,
            };
            for &base in older {
                sealed.push_back(load_sealed(&ctx, base)?);
            }
            load_active(&ctx, last, clean, recovery_point.unwrap_or(last).max(last))?
        }
    };
    check_continuity(dir, &mut sealed, active.base, &stats);
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
    let log_start = checkpoint.unwrap_or(first).max(first);
    let active = if log_start > active.next {
        tracing::error!(
            dir = %dir.display(),
            log_start,
            log_end = active.next,
            "log start checkpoint is past the recovered end: records before it were lost; continuing at the checkpoint"
        );
        restart_at(env, dir, active, log_start, &mut sealed)?
    } else {
        active
    };
    delete_below(storage, dir, &mut sealed, log_start)?;
    // Never below the first segment that is left, so the log start a restart
    // derives from the files is the one in memory now.
    let log_start = log_start.max(sealed.front().map_or(active.base, |s| s.base));
    let state = State {
        sealed,
        active,
        log_start,
        unsynced_batches: 0,
        last_flush_ms: env.clock.monotonic_ms(),
        recovery_point: recovery_point.unwrap_or(i64::MIN),
        recovery_point_ms: env.clock.monotonic_ms(),
        producers: Producers::default(),
        clean_claim: None,
    };
    Ok((state, stats))
}

/// Rebuilds the idempotent producers' state of a recovered log: the newest valid
/// snapshot, then the batch headers after it (see [`crate::producer`]).
pub(crate) fn load_producers(env: &Env, dir: &Path, state: &State, config: &LogConfig) -> Result<Producers> {
    let storage = &*env.storage;
    let end = state.active.next;
    let producer::Snapshot {
        offset: from,
        mut producers,
    } = producer::load_snapshot(storage, dir, end)?.unwrap_or(producer::Snapshot {
        offset: i64::MIN,
        producers: Producers::default(),
    });
    let now_ms = env.clock.now_ms();
    let producers_max = config.producers_max as usize;
    let mut replayed = 0usize;
    let sealed = state.sealed.iter().map(|s| (s.base, s.next, s.size));
    let active = [(state.active.base, state.active.next, state.active.size)];
    for (base, next, size) in sealed.chain(active) {
        if next <= from || size == 0 {
            continue;
        }
        let path = child(dir, &log_file_name(base));
        let file = if base == state.active.base {
            env.active_file_shared(&state.active.handle)
        } else {
            env.sealed_file(&path)
        }
        .map_err(|e| LogError::io("open", &path, e))?;
        let whole = producer::walk_headers(&*file, &path, (size, next), from, |h, control| {
            producers.record(h, control, now_ms, producers_max);
        })?;
        replayed += 1;
        if !whole {
            // Part of the producers' history is unreadable: rather than answer
            // from a state that may be stale, forget every producer. They are
            // accepted as new on their next append, as after an expiry.
            tracing::warn!(
                path = %path.display(),
                "damaged batch headers: idempotent producer state cannot be rebuilt and is reset"
            );
            return Ok(Producers::default());
        }
    }
    if replayed > 1 {
        tracing::info!(
            dir = %dir.display(),
            segments = replayed,
            "rebuilt idempotent producer state from the batch headers of several segments"
        );
    }
    Ok(producers)
}

/// What every step of recovery needs.
struct Ctx<'a> {
    env: &'a Env,
    storage: &'a dyn Storage,
    dir: &'a Path,
    config: &'a LogConfig,
    /// Wall time at open, standing in for unknown append times.
    now_ms: i64,
    stats: &'a LogStats,
}

/// Segments must follow one another. A gap (damage cut the end of a segment) is
/// reported; an overlap (a damaged footer claims offsets the next segment holds) is
/// reported and the earlier segment's end is clamped, so every offset belongs to
/// exactly one segment.
fn check_continuity(dir: &Path, sealed: &mut VecDeque<Sealed>, active_base: i64, stats: &LogStats) {
    let bases: Vec<i64> = sealed.iter().skip(1).map(|s| s.base).chain([active_base]).collect();
    for (s, next_base) in sealed.iter_mut().zip(bases) {
        if s.next != next_base {
            tracing::error!(
                dir = %dir.display(),
                segment = s.base,
                segment_end = s.next,
                next_segment = next_base,
                "segments do not follow on: offsets are missing or claimed twice"
            );
            stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
            s.next = s.next.min(next_base);
        }
    }
}

/// Ends the log at `active` and continues it in a new, empty segment at `base`:
/// the old active segment is sealed (or removed if empty).
fn restart_at(env: &Env, dir: &Path, active: Active, base: i64, sealed: &mut VecDeque<Sealed>) -> Result<Active> {
    let storage = &*env.storage;
    let path = child(dir, &log_file_name(active.base));
    env.forget_active(&path);
    if active.size == 0 {
        storage
            .remove_file(&path)
            .map_err(|e| LogError::io("remove", &path, e))?;
    } else {
        let footer = index::Footer::new(
            (active.next - active.base) as u32,
            active.size as u32,
            active.max_timestamp,
            active.last_append_ms,
        );
        write_index(storage, dir, active.base, &active.entries, footer)?;
        sealed.push_back(Sealed {
            base: active.base,
            next: active.next,
            size: active.size,
            max_timestamp: active.max_timestamp,
            last_append_ms: active.last_append_ms,
            entry_count: active.entries.len() as u32,
        });
    }
    create_active(env, dir, base)
}

/// A new, empty active segment at `base`, its directory entry durable.
fn create_active(env: &Env, dir: &Path, base: i64) -> Result<Active> {
    let storage = &*env.storage;
    let path = child(dir, &log_file_name(base));
    let file = storage
        .open(&path, OpenMode::CreateNew)
        .map_err(|e| LogError::io("create", &path, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| LogError::io("sync directory", dir, e))?;
    Ok(Active::empty(base, env.adopt_active(path, file)))
}

/// Deletes sealed segments wholly below the log start: what an interrupted
/// delete-records left behind.
fn delete_below(storage: &dyn Storage, dir: &Path, sealed: &mut VecDeque<Sealed>, log_start: i64) -> Result<()> {
    let mut deleted = false;
    while let Some(oldest) = sealed.front().filter(|s| s.next <= log_start) {
        for name in [log_file_name(oldest.base), index_file_name(oldest.base)] {
            let path = child(dir, &name);
            match storage.remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(LogError::io("remove", &path, e)),
                _ => {}
            }
        }
        sealed.pop_front();
        deleted = true;
    }
    if deleted {
        storage
            .sync_dir(dir)
            .map_err(|e| LogError::io("sync directory", dir, e))?;
    }
    Ok(())
}

/// Writes a sealed index file and fsyncs it.
fn write_index(
    storage: &dyn Storage,
    dir: &Path,
    base: i64,
    entries: &[index::IndexEntry],
    footer: index::Footer,
) -> Result<()> {
    let path = child(dir, &index_file_name(base));
    let bytes = index::encode_sealed(entries, footer);
    let write = || -> io::Result<()> {
        let f = storage.open(&path, OpenMode::CreateOrOpen)?;
        f.set_len(0)?;
        f.write_all_at(&bytes, 0)?;
        f.sync()
    };
    write().map_err(|e| LogError::io("write", &path, e))
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
    (u64::from(footer.file_bytes) == log_len).then_some((file, footer))
}

fn scan_segment(
    ctx: &Ctx<'_>,
    file: &dyn StorageFile,
    path: &Path,
    base: i64,
    resync_below: i64,
) -> Result<ScanResult> {
    let (config, stats) = (ctx.config, ctx.stats);
    let result = segment::scan(file, base, config.index_interval_bytes, resync_below)
        .map_err(|e| LogError::io("scan", path, e))?;
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

fn load_sealed(ctx: &Ctx<'_>, base: i64) -> Result<Sealed> {
    let (storage, dir, now_ms, stats) = (ctx.storage, ctx.dir, ctx.now_ms, ctx.stats);
    let path = child(dir, &log_file_name(base));
    let (file, len) = open_existing(storage, &path)?;
    if let Some((_, footer)) = trusted_footer(storage, dir, base, len) {
        return Ok(Sealed {
            base,
            next: base + i64::from(footer.next_rel_offset),
            size: u64::from(footer.readable_bytes),
            max_timestamp: footer.max_timestamp,
            last_append_ms: footer.last_append_ms,
            entry_count: footer.entry_count,
        });
    }
    tracing::warn!(path = %path.display(), "index of a sealed segment is missing or damaged; rebuilding it");
    // A sealed segment was fsynced whole: damage in it is never a torn write.
    let scan = scan_segment(ctx, &*file, &path, base, i64::MAX)?;
    if scan.valid_end < len {
        tracing::error!(
            path = %path.display(),
            valid_bytes = scan.valid_end,
            damaged_bytes = len - scan.valid_end,
            "sealed segment ends in damaged bytes; kept in place, offsets after {} are missing",
            scan.next_offset
        );
        stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
    }
    // The time of the last append is unknown; now is the choice that deletes
    // nothing early.
    let footer = index::Footer {
        readable_bytes: scan.valid_end as u32,
        ..index::Footer::new((scan.next_offset - base) as u32, len as u32, scan.max_timestamp, now_ms)
    };
    write_index(storage, dir, base, &scan.entries, footer)?;
    Ok(Sealed {
        base,
        next: scan.next_offset,
        size: scan.valid_end,
        max_timestamp: scan.max_timestamp,
        last_append_ms: now_ms,
        entry_count: scan.entries.len() as u32,
    })
}

/// When a recovered active segment holding batches counts as first appended
/// to, for rolling by age: the moment of recovery (its batches are older, so
/// it rolls late, never early). Without it an idle segment would never roll,
/// and a compacted log's tail would never be compacted.
fn first_append(ctx: &Ctx<'_>, has_batches: bool) -> Option<u64> {
    has_batches.then(|| ctx.env.clock.monotonic_ms())
}

fn load_active(ctx: &Ctx<'_>, base: i64, clean: bool, resync_below: i64) -> Result<Active> {
    let (storage, dir, config, now_ms, stats) = (ctx.storage, ctx.dir, ctx.config, ctx.now_ms, ctx.stats);
    let path = child(dir, &log_file_name(base));
    let (file, len) = open_existing(storage, &path)?;
    if clean
        && let Some((index_file, footer)) = trusted_footer(storage, dir, base, len)
        && footer.readable_bytes == footer.file_bytes
        // An empty segment holds no offsets; a footer claiming otherwise would let
        // the next batch's relative offsets outgrow 32 bits.
        && (footer.file_bytes > 0 || footer.next_rel_offset == 0)
        && let Some(entries) = read_sealed_entries(&*index_file, &footer)
    {
        return Ok(Active {
            first_append_ms: first_append(ctx, footer.file_bytes > 0),
            next: base + i64::from(footer.next_rel_offset),
            size: u64::from(footer.file_bytes),
            max_timestamp: footer.max_timestamp,
            last_append_ms: footer.last_append_ms,
            entries,
            // Unknown after a restart; the next append starts a fresh index entry.
            bytes_since_index: config.index_interval_bytes,
            ..Active::empty(base, ctx.env.adopt_active(path, file))
        });
    }
    let scan = scan_segment(ctx, &*file, &path, base, resync_below)?;
    if scan.valid_end < len {
        let cut = len - scan.valid_end;
        tracing::warn!(path = %path.display(), valid_bytes = scan.valid_end, cut_bytes = cut, "truncating torn tail");
        stats.recovery_truncated_bytes.fetch_add(cut, Ordering::Relaxed);
        file.set_len(scan.valid_end)
            .map_err(|e| LogError::io("truncate", &path, e))?;
    }
    file.sync().map_err(|e| LogError::io("fsync", &path, e))?;
    Ok(Active {
        first_append_ms: first_append(ctx, scan.batches > 0),
        next: scan.next_offset,
        size: scan.valid_end,
        max_timestamp: scan.max_timestamp,
        // Unknown; now deletes nothing early.
        last_append_ms: if scan.batches > 0 { now_ms } else { i64::MIN },
        entries: scan.entries,
        bytes_since_index: scan.bytes_since_index,
        ..Active::empty(base, ctx.env.adopt_active(path, file))
    })
}
