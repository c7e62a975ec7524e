//! What every partition's log shares: storage, clock and the caches of file handles.
//!
//! No partition holds a file open on its own: sealed segments' and indexes' handles
//! live in one bounded cache, the active segments' write handles in another, so the
//! descriptors a broker needs do not grow with its partition count. A partition
//! whose handle was evicted reopens its file on its next access (one `open`).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::io::{Clock, FsStorage, OpenMode, Storage, StorageFile, SystemClock};

/// Default for [`Env::new`]'s `open_files_max`.
pub const OPEN_FILES_MAX_DEFAULT: usize = 1024;
/// Default bound of the active segments' write handles kept open across
/// partitions (see [`Env::with_bounds`]).
pub const ACTIVE_FILES_MAX_DEFAULT: usize = 512;

/// Told of every successful fsync of a partition's active segment: how long
/// it took and how many appended batches it made durable. Called on the
/// thread that fsynced, outside every lock; it must be quick.
pub trait FsyncObserver: Send + Sync {
    fn fsynced(&self, micros: u64, batches: u64);
}

/// The environment the logs run in. One per broker.
pub struct Env {
    /// Where the logs' files are: the file system, or the simulator in tests.
    pub storage: Arc<dyn Storage>,
    /// Wall and monotonic time: the system's, or a simulated one.
    pub clock: Arc<dyn Clock>,
    /// Sealed segments' and indexes' handles, for reads.
    handles: HandleCache,
    /// Active segments' handles, for appends, fsyncs and reads of the tail.
    active: HandleCache,
    /// Told of every fsync that made appends durable (the metrics), once set.
    fsync_observer: OnceLock<Arc<dyn FsyncObserver>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .field("handles", &self.handles)
            .field("active", &self.active)
            .field("fsync_observer", &self.fsync_observer.get().is_some())
            .finish()
    }
}

/// The active segment's handle as a partition knows it: the file's path, and a
/// weak reference to the cache's slot, so a hit costs no lock and a partition
/// never keeps its file open by itself.
#[derive(Debug, Clone)]
pub(crate) struct ActiveHandle {
    pub(crate) path: PathBuf,
    slot: Weak<Slot>,
}

impl Env {
    /// `open_files_max` bounds the handles kept open for sealed segments across
    /// all partitions; the active segments' handles get the default bound.
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>, open_files_max: usize) -> Arc<Env> {
        Env::with_bounds(storage, clock, open_files_max, ACTIVE_FILES_MAX_DEFAULT)
    }

    /// As [`Env::new`], with `active_files_max` bounding the active segments'
    /// write handles kept open across all partitions. Together the two bounds
    /// are what the logs keep open at rest, whatever the partition count; an
    /// operation in progress holds its handle until it ends, so at most one
    /// more per thread working on a log is open for a moment.
    pub fn with_bounds(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        open_files_max: usize,
        active_files_max: usize,
    ) -> Arc<Env> {
        assert!(open_files_max >= 1, "open_files_max must be at least 1");
        assert!(active_files_max >= 1, "active_files_max must be at least 1");
        Arc::new(Env {
            storage,
            clock,
            handles: HandleCache::new(open_files_max),
            active: HandleCache::new(active_files_max),
            fsync_observer: OnceLock::new(),
        })
    }

    /// Installs the observer of fsyncs (once; later calls are ignored and
    /// return false).
    pub fn set_fsync_observer(&self, observer: Arc<dyn FsyncObserver>) -> bool {
        self.fsync_observer.set(observer).is_ok()
    }

    pub(crate) fn observe_fsync(&self, micros: u64, batches: u64) {
        if let Some(o) = self.fsync_observer.get() {
            o.fsynced(micros, batches);
        }
    }

    /// The real file system and clock.
    pub fn system() -> Arc<Env> {
        Env::new(
            Arc::new(FsStorage),
            Arc::new(SystemClock::default()),
            OPEN_FILES_MAX_DEFAULT,
        )
    }

    /// The bound on sealed files' handles.
    pub fn open_files_max(&self) -> usize {
        self.handles.max
    }

    /// The bound on active segments' handles.
    pub fn active_files_max(&self) -> usize {
        self.active.max
    }

    /// A handle to an existing sealed file, from the cache or freshly opened.
    pub(crate) fn sealed_file(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.handles.get(&*self.storage, path).map(|slot| slot.file.clone())
    }

    /// Drops a cached handle, before the file is deleted or rewritten. A reader
    /// that raced with a roll may have put a sealed segment in the active cache.
    pub(crate) fn forget_file(&self, path: &Path) {
        self.handles.forget(path);
        self.active.forget(path);
    }

    /// Drops every cached handle of files in `dir`, when its log goes away.
    pub(crate) fn forget_dir(&self, dir: &Path) {
        self.handles.forget_dir(dir);
        self.active.forget_dir(dir);
    }

    /// Number of cached handles of sealed files (for tests and metrics).
    pub fn cached_files(&self) -> usize {
        self.handles.len()
    }

    /// Number of cached handles of active segments (for tests and metrics).
    pub fn cached_active_files(&self) -> usize {
        self.active.len()
    }

    /// Puts the freshly created or recovered active segment's handle in the
    /// cache (evicting the least recently used one if it is full) and returns
    /// what its log keeps of it.
    pub(crate) fn adopt_active(&self, path: PathBuf, file: Arc<dyn StorageFile>) -> ActiveHandle {
        let slot = self.active.insert(&path, file);
        ActiveHandle {
            path,
            slot: Arc::downgrade(&slot),
        }
    }

    /// The active segment's handle: the cached one, or the file reopened if it
    /// was evicted. `handle` remembers the slot for the next call.
    ///
    /// Evicting an active handle closes its descriptor without an fsync (once
    /// any write or fsync in progress through it has returned: those hold their
    /// own reference). That loses nothing and hides no error: dirty pages belong
    /// to the inode, not the descriptor, so the next fsync through any
    /// descriptor of the file covers them; and since Linux 4.16 a writeback
    /// error that no descriptor has reported yet is reported to the next fsync
    /// even through a descriptor opened after the error. Every fsync of an
    /// active segment goes through its log's exclusive fsync, which poisons on
    /// failure, so such an error poisons the partition as it would have
    /// without the eviction. Syncing before evicting was the alternative; it
    /// would put another partition's fsync, and its failure, on the path of
    /// whichever append happened to need the slot.
    pub(crate) fn active_file(&self, handle: &mut ActiveHandle) -> io::Result<Arc<dyn StorageFile>> {
        if let Some(slot) = handle.slot.upgrade() {
            self.active.touch(&slot);
            return Ok(slot.file.clone());
        }
        let slot = self.active.get(&*self.storage, &handle.path)?;
        handle.slot = Arc::downgrade(&slot);
        Ok(slot.file.clone())
    }

    /// [`Env::active_file`] for a caller that cannot update the handle (a reader).
    pub(crate) fn active_file_shared(&self, handle: &ActiveHandle) -> io::Result<Arc<dyn StorageFile>> {
        if let Some(slot) = handle.slot.upgrade() {
            self.active.touch(&slot);
            return Ok(slot.file.clone());
        }
        self.active
            .get(&*self.storage, &handle.path)
            .map(|slot| slot.file.clone())
    }

    /// Drops the active handle of a segment that was sealed: from now on it
    /// is read through the sealed files' cache.
    pub(crate) fn forget_active(&self, path: &Path) {
        self.active.forget(path);
    }
}

