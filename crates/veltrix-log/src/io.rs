//! The narrow interface through which the log touches the disk and the clock.
//!
//! Everything the engine does to files goes through [`Storage`] and [`StorageFile`],
//! and every notion of time through [`Clock`]. Production uses [`FsStorage`] and
//! [`SystemClock`]; tests use [`crate::sim`], which keeps files in memory, separates
//! what was written from what was made durable, and injects torn writes, bit flips,
//! failing fsyncs and a full disk.
//!
//! The contract mirrors POSIX as the engine relies on it:
//! - `write_at` either writes all of `buf` or returns an error; after an error the
//!   bytes in the range are unspecified.
//! - Data written is durable only after `sync` on the file returns `Ok`.
//! - Creating, renaming or removing a file is durable only after `sync_dir` on its
//!   parent directory returns `Ok`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A file opened through [`Storage`]. Shared between the writer and readers, so all
/// methods take `&self` and use positional I/O.
#[allow(
    clippy::len_without_is_empty,
    reason = "a file's emptiness is never asked on its own"
)]
pub trait StorageFile: Send + Sync + std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns the number read (0 at end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, or fails.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes the pieces one after the other from `offset`, or fails; as
    /// [`StorageFile::write_all_at`] of their concatenation, without making it.
    fn write_all_vectored_at(&self, pieces: &[&[u8]], mut offset: u64) -> io::Result<()> {
        for piece in pieces {
            self.write_all_at(piece, offset)?;
            offset += piece.len() as u64;
        }
        Ok(())
    }
    /// Makes every byte written so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Appends exactly `len` bytes read at `offset` to `buf`, failing with
    /// `UnexpectedEof` if the file is shorter (`buf` is then as it was). The real
    /// file reads into the vector's spare room, without clearing it first.
    fn read_exact_at_appending(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        let start = buf.len();
        buf.resize(start + len, 0);
        let outcome = self.read_exact_at(&mut buf[start..], offset);
        if outcome.is_err() {
            buf.truncate(start);
        }
        outcome
    }

    /// Reads exactly `buf.len()` bytes at `offset`, failing with `UnexpectedEof` if
    /// the file is shorter.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
            }
        }
        Ok(())
    }
}

/// How [`Storage::open`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file for reading and writing; fail if it is missing.
    Existing,
    /// Create the file, failing if it exists.
    CreateNew,
    /// Open the file, creating it empty if it is missing.
    CreateOrOpen,
}

/// A directory tree of files. One instance serves every partition.
pub trait Storage: Send + Sync + std::fmt::Debug {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) directly inside `path`.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    fn exists(&self, path: &Path) -> bool;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file at `path` (created if missing) for as
    /// long as the guard lives, so that two processes never write one data
    /// directory. Fails with `WouldBlock` at once if another holder has it.
    fn lock_exclusive(&self, path: &Path) -> io::Result<LockGuard>;
    /// The space of the file system holding `path`; `None` when it cannot be
    /// told.
    fn space(&self, _path: &Path) -> io::Result<Option<DiskSpace>> {
        Ok(None)
    }
}

