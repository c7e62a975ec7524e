//! Share-group consumption (KIP-932): `consumers` members of one share group
//! drain a topic filled with `fill` records, each accepting every record it
//! acquires, the acceptances riding on its next ShareFetch. What counts is
//! records whose acceptance the broker answered without error (on Veltrix,
//! after the share-partition state recording it is durable), per second of
//! the measured window: it starts after the warm-up and ends after the
//! duration, or when the last filled record is acknowledged, whichever comes
//! first.
//!
//! The members join and open their share sessions before the topic is
//! filled: a share group starts reading a partition where its log ended when
//! the group first read it (`share.auto.offset.reset=latest`, Kafka's
//! default), so its first reads come before the first record.
//!
//! Once every filled record has been acquired, a member sends its last
//! acceptances with ShareAcknowledge rather than with a ShareFetch that
//! would wait `max_wait` for records that will not come.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use veltrix_client::{
    AckOutcome, AckType, Acks, Client, ClientConfig, ClientError, ShareConsumer, ShareFetchOptions, member_id,
};

use crate::encode::BatchWriter;
use crate::produce::{Progress, ensure_topic};
use crate::stats::Latency;

/// The largest batch the fill writes per partition and request.
const FILL_BATCH_BYTES_MAX: usize = 1 << 20;
/// Connections writing the fill at once, at most.
const FILL_CONNECTIONS_MAX: usize = 4;
/// How long the members' assignments may take to cover the topic.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the broker may wait in the first, empty fetch that opens each
/// member's session.
const OPENING_WAIT: Duration = Duration::from_millis(10);

/// Settings of a share-consume run.
#[derive(Debug, Clone)]
pub struct ShareSpec {
    pub bootstrap: String,
    pub client_id: String,
    pub topic: String,
    pub group: String,
    /// Partitions of the topic, if this run creates it.
    pub partitions: i32,
    /// Members of the group, each on its own connection.
    pub consumers: usize,
    /// Records written before the clock starts.
    pub fill: u64,
    pub record_bytes: usize,
    pub fetch: ShareFetchOptions,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
}

/// What a share-consume run measured.
#[derive(Debug, Clone, Default)]
pub struct ShareResult {
    pub partitions: u32,
    /// Records acknowledged inside the measured window.
    pub records: u64,
    /// Records acknowledged in all, warm-up included.
    pub acked_total: u64,
    /// The measured window: up to the duration, shorter if the topic drained.
    pub window: Duration,
    /// Whether the last filled record was acknowledged before the duration
    /// ran out.
    pub drained: bool,
    /// Records acquired a second time or more.
    pub redelivered: u64,
    pub fetches: u64,
    /// ShareFetch round trips: the broker's answer includes recording the
    /// acknowledgements the request carried.
    pub fetch_latency: Latency,
    /// Records whose acknowledgement the broker refused, and fetch errors.
    pub errors: u64,
    pub first_error: Option<String>,
}

