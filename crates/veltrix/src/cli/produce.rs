//! `veltrix produce TOPIC`: each line of stdin (or `--file`) becomes a record.
//!
//! Lines are read on a thread of their own into a bounded queue and packed, per
//! partition, into RecordBatch v2 batches of at most `--batch-bytes-max` bytes.
//! A produce request, one batch per partition, goes out when a batch is full,
//! when the batches held reach [`REQUEST_BYTES_TARGET`] (or one batch size if
//! larger), when no line has arrived for `--linger-ms` (so that lines typed by
//! hand are sent as they come), and at the end of the input. One request is in
//! flight at a time, so each partition's records keep the order of the lines.
//!
//! A record goes to `--partition` if given, else by the murmur2 hash of its key
//! as the Java client does, else round-robin. There are no retries: a batch
//! the broker refuses stops the run, and the summary says what was
//! acknowledged before it; the exit status is then 1, with the Kafka error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::sync::mpsc;
use veltrix_client::partitioner::{RoundRobin, partition_for_key};
use veltrix_client::{Acks, BatchBuilder, Client, Header, ProducerRecord, Pushed};

use super::{ConnectArgs, block_on, plural};

/// Batches held before a request is sent, unless one batch is larger.
pub const REQUEST_BYTES_TARGET: usize = 1 << 20;
/// Lines read ahead of the producer.
const LINES_QUEUED_MAX: usize = 1024;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The topic to produce to.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value; a line without SEP
    /// is an error. Without it, records have no key.
    #[arg(long, value_name = "SEP", value_parser = parse_separator)]
    key_separator: Option<String>,
    /// A header for every record, as KEY=VALUE; repeatable, keys distinct.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..i32::MAX as i64))]
    partition: Option<u32>,
    /// Acknowledgements to wait for: 0 (none), 1 (the leader) or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Largest record batch, in bytes; also the longest line accepted.
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes_max: usize,
    /// Send what is batched after this long without a new line.
    #[arg(long, default_value_t = 100)]
    linger_ms: u64,
    #[command(flatten)]
    connect: ConnectArgs,
}

fn parse_separator(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the key separator cannot be empty".to_owned());
    }
    Ok(s.to_owned())
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, not `{s}`")),
    }
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => Err(format!("expected 0, 1 or all, not `{other}`")),
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    block_on(produce(args))
}

/// One line of input, without its line ending.
#[derive(Debug)]
struct Line {
    number: u64,
    bytes: Vec<u8>,
}

/// Reads lines on a thread, at most `line_bytes_max` bytes each, into a bounded
/// queue; an error ends the queue.
fn spawn_reader(input: Box<dyn Read + Send>, line_bytes_max: usize) -> mpsc::Receiver<anyhow::Result<Line>> {
    let (tx, rx) = mpsc::channel(LINES_QUEUED_MAX);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(input);
        let limit = u64::try_from(line_bytes_max).unwrap_or(u64::MAX).saturating_add(1);
        for number in 1.. {
            let mut bytes = Vec::new();
            let line = match (&mut reader).take(limit).read_until(b'\n', &mut bytes) {
                Ok(0) => return,
                Ok(_) if bytes.len() > line_bytes_max && bytes.last() != Some(&b'\n') => Err(anyhow::anyhow!(
                    "line {number} is longer than --batch-bytes-max ({line_bytes_max} bytes)"
                )),
                Ok(_) => {
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                        if bytes.last() == Some(&b'\r') {
                            bytes.pop();
                        }
                    }
                    Ok(Line { number, bytes })
                }
                Err(e) => Err(anyhow::Error::new(e).context(format!("reading line {number}"))),
            };
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                return;
            }
        }
    });
    rx
}

/// What was acknowledged in one partition.
#[derive(Debug, Default, Clone, Copy)]
struct PartitionSummary {
    records: u64,
    first_offset: Option<i64>,
    last_offset: i64,
}

/// Batches per partition and what has been acknowledged so far.
struct Producer {
    client: Client,
    topic: String,
    acks: Acks,
    /// One builder per partition, indexed by partition.
    builders: Vec<BatchBuilder>,
    /// Send once the held batches reach this many bytes.
    request_bytes_target: usize,
    summary: Vec<PartitionSummary>,
    requests: u64,
    /// Records sent with acks=0, which the broker does not answer.
    unacknowledged_sent: u64,
}