/// Holds a lock taken with [`Storage::lock_exclusive`]; dropping it releases the
/// lock (and a process that dies releases its locks with it).
pub struct LockGuard(#[allow(dead_code, reason = "held for its drop")] Box<dyn Send + Sync>);

impl LockGuard {
    /// Wraps whatever releases the lock when dropped.
    pub fn new(holder: impl Send + Sync + 'static) -> LockGuard {
        LockGuard(Box::new(holder))
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// Time as the engine sees it. Wall time stamps segments and drives retention;
/// monotonic time drives intervals.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Milliseconds on a monotonic clock with an arbitrary origin.
    fn monotonic_ms(&self) -> u64;
}

/// A file system's size and what unprivileged writers may still use of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub available_bytes: u64,
    pub total_bytes: u64,
}

/// The real file system.
#[derive(Debug, Default, Clone)]
pub struct FsStorage;

#[derive(Debug)]
struct FsFile(File);

impl StorageFile for FsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn read_exact_at_appending(&self, buf: &mut Vec<u8>, len: usize, offset: u64) -> io::Result<()> {
        let start = buf.len();
        buf.reserve_exact(len);
        let mut at = offset;
        while buf.len() < start + len {
            // The spare room may be larger than what is left to read: the extra
            // bytes are cut off below.
            match rustix::io::pread(&self.0, rustix::buffer::spare_capacity(buf), at) {
                Ok(0) => {
                    buf.truncate(start);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => at += n as u64,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    buf.truncate(start);
                    return Err(e.into());
                }
            }
        }
        buf.truncate(start + len);
        Ok(())
    }

    /// One `pwritev` for up to four pieces at a time (more calls only if the
    /// kernel writes part); allocates nothing.
    fn write_all_vectored_at(&self, pieces: &[&[u8]], mut offset: u64) -> io::Result<()> {
        const PIECES_PER_CALL: usize = 4;
        for group in pieces.chunks(PIECES_PER_CALL) {
            let mut slices = [io::IoSlice::new(&[]); PIECES_PER_CALL];
            for (slice, piece) in slices.iter_mut().zip(group) {
                *slice = io::IoSlice::new(piece);
            }
            let mut rest = &mut slices[..group.len()];
            io::IoSlice::advance_slices(&mut rest, 0);
            while !rest.is_empty() {
                match rustix::io::pwritev(&self.0, rest, offset) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        offset += n as u64;
                        io::IoSlice::advance_slices(&mut rest, n);
                    }
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Storage for FsStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn space(&self, path: &Path) -> io::Result<Option<DiskSpace>> {
        let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
        Ok(Some(DiskSpace {
            available_bytes: s.f_bavail.saturating_mul(s.f_frsize),
            total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
        }))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateNew => {
                options.create_new(true);
            }
            OpenMode::CreateOrOpen => {
                options.create(true);
            }
        }
        Ok(Arc::new(FsFile(options.open(path)?)))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<LockGuard> {
        // An advisory `flock` on an open file: the kernel releases it when the
        // process exits however it exits, so a `kill -9` never leaves a stale
        // lock behind, unlike a lock file whose existence is the lock.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(LockGuard::new(file)),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The system clock.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Joins a directory and a file name; a small helper kept here so path handling has
/// one home.
pub fn child(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_writes_land_where_their_concatenation_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = FsStorage.open(&path, OpenMode::CreateNew).unwrap();
        file.write_all_at(&[0xee; 10], 0).unwrap();
        // Empty pieces, a large one, and more pieces than one system call takes.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let many: Vec<Vec<u8>> = (0..2_000u32).map(|i| vec![i as u8; (i % 7) as usize]).collect();
        let mut pieces: Vec<&[u8]> = vec![b"head", b"", &big];
        pieces.extend(many.iter().map(Vec::as_slice));
        file.write_all_vectored_at(&pieces, 5).unwrap();
        let expected: Vec<u8> = [&[0xee; 5][..], &pieces.concat()].concat();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn reads_append_exactly_what_was_asked_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = FsStorage.open(&dir.path().join("f"), OpenMode::CreateNew).unwrap();
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        file.write_all_at(&content, 0).unwrap();
        let mut buf = b"kept".to_vec();
        buf.reserve(1 << 20); // More room than the read: it must stop at `len`.
        file.read_exact_at_appending(&mut buf, 50_000, 1_000).unwrap();
        assert_eq!(buf.len(), 4 + 50_000);
        assert_eq!(&buf[..4], b"kept");
        assert_eq!(&buf[4..], &content[1_000..51_000]);
        let err = file.read_exact_at_appending(&mut buf, 10, 99_995).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf.len(), 4 + 50_000, "a short read appends nothing");
    }
}
