//! In-memory storage and a manual clock, with fault injection, for tests.
//!
//! [`SimStorage`] models what a crash can do to files, not just what a process sees:
//! every file keeps the bytes written (what reads return) apart from the bytes made
//! durable by `sync`, and the list of writes in between. [`SimStorage::crash`] throws
//! away the live state and keeps, per file, the durable bytes plus a random prefix of
//! the pending writes, the last one possibly torn; a file created or removed since
//! its directory was last synced is rolled back too. Faults (failing fsync, failing
//! writes, a full disk, flipped bits) are switched on and off by the test.
//!
//! A failed `sync` behaves like Linux after an fsync error, only stricter: the
//! pending writes stay visible to reads, and nothing written to that file becomes
//! durable again, though later syncs report success. Retrying an fsync therefore
//! cannot hide a loss from a crash test.
//!
//! Directories themselves are always durable; only their entries are modelled.
//! Randomness comes from a seed so a failing case replays exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::io::{Clock, LockGuard, OpenMode, Storage, StorageFile};

/// A small deterministic generator (xorshift64*), enough for fault placement.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        SimRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileState {
    /// What reads see.
    live: Vec<u8>,
    /// What survives a crash for certain.
    durable: Vec<u8>,
    /// Changes since the last successful sync, in order.
    pending: Vec<Pending>,
    /// A sync failed: from then on nothing more of this file becomes durable,
    /// even if a later sync reports success.
    sync_failed: bool,
}

#[derive(Debug)]
struct SimFile {
    state: Mutex<FileState>,
    storage: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Faults {
    fail_sync: bool,
    fail_write: bool,
    /// Opening a file fails as when the process is out of file descriptors.
    fail_open: bool,
    capacity_bytes: Option<u64>,
    sync_delay: Option<Duration>,
    /// Changes (writes, syncs, creates, renames, removals) still allowed
    /// before the simulated process stops: later ones fail and change
    /// nothing, as if it had been killed there.
    ops_left: Option<u64>,
}

#[derive(Debug, Default)]
struct Namespace {
    /// Files as processes see them.
    live: BTreeMap<PathBuf, Arc<SimFile>>,
    /// Files as they would be found after a crash.
    durable: BTreeMap<PathBuf, Arc<SimFile>>,
    dirs: BTreeSet<PathBuf>,
    /// Paths locked with `lock_exclusive`; a crash releases them all, as the
    /// death of a process does.
    locks: BTreeSet<PathBuf>,
}

/// Releases a simulated lock when dropped.
struct SimLock {
    ns: Arc<Mutex<Namespace>>,
    path: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        lock(&self.ns).locks.remove(&self.path);
    }
}

#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    syncs: AtomicU64,
    failed_syncs: AtomicU64,
    /// Total live bytes of all files, for the capacity limit.
    used_bytes: AtomicU64,
    /// Bytes returned by reads, to check how much recovery reads.
    bytes_read: AtomicU64,
    /// Handles open now, and the most ever open at once: what file
    /// descriptors the engine would hold on a real file system.
    open_handles: AtomicU64,
    open_handles_peak: AtomicU64,
}

/// In-memory storage with crash and fault simulation. Cloning shares the files.
#[derive(Debug, Clone)]
pub struct SimStorage {
    ns: Arc<Mutex<Namespace>>,
    shared: Arc<Shared>,
}

