//! Reads: by offset, by timestamp, and the segment windows behind both.
//!
//! A read snapshots what it needs of one segment under the state lock, then does
//! its I/O without any lock. Retention may delete a sealed segment in between;
//! such a read starts over from a fresh snapshot, which then either answers from
//! the remaining segments or reports the offset as out of range. A walk that
//! started at an index entry and met something unexpected is repeated from the
//! start of the segment, because index entries are only hints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Log, ReadResult, Sealed, State, TimestampHit, lock};
use crate::env::ActiveHandle;
use crate::error::{LogError, Result};
use crate::index::{self, IndexEntry};
use crate::io::{StorageFile, child};
use crate::segment::{self, ReadFault, ReadWindow, index_file_name, log_file_name};

/// How many times a read starts over because a segment vanished under it. Each
/// restart follows a deletion, which only moves the log start forward, so a small
/// bound suffices; past it the read reports the error.
const READ_RESTARTS_MAX: usize = 8;

/// How many times a read starts over because compaction swapped segments
/// under it (see [`Log::swapped_since`]).
const SWAP_RESTARTS_MAX: usize = 64;

/// Start of a segment, used when no index entry helps.
const SEGMENT_START: IndexEntry = IndexEntry {
    rel_offset: 0,
    position: 0,
    ts_before: i64::MIN,
};

/// What a lookup is after.
#[derive(Debug, Clone, Copy)]
enum Seek {
    Offset(i64),
    /// The first batch with `max_timestamp >= ts`.
    Time(i64),
}

impl Seek {
    /// Whether the walk may start at `e` (or later) in the segment based at `base`.
    fn below(self, base: i64, e: &IndexEntry) -> bool {
        match self {
            Seek::Offset(at) => i64::from(e.rel_offset) <= at - base,
            Seek::Time(ts) => e.ts_before < ts,
        }
    }
}

/// What a read needs of one segment, captured under the state lock.
#[derive(Debug)]
enum SegmentSnapshot {
    Sealed(Sealed),
    Active {
        base: i64,
        size: u64,
        start: IndexEntry,
        handle: ActiveHandle,
    },
}

/// A segment opened for reading.
struct Opened {
    window: ReadWindow,
    file: Arc<dyn StorageFile>,
    path: PathBuf,
}

/// Where the offset `at` lives.
enum Located {
    /// In this segment (`None` for the active one, else an index into `sealed`).
    Segment(Option<usize>),
    /// In no segment: the offsets from `at` up to this base are missing (damage
    /// recovery found at the end of a sealed segment).
    GapUntil(i64),
}

fn locate(st: &State, at: i64) -> Located {
    if at >= st.active.base {
        return Located::Segment(None);
    }
    match st.sealed.partition_point(|s| s.base <= at).checked_sub(1) {
        Some(i) if at < st.sealed[i].next => Located::Segment(Some(i)),
        Some(i) => Located::GapUntil(st.sealed.get(i + 1).map_or(st.active.base, |s| s.base)),
        None => Located::GapUntil(st.sealed.front().map_or(st.active.base, |s| s.base)),
    }
}

/// Snapshots sealed segment `which`, or the active segment for `None`. The active
/// segment's index floor is found here, in memory; a sealed one's in its index
/// file after the lock is released.
fn snapshot(st: &State, which: Option<usize>, seek: Seek) -> SegmentSnapshot {
    match which {
        Some(i) => SegmentSnapshot::Sealed(st.sealed[i]),
        None => {
            let a = &st.active;
            let n = a.entries.partition_point(|e| seek.below(a.base, e));
            SegmentSnapshot::Active {
                base: a.base,
                size: a.size,
                start: n.checked_sub(1).map_or(SEGMENT_START, |j| a.entries[j]),
                handle: a.handle.clone(),
            }
        }
    }
}

