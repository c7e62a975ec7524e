//! `veltrix consume TOPIC`: prints records of a topic, one per line.
//!
//! The start offset of each partition comes from `--from-beginning` (the log
//! start), `--offset N`, `--from-time T` (the first record stamped at or after
//! T; the end if there is none) or, by default, the end, as Kafka's console
//! consumer does. Without `--follow` the run stops at the high watermarks read
//! at its start, so it prints what existed then and exits; with `--follow` it
//! keeps long-polling for new records. `--count N` stops after N records
//! either way.
//!
//! Records are fetched by explicit assignment (no consumer group), decoded by
//! `veltrix-client` (which decompresses within its bound) and printed as text
//! (`partition=0 offset=5 timestamp=2024-05-01T12:00:00.000Z key=k headers={h=v} value=...`,
//! control characters escaped) or with `--format json` as one JSON object per
//! record, keys, values and header values as strings when they are UTF-8, as
//! `{"hex": "..."}` when not, and `null` when absent.

use std::io::{ErrorKind, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use veltrix_client::{Client, DecodeLimits, FetchOptions, FetchedPartition, OffsetSpec, Record, decode_batches};

use super::time::{format_time, parse_time};
use super::{ConnectArgs, block_on};

/// How long a fetch may wait for records, with and without `--follow`.
const FOLLOW_WAIT: Duration = Duration::from_millis(500);
const CATCH_UP_WAIT: Duration = Duration::from_millis(100);

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to read.
    topic: String,
    /// Read only this partition (else all of them).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Start at the oldest record still kept.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset (in every partition read).
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..), conflicts_with = "from_time")]
    offset: Option<i64>,
    /// Start at the first record stamped at or after this time: RFC 3339
    /// (2024-05-01T12:00:00Z) or milliseconds since the epoch.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from_time: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    connect: ConnectArgs,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    block_on(consume(args))
}

/// Where a partition is being read.
#[derive(Debug)]
struct Position {
    partition: i32,
    /// The next offset to print.
    next: i64,
    /// Stop here (exclusive): the high watermark at start, without --follow.
    end: Option<i64>,
}

impl Position {
    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }
}

/// Stdout, buffered; a closed pipe (`| head`) ends the run quietly.
struct Output {
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    /// Writes one line; `false` once the reader has gone away.
    fn line(&mut self, line: &str) -> anyhow::Result<bool> {
        match writeln!(self.out, "{line}") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
        }
    }

    fn flush(&mut self) -> anyhow::Result<bool> {
        match self.out.flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
        }
    }
}

