use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};

use veltrix_log::io::{LockGuard, OpenMode, Storage, StorageFile};
use veltrix_log::sim::SimStorage;

use super::*;

const SHA256: ScramMechanism = ScramMechanism::Sha256;
const SHA512: ScramMechanism = ScramMechanism::Sha512;

fn dir() -> &'static Path {
    Path::new("/data")
}

/// Credentials of a few passwords, made once (PBKDF2 is slow unoptimised).
fn cred(m: ScramMechanism, i: usize) -> ScramCredential {
    static ALL: LazyLock<Vec<ScramCredential>> = LazyLock::new(|| {
        (0..4)
            .flat_map(|i| {
                ScramMechanism::ALL.map(|m| {
                    ScramCredential::from_password(m, format!("password {i}").as_bytes(), vec![i as u8 + 1; 16], 4096)
                        .unwrap()
                })
            })
            .collect()
    });
    ALL[i * 2 + usize::from(m == SHA512)].clone()
}

fn sim() -> SimStorage {
    let storage = SimStorage::new();
    storage.create_dir_all(dir()).unwrap();
    storage
}

fn open(storage: Arc<dyn Storage>, users_max: usize) -> Credentials {
    Credentials::open(
        CredentialsConfig { users_max },
        Arc::new(FileCredentialStore::new(storage, dir())),
    )
    .unwrap()
}

fn everything(c: &Credentials) -> Vec<(String, ScramMechanism, ScramCredential)> {
    c.describe(None)
        .into_iter()
        .flat_map(|d| d.credentials.into_iter().map(move |i| (d.user.clone(), i.mechanism)))
        .map(|(u, m)| {
            let c = c.get(&u, m).unwrap();
            (u, m, c)
        })
        .collect()
}

#[test]
fn credentials_survive_a_restart_through_the_file_store() {
    let storage = sim();
    let c = open(Arc::new(storage.clone()), 10);
    assert!(c.is_empty());
    c.upsert("alice", cred(SHA256, 0)).unwrap();
    c.upsert("alice", cred(SHA512, 1)).unwrap();
    c.upsert("bob", cred(SHA256, 2)).unwrap();
    c.upsert("bob", cred(SHA256, 3)).unwrap();
    let again = open(Arc::new(storage.clone()), 10);
    assert_eq!(everything(&again), everything(&c));
    assert_eq!(again.get("bob", SHA256), Some(cred(SHA256, 3)));
    assert_eq!(again.get("bob", SHA512), None);
    assert_eq!(again.get("carol", SHA256), None);
    assert_eq!(
        again.describe(Some(&["bob".into(), "carol".into(), "alice".into()])),
        vec![
            UserDescription {
                user: "bob".into(),
                credentials: vec![CredentialInfo {
                    mechanism: SHA256,
                    iterations: 4096
                }],
            },
            UserDescription {
                user: "carol".into(),
                credentials: vec![],
            },
            UserDescription {
                user: "alice".into(),
                credentials: vec![
                    CredentialInfo {
                        mechanism: SHA256,
                        iterations: 4096
                    },
                    CredentialInfo {
                        mechanism: SHA512,
                        iterations: 4096
                    },
                ],
            },
        ]
    );
    assert_eq!(again.delete("bob", SHA256), Ok(true));
    assert_eq!(again.delete("bob", SHA256), Ok(false));
    assert_eq!(again.delete("alice", SHA256), Ok(true));
    assert_eq!(again.delete("nobody", SHA256), Ok(false));
    let third = open(Arc::new(storage), 10);
    assert_eq!(third.len(), 1, "bob, left without credentials, is gone");
    assert_eq!(third.get("alice", SHA512), Some(cred(SHA512, 1)));
    assert_eq!(third.get("alice", SHA256), None);
}

#[test]
fn users_and_their_names_are_bounded() {
    let c = Credentials::open(
        CredentialsConfig { users_max: 2 },
        Arc::new(MemoryCredentialStore::default()),
    )
    .unwrap();
    c.upsert("a", cred(SHA256, 0)).unwrap();
    c.upsert("b", cred(SHA256, 0)).unwrap();
    assert_eq!(c.upsert("c", cred(SHA256, 0)), Err(CredentialError::TooMany { max: 2 }));
    assert_eq!(
        CredentialError::TooMany { max: 2 }.to_string(),
        "the broker keeps SCRAM credentials for at most 2 users"
    );
    // A known user may still change and add credentials.
    c.upsert("b", cred(SHA512, 1)).unwrap();
    c.upsert("b", cred(SHA256, 1)).unwrap();
    assert_eq!(c.len(), 2);
    for name in [
        String::new(),
        "x".repeat(USER_NAME_BYTES_MAX + 1),
        "a\nb".into(),
        "\u{85}".into(),
    ] {
        assert!(matches!(
            c.upsert(&name, cred(SHA256, 0)),
            Err(CredentialError::UserName(_))
        ));
    }
    let c = Credentials::open(CredentialsConfig::default(), Arc::new(MemoryCredentialStore::default())).unwrap();
    c.upsert(&"é".repeat(USER_NAME_BYTES_MAX / 2), cred(SHA256, 0)).unwrap();
    assert_eq!(c.config().users_max, USERS_MAX_DEFAULT);
    assert_eq!(USERS_MAX_DEFAULT, 10_000);
}

