//! What several CLI tests share: a real `veltrix serve` on an ephemeral port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_veltrix");

/// Kills the broker when dropped, even when a test panics.
pub struct BrokerGuard {
    pub child: Child,
    pub addr: String,
    #[allow(dead_code, reason = "not every test binary asks for the directory")]
    dir: tempfile::TempDir,
}

#[allow(dead_code, reason = "not every test binary that shares this module uses these")]
impl BrokerGuard {
    /// The broker's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the broker with SIGKILL and starts a new one on the same data
    /// directory, as after a crash.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn(Command::new(BIN), self.dir.path(), &[]);
        self.child = child;
        self.addr = addr;
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `veltrix serve` on an ephemeral port with its own data directory; its
/// JSON log says which port the kernel chose.
#[allow(dead_code, reason = "not every test binary that shares this module uses it")]
pub fn start_broker() -> BrokerGuard {
    start_broker_with_env(&[])
}

#[allow(dead_code, reason = "not every test binary that shares this module uses it")]
/// As [`start_broker`], with `VELTRIX_<TABLE>__<KEY>` overrides in its environment.
pub fn start_broker_with_env(env: &[(&str, &str)]) -> BrokerGuard {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn(Command::new(BIN), dir.path(), env);
    BrokerGuard { child, addr, dir }
}

#[allow(dead_code, reason = "not every test binary that shares this module uses it")]
/// As [`start_broker`], with `command` ending in the broker binary: it may run
/// it through a wrapper that `exec`s it, such as `prlimit`.
pub fn start_broker_command(command: Command) -> BrokerGuard {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn(command, dir.path(), &[]);
    BrokerGuard { child, addr, dir }
}

fn spawn(mut command: Command, dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = command
        .args([
            "serve",
            "--kafka-listener",
            "127.0.0.1:0",
            "--http-listener",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keeps draining the log so that the broker never blocks on a full pipe.
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "kafka listener ready"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => (child, addr),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker on {} did not start", dir.display());
        }
    }
}