impl Default for SimStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test thread must not hide the state from the assertions after it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sizes of a namespace's live files, summed.
fn live_total(ns: &Namespace) -> u64 {
    ns.live.values().map(|f| lock(&f.state).live.len() as u64).sum()
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

fn apply(content: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let end = *offset as usize + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[*offset as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => content.resize(*len as usize, 0),
    }
}

impl Shared {
    /// Counts one change against [`SimStorage::stop_after`]; `true` once the
    /// process is stopped.
    fn halted(&self) -> bool {
        let mut faults = lock(&self.faults);
        match &mut faults.ops_left {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

fn halted_error() -> io::Error {
    io::Error::other("simulated process stop")
}

impl SimStorage {
    /// Lets `ops` more changes (writes, syncs, set_len, file creations,
    /// renames, removals, directory syncs) through and fails every later one
    /// without changing anything: with [`SimStorage::crash`] afterwards, a
    /// process killed at an exact step. `None` lifts it.
    pub fn stop_after(&self, ops: Option<u64>) {
        lock(&self.shared.faults).ops_left = ops;
    }

    pub fn new() -> Self {
        SimStorage {
            ns: Arc::new(Mutex::new(Namespace::default())),
            shared: Arc::new(Shared::default()),
        }
    }

    /// Makes every later `sync` fail (`true`) or succeed (`false`).
    pub fn fail_syncs(&self, on: bool) {
        lock(&self.shared.faults).fail_sync = on;
    }

    /// Makes every later `write_all_at` fail with an I/O error.
    pub fn fail_writes(&self, on: bool) {
        lock(&self.shared.faults).fail_write = on;
    }

    /// Makes every later `open` fail as it does when the process has no file
    /// descriptor left (EMFILE).
    pub fn fail_opens(&self, on: bool) {
        lock(&self.shared.faults).fail_open = on;
    }

    /// Limits the total size of all live files; writes past it fail with
    /// `StorageFull` after writing what fits. `None` removes the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        lock(&self.shared.faults).capacity_bytes = bytes;
    }

    /// Makes every `sync` of a file take `delay` (real time), as a disk would; lets
    /// tests observe that concurrent appends share fsyncs.
    pub fn set_sync_delay(&self, delay: Option<Duration>) {
        lock(&self.shared.faults).sync_delay = delay;
    }

    /// Handles open now (descriptors, on a real file system).
    pub fn open_handles(&self) -> u64 {
        self.shared.open_handles.load(Ordering::Relaxed)
    }

    /// The most handles ever open at once since the last call; the count
    /// starts again from those open now.
    pub fn take_open_handles_peak(&self) -> u64 {
        let now = self.open_handles();
        self.shared.open_handles_peak.swap(now, Ordering::Relaxed)
    }

    /// Bytes returned by `read_at` since the storage was made.
    pub fn bytes_read(&self) -> u64 {
        self.shared.bytes_read.load(Ordering::Relaxed)
    }

    /// Number of successful and failed `sync` calls so far.
    pub fn sync_counts(&self) -> (u64, u64) {
        (
            self.shared.syncs.load(Ordering::Relaxed),
            self.shared.failed_syncs.load(Ordering::Relaxed),
        )
    }

    /// Flips bits (`xor`) at `offset` of a file, in the live and the durable copy,
    /// as a bad disk sector would.
    pub fn corrupt(&self, path: &Path, offset: u64, xor: u8) -> io::Result<()> {
        let ns = lock(&self.ns);
        let file = ns.live.get(path).ok_or_else(|| not_found(path))?;
        let mut st = lock(&file.state);
        let at = offset as usize;
        if at >= st.live.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "offset past end of file"));
        }
        st.live[at] ^= xor;
        if at < st.durable.len() {
            st.durable[at] ^= xor;
        }
        for op in &mut st.pending {
            if let Pending::Write { offset, data } = op
                && (*offset as usize..*offset as usize + data.len()).contains(&at)
            {
                data[at - *offset as usize] ^= xor;
            }
        }
        Ok(())
    }

    /// Full paths of all live files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        lock(&self.ns).live.keys().cloned().collect()
    }

    /// Bytes of all live files together.
    pub fn live_bytes(&self) -> u64 {
        live_total(&lock(&self.ns))
    }

    /// Live contents of a file.
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let ns = lock(&self.ns);
        let file = ns.live.get(path).ok_or_else(|| not_found(path))?;
        Ok(lock(&file.state).live.clone())
    }

    /// Simulates power loss. Files and directory entries roll back to their durable
    /// state; with `torn`, each file also keeps a random prefix of its unsynced
    /// writes, the last of them possibly cut short. Clears all faults.
    ///
    /// Handles to files opened before the crash must not be used afterwards.
    pub fn crash(&self, torn: bool, seed: u64) {
        self.crash_with(seed, |rng, pending| {
            if !torn || pending.is_empty() {
                return Vec::new();
            }
            let keep = rng.upto(pending.len() as u64) as usize;
            let mut kept: Vec<Pending> = pending[..keep].to_vec();
            if let Some(Pending::Write { data, .. }) = kept.last_mut() {
                let cut = rng.upto(data.len() as u64) as usize;
                data.truncate(cut);
            }
            kept
        });
    }

    /// Simulates power loss with writeback out of order: each unsynced write
    /// independently survives whole, survives torn, or is lost, as pages reach the
    /// disk in no particular order. Clears all faults.
    pub fn crash_reordered(&self, seed: u64) {
        self.crash_with(seed, |rng, pending| {
            let mut kept = Vec::new();
            for op in pending {
                match (op, rng.upto(2)) {
                    (_, 0) => {}
                    (Pending::Write { offset, data }, 1) => {
                        let cut = rng.upto(data.len() as u64) as usize;
                        kept.push(Pending::Write {
                            offset: *offset,
                            data: data[..cut].to_vec(),
                        });
                    }
                    (other, _) => kept.push(other.clone()),
                }
            }
            kept
        });
    }

    /// Rebuilds every durable file from its durable bytes plus the unsynced
    /// changes `survive` picks.
    fn crash_with(&self, seed: u64, mut survive: impl FnMut(&mut SimRng, &[Pending]) -> Vec<Pending>) {
        let mut rng = SimRng::new(seed);
        let mut ns = lock(&self.ns);
        let mut survivors = BTreeMap::new();
        for (path, file) in ns.durable.iter() {
            let st = lock(&file.state);
            let mut content = st.durable.clone();
            for op in survive(&mut rng, &st.pending) {
                apply(&mut content, &op);
            }
            let fresh = Arc::new(SimFile {
                state: Mutex::new(FileState {
                    live: content.clone(),
                    durable: content,
                    pending: Vec::new(),
                    sync_failed: false,
                }),
                storage: self.shared.clone(),
            });
            survivors.insert(path.clone(), fresh);
        }
        ns.live = survivors.clone();
        ns.durable = survivors;
        ns.locks.clear();
        self.recount(&ns);
        *lock(&self.shared.faults) = Faults::default();
    }

    fn recount(&self, ns: &Namespace) {
        self.shared.used_bytes.store(live_total(ns), Ordering::Relaxed);
    }
}