#[test]
fn credentials_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Credentials>();
    check::<ScramServer>();
}

#[test]
fn a_failed_store_changes_nothing_in_memory() {
    let storage = sim();
    let c = open(Arc::new(storage.clone()), 10);
    c.upsert("alice", cred(SHA256, 0)).unwrap();
    storage.fail_syncs(true);
    assert!(matches!(
        c.upsert("alice", cred(SHA256, 1)),
        Err(CredentialError::Store(_))
    ));
    assert!(matches!(c.delete("alice", SHA256), Err(CredentialError::Store(_))));
    assert_eq!(c.get("alice", SHA256), Some(cred(SHA256, 0)));
}

#[test]
fn the_file_holds_no_password() {
    let storage = sim();
    let c = open(Arc::new(storage.clone()), 10);
    let password = "hunter2-very-secret";
    for m in ScramMechanism::ALL {
        let credential = ScramCredential::from_password(m, password.as_bytes(), b"NaCl".to_vec(), 4096).unwrap();
        c.upsert("alice", credential).unwrap();
    }
    let bytes = storage.read_file(&dir().join(CREDENTIALS_FILE)).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("SCRAM-SHA-512") && text.contains("stored_key"), "{text}");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(password.as_bytes()));
    for engine in [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
    ] {
        let encoded = engine.encode(password);
        assert!(!contains(encoded.trim_end_matches('=').as_bytes()), "{encoded}");
    }
    // Nor, at any alignment inside a longer base64 text, a run of the
    // password's bytes.
    for skip in 0..3 {
        let encoded = B64.encode(&password.as_bytes()[skip..]);
        assert!(!contains(&encoded.as_bytes()[4..16]), "{encoded}");
    }
}

/// A storage that fails every operation that changes something once `left`
/// of them have succeeded, as if the process died there.
#[derive(Debug)]
struct DiesAfter {
    inner: SimStorage,
    left: Arc<AtomicI64>,
}

fn tick(left: &AtomicI64) -> io::Result<()> {
    if left.fetch_sub(1, Ordering::SeqCst) <= 0 {
        return Err(io::Error::other("injected failure"));
    }
    Ok(())
}

#[derive(Debug)]
struct DiesAfterFile {
    inner: Arc<dyn StorageFile>,
    left: Arc<AtomicI64>,
}

impl StorageFile for DiesAfterFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.sync()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.set_len(len)
    }
}