/// What the members share while they run.
struct Shared {
    fill: u64,
    acquired: AtomicU64,
    acked: AtomicU64,
    /// Microseconds from the start until the last filled record was
    /// acknowledged; 0 until then.
    drained_us: AtomicU64,
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Shared {
    fn done(&self) -> bool {
        Instant::now() >= self.end || self.drained_us.load(Ordering::Relaxed) > 0
    }

    fn all_acquired(&self) -> bool {
        self.acquired.load(Ordering::Relaxed) >= self.fill
    }

    /// Counts `n` acknowledged records at `now`; `true` if inside the window.
    fn acked(&self, n: u64, now: Instant) -> bool {
        let before = self.acked.fetch_add(n, Ordering::Relaxed);
        if before < self.fill && before + n >= self.fill {
            let us = now.duration_since(self.start).as_micros().max(1) as u64;
            self.drained_us.store(us, Ordering::Relaxed);
        }
        now >= self.measure_from && now < self.end
    }
}

/// Fills the topic, then drains it with the group and times it.
pub async fn run(spec: &ShareSpec, progress: Arc<Progress>) -> Result<ShareResult, ClientError> {
    if spec.fill == 0 || spec.consumers == 0 {
        return Err(ClientError::InvalidArgument(
            "a share-consume run needs records and consumers".into(),
        ));
    }
    let config = ClientConfig {
        client_id: spec.client_id.clone(),
        request_timeout: spec.request_timeout,
        response_bytes_max: usize::try_from(spec.fetch.bytes_max)
            .unwrap_or(0)
            .saturating_mul(2)
            .saturating_add(1 << 20),
        ..ClientConfig::default()
    };
    let partitions = ensure_topic(&spec.bootstrap, &config, &spec.topic, Some(spec.partitions), &[]).await?;
    let members = join(spec, &config, partitions).await?;
    fill(spec, &config, partitions).await?;
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let shared = Arc::new(Shared {
        fill: spec.fill,
        acquired: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        drained_us: AtomicU64::new(0),
        start,
        measure_from,
        end: measure_from + spec.duration,
    });
    let tasks: Vec<_> = members
        .into_iter()
        .map(|m| tokio::spawn(consume(m, shared.clone(), progress.clone())))
        .collect();
    let mut out = ShareResult {
        partitions,
        ..ShareResult::default()
    };
    for t in tasks {
        let r = t
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a share consumer task failed: {e}")))?;
        out.records += r.records;
        out.redelivered += r.redelivered;
        out.fetches += r.fetches;
        out.fetch_latency.add(&r.fetch_latency);
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out.acked_total = shared.acked.load(Ordering::Relaxed);
    let drained_us = shared.drained_us.load(Ordering::Relaxed);
    let window_end = match drained_us {
        0 => shared.end,
        us => (start + Duration::from_micros(us)).min(shared.end),
    };
    out.drained = window_end < shared.end;
    out.window = window_end.saturating_duration_since(measure_from);
    if out.window.is_zero() {
        return Err(ClientError::InvalidArgument(format!(
            "all {} records were acknowledged during the {:.1} s warm-up: fill more",
            spec.fill,
            spec.warmup.as_secs_f64()
        )));
    }
    Ok(out)
}

/// Joins every member, waits until their assignments cover the topic and
/// have settled (a partition changing members during the run would hand its
/// acquired records to another), and opens each one's share session with an
/// empty fetch.
async fn join(spec: &ShareSpec, config: &ClientConfig, partitions: u32) -> Result<Vec<ShareConsumer>, ClientError> {
    let opening = ShareFetchOptions {
        max_wait: OPENING_WAIT,
        ..spec.fetch
    };
    let mut members = Vec::with_capacity(spec.consumers);
    for _ in 0..spec.consumers {
        let connection = Client::connect(&spec.bootstrap, config.clone())
            .await?
            .into_connection();
        let id = member_id(uuid::Uuid::from_u128(rand::random()));
        members.push(ShareConsumer::join(connection, &spec.group, &spec.topic, id, opening).await?);
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        // Settled when every partition has a member and no member's view is
        // stale: the broker gives a partition to one member while there are
        // enough partitions, and one partition to each member when not.
        let covered: std::collections::BTreeSet<i32> =
            members.iter().flat_map(|m| m.assigned().iter().copied()).collect();
        let held: usize = members.iter().map(|m| m.assigned().len()).sum();
        if covered.len() == partitions as usize
            && held == (partitions as usize).max(members.len())
            && members.iter().all(|m| !m.assigned().is_empty())
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err(ClientError::UnexpectedResponse(format!(
                "the share group's assignments did not cover the {partitions} partitions within {} s",
                SETTLE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for m in &mut members {
            m.heartbeat().await?;
        }
    }
    for m in &mut members {
        let opened = m.fetch().await?;
        if opened.acquired() > 0 {
            return Err(ClientError::UnexpectedResponse(format!(
                "topic `{}` already holds records for group `{}`: use a new topic or group",
                spec.topic, spec.group
            )));
        }
        m.set_options(spec.fetch);
    }
    Ok(members)
}

/// Writes `spec.fill` records of `spec.record_bytes` bytes, spread evenly over
/// the partitions, with acks=all.
async fn fill(spec: &ShareSpec, config: &ClientConfig, partitions: u32) -> Result<(), ClientError> {
    let connections = FILL_CONNECTIONS_MAX.min(partitions as usize).max(1);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let mine: Vec<(i32, u64)> = (0..partitions)
            .filter(|p| *p as usize % connections == c)
            .map(|p| {
                let extra = u64::from(u64::from(p) < spec.fill % u64::from(partitions));
                (p as i32, spec.fill / u64::from(partitions) + extra)
            })
            .collect();
        let client = Client::connect(&spec.bootstrap, config.clone()).await?;
        let (topic, record_bytes) = (spec.topic.clone(), spec.record_bytes);
        tasks.push(tokio::spawn(fill_partitions(client, topic, record_bytes, mine)));
    }
    for t in tasks {
        t.await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a fill task failed: {e}")))??;
    }
    Ok(())
}

async fn fill_partitions(
    mut client: Client,
    topic: String,
    record_bytes: usize,
    mut left: Vec<(i32, u64)>,
) -> Result<(), ClientError> {
    let value = vec![0x5a_u8; record_bytes];
    let mut writer = BatchWriter::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    while left.iter().any(|(_, n)| *n > 0) {
        let mut batches: Vec<(i32, Bytes)> = Vec::new();
        for (p, n) in left.iter_mut().filter(|(_, n)| *n > 0) {
            while *n > 0 && (writer.is_empty() || writer.bytes_with(0, record_bytes, 0) <= FILL_BATCH_BYTES_MAX) {
                writer.push(now_ms, None, &value, None);
                *n -= 1;
            }
            batches.push((*p, writer.take()));
        }
        let acks = client.produce(&topic, Acks::All, batches).await?.unwrap_or_default();
        if let Some(e) = acks.into_iter().find_map(|a| a.result.err()) {
            return Err(ClientError::Kafka {
                context: format!("filling topic `{topic}`"),
                error: e,
            });
        }
    }
    Ok(())
}

/// Fetches and accepts until the run is over; returns the member's counts.
async fn consume(mut member: ShareConsumer, shared: Arc<Shared>, progress: Arc<Progress>) -> ShareResult {
    let mut out = ShareResult::default();
    while !shared.done() {
        if shared.all_acquired() {
            break;
        }
        let asked = Instant::now();
        let fetched = match member.fetch().await {
            Ok(f) => f,
            Err(e) => {
                fail(&mut out, 1, e.to_string());
                break;
            }
        };
        let now = Instant::now();
        out.fetches += 1;
        out.fetch_latency.record(now.duration_since(asked).as_micros() as u64);
        count(&mut out, &fetched.acks, now, &shared, &progress);
        for p in &fetched.partitions {
            if let Some(e) = &p.error {
                fail(&mut out, 1, format!("partition {}: {e}", p.partition));
            }
            for a in &p.acquired {
                if let Err(e) = member.acknowledge(p.partition, a.first_offset, a.last_offset, AckType::Accept) {
                    fail(&mut out, a.count(), e.to_string());
                    continue;
                }
                shared.acquired.fetch_add(a.count(), Ordering::Relaxed);
                if a.delivery_count > 1 {
                    out.redelivered += a.count();
                }
            }
        }
    }
    // The last acceptances: they count if the window is still open.
    match member.flush().await {
        Ok(acks) => count(&mut out, &acks, Instant::now(), &shared, &progress),
        Err(e) => fail(&mut out, 1, format!("acknowledging the last records: {e}")),
    }
    if let Err(e) = member.close().await {
        fail(&mut out, 0, format!("closing: {e}"));
    }
    out
}

/// Counts acknowledgement outcomes answered at `now`.
fn count(out: &mut ShareResult, acks: &[AckOutcome], now: Instant, shared: &Shared, progress: &Progress) {
    for a in acks {
        match &a.error {
            None => {
                if shared.acked(a.records, now) {
                    out.records += a.records;
                }
                progress.acked.fetch_add(a.records, Ordering::Relaxed);
            }
            Some(e) => {
                progress.errors.fetch_add(a.records, Ordering::Relaxed);
                fail(
                    out,
                    a.records,
                    format!("acknowledging {} records of partition {}: {e}", a.records, a.partition),
                );
            }
        }
    }
}

fn fail(out: &mut ShareResult, n: u64, what: String) {
    out.errors += n.max(1);
    out.first_error.get_or_insert(what);
}