/// One open handle of a simulated file, counted while it lives as a file
/// descriptor would be. Every handle of a file shares its contents, as
/// descriptors share an inode.
#[derive(Debug)]
struct SimHandle(Arc<SimFile>);

impl SimHandle {
    fn open(file: Arc<SimFile>) -> Arc<dyn StorageFile> {
        let shared = &file.storage;
        let now = shared.open_handles.fetch_add(1, Ordering::Relaxed) + 1;
        shared.open_handles_peak.fetch_max(now, Ordering::Relaxed);
        Arc::new(SimHandle(file))
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.0.storage.open_handles.fetch_sub(1, Ordering::Relaxed);
    }
}

impl StorageFile for SimHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync()
    }

    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = lock(&self.state);
        let start = (offset as usize).min(st.live.len());
        let n = buf.len().min(st.live.len() - start);
        buf[..n].copy_from_slice(&st.live[start..start + n]);
        self.storage.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.storage.halted() {
            return Err(halted_error());
        }
        let faults = lock(&self.storage.faults);
        if faults.fail_write {
            return Err(io::Error::other("simulated write failure"));
        }
        let capacity = faults.capacity_bytes;
        drop(faults);
        let mut st = lock(&self.state);
        let mut data = buf;
        let mut full = false;
        if let Some(capacity) = capacity {
            let end = offset + buf.len() as u64;
            let grow = end.saturating_sub(st.live.len() as u64);
            let room = capacity.saturating_sub(self.storage.used_bytes.load(Ordering::Relaxed));
            if grow > room {
                let fits = (buf.len() as u64 - (grow - room)) as usize;
                data = &buf[..fits];
                full = true;
            }
        }
        let op = Pending::Write {
            offset,
            data: data.to_vec(),
        };
        let before = st.live.len() as u64;
        apply(&mut st.live, &op);
        self.storage
            .used_bytes
            .fetch_add(st.live.len() as u64 - before, Ordering::Relaxed);
        st.pending.push(op);
        if full {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated disk full"));
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        if self.storage.halted() {
            return Err(halted_error());
        }
        let (fail, delay) = {
            let faults = lock(&self.storage.faults);
            (faults.fail_sync, faults.sync_delay)
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        let mut st = lock(&self.state);
        if fail || st.sync_failed {
            // Linux drops the dirty pages from the writeback set after a failed
            // fsync, so a retry can report success without making them durable.
            // The simulator is stricter: after a failure the file never gains
            // durable bytes again, so any engine that retries shows up as data loss.
            st.pending.clear();
            if !fail {
                self.storage.syncs.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            st.sync_failed = true;
            self.storage.failed_syncs.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other("simulated fsync failure"));
        }
        st.durable = st.live.clone();
        st.pending.clear();
        self.storage.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.state).live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.storage.halted() {
            return Err(halted_error());
        }
        let mut st = lock(&self.state);
        let before = st.live.len() as u64;
        let op = Pending::SetLen(len);
        apply(&mut st.live, &op);
        self.storage.used_bytes.fetch_add(len, Ordering::Relaxed);
        self.storage.used_bytes.fetch_sub(before, Ordering::Relaxed);
        st.pending.push(op);
        Ok(())
    }
}

