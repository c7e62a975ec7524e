//! What the tests share: a real `veltrix serve` on ephemeral ports of
//! 127.0.0.1 with a data directory of its own, runs of the CLI against it,
//! and the lock that keeps measuring tests alone.
//!
//! The broker listens on `127.0.0.1:0` and its JSON log says which ports the
//! kernel chose, so there is no window in which another process could take a
//! port picked in advance. Every child process is killed by its guard's
//! `Drop`, so a failing test leaves nothing running.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_veltrix");

/// How long a broker may take to say it listens.
const START_MS_MAX: u64 = 120_000;
/// How long one CLI run may take.
const RUN_MS_MAX: u64 = 60_000;

/// Taken shared by every test, and exclusively by those that measure the
/// broker's memory, CPU or limits, or run the load generator: those must not
/// share the machine's two cores with the rest of the suite.
static MACHINE: RwLock<()> = RwLock::new(());

/// For an ordinary test: it runs beside other ordinary tests.
pub fn shared() -> RwLockReadGuard<'static, ()> {
    // A test that panicked while holding the lock says nothing about the next.
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a test that measures or loads the broker: it runs alone.
pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Kills the child when dropped, even when a test panics.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a CLI run printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end with `stdin` as its input, within
/// [`RUN_MS_MAX`].
pub fn run(mut command: Command, stdin: &[u8]) -> Output {
    let mut child = ChildGuard(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut input = child.0.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // Written on a thread: a large input must not deadlock against the output.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read = |mut s: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
    };
    let stdout = read(Box::new(child.0.stdout.take().unwrap()));
    let stderr = read(Box::new(child.0.stderr.take().unwrap()));
    let status = wait_for(&mut child.0, Duration::from_millis(RUN_MS_MAX))
        .unwrap_or_else(|| panic!("veltrix did not finish within {RUN_MS_MAX} ms"));
    writer.join().unwrap();
    Output {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The child's exit status, polled until `limit` has passed; `None` if it is
/// still running then.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `done` until it holds or `limit` has passed; whether it held.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs each of `commands` against a port nobody listens on (bound by this
/// process, then released) and expects the one line that says so.
pub fn each_says_no_broker(commands: &[&[&str]]) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for args in commands {
        let mut command = Command::new(BIN);
        command.args(*args).args(["--bootstrap", &addr]);
        let out = run(command, b"x\n");
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert_eq!(
            out.stderr,
            format!("error: cannot connect to {addr}: Connection refused (os error 111); is the broker running?\n")
        );
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// A time in milliseconds since the epoch after every record stamped before
/// the call and before every record stamped after it: the clock is polled
/// until it has moved past the call on each side.
pub fn moment_between() -> i64 {
    let t = clock_past(now_ms());
    clock_past(t);
    t
}

/// The first clock reading past `ms`, polled within a second.
fn clock_past(ms: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = now_ms();
        if now > ms {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the clock did not move past {ms} within a second"
        );
        thread::sleep(Duration::from_micros(100));
    }
}

/// How to start a broker: everything but the listeners is optional.
#[derive(Default)]
pub struct Serve {
    /// `VELTRIX_<TABLE>__<KEY>` and other variables of its environment.
    env: Vec<(String, String)>,
    /// The configuration file's text, written next to the data directory.
    config: Option<String>,
    /// A command that `exec`s the broker with the arguments after it, such as
    /// `prlimit --nofile=256:256 --`.
    wrapper: Option<Vec<String>>,
    /// A data directory the caller keeps (to start again on it); otherwise
    /// a temporary one.
    data_dir: Option<PathBuf>,
}

impl Serve {
    pub fn new() -> Serve {
        Serve::default()
    }

    pub fn env(mut self, key: &str, value: &str) -> Serve {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn config(mut self, toml: &str) -> Serve {
        self.config = Some(toml.to_owned());
        self
    }

    pub fn wrapper(mut self, command: &[&str]) -> Serve {
        self.wrapper = Some(command.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> Serve {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Starts it and waits until both listeners are ready.
    pub fn start(self) -> BrokerGuard {
        let dir = tempfile::tempdir().unwrap();
        let data = self.data_dir.clone().unwrap_or_else(|| dir.path().join("data"));
        let mut broker = BrokerGuard {
            child: self.spawn(dir.path(), &data),
            addr: String::new(),
            http: String::new(),
            log: Arc::new(Mutex::new(Vec::new())),
            data,
            serve: self,
            dir,
        };
        broker.await_listeners();
        broker
    }

    /// The broker process, its configuration file (if any) in `dir`.
    fn spawn(&self, dir: &Path, data: &Path) -> Child {
        let mut command = match &self.wrapper {
            Some(w) => {
                let mut c = Command::new(&w[0]);
                c.args(&w[1..]).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command
            .args([
                "serve",
                "--kafka-listener",
                "127.0.0.1:0",
                "--http-listener",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json", "--data-dir"])
            .arg(data);
        if let Some(text) = &self.config {
            let path = dir.join("veltrix.toml");
            std::fs::write(&path, text).unwrap();
            command.arg("--config").arg(path);
        }
        command
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"))
    }
}

/// A running broker; killed when dropped, even when a test panics.
pub struct BrokerGuard {
    pub child: Child,
    /// The Kafka listener.
    pub addr: String,
    /// The HTTP listener.
    pub http: String,
    /// Every line it logged so far, for checks and failure messages.
    log: Arc<Mutex<Vec<String>>>,
    data: PathBuf,
    /// How it was started, to start it again.
    serve: Serve,
    /// Holds the configuration file, and the data directory unless the
    /// caller gave one.
    dir: tempfile::TempDir,
}

/// A `veltrix serve` with the embedded default configuration.
pub fn start_broker() -> BrokerGuard {
    Serve::new().start()
}

impl BrokerGuard {
    /// Drains its log (so that the broker never blocks on a full pipe) and
    /// waits for the lines that name its listeners.
    fn await_listeners(&mut self) {
        let stderr = self.child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let message = v["fields"]["message"].as_str().unwrap_or("").to_owned();
                    let _ = tx.send((message, addr.to_owned()));
                }
                log.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_millis(START_MS_MAX);
        while self.addr.is_empty() || self.http.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((message, addr)) = rx.recv_timeout(left) else {
                panic!("the broker did not start; its log:\n{}", self.log());
            };
            match message.as_str() {
                "kafka listener ready" => self.addr = addr,
                "http listener ready" => self.http = addr,
                _ => {}
            }
        }
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
    }

    /// How many lines it logged so far.
    pub fn lines(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Its JSON log lines so far.
    pub fn messages(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// Whether a log line's message was `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.messages().iter().any(|v| v["fields"]["message"] == message)
    }

    /// Kills the broker with SIGKILL and starts a new one the same way on the
    /// same data directory, as after a crash.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.restart();
    }

    /// Stops it with SIGTERM and waits for a clean exit, then starts it again
    /// the same way on the same data directory.
    pub fn stop_and_restart(&mut self, limit: Duration) {
        self.stop(limit);
        self.restart();
    }

    /// Stops it with SIGTERM and expects a clean exit within `limit`.
    pub fn stop(&mut self, limit: Duration) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        let status = wait_for(&mut self.child, limit)
            .unwrap_or_else(|| panic!("the broker did not stop; its log:\n{}", self.log()));
        assert!(
            status.success(),
            "the broker exited with {status}; its log:\n{}",
            self.log()
        );
    }

    fn restart(&mut self) {
        self.child = self.serve.spawn(self.dir.path(), &self.data);
        self.addr.clear();
        self.http.clear();
        self.log = Arc::new(Mutex::new(Vec::new()));
        self.await_listeners();
    }

    /// `veltrix ARGS --bootstrap ADDR --timeout-ms 10000`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).args(["--bootstrap", &self.addr, "--timeout-ms", "10000"]);
        c
    }

    /// Runs the CLI against the broker with `stdin` as its input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.command(args), stdin)
    }

    /// Runs the CLI and expects success.
    pub fn ok(&self, args: &[&str]) -> Output {
        self.ok_with(args, b"")
    }

    /// Runs the CLI with `stdin` and expects success.
    pub fn ok_with(&self, args: &[&str], stdin: &[u8]) -> Output {
        let out = self.run(args, stdin);
        assert_eq!(
            out.code,
            Some(0),
            "veltrix {args:?} failed: {out:?}\nbroker log:\n{}",
            self.log()
        );
        out
    }

    /// Runs the CLI and expects exit status 1 with exactly one line,
    /// `error: {message}`.
    pub fn fails(&self, args: &[&str], message: &str) -> Output {
        let out = self.run(args, b"");
        assert_eq!(out.code, Some(1), "veltrix {args:?}: {out:?}");
        assert_eq!(out.stderr, format!("error: {message}\n"), "veltrix {args:?}: {out:?}");
        out
    }

    /// Runs the CLI with `stdin` and expects exit status 1 with an `error:`
    /// line that contains `message`.
    pub fn fails_with(&self, args: &[&str], stdin: &[u8], message: &str) -> Output {
        let out = self.run(args, stdin);
        assert_eq!(out.code, Some(1), "veltrix {args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{out:?}");
        assert!(out.stderr.contains(message), "veltrix {args:?}: {out:?}");
        out
    }

    /// Every record of `topic`, as `consume --format json` prints them.
    pub fn records(&self, topic: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["consume", topic, "--format", "json"];
        args.extend_from_slice(extra);
        self.ok(&args)
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        resident_bytes(self.pid())
    }

    /// The value of an unlabelled metric, read from `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let mut s = std::net::TcpStream::connect(&self.http).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: veltrix\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory, from /proc.
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is running");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// A whole request frame: length, header, body.
pub fn frame<R: Request>(request: &R, version: i16, correlation_id: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("attack")));
    let mut body = BytesMut::new();
    header.encode(&mut body, R::header_version(version)).unwrap();
    request.encode(&mut body, version).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out.to_vec()
}