async fn start_offsets(client: &mut Client, args: &ConsumeArgs, partitions: &[i32]) -> anyhow::Result<Vec<i64>> {
    let listed = |spec: OffsetSpec| partitions.iter().map(|p| (*p, spec)).collect::<Vec<_>>();
    let latest = || listed(OffsetSpec::Latest);
    Ok(if let Some(offset) = args.offset {
        // An offset outside the log is a mistake to report, not a reason to
        // print nothing (without --follow) or to fail later (with it).
        let starts = client.list_offsets(&args.topic, &listed(OffsetSpec::Earliest)).await?;
        let ends = client.list_offsets(&args.topic, &latest()).await?;
        for ((p, s), e) in partitions.iter().zip(&starts).zip(&ends) {
            let (start, end) = (s.offset.unwrap_or(0), e.offset.unwrap_or(0));
            if !(start..=end).contains(&offset) {
                bail!(
                    "offset {offset} is out of range: partition {p} of `{}` holds offsets {start} to {end} (its end)",
                    args.topic
                );
            }
        }
        vec![offset; partitions.len()]
    } else if let Some(ts) = args.from_time {
        let found = client
            .list_offsets(&args.topic, &listed(OffsetSpec::Timestamp(ts)))
            .await?;
        let ends = client.list_offsets(&args.topic, &latest()).await?;
        // No record at or after the time: start at the end.
        found
            .iter()
            .zip(&ends)
            .map(|(f, e)| f.offset.or(e.offset).unwrap_or(0))
            .collect()
    } else {
        let spec = if args.from_beginning {
            OffsetSpec::Earliest
        } else {
            OffsetSpec::Latest
        };
        let found = client.list_offsets(&args.topic, &listed(spec)).await?;
        found.iter().map(|f| f.offset.unwrap_or(0)).collect()
    })
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = args.connect.connect().await?;
    let mut positions = positions(&mut client, &args).await?;
    let mut out = Output {
        out: std::io::BufWriter::new(std::io::stdout()),
    };
    let options = FetchOptions {
        max_wait: if args.follow { FOLLOW_WAIT } else { CATCH_UP_WAIT },
        ..FetchOptions::default()
    };
    let mut remaining = args.count.unwrap_or(u64::MAX);
    while remaining > 0 {
        let wanted: Vec<(i32, i64)> = positions
            .iter()
            .filter(|p| !p.done())
            .map(|p| (p.partition, p.next))
            .collect();
        if wanted.is_empty() {
            break;
        }
        let fetched = client.fetch(&args.topic, &wanted, &options).await?;
        for f in fetched {
            let Some(position) = positions.iter_mut().find(|p| p.partition == f.partition) else {
                continue;
            };
            if !print_fetched(&args, &options, position, &f, &mut out, &mut remaining)? {
                return Ok(());
            }
        }
        if !out.flush()? {
            return Ok(());
        }
    }
    out.flush()?;
    Ok(())
}

/// Where to start reading each partition asked for, and, without
/// `--follow`, where to stop: the end each had when the run started.
async fn positions(client: &mut Client, args: &ConsumeArgs) -> anyhow::Result<Vec<Position>> {
    let topic = client.topic(&args.topic).await?;
    let partitions: Vec<i32> = match args.partition {
        Some(p) if topic.partitions.iter().any(|m| m.index == p) => vec![p],
        Some(p) => bail!(
            "topic `{}` has {} partitions: partition {p} does not exist",
            args.topic,
            topic.partitions.len()
        ),
        None => topic.partitions.iter().map(|m| m.index).collect(),
    };
    let starts = start_offsets(client, args, &partitions).await?;
    let ends: Vec<Option<i64>> = if args.follow {
        vec![None; partitions.len()]
    } else {
        let latest: Vec<_> = partitions.iter().map(|p| (*p, OffsetSpec::Latest)).collect();
        client
            .list_offsets(&args.topic, &latest)
            .await?
            .iter()
            .map(|l| l.offset)
            .collect()
    };
    Ok(partitions
        .iter()
        .zip(starts)
        .zip(ends)
        .map(|((p, next), end)| Position {
            partition: *p,
            next,
            end,
        })
        .collect())
}

/// Prints the records of one partition's fetch from its position on, and
/// moves the position past them; `false` once the run is over (`--count`
/// reached, or the reader gone).
fn print_fetched(
    args: &ConsumeArgs,
    options: &FetchOptions,
    position: &mut Position,
    f: &FetchedPartition,
    out: &mut Output,
    remaining: &mut u64,
) -> anyhow::Result<bool> {
    let at = position.next;
    let context = || format!("topic `{}` partition {} at offset {at}", args.topic, f.partition);
    if let Some(error) = &f.error {
        bail!("fetching {}: {error}", context());
    }
    let batches = decode_batches(&f.records, &DecodeLimits::default()).with_context(context)?;
    if batches.is_empty() && !f.records.is_empty() {
        bail!(
            "{}: the next record batch is larger than the fetch limit of {} bytes",
            context(),
            options.partition_bytes_max
        );
    }
    if batches.is_empty() && f.high_watermark <= position.next {
        // Nothing more below the end we aimed for (the topic may have been
        // recreated since): stop rather than wait for it.
        if let Some(end) = &mut position.end {
            *end = position.next;
        }
    }
    for batch in batches {
        let records = if batch.control { &[][..] } else { &batch.records[..] };
        for record in records {
            if record.offset < position.next || position.end.is_some_and(|end| record.offset >= end) {
                continue;
            }
            let line = match args.format {
                Format::Text => text_line(f.partition, record),
                Format::Json => json_line(f.partition, record),
            };
            if !out.line(&line)? {
                return Ok(false);
            }
            *remaining -= 1;
            if *remaining == 0 {
                out.flush()?;
                return Ok(false);
            }
        }
        position.next = position.next.max(batch.last_offset + 1);
    }
    Ok(true)
}

