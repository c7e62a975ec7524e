//! `veltrix dlq list|show|redrive|jobs`: a share group's dead letters and
//! their redrive, over the broker's HTTP API (`--http`), which the Kafka
//! protocol has no answer for.
//!
//! `list` prints one letter per line (dead-letter partition and offset, when
//! it was written, the record's source, group, reason, deliveries, whether
//! it was redriven); `show` one letter whole, with every header; `redrive`
//! prints the plan with `--dry-run`, else starts the job (and with `--wait`
//! follows it to its end), which the broker refuses unless its
//! `[listeners] http_mutations = true`. `--format json` prints the API's
//! answer.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::consume::Format;
use super::time::parse_time;
use super::{block_on, print_table};

#[derive(clap::Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DlqCommand {
    /// Lists a dead-letter topic's letters, filtered.
    List(ListArgs),
    /// Shows one letter with every header.
    Show(ShowArgs),
    /// Moves letters back to the topic they came from (or another), at a
    /// set rate, if the broker takes changes over HTTP (`[listeners]
    /// http_mutations = true`); `--dry-run` prints what it would move.
    Redrive(RedriveArgs),
    /// Lists redrives, running and finished.
    Jobs(HttpArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub(super) struct HttpArgs {
    /// The broker's HTTP listener: HOST:PORT, or https://HOST:PORT when it
    /// serves HTTPS.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(super) http: String,
    /// PEM file of the CA that signed the HTTP listener's certificate
    /// (otherwise the public CAs are trusted).
    #[arg(long, value_name = "FILE")]
    pub(super) http_ca_file: Option<std::path::PathBuf>,
    /// The user to authenticate as, with the password in the environment
    /// variable VELTRIX_HTTP_PASSWORD (never on the command line). A bearer
    /// token in VELTRIX_HTTP_TOKEN is sent instead when that is set.
    #[arg(long, value_name = "USER")]
    pub(super) http_user: Option<String>,
    /// Time limit of each request, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) timeout_ms: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(super) format: Format,
}

#[derive(clap::Args, Debug)]
struct FilterArgs {
    /// Letters of this share group.
    #[arg(long)]
    group: Option<String>,
    /// Letters archived for this reason: rejected, delivery_limit or lock_timeout.
    #[arg(long, value_parser = ["rejected", "delivery_limit", "lock_timeout"])]
    reason: Option<String>,
    /// Letters of records that came from this topic.
    #[arg(long)]
    source_topic: Option<String>,
    /// Letters written at or after this time (RFC 3339, or ms since the epoch).
    #[arg(long, value_parser = parse_time)]
    from: Option<i64>,
    /// Letters written before this time.
    #[arg(long, value_parser = parse_time)]
    to: Option<i64>,
    /// Only this partition of the dead-letter topic.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Offsets of the dead-letter topic, FIRST-LAST (inclusive) or FIRST-.
    #[arg(long, value_parser = parse_offsets)]
    offsets: Option<(Option<i64>, Option<i64>)>,
    /// Letters with this header, KEY=VALUE.
    #[arg(long, value_parser = parse_header)]
    header: Option<(String, String)>,
}

impl FilterArgs {
    fn json(&self) -> serde_json::Map<String, Value> {
        let (first, last) = self.offsets.unwrap_or((None, None));
        let (hk, hv) = self.header.clone().map_or((None, None), |(k, v)| (Some(k), Some(v)));
        let all = json!({
            "group": self.group, "reason": self.reason, "source_topic": self.source_topic,
            "from_ms": self.from, "to_ms": self.to, "partition": self.partition,
            "offset_first": first, "offset_last": last, "header_key": hk, "header_value": hv,
        });
        all.as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn parse_offsets(s: &str) -> Result<(Option<i64>, Option<i64>), String> {
    let (a, b) = s.split_once('-').ok_or("write FIRST-LAST or FIRST-")?;
    let num = |x: &str| -> Result<Option<i64>, String> {
        if x.is_empty() {
            Ok(None)
        } else {
            x.parse().map(Some).map_err(|_| format!("`{x}` is not an offset"))
        }
    };
    Ok((num(a)?, num(b)?))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| "write KEY=VALUE".to_owned())
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// The dead-letter topic.
    topic: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// Letters printed at most (1 to 1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    limit: u64,
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// The dead-letter topic.
    topic: String,
    /// The letter's partition in it.
    partition: i32,
    /// The letter's offset in it.
    offset: i64,
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(clap::Args, Debug)]
struct RedriveArgs {
    /// The dead-letter topic.
    topic: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// Where the letters go; by default each to the topic and partition its
    /// record came from.
    #[arg(long = "to-topic")]
    target: Option<String>,
    /// Records moved per second at most.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Print what would move, move nothing.
    #[arg(long)]
    dry_run: bool,
    /// Follow the redrive until it ends.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    http: HttpArgs,
}

pub fn run(args: DlqArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            DlqCommand::List(a) => list(a).await,
            DlqCommand::Show(a) => show(a).await,
            DlqCommand::Redrive(a) => redrive(a).await,
            DlqCommand::Jobs(a) => jobs(a).await,
        }
    })
}