impl Producer {
    fn held_bytes(&self) -> usize {
        self.builders
            .iter()
            .filter(|b| !b.is_empty())
            .map(BatchBuilder::estimated_bytes)
            .sum()
    }

    fn held_records(&self) -> usize {
        self.builders.iter().map(BatchBuilder::len).sum()
    }

    /// Adds the record of line `number` to its partition's batch, sending what
    /// is held first if that batch is full.
    async fn push(&mut self, partition: usize, record: ProducerRecord, number: u64) -> anyhow::Result<()> {
        let line = || format!("line {number}");
        if let Pushed::Full(record) = self.builders[partition].try_push(record).with_context(line)? {
            self.flush().await?;
            if let Pushed::Full(_) = self.builders[partition].try_push(record).with_context(line)? {
                bail!("an empty batch had no room for a record that fits one");
            }
        }
        if self.held_bytes() >= self.request_bytes_target {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every held batch in one request and records the answer.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let mut batches = Vec::new();
        let mut counts = Vec::new();
        for (p, builder) in self.builders.iter_mut().enumerate() {
            if !builder.is_empty() {
                counts.push(builder.len() as u64);
                batches.push((p as i32, builder.build()?));
            }
        }
        if batches.is_empty() {
            return Ok(());
        }
        let in_flight: u64 = counts.iter().sum();
        let answer = self
            .client
            .produce(&self.topic, self.acks, batches)
            .await
            .with_context(|| format!("{in_flight} records were in flight and may or may not have been written"))?;
        self.requests += 1;
        let Some(acks) = answer else {
            self.unacknowledged_sent += in_flight;
            return Ok(());
        };
        let mut refused = Vec::new();
        for (ack, count) in acks.iter().zip(counts) {
            match &ack.result {
                Ok(base) => {
                    let s = &mut self.summary[ack.partition as usize];
                    s.records += count;
                    s.first_offset.get_or_insert(*base);
                    s.last_offset = base + count as i64 - 1;
                }
                Err(e) => refused.push(format!(
                    "partition {}: {} refused: {e}",
                    ack.partition,
                    plural(count, "record")
                )),
            }
        }
        if !refused.is_empty() {
            bail!("{}", refused.join("; "));
        }
        Ok(())
    }

    fn print_summary(&self) {
        if self.acks == Acks::None {
            println!(
                "sent {} in {} to {} (acks=0: the broker does not acknowledge)",
                plural(self.unacknowledged_sent, "record"),
                plural(self.requests, "request"),
                self.topic
            );
            return;
        }
        let total: u64 = self.summary.iter().map(|s| s.records).sum();
        println!(
            "acknowledged {} in {} to {}",
            plural(total, "record"),
            plural(self.requests, "request"),
            self.topic
        );
        for (p, s) in self.summary.iter().enumerate() {
            if let Some(first) = s.first_offset {
                println!(
                    "  partition {p}: {}, offsets {first} to {}",
                    plural(s.records, "record"),
                    s.last_offset
                );
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Turns a line into a record: key and value split at the separator.
fn record(line: Line, separator: Option<&str>, headers: &[Header]) -> anyhow::Result<ProducerRecord> {
    let bytes = Bytes::from(line.bytes);
    let (key, value) = match separator {
        None => (None, bytes),
        Some(sep) => {
            let at = bytes
                .windows(sep.len())
                .position(|w| w == sep.as_bytes())
                .with_context(|| format!("line {} has no key separator `{sep}`", line.number))?;
            (Some(bytes.slice(..at)), bytes.slice(at + sep.len()..))
        }
    };
    Ok(ProducerRecord {
        key,
        value: Some(value),
        headers: headers.to_vec(),
        timestamp_ms: now_ms(),
    })
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    // Checked before connecting, so that a bad flag fails fast.
    let builder = BatchBuilder::new(args.batch_bytes_max).context("--batch-bytes-max")?;
    let mut headers: Vec<Header> = Vec::new();
    for (key, value) in &args.headers {
        if headers.iter().any(|h| &h.key == key) {
            bail!("--header `{key}` is given more than once");
        }
        headers.push(Header {
            key: key.clone(),
            value: Some(Bytes::from(value.clone())),
        });
    }
    let input: Box<dyn Read + Send> = match &args.file {
        Some(path) => Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?),
        None => Box::new(std::io::stdin()),
    };
    let mut client = args.connect.connect().await?;
    let partitions = client.topic(&args.topic).await?.partitions.len();
    if partitions == 0 {
        bail!("topic `{}` has no partitions", args.topic);
    }
    if let Some(p) = args.partition.filter(|p| *p as usize >= partitions) {
        bail!(
            "topic `{}` has {partitions} partitions: partition {p} does not exist",
            args.topic
        );
    }
    let mut producer = Producer {
        client,
        topic: args.topic.clone(),
        acks: args.acks,
        builders: vec![builder; partitions],
        request_bytes_target: REQUEST_BYTES_TARGET.max(args.batch_bytes_max),
        summary: vec![PartitionSummary::default(); partitions],
        requests: 0,
        unacknowledged_sent: 0,
    };
    let lines = spawn_reader(input, args.batch_bytes_max);
    let outcome = produce_lines(&mut producer, lines, &args, &headers).await;
    producer.print_summary();
    let unsent = producer.held_records();
    match outcome {
        Err(e) if unsent > 0 => Err(e.context(format!("{unsent} records batched but not sent"))),
        other => other,
    }
}

async fn produce_lines(
    producer: &mut Producer,
    mut lines: mpsc::Receiver<anyhow::Result<Line>>,
    args: &ProduceArgs,
    headers: &[Header],
) -> anyhow::Result<()> {
    let partitions = producer.builders.len() as u32;
    let linger = Duration::from_millis(args.linger_ms);
    let mut round_robin = RoundRobin::new();
    loop {
        let next = if producer.held_records() > 0 {
            match tokio::time::timeout(linger, lines.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    producer.flush().await?;
                    continue;
                }
            }
        } else {
            lines.recv().await
        };
        let Some(line) = next else { break };
        let line = line?;
        let number = line.number;
        let record = record(line, args.key_separator.as_deref(), headers)?;
        let partition = match (args.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => round_robin.next_partition(partitions),
        };
        producer.push(partition as usize, record, number).await?;
    }
    producer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let line = |s: &str| Line {
            number: 7,
            bytes: s.as_bytes().to_vec(),
        };
        let r = record(line("user-1::a::b"), Some("::"), &[]).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"a::b"[..]));
        let r = record(line("::only value"), Some("::"), &[]).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b""[..]));
        let r = record(line("no key"), None, &[]).unwrap();
        assert_eq!((r.key, r.value.as_deref()), (None, Some(&b"no key"[..])));
        let e = record(line("no separator"), Some(":"), &[]).unwrap_err();
        assert_eq!(e.to_string(), "line 7 has no key separator `:`");
    }

    #[test]
    fn acks_and_headers_parse() {
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert!(parse_acks("2").is_err());
        assert_eq!(parse_header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_header("=c").is_err());
        assert!(parse_separator("").is_err());
    }

    #[tokio::test]
    async fn lines_are_read_without_endings_and_within_their_limit() {
        let input = b"one\r\ntwo\n\nlast without newline".to_vec();
        let mut rx = spawn_reader(Box::new(std::io::Cursor::new(input)), 100);
        let mut got = Vec::new();
        while let Some(line) = rx.recv().await {
            let line = line.unwrap();
            got.push((line.number, String::from_utf8(line.bytes).unwrap()));
        }
        let want = [(1, "one"), (2, "two"), (3, ""), (4, "last without newline")];
        assert_eq!(got, want.map(|(n, s)| (n, s.to_owned())));

        let mut rx = spawn_reader(Box::new(std::io::Cursor::new(b"12345\n123456\n".to_vec())), 5);
        assert_eq!(rx.recv().await.unwrap().unwrap().bytes, b"12345");
        let e = rx.recv().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "line 2 is longer than --batch-bytes-max (5 bytes)");
        assert!(rx.recv().await.is_none());
    }
}