/// Text for a person: control characters escaped, so a record stays one line.
fn readable_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes for a person: UTF-8 as text, else every non-ASCII byte escaped;
/// `null` when absent.
fn readable(bytes: Option<&Bytes>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => readable_str(s),
            Err(_) => b.escape_ascii().to_string(),
        },
    }
}

fn text_line(partition: i32, r: &Record) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{}={}", readable_str(k.as_str()), readable(v.as_ref())))
        .collect();
    let timestamp = if r.timestamp >= 0 {
        format_time(r.timestamp)
    } else {
        "none".to_owned()
    };
    format!(
        "partition={partition} offset={} timestamp={timestamp} key={} headers={{{}}} value={}",
        r.offset,
        readable(r.key.as_ref()),
        headers.join(", "),
        readable(r.value.as_ref())
    )
}

/// Bytes for a program: a JSON string if UTF-8, else `{"hex": ...}`; `null`
/// when absent.
fn json_bytes(bytes: Option<&Bytes>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
        },
    }
}

fn json_line(partition: i32, r: &Record) -> String {
    let headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), json_bytes(v.as_ref())))
        .collect();
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": json_bytes(r.key.as_ref()),
        "headers": headers,
        "value": json_bytes(r.value.as_ref()),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use veltrix_client::{BatchBuilder, Header, ProducerRecord};

    use super::*;

    /// A record as a fetch would return it, through the client's own builder
    /// and decoder.
    fn record(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&str, Option<&[u8]>)]) -> Record {
        let mut b = BatchBuilder::new(1 << 16).unwrap();
        b.try_push(ProducerRecord {
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: headers
                .iter()
                .map(|(k, v)| Header {
                    key: (*k).to_owned(),
                    value: v.map(Bytes::copy_from_slice),
                })
                .collect(),
            timestamp_ms: 1_700_000_000_123,
        })
        .unwrap();
        let batch = b.build().unwrap();
        decode_batches(&batch, &DecodeLimits::default())
            .unwrap()
            .remove(0)
            .records
            .remove(0)
    }

    #[test]
    fn text_lines_are_one_line_and_readable() {
        let r = record(
            Some(b"k1"),
            Some(b"two\nlines\t\xc3\xa9"),
            &[("h", Some(b"x")), ("n", None)],
        );
        assert_eq!(
            text_line(2, &r),
            "partition=2 offset=0 timestamp=2023-11-14T22:13:20.123Z key=k1 headers={h=x, n=null} value=two\\nlines\\té"
        );
        let r = record(None, Some(b"\xff\x00a"), &[]);
        assert_eq!(
            text_line(0, &r),
            "partition=0 offset=0 timestamp=2023-11-14T22:13:20.123Z key=null headers={} value=\\xff\\x00a"
        );
    }

    #[test]
    fn json_lines_keep_bytes_exactly() {
        let r = record(Some(b"\xff\x01"), None, &[("h", Some(b"v")), ("n", None)]);
        let v: Value = serde_json::from_str(&json_line(1, &r)).unwrap();
        assert_eq!(
            v,
            json!({
                "partition": 1,
                "offset": 0,
                "timestamp": 1_700_000_000_123i64,
                "key": {"hex": "ff01"},
                "headers": {"h": "v", "n": null},
                "value": null,
            })
        );
    }
}
