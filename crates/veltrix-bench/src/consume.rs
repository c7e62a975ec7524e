//! Consume throughput: read what a topic holds, from its first offsets to the
//! high watermarks seen at the start, with `consumers` connections that share
//! the partitions, and time it. Run it after a produce run has filled the
//! topic: the records are then in the page cache, and the number is the
//! broker's fetch path rather than the disk.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use veltrix_client::{Client, ClientConfig, ClientError, FetchOptions, OffsetSpec};

use crate::encode::walk;
use crate::produce::Progress;

/// Fetches in a row that may bring nothing before the run fails: records
/// below the high watermark are always there to read, unless retention
/// removed them meanwhile.
pub const IDLE_FETCHES_MAX: u32 = 50;

/// Settings of a consume run.
#[derive(Debug, Clone)]
pub struct ConsumeSpec {
    pub bootstrap: String,
    pub client_id: String,
    pub topic: String,
    pub consumers: usize,
    /// Bytes of records per fetch, and per partition within it.
    pub fetch_bytes_max: i32,
    pub partition_fetch_bytes_max: i32,
    pub request_timeout: Duration,
}

/// What a consume run measured.
#[derive(Debug, Clone, Default)]
pub struct ConsumeResult {
    pub partitions: u32,
    pub records: u64,
    /// Value bytes.
    pub bytes: u64,
    /// Record batch bytes as fetched (values, keys and framing).
    pub batch_bytes: u64,
    pub fetches: u64,
    pub elapsed: Duration,
}

/// Reads the topic once through; fails on any fetch error.
pub async fn run(spec: &ConsumeSpec, progress: Arc<Progress>) -> Result<ConsumeResult, ClientError> {
    let config = ClientConfig {
        client_id: spec.client_id.clone(),
        request_timeout: spec.request_timeout,
        response_bytes_max: (spec.fetch_bytes_max as usize)
            .saturating_add(spec.partition_fetch_bytes_max as usize)
            .saturating_add(1 << 20),
        ..ClientConfig::default()
    };
    let mut admin = Client::connect(&spec.bootstrap, config.clone()).await?;
    let topic = admin.topic(&spec.topic).await?;
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.index).collect();
    let earliest = admin
        .list_offsets(&spec.topic, &specs(&all, OffsetSpec::Earliest))
        .await?;
    let latest = admin
        .list_offsets(&spec.topic, &specs(&all, OffsetSpec::Latest))
        .await?;
    let consumers = spec.consumers.clamp(1, all.len().max(1));
    let mut work: Vec<Vec<(i32, i64, i64)>> = vec![Vec::new(); consumers];
    for (i, p) in all.iter().enumerate() {
        let from = earliest
            .iter()
            .find(|o| o.partition == *p)
            .and_then(|o| o.offset)
            .unwrap_or(0);
        let to = latest
            .iter()
            .find(|o| o.partition == *p)
            .and_then(|o| o.offset)
            .unwrap_or(0);
        if to > from {
            work[i % consumers].push((*p, from, to));
        }
    }
    let mut clients = Vec::new();
    for _ in 0..consumers {
        clients.push(Client::connect(&spec.bootstrap, config.clone()).await?);
    }
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        bytes_max: spec.fetch_bytes_max,
        partition_bytes_max: spec.partition_fetch_bytes_max,
    };
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, mine) in clients.into_iter().zip(work) {
        let (topic, progress) = (spec.topic.clone(), progress.clone());
        tasks.push(tokio::spawn(read_through(client, topic, mine, options, progress)));
    }
    let mut out = ConsumeResult {
        partitions: all.len() as u32,
        ..ConsumeResult::default()
    };
    for t in tasks {
        let r = t
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a consumer task failed: {e}")))??;
        out.records += r.records;
        out.bytes += r.bytes;
        out.batch_bytes += r.batch_bytes;
        out.fetches += r.fetches;
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

fn specs(partitions: &[i32], spec: OffsetSpec) -> Vec<(i32, OffsetSpec)> {
    partitions.iter().map(|p| (*p, spec)).collect()
}

async fn read_through(
    mut client: Client,
    topic: String,
    mut mine: Vec<(i32, i64, i64)>,
    options: FetchOptions,
    progress: Arc<Progress>,
) -> Result<ConsumeResult, ClientError> {
    let mut out = ConsumeResult::default();
    let mut idle = 0;
    while !mine.is_empty() {
        if idle >= IDLE_FETCHES_MAX {
            return Err(ClientError::UnexpectedResponse(format!(
                "{IDLE_FETCHES_MAX} fetches in a row brought nothing from `{topic}` below the high watermarks read at the start"
            )));
        }
        let before = out.records;
        let asked: Vec<(i32, i64)> = mine.iter().map(|(p, at, _)| (*p, *at)).collect();
        let fetched = client.fetch(&topic, &asked, &options).await?;
        out.fetches += 1;
        for f in fetched {
            if let Some(e) = f.error {
                return Err(ClientError::UnexpectedResponse(format!(
                    "fetching partition {} of `{topic}`: {e}",
                    f.partition
                )));
            }
            let Some(slot) = mine.iter_mut().find(|(p, _, _)| *p == f.partition) else {
                continue;
            };
            let walked = walk(&f.records, |_| {}).ok_or_else(|| {
                ClientError::UnexpectedResponse(format!("partition {} of `{topic}`: undecodable batches", f.partition))
            })?;
            out.records += walked.records;
            out.bytes += walked.value_bytes;
            out.batch_bytes += walked.batch_bytes;
            progress.acked.fetch_add(walked.records, Ordering::Relaxed);
            if let Some(next) = walked.next_offset {
                slot.1 = next;
            }
        }
        mine.retain(|(_, at, to)| at < to);
        idle = if out.records == before { idle + 1 } else { 0 };
    }
    Ok(out)
}
