//! What every partition's log shares: storage, clock and the cache of file handles.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::io::{Clock, FsStorage, OpenMode, Storage, StorageFile, SystemClock};

/// Default for [`Env::new`]'s `open_files_max`.
pub const OPEN_FILES_MAX_DEFAULT: usize = 1024;

/// Told of every successful fsync of a partition's active segment: how long
/// it took and how many appended batches it made durable. Called on the
/// thread that fsynced, outside every lock; it must be quick.
pub trait FsyncObserver: Send + Sync {
    fn fsynced(&self, micros: u64, batches: u64);
}

/// The environment the logs run in. One per broker.
pub struct Env {
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    handles: HandleCache,
    fsync_observer: OnceLock<Arc<dyn FsyncObserver>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("storage", &self.storage)
            .field("clock", &self.clock)
            .field("handles", &self.handles)
            .field("fsync_observer", &self.fsync_observer.get().is_some())
            .finish()
    }
}

impl Env {
    /// `open_files_max` bounds the handles kept open for sealed segments across all
    /// partitions; each open partition also holds its active segment's file.
    pub fn new(storage: Arc<dyn Storage>, clock: Arc<dyn Clock>, open_files_max: usize) -> Arc<Env> {
        assert!(open_files_max >= 1, "open_files_max must be at least 1");
        Arc::new(Env {
            storage,
            clock,
            handles: HandleCache {
                max: open_files_max,
                inner: Mutex::new(CacheInner::default()),
            },
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

    /// A handle to an existing sealed file, from the cache or freshly opened.
    pub(crate) fn sealed_file(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        self.handles.get(&*self.storage, path)
    }

    /// Drops a cached handle, before the file is deleted or rewritten.
    pub(crate) fn forget_file(&self, path: &Path) {
        self.handles.forget(path);
    }

    /// Drops every cached handle of files in `dir`, when its log goes away.
    pub(crate) fn forget_dir(&self, dir: &Path) {
        let mut inner = self.handles.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.retain(|path, _| !path.starts_with(dir));
    }

    /// Number of cached handles (for tests and metrics).
    pub fn cached_files(&self) -> usize {
        self.handles.inner.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

/// A least-recently-used cache of open files. Evicting a handle that a reader still
/// holds does not close it under the reader: handles are reference counted.
#[derive(Debug)]
struct HandleCache {
    max: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    tick: u64,
    map: HashMap<PathBuf, (Arc<dyn StorageFile>, u64)>,
}

impl HandleCache {
    fn get(&self, storage: &dyn Storage, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((file, used)) = inner.map.get_mut(path) {
            *used = tick;
            return Ok(file.clone());
        }
        if inner.map.len() >= self.max {
            // A linear scan is fine: misses are rare next to reads and `max` is small.
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(p, _)| p.clone());
            if let Some(oldest) = oldest {
                inner.map.remove(&oldest);
            }
        }
        let file = storage.open(path, OpenMode::Existing)?;
        inner.map.insert(path.to_path_buf(), (file.clone(), tick));
        Ok(file)
    }

    fn forget(&self, path: &Path) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).map.remove(path);
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