impl Storage for DiesAfter {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        tick(&self.left)?;
        Ok(Arc::new(DiesAfterFile {
            inner: self.inner.open(path, mode)?,
            left: self.left.clone(),
        }))
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        tick(&self.left)?;
        self.inner.sync_dir(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<LockGuard> {
        self.inner.lock_exclusive(path)
    }
}

/// Power lost at every step of storing a change, with every way the disk
/// can keep the unsynced writes: the credentials read back are the old ones
/// or the new ones, never a mix, never unreadable; and the new ones once the
/// change returned.
#[test]
fn power_loss_while_storing_keeps_the_old_or_the_new_credentials() {
    let old = |c: &Credentials| c.len() == 1 && c.get("alice", SHA256) == Some(cred(SHA256, 0));
    let new = |c: &Credentials| {
        c.len() == 2 && c.get("alice", SHA256) == Some(cred(SHA256, 1)) && c.get("bob", SHA512) == Some(cred(SHA512, 2))
    };
    let (mut saw_old, mut saw_new) = (false, false);
    for steps in 0.. {
        let mut completed = false;
        for seed in 0..12u64 {
            let storage = sim();
            let left = Arc::new(AtomicI64::new(i64::MAX));
            let dying = Arc::new(DiesAfter {
                inner: storage.clone(),
                left: left.clone(),
            });
            let c = open(dying.clone(), 10);
            c.upsert("alice", cred(SHA256, 0)).unwrap();
            // The next change: a new user and a changed credential, in one
            // file.
            left.store(steps, Ordering::SeqCst);
            let first = c.upsert("bob", cred(SHA512, 2));
            let second = c.upsert("alice", cred(SHA256, 1));
            completed = first.is_ok() && second.is_ok();
            // Mid-change the process's memory stays as before the change.
            if first.is_err() {
                assert!(old(&c));
            }
            match seed % 3 {
                0 => storage.crash(false, seed),
                1 => storage.crash(true, seed),
                _ => storage.crash_reordered(seed),
            }
            let after = open(Arc::new(storage.clone()), 10);
            let bob_only = after.len() == 2
                && after.get("alice", SHA256) == Some(cred(SHA256, 0))
                && after.get("bob", SHA512) == Some(cred(SHA512, 2));
            // Each change whole, and kept once it returned.
            let fine = match (first.is_ok(), completed) {
                (_, true) => new(&after),
                (true, false) => bob_only || new(&after),
                (false, _) => old(&after) || bob_only,
            };
            assert!(fine, "steps {steps}, seed {seed}: {:?}", everything(&after));
            let is_new = new(&after);
            saw_old |= old(&after);
            saw_new |= is_new;
        }
        if completed {
            break;
        }
        assert!(steps < 100, "a change takes a few steps");
    }
    assert!(saw_old && saw_new);
}

#[test]
fn the_file_decoder_refuses_what_the_store_never_writes() {
    let c = serde_json::to_value(cred(SHA256, 0)).unwrap();
    let file =
        |users: serde_json::Value| serde_json::to_vec(&serde_json::json!({"version": 1, "users": users})).unwrap();
    let good = file(serde_json::json!([{"user": "alice", "credentials": [c]}]));
    assert_eq!(
        decode_credentials_file(&good).unwrap()["alice"][&SHA256],
        cred(SHA256, 0)
    );
    assert!(decode_credentials_file(b"{").is_err());
    assert!(decode_credentials_file(br#"{"version":2,"users":[]}"#).is_err());
    assert!(decode_credentials_file(br#"{"version":1,"users":[],"extra":0}"#).is_err());
    assert_eq!(
        decode_credentials_file(br#"{"version":1,"users":[]}"#),
        Ok(AllCredentials::new())
    );
    let mut short_key = c.clone();
    short_key["stored_key"] = serde_json::json!("AAAA");
    let mut few_iterations = c.clone();
    few_iterations["iterations"] = serde_json::json!(1);
    for bad in [
        serde_json::json!([{"user": "alice", "credentials": []}]),
        serde_json::json!([{"user": "alice", "credentials": [c, c]}]),
        serde_json::json!([{"user": "alice", "credentials": [c]}, {"user": "alice", "credentials": [c]}]),
        serde_json::json!([{"user": "", "credentials": [c]}]),
        serde_json::json!([{"user": "a\u{0}", "credentials": [c]}]),
        serde_json::json!([{"user": "alice", "credentials": [short_key]}]),
        serde_json::json!([{"user": "alice", "credentials": [few_iterations]}]),
        serde_json::json!([{"user": "alice", "credentials": [c], "password": "x"}]),
    ] {
        assert!(decode_credentials_file(&file(bad.clone())).is_err(), "{bad}");
    }
}

#[test]
fn an_unreadable_file_fails_the_open() {
    let storage = sim();
    let c = open(Arc::new(storage.clone()), 10);
    c.upsert("alice", cred(SHA256, 0)).unwrap();
    storage.corrupt(&dir().join(CREDENTIALS_FILE), 3, 0x40).unwrap();
    let store = FileCredentialStore::new(Arc::new(storage), dir());
    let e = Credentials::open(CredentialsConfig::default(), Arc::new(store)).unwrap_err();
    assert!(e.to_string().contains(CREDENTIALS_FILE), "{e}");
}

/// The server-first message an unknown user gets under `key`.
fn decoy_first(key: &DecoyKey) -> String {
    let mut s = ScramServer::new(SHA256, nonce("n"), key);
    match s.step(b"n,,n=nobody,r=c", &|_| None) {
        Ok(ScramStep::Continue(m)) => String::from_utf8(m).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_decoy_key_announces_the_usual_iterations() {
    let store = Arc::new(MemoryCredentialStore::default());
    let c = Credentials::open_with_decoy(CredentialsConfig::default(), store.clone(), decoy()).unwrap();
    assert_eq!(decoy_first(&c.decoy_key()), decoy_first(&decoy()));
    assert!(decoy_first(&c.decoy_key()).ends_with(",i=4096"));
    let salted = |i: u32, iterations: u32| {
        ScramCredential::from_salted_password(SHA256, &[i as u8; 32], b"salt".to_vec(), iterations).unwrap()
    };
    c.upsert("a", salted(1, 4096)).unwrap();
    c.upsert("b", salted(2, 8192)).unwrap();
    c.upsert("c", salted(3, 8192)).unwrap();
    let key = c.decoy_key();
    assert!(decoy_first(&key).ends_with(",i=8192"), "{}", decoy_first(&key));
    // The same salt as before: only the count changed.
    let salt = |m: &str| m.split(',').nth(1).unwrap().to_owned();
    assert_eq!(salt(&decoy_first(&key)), salt(&decoy_first(&decoy())));
    // Opened without a key, a random one: another salt each time.
    let a = Credentials::open(CredentialsConfig::default(), store.clone()).unwrap();
    let b = Credentials::open(CredentialsConfig::default(), store).unwrap();
    assert_ne!(salt(&decoy_first(&a.decoy_key())), salt(&decoy_first(&b.decoy_key())));
    assert!(!format!("{a:?}").contains("secret"));
}
