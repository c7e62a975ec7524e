//! Replacing sealed segments with their compacted version so that a crash at
//! any moment leaves the old segments or the new one, never a mix.
//!
//! A group of consecutive sealed segments `[base, end)` is replaced by one
//! segment at `base`:
//!
//! 1. the cleaner writes `<base>.log.cleaned` and `<base>.index.cleaned` and
//!    fsyncs both;
//! 2. renames them to `<base>.index.swap`, then `<base>.log.swap`;
//! 3. writes the marker `<base>.swapping` (the group's end offset, a
//!    checkpoint: temporary file, fsync, rename, directory fsync). That
//!    directory fsync also makes step 2 durable. **The marker is the commit
//!    point**: from here on recovery finishes the swap;
//! 4. under the log's state lock, with renames and unlinks only: removes the
//!    group's other segments, renames `<base>.log.swap` over `<base>.log` and
//!    `<base>.index.swap` over `<base>.index`, and replaces the segments in
//!    memory;
//! 5. fsyncs the directory, then removes the marker.
//!
//! Recovery ([`finish_interrupted`]) removes every `.cleaned` file and every
//! `.swap` file without a marker (a swap that never committed: the old
//! segments are all there), and for each marker does step 4 again: the
//! segments with a base inside `(base, end)` can only be the group's old
//! ones (offsets are never reused), and a `.swap` file still there replaces
//! its final name. Doing it twice changes nothing, so a marker left behind by
//! a crash between step 5's fsync and its removal is harmless.

use std::io;
use std::path::Path;

use crate::checkpoint::{read_checkpoint, write_checkpoint};
use crate::error::{LogError, Result};
use crate::io::{Storage, child};
use crate::segment::{index_file_name, log_file_name, parse_file_name};

pub(crate) const CLEANED: &str = ".cleaned";
pub(crate) const SWAP: &str = ".swap";
const MARKER_EXT: &str = "swapping";

pub(crate) fn marker_name(base: i64) -> String {
    format!("{base:020}.{MARKER_EXT}")
}

/// Commits a swap whose `.swap` files are written (step 3).
pub(crate) fn commit(storage: &dyn Storage, dir: &Path, base: i64, end: i64) -> io::Result<()> {
    write_checkpoint(storage, dir, &marker_name(base), end)
}

/// Step 4's file work: the group's other segments removed, the `.swap`
/// files renamed to their final names. Idempotent.
pub(crate) fn install(storage: &dyn Storage, dir: &Path, base: i64, end: i64, names: &[String]) -> io::Result<()> {
    for name in names {
        let other = parse_file_name(name, "log").or_else(|| parse_file_name(name, "index"));
        if other.is_some_and(|b| b > base && b < end) {
            remove_if_there(storage, &child(dir, name))?;
        }
    }
    for final_name in [log_file_name(base), index_file_name(base)] {
        let swap = child(dir, &format!("{final_name}{SWAP}"));
        if storage.exists(&swap) {
            storage.rename(&swap, &child(dir, &final_name))?;
        }
    }
    Ok(())
}

