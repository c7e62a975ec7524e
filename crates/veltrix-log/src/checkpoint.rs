//! Small files that must survive power loss whole: durable replacement, and
//! 12-byte checkpoints holding one number and its CRC32C.
//!
//! Used for the log start offset, the recovery point, producer state snapshots,
//! and by the broker for its topic catalogue and producer id block.

use std::io;
use std::path::Path;

use crate::error::{LogError, Result};
use crate::io::{OpenMode, Storage, child};

/// Size of a checkpoint file: a big-endian `i64` and its CRC32C.
pub const CHECKPOINT_BYTES: usize = 12;

/// Durably replaces `dir/name` with `bytes`: write a temporary file, fsync it,
/// rename it over the old one, fsync the directory. After a crash the file holds
/// either the old or the new bytes, never a mix. A leftover `name.tmp` is
/// garbage to be removed by whoever owns the directory.
pub fn replace_file(storage: &dyn Storage, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = child(dir, &format!("{name}.tmp"));
    let file = storage.open(&tmp, OpenMode::CreateOrOpen)?;
    file.set_len(0)?;
    file.write_all_at(bytes, 0)?;
    file.sync()?;
    storage.rename(&tmp, &child(dir, name))?;
    storage.sync_dir(dir)
}

/// A checkpoint's bytes: the value and its CRC32C.
pub fn encode_checkpoint(value: i64) -> [u8; CHECKPOINT_BYTES] {
    let mut buf = [0u8; CHECKPOINT_BYTES];
    buf[0..8].copy_from_slice(&value.to_be_bytes());
    let crc = crc32c::crc32c(&buf[0..8]);
    buf[8..12].copy_from_slice(&crc.to_be_bytes());
    buf
}

/// Durably replaces the checkpoint `dir/name` with `value`.
pub fn write_checkpoint(storage: &dyn Storage, dir: &Path, name: &str, value: i64) -> io::Result<()> {
    replace_file(storage, dir, name, &encode_checkpoint(value))
}

/// Overwrites the checkpoint `dir/name` in place and fsyncs it: cheaper than
/// [`write_checkpoint`], for values rewritten often whose loss is harmless. A torn
/// write fails the checksum and [`read_checkpoint`] reports it.
pub fn overwrite_checkpoint(storage: &dyn Storage, dir: &Path, name: &str, value: i64) -> io::Result<()> {
    open_for_overwrite(storage, dir, name)?.write(storage, dir, value)
}

/// A checkpoint file opened for [`overwrite_checkpoint`], nothing written yet:
/// a caller can tell a failure to open (nothing changed on disk) from a failed
/// write or fsync.
pub struct OpenCheckpoint {
    file: std::sync::Arc<dyn crate::io::StorageFile>,
    /// Created by the open: its directory entry must be made durable too.
    fresh: bool,
}

/// Opens (creating) `dir/name` for overwriting.
pub fn open_for_overwrite(storage: &dyn Storage, dir: &Path, name: &str) -> io::Result<OpenCheckpoint> {
    let path = child(dir, name);
    let fresh = !storage.exists(&path);
    let file = storage.open(&path, OpenMode::CreateOrOpen)?;
    Ok(OpenCheckpoint { file, fresh })
}

impl OpenCheckpoint {
    /// Writes `value` and makes it durable.
    pub fn write(self, storage: &dyn Storage, dir: &Path, value: i64) -> io::Result<()> {
        self.file.write_all_at(&encode_checkpoint(value), 0)?;
        self.file.sync()?;
        if self.fresh {
            storage.sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Reads the checkpoint `dir/name`: `None` if there is none, `Corrupt` if its
/// size or checksum is wrong or it holds a negative value.
pub fn read_checkpoint(storage: &dyn Storage, dir: &Path, name: &str) -> Result<Option<i64>> {
    let path = child(dir, name);
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
        return Err(corrupt("checkpoint has the wrong size"));
    }
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| LogError::io("read", &path, e))?;
    let crc = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    if crc32c::crc32c(&buf[0..8]) != crc {
        return Err(corrupt("checkpoint fails its checksum"));
    }
    let value = i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes"));
    if !(0..=crate::batch::BASE_OFFSET_MAX).contains(&value) {
        return Err(corrupt("checkpoint holds an impossible value"));
    }
    Ok(Some(value))
}
