//! Durable SCRAM credentials behind a narrow interface: the whole set is
//! loaded at start and replaced on each change (credentials change rarely,
//! by an administrator, and are few; at most `users_max` users).
//! [`FileCredentialStore`] keeps them in `credentials.json` in the data
//! directory, replaced atomically and fsynced; a store on a database could
//! keep rows. No password is ever stored: a credential is a salt, an
//! iteration count and two keys derived from the password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::io::Storage;

use super::{CredentialError, DecoyKey, ScramCredential, ScramMechanism};
use crate::error::Result;
use crate::small_file;

/// The file of [`FileCredentialStore`] in the data directory.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// Largest [`CREDENTIALS_FILE`]: `users_max` users of two credentials of
/// under 400 bytes each fit many times over; a corrupt length does not.
pub const CREDENTIALS_FILE_BYTES_MAX: u64 = 64 << 20;

/// Users with credentials a broker keeps at most, by default.
pub const USERS_MAX_DEFAULT: usize = 10_000;

/// The longest user name: names are kept whole in memory and in one file,
/// and go into error messages and logs.
pub const USER_NAME_BYTES_MAX: usize = 256;

const VERSION: u32 = 1;

/// A user's credentials, one per mechanism at most.
pub type UserCredentials = BTreeMap<ScramMechanism, ScramCredential>;

/// Every user's credentials, by user name.
pub type AllCredentials = BTreeMap<String, UserCredentials>;

/// Whether `name` can be a user's: 1 to [`USER_NAME_BYTES_MAX`] bytes, no
/// control characters. The reason if not, which does not repeat the name.
pub fn validate_user_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("a user name is not empty");
    }
    if name.len() > USER_NAME_BYTES_MAX {
        return Err("a user name is at most 256 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("a user name has no control characters");
    }
    Ok(())
}

/// Where credentials are kept.
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    /// Every user with its credentials; none before the first change.
    fn load(&self) -> Result<AllCredentials>;
    /// Replaces them all, durably, before returning.
    fn save(&self, all: &AllCredentials) -> Result<()>;
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    users: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    user: String,
    credentials: Vec<ScramCredential>,
}

/// Credentials in a file of the data directory.
#[derive(Debug)]
pub struct FileCredentialStore {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
}

impl FileCredentialStore {
    /// The store of `dir`'s [`CREDENTIALS_FILE`], which need not exist yet.
    pub fn new(storage: Arc<dyn Storage>, dir: &Path) -> FileCredentialStore {
        FileCredentialStore {
            storage,
            dir: dir.to_path_buf(),
        }
    }
}

/// The credentials in `bytes`, as [`FileCredentialStore`] writes them: every
/// credential checked as its constructors check it, every user name valid,
/// each user and each of a user's mechanisms once, no user without one.
pub fn decode(bytes: &[u8]) -> std::result::Result<AllCredentials, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("version {} is not {VERSION}", file.version));
    }
    let mut all = AllCredentials::new();
    for (i, e) in file.users.into_iter().enumerate() {
        validate_user_name(&e.user).map_err(|reason| format!("user {i}: {reason}"))?;
        if e.credentials.is_empty() {
            return Err(format!("user `{}` has no credentials", e.user));
        }
        let mut credentials = UserCredentials::new();
        for c in e.credentials {
            if let Some(c) = credentials.insert(c.mechanism(), c) {
                return Err(format!("user `{}` has two {} credentials", e.user, c.mechanism()));
            }
        }
        if all.contains_key(&e.user) {
            return Err(format!("user `{}` is recorded twice", e.user));
        }
        all.insert(e.user, credentials);
    }
    Ok(all)
}

impl CredentialStore for FileCredentialStore {
    fn load(&self) -> Result<AllCredentials> {
        let dir = &self.dir;
        let Some(bytes) = small_file::read(&*self.storage, dir, CREDENTIALS_FILE, CREDENTIALS_FILE_BYTES_MAX)? else {
            return Ok(AllCredentials::new());
        };
        decode(&bytes).map_err(|reason| small_file::unreadable(dir, CREDENTIALS_FILE, reason))
    }