/// The `Authorization` header: a bearer token from the environment, or
/// `--http-user` with its password from the environment.
fn authorization(h: &HttpArgs) -> anyhow::Result<Option<String>> {
    use base64::Engine;
    if let Ok(token) = std::env::var(TOKEN_VARIABLE)
        && !token.trim().is_empty()
    {
        return Ok(Some(format!("Bearer {}", token.trim())));
    }
    let Some(user) = &h.http_user else {
        return Ok(None);
    };
    let password = std::env::var(PASSWORD_VARIABLE).with_context(|| {
        format!("--http-user {user}: set its password in the environment variable {PASSWORD_VARIABLE}")
    })?;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Ok(Some(format!("Basic {pair}")))
}

pub(super) struct Api {
    base: String,
    client: reqwest::Client,
}

/// The environment variable holding `--http-user`'s password.
const PASSWORD_VARIABLE: &str = "VELTRIX_HTTP_PASSWORD";
/// The environment variable holding a bearer token for the HTTP API.
const TOKEN_VARIABLE: &str = "VELTRIX_HTTP_TOKEN";

/// `HOST:PORT` as `http://HOST:PORT`; a URL as it is.
pub(super) fn base_url(http: &str) -> String {
    if http.starts_with("http://") || http.starts_with("https://") {
        http.trim_end_matches('/').to_owned()
    } else {
        format!("http://{http}")
    }
}

impl Api {
    pub(super) fn new(h: &HttpArgs) -> anyhow::Result<Api> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_millis(h.timeout_ms));
        if let Some(ca) = &h.http_ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading --http-ca-file {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--http-ca-file {}", ca.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = authorization(h)? {
            let mut value = reqwest::header::HeaderValue::from_str(&value)
                .context("the HTTP credentials are not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(Api {
            base: base_url(&h.http),
            client: builder.default_headers(headers).build()?,
        })
    }

    async fn answer(r: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = r.send().await.with_context(|| what.to_owned())?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| what.to_owned())?;
        if !status.is_success() {
            let message = body.get("error").and_then(Value::as_str).unwrap_or("no reason given");
            if let Some(setting) = body.get("setting").and_then(Value::as_str) {
                bail!("{what}: {status}: {}", changes_off(setting));
            }
            bail!("{what}: {status}: {message}");
        }
        Ok(body)
    }

    pub(super) async fn get(&self, path: &str, query: &serde_json::Map<String, Value>) -> anyhow::Result<Value> {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        let url = format!("{}{path}", self.base);
        Self::answer(self.client.get(&url).query(&pairs), &format!("GET {url}")).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        Self::answer(self.client.post(&url).json(body), &format!("POST {url}")).await
    }
}