fn is_not_found(e: &LogError) -> bool {
    matches!(e, LogError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

impl Log {
    /// Reads whole batches starting with the one holding `offset`, up to `bytes_max`
    /// and at most [`crate::segment::READ_BYTES_LIMIT`] (but at least one batch).
    /// Only batches below the high watermark are returned.
    /// Offsets lost between segments (reported by recovery) are skipped.
    pub fn read(&self, offset: i64, bytes_max: usize) -> Result<ReadResult> {
        self.read_isolated(offset, bytes_max, false)
    }

    /// [`Log::read`] for a `read_committed` reader when `committed`: only
    /// batches below the last stable offset are returned (an offset between
    /// it and the high watermark reads nothing, and is no error).
    pub fn read_isolated(&self, offset: i64, bytes_max: usize, committed: bool) -> Result<ReadResult> {
        let mut at = offset;
        let mut restarts = 0;
        let mut swaps = 0;
        loop {
            let (snap, log_start, hw, visible, generation) = {
                let st = lock(&self.state);
                let hw = lock(&self.sync).high_watermark;
                let visible = match st.producers.txns.first_unstable() {
                    Some(first) if committed => first.min(hw),
                    _ => hw,
                };
                let generation = self.layout_generation.load(Ordering::SeqCst);
                if at < st.log_start || at > hw {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: st.log_start,
                        high_watermark: hw,
                    });
                }
                let empty = |next_offset| ReadResult {
                    records: Bytes::new(),
                    next_offset,
                    high_watermark: hw,
                    log_start: st.log_start,
                };
                if at >= visible {
                    return Ok(empty(at));
                }
                match locate(&st, at) {
                    Located::Segment(which) => (
                        snapshot(&st, which, Seek::Offset(at)),
                        st.log_start,
                        hw,
                        visible,
                        generation,
                    ),
                    Located::GapUntil(next) => {
                        at = next.min(visible);
                        continue;
                    }
                }
            };
            let opened = match self.open_segment(&snap, visible, Seek::Offset(at)) {
                Err(e) if is_not_found(&e) && restarts < READ_RESTARTS_MAX => {
                    restarts += 1;
                    continue;
                }
                other => other?,
            };
            if self.swapped_since(generation, &mut swaps) {
                continue;
            }
            let result = self.walk(&opened, |w| segment::read(&*opened.file, w, at, bytes_max));
            match result {
                Ok(Some((records, next_offset))) => {
                    return Ok(ReadResult {
                        records,
                        next_offset,
                        high_watermark: hw,
                        log_start,
                    });
                }
                // No visible batch in this segment at or after `at`: the rest of a
                // sealed segment, or nothing yet in the active one.
                // (A sealed segment reaching past what is visible may hold the
                // next batches beyond it: nothing more to read then.)
                Ok(None) => match snap {
                    SegmentSnapshot::Sealed(s) if s.next > at && s.next <= visible => at = s.next,
                    _ => {
                        return Ok(ReadResult {
                            records: Bytes::new(),
                            next_offset: at,
                            high_watermark: hw,
                            log_start,
                        });
                    }
                },
                Err(f) => return Err(self.read_fault(&opened.path, f)),
            }
        }
    }

    /// The offset of the first visible batch whose largest timestamp is at or after
    /// `ts`, or `None` if there is none (Kafka answers -1 then). The batch's
    /// checksum is verified before it is used as the answer.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampHit>> {
        let mut restarts = 0;
        let mut swaps = 0;
        'restart: loop {
            let (snaps, log_start, hw, generation) = {
                let st = lock(&self.state);
                let hw = lock(&self.sync).high_watermark;
                let generation = self.layout_generation.load(Ordering::SeqCst);
                let mut snaps: Vec<SegmentSnapshot> = Vec::new();
                for (i, s) in st.sealed.iter().enumerate() {
                    if s.max_timestamp >= ts && s.next > st.log_start {
                        snaps.push(snapshot(&st, Some(i), Seek::Time(ts)));
                    }
                }
                if st.active.max_timestamp >= ts {
                    snaps.push(snapshot(&st, None, Seek::Time(ts)));
                }
                (snaps, st.log_start, hw, generation)
            };
            for snap in &snaps {
                let opened = match self.open_segment(snap, hw, Seek::Time(ts)) {
                    Err(e) if is_not_found(&e) && restarts < READ_RESTARTS_MAX => {
                        restarts += 1;
                        continue 'restart;
                    }
                    other => other?,
                };
                if self.swapped_since(generation, &mut swaps) {
                    continue 'restart;
                }
                let found = self.walk(&opened, |w| segment::find_by_time(&*opened.file, w, ts, log_start));
                match found {
                    Ok(Some(h)) => {
                        return Ok(Some(TimestampHit {
                            offset: h.base_offset.max(log_start),
                            max_timestamp: h.max_timestamp,
                        }));
                    }
                    Ok(None) => continue,
                    Err(f) => return Err(self.read_fault(&opened.path, f)),
                }
            }
            return Ok(None);
        }
    }

    /// The largest timestamp of the segments that hold offsets at or after the
    /// log start, from what each segment keeps of its batches' largest (no file
    /// is read); `None` if none holds a batch. It may be the timestamp of a
    /// record below the log start, in the segment the log start is inside, or
    /// of a batch not yet below the high watermark:
    /// [`Log::offset_for_timestamp`] of it then finds no batch.
    pub fn max_timestamp(&self) -> Option<i64> {
        let st = lock(&self.state);
        st.sealed
            .iter()
            .filter(|s| s.next > st.log_start)
            .map(|s| s.max_timestamp)
            .chain((st.active.next > st.log_start).then_some(st.active.max_timestamp))
            .filter(|&ts| ts != i64::MIN)
            .max()
    }

    /// Whether compaction swapped segment files since a snapshot taken at
    /// `generation`: files opened now may be newer than the snapshot, so the
    /// read starts over. Swaps are rare and quick; past
    /// [`SWAP_RESTARTS_MAX`] in one read it goes on (a mismatch then fails
    /// its checks loudly, never silently).
    fn swapped_since(&self, generation: u64, swaps: &mut usize) -> bool {
        let moved = self.layout_generation.load(Ordering::SeqCst) != generation;
        if moved && *swaps < SWAP_RESTARTS_MAX {
            *swaps += 1;
            return true;
        }
        false
    }

    /// Runs a walk over the window; if it started at an index entry and found
    /// damage, runs it once more from the start of the segment, so a bad index
    /// entry costs time, not an answer.
    fn walk<T>(
        &self,
        opened: &Opened,
        f: impl Fn(&ReadWindow) -> std::result::Result<T, ReadFault>,
    ) -> std::result::Result<T, ReadFault> {
        match f(&opened.window) {
            Err(ReadFault::Corrupt { .. }) if opened.window.start != SEGMENT_START => f(&ReadWindow {
                start: SEGMENT_START,
                ..opened.window
            }),
            other => other,
        }
    }

    fn read_fault(&self, path: &Path, f: ReadFault) -> LogError {
        match f {
            ReadFault::Io(e) => LogError::io("read", path, e),
            ReadFault::Corrupt { position, reason } => {
                self.stats.corruptions_found.fetch_add(1, Ordering::Relaxed);
                tracing::error!(path = %path.display(), position, %reason, "corrupt batch found on read");
                LogError::Corrupt {
                    path: path.to_path_buf(),
                    position,
                    reason,
                }
            }
        }
    }

    /// Opens a snapshotted segment for reading and finds where to start walking.
    fn open_segment(&self, snap: &SegmentSnapshot, hw: i64, seek: Seek) -> Result<Opened> {
        match snap {
            SegmentSnapshot::Active {
                base,
                size,
                start,
                handle,
            } => Ok(Opened {
                window: ReadWindow {
                    start: *start,
                    segment_base: *base,
                    readable_bytes: *size,
                    visible_next: hw,
                },
                file: self
                    .env
                    .active_file_shared(handle)
                    .map_err(|e| LogError::io("open", &handle.path, e))?,
                path: handle.path.clone(),
            }),
            SegmentSnapshot::Sealed(s) => {
                let path = child(&self.dir, &log_file_name(s.base));
                let file = self
                    .env
                    .sealed_file(&path)
                    .map_err(|e| LogError::io("open", &path, e))?;
                let index_path = child(&self.dir, &index_file_name(s.base));
                // An unreadable index only costs a longer walk from the segment start.
                let start = self
                    .env
                    .sealed_file(&index_path)
                    .ok()
                    .and_then(|f| index::floor_in_file(&*f, s.entry_count, |e| seek.below(s.base, e)))
                    .filter(|e| u64::from(e.position) < s.size && i64::from(e.rel_offset) < s.next - s.base)
                    .unwrap_or(SEGMENT_START);
                Ok(Opened {
                    window: ReadWindow {
                        start,
                        segment_base: s.base,
                        readable_bytes: s.size,
                        visible_next: hw.min(s.next),
                    },
                    file,
                    path,
                })
            }
        }
    }
}