    fn save(&self, all: &AllCredentials) -> Result<()> {
        let file = File {
            version: VERSION,
            users: all
                .iter()
                .map(|(user, credentials)| Entry {
                    user: user.clone(),
                    credentials: credentials.values().cloned().collect(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("credentials serialise");
        small_file::replace(
            &*self.storage,
            &self.dir,
            CREDENTIALS_FILE,
            &bytes,
            CREDENTIALS_FILE_BYTES_MAX,
        )
    }
}

/// Credentials in memory, for tests.
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    all: Mutex<AllCredentials>,
}

impl CredentialStore for MemoryCredentialStore {
    fn load(&self) -> Result<AllCredentials> {
        Ok(self.all.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, all: &AllCredentials) -> Result<()> {
        *self.all.lock().unwrap_or_else(|p| p.into_inner()) = all.clone();
        Ok(())
    }
}

/// Limits of [`Credentials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// Users with at least one credential kept at most; more are refused.
    /// Credentials already stored are all loaded, even past it.
    pub users_max: usize,
}

impl Default for CredentialsConfig {
    fn default() -> CredentialsConfig {
        CredentialsConfig {
            users_max: USERS_MAX_DEFAULT,
        }
    }
}

/// A credential as DescribeUserScramCredentials shows it: never its salt or
/// keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialInfo {
    /// The credential's mechanism.
    pub mechanism: ScramMechanism,
    /// Its PBKDF2 iteration count.
    pub iterations: u32,
}

/// A user's credentials as DescribeUserScramCredentials shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDescription {
    /// The user's name.
    pub user: String,
    /// By mechanism; empty for a user asked for that has none.
    pub credentials: Vec<CredentialInfo>,
}

/// The broker's SCRAM credentials: what SCRAM and PLAIN authenticate
/// against, and what AlterUserScramCredentials changes. Every change is
/// stored, durably, before it returns and takes effect.
///
/// One lock guards them, and a change is stored (written and fsynced) while
/// it is held: changes are rare administrative requests, and an
/// authentication waiting behind one for an fsync is a cost worth never
/// having memory and store disagree on the order of two changes.
pub struct Credentials {
    config: CredentialsConfig,
    store: Arc<dyn CredentialStore>,
    users: Mutex<AllCredentials>,
    /// Unknown users' decoys: random, made at open.
    decoy: DecoyKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("config", &self.config)
            .field("users", &self.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The credentials `store` holds, with a new random [`DecoyKey`]
    /// (from rand's thread generator, a CSPRNG seeded by the system).
    pub fn open(config: CredentialsConfig, store: Arc<dyn CredentialStore>) -> Result<Credentials> {
        Credentials::open_with_decoy(config, store, DecoyKey::new(rand::random()))
    }

    /// The credentials `store` holds, answering unknown users with `decoy`'s
    /// credentials: for a host that keeps the key across restarts, and tests.
    pub fn open_with_decoy(
        config: CredentialsConfig,
        store: Arc<dyn CredentialStore>,
        decoy: DecoyKey,
    ) -> Result<Credentials> {
        let users = store.load()?;
        Ok(Credentials {
            config,
            store,
            users: Mutex::new(users),
            decoy,
        })
    }

    /// The key a [`super::ScramServer`] derives unknown users' decoy
    /// credentials from, announcing the iteration count most stored
    /// credentials have (so a decoy looks like the usual credential;
    /// [`super::ITERATIONS_MIN`] when there are none). The key was made at
    /// open: unless given to [`Credentials::open_with_decoy`], a restart
    /// changes unknown users' salts (see [`DecoyKey`]).
    pub fn decoy_key(&self) -> DecoyKey {
        let mut counts = BTreeMap::<u32, usize>::new();
        for c in self.users().values().flat_map(|u| u.values()) {
            *counts.entry(c.iterations()).or_default() += 1;
        }
        // The most common count; the lowest of those tied.
        let usual = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(super::ITERATIONS_MIN, |(i, _)| *i);
        self.decoy.clone().with_iterations(usual)
    }

    /// The limits the credentials were opened with.
    pub fn config(&self) -> CredentialsConfig {
        self.config
    }

    fn users(&self) -> std::sync::MutexGuard<'_, AllCredentials> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Users with at least one credential.
    pub fn len(&self) -> usize {
        self.users().len()
    }

    /// Whether no user has a credential.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `user`'s credential for `mechanism`.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users().get(user)?.get(&mechanism).cloned()
    }