/// What to do when the broker's HTTP listener takes no changes: it names
/// `setting` (`[listeners] http_mutations`), which is set in the broker's
/// file or its environment and read at start.
fn changes_off(setting: &str) -> String {
    let variable = setting
        .strip_prefix('[')
        .and_then(|s| s.split_once("] "))
        .map(|(table, key)| format!("VELTRIX_{}__{}", table.to_uppercase(), key.to_uppercase()));
    let mut advice = format!("the broker takes no changes over HTTP; set `{setting} = true` in its configuration file");
    if let Some(variable) = variable {
        advice.push_str(&format!(" (or {variable}=true in its environment)"));
    }
    advice.push_str(" and restart it");
    advice
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| text(ms), |t| t.to_string())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.http)?;
    let mut q = a.filter.json();
    q.insert("limit".into(), json!(a.limit));
    let answer = api.get(&format!("/api/v1/dlq/{}/letters", a.topic), &q).await?;
    if a.http.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["letters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            vec![
                format!("{}:{}", l["partition"], l["offset"]),
                time(&l["timestamp_ms"]),
                format!(
                    "{}:{}:{}",
                    text(&l["source"]["topic"]),
                    text(&l["source"]["partition"]),
                    text(&l["source"]["offset"])
                ),
                text(&l["group"]),
                text(&l["reason"]),
                text(&l["deliveries"]),
                if l["redriven"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
            ]
        })
        .collect();
    print_table(
        &[
            "LETTER",
            "WRITTEN",
            "SOURCE",
            "GROUP",
            "REASON",
            "DELIVERIES",
            "REDRIVEN",
        ],
        &rows,
    );
    if answer["more"].as_bool() == Some(true) {
        println!("(more letters match: narrow the filters or raise --limit)");
    }
    Ok(())
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.http)?;
    let path = format!("/api/v1/dlq/{}/letters/{}/{}", a.topic, a.partition, a.offset);
    let l = api.get(&path, &serde_json::Map::new()).await?;
    if a.http.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&l)?);
        return Ok(());
    }
    println!("letter      {}:{}:{}", a.topic, l["partition"], l["offset"]);
    println!("written     {}", time(&l["timestamp_ms"]));
    println!(
        "source      {}:{}:{}",
        text(&l["source"]["topic"]),
        text(&l["source"]["partition"]),
        text(&l["source"]["offset"])
    );
    println!("group       {}", text(&l["group"]));
    println!("reason      {}: {}", text(&l["reason"]), text(&l["message"]));
    println!("deliveries  {}", text(&l["deliveries"]));
    println!("redriven    {}", l["redriven"]);
    for (what, v) in [("key", &l["key"]), ("value", &l["value"])] {
        let shown = v
            .get("text")
            .or_else(|| v.get("hex"))
            .map_or_else(|| "(null)".to_owned(), text);
        println!("{what:<11} {shown}");
    }
    println!("headers");
    for h in l["headers"].as_array().into_iter().flatten() {
        println!("  {} = {}", text(&h[0]), text(&h[1]));
    }
    Ok(())
}

async fn redrive(a: RedriveArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.http)?;
    let mut body = a.filter.json();
    body.insert("records_per_second".into(), json!(a.rate));
    body.insert("dry_run".into(), json!(a.dry_run));
    if let Some(t) = &a.target {
        body.insert("target".into(), json!(t));
    }
    let answer = api
        .post(&format!("/api/v1/dlq/{}/redrive", a.topic), &Value::Object(body))
        .await?;
    if a.dry_run {
        if a.http.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
            return Ok(());
        }
        let plan = &answer["plan"];
        println!(
            "{} letters selected of {} read{}; {} redriven before, {} whose topic does not exist",
            plan["selected"],
            plan["scanned"],
            if plan["truncated"].as_bool() == Some(true) {
                " (stopped early)"
            } else {
                ""
            },
            plan["already_redriven"],
            plan["target_missing"]
        );
        let mut rows = Vec::new();
        for (topic, parts) in plan["moves"].as_object().into_iter().flatten() {
            for (p, n) in parts.as_object().into_iter().flatten() {
                rows.push(vec![topic.clone(), p.clone(), text(n)]);
            }
        }
        print_table(&["TO TOPIC", "PARTITION", "LETTERS"], &rows);
        println!("(dry run: nothing moved)");
        return Ok(());
    }
    let id = answer["id"].as_u64().context("the answer names no redrive")?;
    if !a.wait {
        if a.http.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            println!("redrive {id} started; follow it with `veltrix dlq jobs`");
        }
        return Ok(());
    }
    loop {
        let job = api
            .get(&format!("/api/v1/redrives/{id}"), &serde_json::Map::new())
            .await?;
        let state = job["state"]["state"].as_str().unwrap_or("running").to_owned();
        if state != "running" {
            if a.http.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                println!(
                    "redrive {id} {state}: {} moved, {} left{}",
                    job["moved"],
                    job["skipped"],
                    job["state"]["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            if state == "failed" {
                bail!("redrive {id} failed");
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn jobs(a: HttpArgs) -> anyhow::Result<()> {
    let api = Api::new(&a)?;
    let answer = api.get("/api/v1/redrives", &serde_json::Map::new()).await?;
    if a.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["redrives"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["topic"]),
                text(&j["target"]),
                text(&j["state"]["state"]),
                text(&j["moved"]),
                text(&j["skipped"]),
                text(&j["remaining"]),
                time(&j["created_ms"]),
            ]
        })
        .collect();
    print_table(
        &["ID", "TOPIC", "TO", "STATE", "MOVED", "LEFT", "TO LOOK AT", "STARTED"],
        &rows,
    );
    Ok(())
}
