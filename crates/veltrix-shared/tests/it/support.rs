//! Test services started by the tests themselves on 127.0.0.1 with
//! ephemeral ports: a throwaway PostgreSQL cluster (Debian's package,
//! `initdb` once into a template in the temporary directory, copied per test, the
//! `postgres` server run directly so its PID is the server's) and a `moto`
//! S3 server. Each is stopped by its PID; readiness is polled against a
//! deadline. scripts/cloud-services installs both and says how.
//!
//! Where the binaries are: `VELTRIX_PG_BIN` (a directory with `initdb`,
//! `postgres`, `pg_isready`), else the newest `/usr/lib/postgresql/*/bin`;
//! `VELTRIX_MOTO_SERVER`, else `<target>/cloud-venv/bin/moto_server`, else
//! `moto_server` on the PATH. When one is missing the tests are skipped with
//! a loud message, unless `VELTRIX_CLOUD_TESTS=require` (scripts/test sets
//! it), which makes a missing service a failure.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

const START_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

pub struct Binaries {
    pub pg_bin: PathBuf,
    pub moto: PathBuf,
}

/// The services' binaries, or `None` (after a loud message) when the tests
/// should be skipped.
pub fn binaries() -> Option<&'static Binaries> {
    static FOUND: OnceLock<Option<Binaries>> = OnceLock::new();
    FOUND.get_or_init(find).as_ref()
}

fn find() -> Option<Binaries> {
    let pg_bin = std::env::var_os("VELTRIX_PG_BIN").map(PathBuf::from).or_else(newest_pg);
    let moto = std::env::var_os("VELTRIX_MOTO_SERVER")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .or_else(|| {
            let venv = target_dir()?.join("cloud-venv/bin/moto_server");
            venv.exists().then_some(venv)
        })
        .or_else(|| on_path("moto_server"));
    match (pg_bin, moto) {
        (Some(pg_bin), Some(moto)) if pg_bin.join("initdb").exists() => Some(Binaries { pg_bin, moto }),
        (pg, moto) => {
            let why = format!(
                "PostgreSQL binaries: {pg:?}, moto_server: {moto:?} \
                 (install both with scripts/cloud-services install)"
            );
            if std::env::var("VELTRIX_CLOUD_TESTS").as_deref() == Ok("require") {
                panic!("VELTRIX_CLOUD_TESTS=require but a service is missing: {why}");
            }
            // Straight to stderr: the test harness captures eprintln!.
            use std::io::Write;
            let bar = "!".repeat(78);
            let _ = writeln!(
                std::io::stderr(),
                "\n{bar}\n!!! SKIPPING the shared-storage tests (PostgreSQL + S3): {why}\n{bar}\n"
            );
            None
        }
    }
}

fn newest_pg() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// Cargo's target directory, from the test binary's own path
/// (`<target>/debug/deps/<test>`).
fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("an ephemeral port");
    listener.local_addr().expect("its address").port()
}

/// Polls `ready` until it holds or the deadline passes.
fn wait_until(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ready() {
        assert!(Instant::now() < end, "{what} not ready within {deadline:?}");
        std::thread::sleep(POLL);
    }
}

fn signal(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(child.id() as i32).expect("a child's pid");
    let _ = kill_process(pid, sig);
}

/// Stops a child by its PID: `sig`, then SIGKILL past the deadline.
fn stop_child(child: &mut Child, sig: Signal) {
    signal(child, sig);
    let end = Instant::now() + STOP_DEADLINE;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// The uid and gid of the `postgres` user, when we are root (the server
/// refuses to run as root).
fn postgres_user() -> Option<(u32, u32)> {
    if rustix::process::getuid().as_raw() != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("id");
        assert!(
            out.status.success(),
            "no postgres user: run scripts/cloud-services install"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    Some((id("-u"), id("-g")))
}

fn as_postgres(command: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = postgres_user() {
        command.uid(uid).gid(gid);
    }
    command
}

fn chown_tree(path: &Path) {
    if let Some((uid, gid)) = postgres_user() {
        let status = Command::new("chown")
            .args(["-R", &format!("{uid}:{gid}")])
            .arg(path)
            .status()
            .expect("chown");
        assert!(status.success());
    }
}

/// A cluster initialised once, kept in the temporary directory
/// (`veltrix-pg-template-<PostgreSQL major version>`, where the `postgres`
/// user can reach it wherever the checkout is) and copied for each test.
fn template(bin: &Path) -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let version = bin
            .parent()
            .and_then(|p| p.file_name())
            .map_or("pg".into(), |v| v.to_string_lossy().into_owned());
        let root = std::env::temp_dir();
        let template = root.join(format!("veltrix-pg-template-{version}"));
        if template.join("PG_VERSION").exists() {
            return template;
        }
        let dir = tempfile::Builder::new()
            .prefix("veltrix-pg-init")
            .tempdir_in(&root)
            .unwrap();
        chown_tree(dir.path());
        let data = dir.path().join("data");
        let out = as_postgres(&mut Command::new(bin.join("initdb")))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "veltrix",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        // Another test run may have won the race: theirs is as good.
        let _ = std::fs::rename(&data, &template);
        template
    })
}

/// A throwaway PostgreSQL server.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Postgres {
    pub fn start(binaries: &Binaries) -> Postgres {
        let dir = tempfile::Builder::new().prefix("veltrix-pg").tempdir().unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(template(&binaries.pg_bin))
            .arg("-T")
            .arg(dir.path().join("data"))
            .status()
            .expect("cp");
        assert!(status.success());
        chown_tree(dir.path());
        let mut pg = Postgres {
            dir,
            bin: binaries.pg_bin.clone(),
            port: free_port(),
            child: None,
        };
        pg.run();
        pg
    }

    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let child = as_postgres(&mut Command::new(self.bin.join("postgres")))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "max_connections=50", "-c", "shared_buffers=16MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let isready = self.bin.join("pg_isready");
        let port = self.port.to_string();
        wait_until("PostgreSQL", START_DEADLINE, || {
            Command::new(&isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port, "-U", "veltrix", "-d", "postgres"])
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    pub fn url(&self) -> String {
        format!("postgresql://veltrix@127.0.0.1:{}/postgres", self.port)
    }

    /// Fast shutdown (SIGINT): clients are disconnected, the server exits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::INT);
        }
    }

    /// Started again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::QUIT);
        }
    }
}

/// A `moto` S3 server.
pub struct Moto {
    pub port: u16,
    child: Child,
}

impl Moto {
    pub fn start(binaries: &Binaries) -> Moto {
        let port = free_port();
        let child = Command::new(&binaries.moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { port, child };
        wait_until("moto", START_DEADLINE, || moto.request("HEAD", "/").is_some());
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP request; the status code, `None` if unreachable.
    pub fn request(&self, method: &str, path: &str) -> Option<u16> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"));
        assert_eq!(status, Some(200), "bucket {bucket} created");
    }

    /// Frozen (SIGSTOP): connections hang, as to an unreachable server.
    pub fn pause(&self) {
        signal(&self.child, Signal::STOP);
    }

    pub fn resume(&self) {
        signal(&self.child, Signal::CONT);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        signal(&self.child, Signal::CONT);
        stop_child(&mut self.child, Signal::TERM);
    }
}