    /// Sets `user`'s credential for the credential's mechanism, replacing
    /// the one it had. Stored before it returns; on an error nothing changed
    /// in memory (after a failed store the file may still hold the change,
    /// found at the next start).
    pub fn upsert(&self, user: &str, credential: ScramCredential) -> std::result::Result<(), CredentialError> {
        validate_user_name(user).map_err(CredentialError::UserName)?;
        let mut users = self.users();
        let mechanism = credential.mechanism();
        match users.get(user) {
            Some(had) if had.get(&mechanism) == Some(&credential) => return Ok(()),
            Some(_) => {}
            None if users.len() >= self.config.users_max => {
                return Err(CredentialError::TooMany {
                    max: self.config.users_max,
                });
            }
            None => {}
        }
        let mut next = users.clone();
        next.entry(user.to_owned()).or_default().insert(mechanism, credential);
        self.save(&mut users, next)
    }

    /// Removes `user`'s credential for `mechanism`; whether it had one. A
    /// user left without credentials is forgotten. Stored before it returns.
    pub fn delete(&self, user: &str, mechanism: ScramMechanism) -> std::result::Result<bool, CredentialError> {
        let mut users = self.users();
        if !users.get(user).is_some_and(|had| had.contains_key(&mechanism)) {
            return Ok(false);
        }
        let mut next = users.clone();
        if let Some(had) = next.get_mut(user) {
            had.remove(&mechanism);
            if had.is_empty() {
                next.remove(user);
            }
        }
        self.save(&mut users, next).map(|()| true)
    }

    /// Stores `next` and makes it current.
    fn save(&self, users: &mut AllCredentials, next: AllCredentials) -> std::result::Result<(), CredentialError> {
        self.store
            .save(&next)
            .map_err(|e| CredentialError::Store(e.to_string()))?;
        *users = next;
        Ok(())
    }

    /// A digest of every credential `user` has (mechanisms, salts,
    /// iterations and keys), or `None` for a user without any. It changes
    /// whenever one of the user's credentials is set or deleted: what a
    /// bearer token or a remembered password check is bound to, so that a
    /// new password, or a deleted user, ends them.
    pub fn fingerprint(&self, user: &str) -> Option<[u8; 32]> {
        let all = self.users();
        let credentials = all.get(user).filter(|c| !c.is_empty())?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"veltrix credential fingerprint\0");
        // A BTreeMap: the mechanisms in one order.
        for c in credentials.values() {
            ctx.update(&[c.mechanism().code() as u8]);
            ctx.update(&c.iterations().to_be_bytes());
            for part in [c.salt(), c.stored_key(), c.server_key()] {
                ctx.update(&(part.len() as u32).to_be_bytes());
                ctx.update(part);
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Some(out)
    }

    /// The mechanisms and iterations of `users` (each asked for, in the
    /// order asked, those without credentials with none), or of every user
    /// with credentials, by name. Never a salt or a key.
    pub fn describe(&self, users: Option<&[String]>) -> Vec<UserDescription> {
        let all = self.users();
        let describe = |user: &str, credentials: Option<&UserCredentials>| UserDescription {
            user: user.to_owned(),
            credentials: credentials
                .into_iter()
                .flat_map(|c| c.values())
                .map(|c| CredentialInfo {
                    mechanism: c.mechanism(),
                    iterations: c.iterations(),
                })
                .collect(),
        };
        match users {
            Some(users) => users.iter().map(|u| describe(u, all.get(u))).collect(),
            None => all.iter().map(|(u, c)| describe(u, Some(c))).collect(),
        }
    }
}