fn remove_if_there(storage: &dyn Storage, path: &Path) -> io::Result<()> {
    match storage.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes what a cleaner left before its commit point: the `.cleaned` and
/// `.swap` files of `base`.
pub(crate) fn discard(storage: &dyn Storage, dir: &Path, base: i64) -> io::Result<()> {
    for final_name in [log_file_name(base), index_file_name(base)] {
        for suffix in [CLEANED, SWAP] {
            remove_if_there(storage, &child(dir, &format!("{final_name}{suffix}")))?;
        }
    }
    Ok(())
}

/// The end offset a marker records. A marker is replaced whole, so it can
/// only be unreadable by damage; then the end is read from the new segment
/// itself (its batches scanned, as recovery scans any segment), which covers
/// the same offsets.
fn marker_end(storage: &dyn Storage, dir: &Path, base: i64) -> Result<i64> {
    match read_checkpoint(storage, dir, &marker_name(base)) {
        Ok(Some(end)) => return Ok(end),
        Ok(None) => return Ok(base),
        Err(e) => {
            tracing::error!(dir = %dir.display(), base, error = %e, "damaged swap marker; reading the end from the new segment")
        }
    }
    let swap = child(dir, &format!("{}{SWAP}", log_file_name(base)));
    let path = if storage.exists(&swap) {
        swap
    } else {
        child(dir, &log_file_name(base))
    };
    let file = storage
        .open(&path, crate::io::OpenMode::Existing)
        .map_err(|e| LogError::io("open", &path, e))?;
    let scan = crate::segment::scan(&*file, base, u32::MAX, i64::MAX).map_err(|e| LogError::io("scan", &path, e))?;
    Ok(scan.next_offset)
}

/// Finishes or rolls back every swap a crash interrupted (see the module
/// docs), before recovery lists the segments. Returns how many it finished.
pub(crate) fn finish_interrupted(storage: &dyn Storage, dir: &Path) -> Result<usize> {
    let list = |storage: &dyn Storage| storage.list_dir(dir).map_err(|e| LogError::io("list", dir, e));
    let names = list(storage)?;
    let markers: Vec<i64> = names.iter().filter_map(|n| parse_file_name(n, MARKER_EXT)).collect();
    let mut changed = false;
    for &base in &markers {
        let end = marker_end(storage, dir, base)?;
        install(storage, dir, base, end, &names).map_err(|e| LogError::io("finish swap in", dir, e))?;
        tracing::info!(dir = %dir.display(), base, end, "finished a compacted segment's swap interrupted by a crash");
        changed = true;
    }
    // Durable before the markers go: otherwise a crash could bring back old
    // segments without the marker that says to remove them.
    if changed {
        storage
            .sync_dir(dir)
            .map_err(|e| LogError::io("sync directory", dir, e))?;
    }
    for name in list(storage)? {
        let stale = name.ends_with(CLEANED) || name.ends_with(SWAP) || parse_file_name(&name, MARKER_EXT).is_some();
        if stale {
            let path = child(dir, &name);
            remove_if_there(storage, &path).map_err(|e| LogError::io("remove", &path, e))?;
            changed = true;
        }
    }
    if changed {
        storage
            .sync_dir(dir)
            .map_err(|e| LogError::io("sync directory", dir, e))?;
    }
    Ok(markers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::{Spec, batch};
    use crate::io::OpenMode;
    use crate::sim::SimStorage;

    /// A damaged marker: the group's end is read from the new segment, and
    /// the old segments it replaced are removed, the later one kept.
    #[test]
    fn a_damaged_marker_takes_the_end_from_the_new_segment() {
        let storage = SimStorage::new();
        let dir = Path::new("/d");
        storage.create_dir_all(dir).unwrap();
        let put = |name: &str, bytes: &[u8]| {
            let f = storage.open(&child(dir, name), OpenMode::CreateOrOpen).unwrap();
            f.write_all_at(bytes, 0).unwrap();
        };
        let mut b = batch(
            Spec {
                record_count: 20,
                ..Spec::default()
            },
            200,
            1,
        );
        crate::batch::assign(&mut b, 0, 0);
        put(&format!("{}{SWAP}", log_file_name(0)), &b);
        put(&log_file_name(0), b"old");
        put(&log_file_name(10), b"old, inside the group");
        put(&log_file_name(20), b"after the group");
        put(&marker_name(0), b"not a checkpoint");
        assert_eq!(finish_interrupted(&storage, dir).unwrap(), 1);
        let mut names = storage.list_dir(dir).unwrap();
        names.sort();
        assert_eq!(names, vec![log_file_name(0), log_file_name(20)]);
        assert_eq!(storage.read_file(&child(dir, &log_file_name(0))).unwrap(), b);
    }
}