impl Storage for SimStorage {
    /// With a capacity set, what is left of it; without, unknown.
    fn space(&self, _path: &Path) -> io::Result<Option<crate::io::DiskSpace>> {
        let capacity = lock(&self.shared.faults).capacity_bytes;
        Ok(capacity.map(|total| crate::io::DiskSpace {
            available_bytes: total.saturating_sub(self.shared.used_bytes.load(Ordering::Relaxed)),
            total_bytes: total,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut ns = lock(&self.ns);
        for ancestor in path.ancestors() {
            ns.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let ns = lock(&self.ns);
        if !ns.dirs.contains(path) {
            return Err(not_found(path));
        }
        let mut names: Vec<String> = ns
            .live
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.extend(
            ns.dirs
                .iter()
                .filter(|d| d.parent() == Some(path))
                .filter_map(|d| d.file_name()?.to_str().map(str::to_owned)),
        );
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        if lock(&self.shared.faults).fail_open {
            return Err(io::Error::from_raw_os_error(24));
        }
        let mut ns = lock(&self.ns);
        let parent = path.parent().unwrap_or(Path::new(""));
        if !ns.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        match (ns.live.get(path), mode) {
            (Some(_), OpenMode::CreateNew) => Err(io::ErrorKind::AlreadyExists.into()),
            (Some(file), _) => Ok(SimHandle::open(file.clone())),
            (None, OpenMode::Existing) => Err(not_found(path)),
            (None, _) if self.shared.halted() => Err(halted_error()),
            (None, _) => {
                let file = Arc::new(SimFile {
                    state: Mutex::new(FileState::default()),
                    storage: self.shared.clone(),
                });
                ns.live.insert(path.to_path_buf(), file.clone());
                Ok(SimHandle::open(file))
            }
        }
    }

    fn exists(&self, path: &Path) -> bool {
        let ns = lock(&self.ns);
        ns.live.contains_key(path) || ns.dirs.contains(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.shared.halted() {
            return Err(halted_error());
        }
        let mut ns = lock(&self.ns);
        ns.live.remove(path).ok_or_else(|| not_found(path))?;
        self.recount(&ns);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut ns = lock(&self.ns);
        ns.live.retain(|p, _| !p.starts_with(path));
        ns.durable.retain(|p, _| !p.starts_with(path));
        ns.dirs.retain(|d| !d.starts_with(path));
        self.recount(&ns);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.shared.halted() {
            return Err(halted_error());
        }
        let mut ns = lock(&self.ns);
        let file = ns.live.remove(from).ok_or_else(|| not_found(from))?;
        ns.live.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<LockGuard> {
        if !lock(&self.ns).locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(LockGuard::new(SimLock {
            ns: self.ns.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.shared.halted() {
            return Err(halted_error());
        }
        if lock(&self.shared.faults).fail_sync {
            self.shared.failed_syncs.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other("simulated directory fsync failure"));
        }
        let mut ns = lock(&self.ns);
        let ns = &mut *ns;
        ns.durable.retain(|p, _| p.parent() != Some(path));
        for (p, f) in ns.live.iter() {
            if p.parent() == Some(path) {
                ns.durable.insert(p.clone(), f.clone());
            }
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct SimClock {
    now_ms: AtomicI64,
    monotonic_ms: AtomicU64,
}

impl SimClock {
    pub fn new(now_ms: i64) -> Self {
        SimClock {
            now_ms: AtomicI64::new(now_ms),
            monotonic_ms: AtomicU64::new(0),
        }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, ms: u64) {
        self.now_ms.fetch_add(ms as i64, Ordering::SeqCst);
        self.monotonic_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }
}
