//! Small durable files of the data directory that are read whole and
//! replaced whole (`quotas.json`, `acls.json`, `credentials.json`): the
//! narrow file stores behind the engine's store interfaces share this.

use std::path::Path;

use veltrix_log::io::{OpenMode, Storage, child};

use crate::error::{CoreError, Result};

/// The whole of `dir`'s file `name`, `None` when there is none; one longer
/// than `bytes_max` is refused rather than read (a corrupt length must not
/// size an allocation).
pub(crate) fn read(storage: &dyn Storage, dir: &Path, name: &str, bytes_max: u64) -> Result<Option<Vec<u8>>> {
    let path = child(dir, name);
    if !storage.exists(&path) {
        return Ok(None);
    }
    let io = |op, source| CoreError::Io {
        op,
        path: path.clone(),
        source,
    };
    let file = storage.open(&path, OpenMode::Existing).map_err(|e| io("open", e))?;
    let len = file.len().map_err(|e| io("stat", e))?;
    if len > bytes_max {
        return Err(CoreError::Catalog {
            path: path.clone(),
            reason: format!("{len} bytes; at most {bytes_max}"),
        });
    }
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    file.read_exact_at(&mut bytes, 0).map_err(|e| io("read", e))?;
    Ok(Some(bytes))
}

/// Replaces `dir`'s file `name` with `bytes`, durably (temporary file,
/// fsync, rename, directory fsync), refusing more than `bytes_max`. A
/// temporary file left by a failed replacement is removed and written
/// afresh, never reused: after a failed fsync its pages may never reach the
/// disk.
pub(crate) fn replace(storage: &dyn Storage, dir: &Path, name: &str, bytes: &[u8], bytes_max: u64) -> Result<()> {
    if bytes.len() as u64 > bytes_max {
        return Err(CoreError::LimitReached(format!(
            "{name} would be {} bytes; at most {bytes_max}",
            bytes.len()
        )));
    }
    let tmp = child(dir, &format!("{name}.tmp"));
    if storage.exists(&tmp) {
        storage.remove_file(&tmp).map_err(|source| CoreError::Io {
            op: "remove",
            path: tmp.clone(),
            source,
        })?;
    }
    veltrix_log::checkpoint::replace_file(storage, dir, name, bytes).map_err(|source| CoreError::Io {
        op: "write",
        path: child(dir, name),
        source,
    })
}

/// `reason` why `dir`'s file `name` cannot be read, as an error naming it.
pub(crate) fn unreadable(dir: &Path, name: &str, reason: String) -> CoreError {
    CoreError::Catalog {
        path: child(dir, name),
        reason,
    }
}