/// One cached handle and when it was last used.
#[derive(Debug)]
struct Slot {
    file: Arc<dyn StorageFile>,
    /// Value of the cache's clock at the last use.
    used: AtomicU64,
}

/// A least-recently-used cache of open files. Evicting a handle that a reader or
/// writer still holds does not close it under them: handles are reference
/// counted, and the descriptor closes when the last one is dropped.
#[derive(Debug)]
struct HandleCache {
    max: usize,
    /// A logical clock ordering uses.
    tick: AtomicU64,
    map: Mutex<HashMap<PathBuf, Arc<Slot>>>,
}

impl HandleCache {
    fn new(max: usize) -> HandleCache {
        HandleCache {
            max,
            tick: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Slot>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch(&self, slot: &Slot) {
        let now = self.tick.fetch_add(1, Ordering::Relaxed) + 1;
        slot.used.store(now, Ordering::Relaxed);
    }

    fn get(&self, storage: &dyn Storage, path: &Path) -> io::Result<Arc<Slot>> {
        let mut map = self.lock();
        if let Some(slot) = map.get(path) {
            self.touch(slot);
            return Ok(slot.clone());
        }
        self.make_room(&mut map);
        // Opened under the lock: two misses on the same file must not both open it.
        let file = storage.open(path, OpenMode::Existing)?;
        Ok(self.insert_locked(&mut map, path, file))
    }

    fn insert(&self, path: &Path, file: Arc<dyn StorageFile>) -> Arc<Slot> {
        let mut map = self.lock();
        map.remove(path);
        self.make_room(&mut map);
        self.insert_locked(&mut map, path, file)
    }

    fn insert_locked(
        &self,
        map: &mut HashMap<PathBuf, Arc<Slot>>,
        path: &Path,
        file: Arc<dyn StorageFile>,
    ) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            file,
            used: AtomicU64::new(0),
        });
        self.touch(&slot);
        map.insert(path.to_path_buf(), slot.clone());
        slot
    }

    /// Evicts the least recently used handles until one more fits.
    fn make_room(&self, map: &mut HashMap<PathBuf, Arc<Slot>>) {
        while map.len() >= self.max {
            // A linear scan is fine: a miss costs an `open` anyway, and `max`
            // is at most a few thousand.
            let oldest = map
                .iter()
                .min_by_key(|(_, slot)| slot.used.load(Ordering::Relaxed))
                .map(|(p, _)| p.clone());
            match oldest {
                Some(oldest) => map.remove(&oldest),
                None => break,
            };
        }
    }

    fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    fn forget_dir(&self, dir: &Path) {
        self.lock().retain(|path, _| !path.starts_with(dir));
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimClock, SimStorage};

    #[test]
    fn the_cache_never_holds_more_than_its_limit() {
        let storage = Arc::new(SimStorage::new());
        storage.create_dir_all(Path::new("/d")).unwrap();
        for i in 0..10 {
            storage
                .open(&PathBuf::from(format!("/d/{i}")), OpenMode::CreateNew)
                .unwrap();
        }
        let env = Env::new(storage, Arc::new(SimClock::new(0)), 3);
        for round in 0..3 {
            for i in 0..10 {
                env.sealed_file(&PathBuf::from(format!("/d/{i}"))).unwrap();
                assert!(env.cached_files() <= 3, "round {round} file {i}");
            }
        }
        assert!(env.sealed_file(Path::new("/d/missing")).is_err());
    }
}
