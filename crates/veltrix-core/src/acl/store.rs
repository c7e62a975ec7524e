//! Durable ACL bindings behind a narrow interface: the whole set is loaded at
//! start and replaced on each change (bindings change rarely; at most
//! `acls_max`). [`FileAclStore`] keeps them in `acls.json` in the data
//! directory, replaced atomically and fsynced; a store on a database could
//! keep rows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::io::Storage;

use super::model::AclBinding;
use crate::error::Result;
use crate::small_file;

/// The file of [`FileAclStore`] in the data directory.
pub const ACLS_FILE: &str = "acls.json";

/// The largest `acls.json` written or read: 100 000 bindings of 2.6 KiB
/// each. A larger one is refused when stored, so every file stored can be
/// read back.
pub const ACLS_FILE_BYTES_MAX: u64 = 256 << 20;

const VERSION: u32 = 1;

/// Where ACL bindings are kept.
pub trait AclStore: Send + Sync + std::fmt::Debug {
    /// Every binding; none before the first change.
    fn load(&self) -> Result<Vec<AclBinding>>;
    /// Replaces them all, durably, before returning.
    fn save(&self, all: &[AclBinding]) -> Result<()>;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    acls: Vec<AclBinding>,
}

/// [`File`] as written, borrowing the bindings.
#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    acls: &'a [AclBinding],
}

/// ACL bindings in a file of the data directory.
#[derive(Debug)]
pub struct FileAclStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
}

impl FileAclStore {
    /// The store of `acls.json` in `dir`, which exists.
    pub fn new(storage: Arc<dyn Storage>, dir: &Path) -> FileAclStore {
        FileAclStore {
            storage,
            dir: dir.to_path_buf(),
        }
    }
}

/// The bindings in `bytes`, as [`FileAclStore`] writes them: each one valid,
/// none twice.
pub fn decode(bytes: &[u8]) -> std::result::Result<Vec<AclBinding>, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("version {} is not {VERSION}", file.version));
    }
    let mut seen = BTreeSet::new();
    for b in &file.acls {
        b.validate().map_err(|e| format!("{b}: {e}"))?;
        if !seen.insert(b) {
            return Err(format!("{b} is recorded twice"));
        }
    }
    Ok(file.acls)
}

impl AclStore for FileAclStore {
    fn load(&self) -> Result<Vec<AclBinding>> {
        let Some(bytes) = small_file::read(&*self.storage, &self.dir, ACLS_FILE, ACLS_FILE_BYTES_MAX)? else {
            return Ok(Vec::new());
        };
        decode(&bytes).map_err(|reason| small_file::unreadable(&self.dir, ACLS_FILE, reason))
    }

    fn save(&self, all: &[AclBinding]) -> Result<()> {
        let file = FileOut {
            version: VERSION,
            acls: all,
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("ACL bindings serialise");
        small_file::replace(&*self.storage, &self.dir, ACLS_FILE, &bytes, ACLS_FILE_BYTES_MAX)
    }
}

/// ACL bindings in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryAclStore {
    all: Mutex<Vec<AclBinding>>,
}

impl AclStore for MemoryAclStore {
    fn load(&self) -> Result<Vec<AclBinding>> {
        Ok(self.all.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, all: &[AclBinding]) -> Result<()> {
        *self.all.lock().unwrap_or_else(|p| p.into_inner()) = all.to_vec();
        Ok(())
    }
}
