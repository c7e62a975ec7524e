//! Durable quotas behind a narrow interface: the whole set is loaded at start
//! and replaced on each change (quotas change rarely and are few; at most
//! `entities_max`). [`FileQuotaStore`] keeps them in `quotas.json` in the data
//! directory, replaced atomically and fsynced; a store on a database could
//! keep rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::io::Storage;

use super::{QuotaEntity, QuotaKind, QuotaValues};
use crate::error::Result;
use crate::small_file;

/// The file of [`FileQuotaStore`] in the data directory.
pub const QUOTAS_FILE: &str = "quotas.json";

/// Largest [`QUOTAS_FILE`]: quotas are at most `entities_max` small entries;
/// a corrupt length does not size an allocation.
pub const QUOTAS_FILE_BYTES_MAX: u64 = 64 << 20;

const VERSION: u32 = 1;

/// Where quotas are kept.
pub trait QuotaStore: Send + Sync + std::fmt::Debug {
    /// Every entity with its quotas; none before the first change.
    fn load(&self) -> Result<BTreeMap<QuotaEntity, QuotaValues>>;
    /// Replaces them all, durably, before returning.
    fn save(&self, all: &BTreeMap<QuotaEntity, QuotaValues>) -> Result<()>;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    entities: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    entity: QuotaEntity,
    quotas: BTreeMap<QuotaKind, f64>,
}

/// Quotas in a file of the data directory.
#[derive(Debug)]
pub struct FileQuotaStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
}

impl FileQuotaStore {
    pub fn new(storage: Arc<dyn Storage>, dir: &Path) -> FileQuotaStore {
        FileQuotaStore {
            storage,
            dir: dir.to_path_buf(),
        }
    }
}

/// The quotas in `bytes`, as [`FileQuotaStore`] writes them.
pub fn decode(bytes: &[u8]) -> std::result::Result<BTreeMap<QuotaEntity, QuotaValues>, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("version {} is not {VERSION}", file.version));
    }
    let mut all = BTreeMap::new();
    for e in file.entities {
        if e.entity.user.is_none() && e.entity.client_id.is_none() {
            return Err("an entity with neither a user nor a client id".into());
        }
        if let Some((k, v)) = e.quotas.iter().find(|(_, v)| !(v.is_finite() && **v >= 1.0)) {
            return Err(format!("{} of {} is {v}", k.key(), e.entity));
        }
        if all.insert(e.entity.clone(), e.quotas).is_some() {
            return Err(format!("{} is recorded twice", e.entity));
        }
    }
    Ok(all)
}

impl QuotaStore for FileQuotaStore {
    fn load(&self) -> Result<BTreeMap<QuotaEntity, QuotaValues>> {
        let Some(bytes) = small_file::read(&*self.storage, &self.dir, QUOTAS_FILE, QUOTAS_FILE_BYTES_MAX)? else {
            return Ok(BTreeMap::new());
        };
        decode(&bytes).map_err(|reason| small_file::unreadable(&self.dir, QUOTAS_FILE, reason))
    }

    fn save(&self, all: &BTreeMap<QuotaEntity, QuotaValues>) -> Result<()> {
        let file = File {
            version: VERSION,
            entities: all
                .iter()
                .map(|(entity, quotas)| Entry {
                    entity: entity.clone(),
                    quotas: quotas.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("quotas serialise");
        small_file::replace(&*self.storage, &self.dir, QUOTAS_FILE, &bytes, QUOTAS_FILE_BYTES_MAX)
    }
}

/// Quotas in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryQuotaStore {
    all: Mutex<BTreeMap<QuotaEntity, QuotaValues>>,
}

impl QuotaStore for MemoryQuotaStore {
    fn load(&self) -> Result<BTreeMap<QuotaEntity, QuotaValues>> {
        Ok(self.all.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, all: &BTreeMap<QuotaEntity, QuotaValues>) -> Result<()> {
        *self.all.lock().unwrap_or_else(|p| p.into_inner()) = all.clone();
        Ok(())
    }
}
