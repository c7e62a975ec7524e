//! The command-line tools: `veltrix topic`, `veltrix produce`, `veltrix
//! consume` and `veltrix group`, clients of a running broker over the Kafka
//! protocol.
//!
//! Each subcommand is a module with its clap arguments and a `run` function;
//! the Kafka work is `veltrix-client`'s. Every subcommand takes `--bootstrap`
//! and `--timeout-ms` ([`ConnectArgs`]), runs on a single-threaded tokio
//! runtime, and on failure prints one `error:` line to stderr and exits with
//! status 1 ([`exit_on_error`]).

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use veltrix_client::{Client, ClientConfig};

pub mod acl;
pub mod bench;
pub mod check;
pub mod check_online;
pub mod consume;
pub mod dlq;
pub mod doctor;
pub mod group;
pub mod produce;
pub mod route;
mod time;
pub mod topic;
pub mod user;

/// Where the broker is and how long to wait for it.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker to connect to, as HOST:PORT; several, comma-separated,
    /// are tried in turn (brokers on shared storage).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Time limit of connecting and of each request, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

impl ConnectArgs {
    fn config(&self) -> ClientConfig {
        let timeout = Duration::from_millis(self.timeout_ms);
        ClientConfig {
            client_id: "veltrix-cli".to_owned(),
            connect_timeout: timeout,
            request_timeout: timeout,
            ..ClientConfig::default()
        }
    }

    /// Connects to the first bootstrap address that answers and negotiates
    /// API versions.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut last = None;
        for addr in self.bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Client::connect(addr, self.config()).await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e.into()),
            None => anyhow::bail!("--bootstrap names no broker"),
        }
    }

    /// Connects to the broker that coordinates `group` (FindCoordinator):
    /// on shared storage another broker than the bootstrap one may. When the
    /// coordinator's advertised address cannot be reached from here (or
    /// FindCoordinator fails), the bootstrap connection is kept, as before.
    pub async fn connect_to_coordinator(&self, group: &str) -> anyhow::Result<Client> {
        let mut client = self.connect().await?;
        let Ok(coordinator) = client.find_coordinator(group).await else {
            return Ok(client);
        };
        if coordinator == client.connection().addr() {
            return Ok(client);
        }
        Ok(Client::connect(&coordinator, self.config()).await.unwrap_or(client))
    }
}

/// Runs `work` to completion on a single-threaded runtime: the tools do one
/// thing at a time and need no more.
pub fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

/// `n` and the noun, in the plural unless `n` is 1.
pub fn plural(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Prints rows under a header, each column as wide as its widest cell, two
/// spaces apart; the last column is not padded.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut all = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    all.extend(rows.iter().cloned());
    print!("{}", aligned(&all));
}

/// `rows` one a line, each column as wide as its widest cell, two spaces
/// apart; the last column is not padded.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints a failed command's error as one line (its causes joined, never a
/// backtrace) and exits with status 1.
pub fn exit_on_error(result: anyhow::Result<()>) {
    if let Err(e) = result {
        eprintln!("error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// The error and its causes joined with `: `, skipping a cause whose text the
/// message before it already includes (many errors quote their source).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let rows = [["P", "NAME", "LAST"], ["10", "retention.ms", "x"], ["2", "a", "y"]]
            .map(|r| r.map(str::to_owned).to_vec());
        assert_eq!(
            aligned(&rows),
            "P   NAME          LAST\n10  retention.ms  x\n2   a             y\n"
        );
    }

    #[test]
    fn causes_already_quoted_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = anyhow::Error::new(veltrix_client::ClientError::Connect {
            addr: "127.0.0.1:1".to_owned(),
            source: io,
        })
        .context("listing topics");
        assert_eq!(
            error_chain(&e),
            "listing topics: cannot connect to 127.0.0.1:1: connection refused; is the broker running?"
        );
    }
}
