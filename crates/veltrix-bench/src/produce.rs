//! Producers and the consumers that time records end to end.
//!
//! A stream is one topic written by `producers` connections, each with up to
//! `in_flight` produce requests outstanding (pipelined on one connection, as
//! Kafka clients do). In a closed loop a producer fills a batch as fast as it
//! can and sends it when the window lets it; in an open loop records are due
//! at fixed times (the rate, with its spikes) and a request goes out when a
//! partition's batch is full or the oldest record has waited `linger`.
//! Latency counts from the time a record was due, not from when it was sent,
//! so a broker that falls behind is charged for the queue it causes
//! (coordinated omission). Every value starts with the time it was due in
//! microseconds since the Unix epoch, which the stream's consumers read back
//! for the end-to-end latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use veltrix_client::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use veltrix_client::kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::{Acks, Client, ClientConfig, ClientError, FetchOptions, OffsetSpec, error_name, partitioner};

use crate::encode::{BatchWriter, walk};
use crate::group::{self, Member};
use crate::stats::Latency;

/// Bytes at the start of a value that carry the time it was due.
pub const STAMP_BYTES: usize = 8;
/// How long consumers keep reading after the producers stop, at most, to see
/// the last records arrive.
pub const DRAIN: Duration = Duration::from_secs(5);

/// Microseconds since the Unix epoch, read off a monotonic clock so that
/// wall-clock steps during a run do not show up as latency.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    unix_us_at_start: u64,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let unix_us_at_start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Clock {
            start: Instant::now(),
            unix_us_at_start,
        }
    }

    pub fn now_us(&self) -> u64 {
        self.unix_us_at_start + u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn instant_of(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us.saturating_sub(self.unix_us_at_start))
    }
}

/// A temporary change of rate: `factor` times the base rate from `start`
/// (after the warm-up) for `length`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub start: Duration,
    pub length: Duration,
    pub factor: f64,
}

/// Records per second of a whole stream; 0 runs a closed loop.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rate {
    pub per_s: f64,
    pub spikes: Vec<Spike>,
}

impl Rate {
    pub fn closed_loop(&self) -> bool {
        self.per_s <= 0.0
    }

    /// The rate `since` the start of the measured part.
    pub fn at(&self, since: Duration) -> f64 {
        let mut rate = self.per_s;
        for s in &self.spikes {
            if since >= s.start && since < s.start + s.length {
                rate *= s.factor;
            }
        }
        rate
    }
}

/// When an open loop's records are due, in microseconds. Kept as a fraction:
/// rounding each interval down to whole microseconds would run fast (150,000
/// records/s is 6.67 µs apart; 6 µs is 166,667/s).
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next_us: f64,
}

impl Schedule {
    fn starting_at(us: f64) -> Schedule {
        Schedule { next_us: us }
    }

    /// When the next record is due.
    fn due_us(&self) -> u64 {
        self.next_us as u64
    }

    /// One record sent at `per_s`: the next is due one interval later.
    fn advance(&mut self, per_s: f64) {
        self.next_us += 1e6 / per_s.max(1e-9);
    }
}

/// One topic's load.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// How reports name it (`produce`, `location_ping`).
    pub name: String,
    pub topic: String,
    /// Partitions to create the topic with, if it does not exist (the
    /// broker's default otherwise).
    pub partitions: Option<i32>,
    pub acks: Acks,
    /// Bytes of each value.
    pub record_bytes: usize,
    /// Keyed by player (`player-<n>`, uniform over this many) when set, and
    /// partitioned by the Java client's murmur2; otherwise unkeyed, a batch
    /// at a time to each partition in turn.
    pub players: Option<u64>,
    pub producers: usize,
    pub rate: Rate,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub in_flight: usize,
    /// Connections reading the topic for end-to-end latency; 0 for none.
    pub consumers: usize,
}

/// Settings of a whole run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub bootstrap: String,
    pub client_id: String,
    pub warmup: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    pub seed: u64,
    /// Consumers join this consumer group (one per stream, `<group>-<stream>`
    /// when there are several) and read what it assigns them, instead of
    /// dividing the partitions among themselves.
    pub group: Option<String>,
}

/// What one stream measured.
#[derive(Debug, Clone, Default)]
pub struct StreamResult {
    /// Records acknowledged that were due in the measured part.
    pub records: u64,
    /// Their value bytes.
    pub bytes: u64,
    /// Records refused or never answered.
    pub errors: u64,
    pub first_error: Option<String>,
    /// From due to acknowledged.
    pub produce: Latency,
    /// From due to read by a consumer.
    pub e2e: Latency,
    /// Records the consumers read (all of them, warm-up included).
    pub consumed: u64,
    pub partitions: u32,
    /// The consumer group the consumers read in, if they did.
    pub consumer_group: Option<String>,
}

/// Live counters for the progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub acked: AtomicU64,
    pub errors: AtomicU64,
}

fn record_error(result: &mut StreamResult, n: u64, what: String) {
    result.errors += n;
    if result.first_error.is_none() {
        result.first_error = Some(what);
    }
}

/// Creates the topic with `partitions` if it does not exist; returns its
/// partition count.
pub async fn ensure_topic(
    bootstrap: &str,
    config: &ClientConfig,
    topic: &str,
    partitions: Option<i32>,
) -> Result<u32, ClientError> {
    let mut admin = Client::connect(bootstrap, config.clone()).await?;
    let existing = admin.metadata(Some(&[topic])).await?;
    let found = existing
        .topics
        .iter()
        .find(|t| t.name == topic && t.error.is_none())
        .map(|t| t.partitions.len());
    let count = match found {
        Some(n) if n > 0 => n,
        _ => {
            admin.create_topic(topic, partitions, &[]).await?;
            // Creation is asynchronous on some brokers: wait for the leaders.
            let deadline = Instant::now() + config.request_timeout;
            loop {
                let m = admin.metadata(Some(&[topic])).await?;
                let ready = m
                    .topics
                    .iter()
                    .find(|t| t.name == topic && t.error.is_none())
                    .map(|t| t.partitions.len())
                    .filter(|n| *n > 0 && m.topics.iter().all(|t| t.partitions.iter().all(|p| p.leader >= 0)));
                if let Some(n) = ready {
                    break n;
                }
                if Instant::now() > deadline {
                    return Err(ClientError::UnexpectedResponse(format!(
                        "topic `{topic}` has no leader for every partition {} ms after its creation",
                        config.request_timeout.as_millis()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    u32::try_from(count).map_err(|_| ClientError::UnexpectedResponse(format!("topic `{topic}` has {count} partitions")))
}

/// The time records of one partition's batch were due.
#[derive(Debug)]
enum Due {
    /// One time each (open loop).
    Each(Vec<u64>),
    /// All at once (closed loop: due when generated).
    All { at: u64, count: u64 },
}

struct InFlight {
    correlation_id: i32,
    parts: Vec<(i32, Due)>,
    _permit: OwnedSemaphorePermit,
}

struct Window {
    measure_from_us: u64,
    end_us: u64,
}

impl Window {
    fn measured(&self, us: u64) -> bool {
        us >= self.measure_from_us && us < self.end_us
    }
}

/// Runs every stream at once and returns what each measured, in order.
pub async fn run(
    run: &RunSpec,
    streams: &[StreamSpec],
    progress: Arc<Progress>,
) -> Result<Vec<StreamResult>, ClientError> {
    let config = ClientConfig {
        client_id: run.client_id.clone(),
        request_timeout: run.request_timeout,
        ..ClientConfig::default()
    };
    let clock = Clock::new();
    let mut partitions = Vec::new();
    for s in streams {
        partitions.push(ensure_topic(&run.bootstrap, &config, &s.topic, s.partitions).await?);
    }
    // Connect everything before the clock starts.
    let mut producers = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        for p in 0..s.producers {
            let c = Client::connect(&run.bootstrap, config.clone()).await?.into_connection();
            producers.push((i, p, c));
        }
    }
    let mut consumers = Vec::new();
    let mut groups = vec![None; streams.len()];
    for (i, s) in streams.iter().enumerate() {
        let n = partitions[i];
        let mut client = Client::connect(&run.bootstrap, config.clone()).await?;
        let all: Vec<(i32, OffsetSpec)> = (0..n as i32).map(|p| (p, OffsetSpec::Latest)).collect();
        let latest = client.list_offsets(&s.topic, &all).await?;
        let latest: Vec<(i32, i64)> = latest.iter().map(|o| (o.partition, o.offset.unwrap_or(0))).collect();
        let count = s.consumers.min(n as usize);
        let Some(group) = &run.group else {
            for c in 0..count {
                let mine: Vec<(i32, i64)> = latest
                    .iter()
                    .filter(|(p, _)| *p as usize % s.consumers == c)
                    .copied()
                    .collect();
                let client = Client::connect(&run.bootstrap, config.clone()).await?;
                consumers.push((i, client, mine, None));
            }
            continue;
        };
        let group = if streams.len() == 1 {
            group.clone()
        } else {
            format!("{group}-{}", s.name)
        };
        groups[i] = Some(group.clone());
        let mut members = Vec::new();
        for _ in 0..count {
            let mut client = Client::connect(&run.bootstrap, config.clone()).await?;
            let member = Member::join(&mut client, &group, &s.topic).await?;
            members.push((client, member));
        }
        group::settle(&mut members, n).await?;
        for (client, member) in members {
            let mine = latest
                .iter()
                .filter(|(p, _)| member.assigned().contains(p))
                .copied()
                .collect();
            consumers.push((i, client, mine, Some(member)));
        }
    }
    let start_us = clock.now_us();
    let window = Arc::new(Window {
        measure_from_us: start_us + u64::try_from(run.warmup.as_micros()).unwrap_or(u64::MAX),
        end_us: start_us + u64::try_from((run.warmup + run.duration).as_micros()).unwrap_or(u64::MAX),
    });
    let producers_done = Arc::new(AtomicBool::new(false));
    let mut consumer_tasks = Vec::new();
    for (i, client, mine, member) in consumers {
        let topic = streams[i].topic.clone();
        let (window, done) = (window.clone(), producers_done.clone());
        let task = tokio::spawn(consume_e2e(client, member, topic, mine, clock, window, done));
        consumer_tasks.push((i, task));
    }
    let mut producer_tasks = Vec::new();
    for (i, p, connection) in producers {
        let spec = Arc::new(streams[i].clone());
        let seed = run.seed ^ ((i as u64) << 32) ^ p as u64;
        let (window, progress) = (window.clone(), progress.clone());
        let task = tokio::spawn(produce(
            spec,
            p,
            partitions[i],
            connection,
            clock,
            window,
            seed,
            progress,
        ));
        producer_tasks.push((i, task));
    }
    let mut results: Vec<StreamResult> = partitions
        .iter()
        .zip(groups)
        .map(|(n, consumer_group)| StreamResult {
            partitions: *n,
            consumer_group,
            ..StreamResult::default()
        })
        .collect();
    for (i, task) in producer_tasks {
        let r = task
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a producer task failed: {e}")))?;
        let out = &mut results[i];
        out.records += r.records;
        out.bytes += r.bytes;
        out.produce.add(&r.produce);
        if r.errors > 0 {
            record_error(out, r.errors, r.first_error.unwrap_or_default());
        }
    }
    producers_done.store(true, Ordering::Release);
    for (i, task) in consumer_tasks {
        let r = task
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a consumer task failed: {e}")))?;
        let out = &mut results[i];
        out.consumed += r.consumed;
        out.e2e.add(&r.e2e);
        if r.errors > 0 {
            record_error(out, 0, r.first_error.unwrap_or_default());
        }
    }
    Ok(results)
}

/// One producer connection: a writer loop and a reader task for the answers.
#[allow(clippy::too_many_arguments)]
async fn produce(
    spec: Arc<StreamSpec>,
    index: usize,
    partitions: u32,
    connection: veltrix_client::Connection,
    clock: Clock,
    window: Arc<Window>,
    seed: u64,
    progress: Arc<Progress>,
) -> StreamResult {
    let mut result = StreamResult::default();
    let version = match connection.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => {
            record_error(&mut result, 0, e.to_string());
            return result;
        }
    };
    let (mut writer, mut reader) = match connection.into_split() {
        Ok(halves) => halves,
        Err(e) => {
            record_error(&mut result, 0, e.to_string());
            return result;
        }
    };
    let window_permits = Arc::new(Semaphore::new(spec.in_flight.max(1)));
    let (tx, mut rx) = mpsc::unbounded_channel::<InFlight>();
    let acks_wanted = spec.acks != Acks::None;
    let timeout = spec_timeout(&spec);
    let reader_task = {
        let (spec, window, clock, progress) = (spec.clone(), window.clone(), clock, progress.clone());
        tokio::spawn(async move {
            let mut r = StreamResult::default();
            let mut failed: Option<String> = None;
            while let Some(flight) = rx.recv().await {
                let records: u64 = flight.parts.iter().map(|(_, d)| due_count(d)).sum();
                if let Some(why) = &failed {
                    record_error(&mut r, records, why.clone());
                    progress.errors.fetch_add(records, Ordering::Relaxed);
                    continue;
                }
                let answer = tokio::time::timeout(
                    timeout,
                    reader.receive::<ProduceRequest>(version, flight.correlation_id),
                )
                .await;
                let response = match answer {
                    Ok(Ok(response)) => response,
                    Ok(Err(e)) => {
                        failed = Some(e.to_string());
                        record_error(&mut r, records, e.to_string());
                        progress.errors.fetch_add(records, Ordering::Relaxed);
                        continue;
                    }
                    Err(_) => {
                        let why = format!("no answer to a produce within {} ms", timeout.as_millis());
                        failed = Some(why.clone());
                        record_error(&mut r, records, why);
                        progress.errors.fetch_add(records, Ordering::Relaxed);
                        continue;
                    }
                };
                let acked_us = clock.now_us();
                for (partition, due) in &flight.parts {
                    let code = response
                        .responses
                        .iter()
                        .flat_map(|t| t.partition_responses.iter())
                        .find(|p| p.index == *partition)
                        .map(|p| p.error_code);
                    match code {
                        Some(0) => {
                            let n = count_acked(&mut r, due, acked_us, &window, spec.record_bytes);
                            progress.acked.fetch_add(n, Ordering::Relaxed);
                        }
                        Some(code) => {
                            let n = due_count(due);
                            record_error(&mut r, n, format!("partition {partition}: {}", error_name(code)));
                            progress.errors.fetch_add(n, Ordering::Relaxed);
                        }
                        None => {
                            let n = due_count(due);
                            record_error(
                                &mut r,
                                n,
                                format!("partition {partition} missing from a produce answer"),
                            );
                            progress.errors.fetch_add(n, Ordering::Relaxed);
                        }
                    }
                }
            }
            r
        })
    };

    let mut rng = SmallRng::seed_from_u64(seed);
    let closed = spec.rate.closed_loop();
    let per_producer_rate = |since: Duration| spec.rate.at(since) / spec.producers.max(1) as f64;
    let mut batches: Vec<BatchWriter> = (0..partitions).map(|_| BatchWriter::new()).collect();
    let mut due: Vec<Vec<u64>> = (0..partitions).map(|_| Vec::new()).collect();
    let mut closed_due_at: u64 = 0;
    let mut oldest: Option<u64> = None;
    let mut sticky = (index as u32) % partitions.max(1);
    let mut value = vec![0x5a_u8; spec.record_bytes];
    let mut key_buf = String::new();
    // Spread the producers' first records over one interval.
    let mut schedule = Schedule::starting_at(
        clock.now_us() as f64
            + if closed {
                0.0
            } else {
                rng.random::<f64>() * 1e6 / per_producer_rate(Duration::ZERO).max(1e-9)
            },
    );
    loop {
        let now = clock.now_us();
        if now >= window.end_us || tx.is_closed() {
            break;
        }
        let mut full = false;
        if closed && oldest.is_none() {
            closed_due_at = now;
        }
        // Generate what is due.
        loop {
            let at = if closed { now } else { schedule.due_us() };
            if !closed && at > now {
                break;
            }
            let key: Option<&[u8]> = match spec.players {
                Some(players) => {
                    key_buf.clear();
                    use std::fmt::Write;
                    let _ = write!(key_buf, "player-{}", rng.random_range(0..players.max(1)));
                    Some(key_buf.as_bytes())
                }
                None => None,
            };
            let p = match key {
                Some(k) => partitioner::partition_for_key(k, partitions),
                None => sticky,
            } as usize;
            if !batches[p].is_empty()
                && batches[p].bytes_with(key.map_or(0, <[u8]>::len), spec.record_bytes) > spec.batch_bytes
            {
                full = true;
                break;
            }
            if spec.record_bytes >= STAMP_BYTES {
                value[..STAMP_BYTES].copy_from_slice(&at.to_be_bytes());
            }
            batches[p].push((at / 1000) as i64, key, &value);
            if !closed {
                due[p].push(at);
                let since = Duration::from_micros(at.saturating_sub(window.measure_from_us));
                schedule.advance(per_producer_rate(since));
            }
            oldest.get_or_insert(at);
        }
        let pending = oldest.is_some();
        let lingered = oldest.is_some_and(|o| now.saturating_sub(o) >= spec.linger.as_micros() as u64);
        if full || (pending && lingered) {
            let permit = match window_permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => break,
            };
            let mut parts = Vec::new();
            let mut data = Vec::new();
            for (p, batch) in batches.iter_mut().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                let count = batch.len() as u64;
                data.push(
                    PartitionProduceData::default()
                        .with_index(p as i32)
                        .with_records(Some(batch.take())),
                );
                let d = if closed {
                    Due::All {
                        at: closed_due_at,
                        count,
                    }
                } else {
                    Due::Each(std::mem::take(&mut due[p]))
                };
                parts.push((p as i32, d));
            }
            oldest = None;
            if spec.players.is_none() {
                sticky = (sticky + 1) % partitions.max(1);
            }
            let request = ProduceRequest::default()
                .with_acks(acks_wire(spec.acks))
                .with_timeout_ms(i32::try_from(spec_timeout(&spec).as_millis()).unwrap_or(i32::MAX) / 2)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
                        .with_partition_data(data),
                ]);
            let sent = tokio::time::timeout(timeout, writer.send(&request, version)).await;
            let records: u64 = parts.iter().map(|(_, d)| due_count(d)).sum();
            match sent {
                Ok(Ok(correlation_id)) if acks_wanted => {
                    if tx
                        .send(InFlight {
                            correlation_id,
                            parts,
                            _permit: permit,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(Ok(_)) => {
                    // acks=0: nothing comes back; count what was sent.
                    let sent_us = clock.now_us();
                    for (_, d) in &parts {
                        let n = count_acked(&mut result, d, sent_us, &window, spec.record_bytes);
                        progress.acked.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Ok(Err(e)) => {
                    record_error(&mut result, records, e.to_string());
                    progress.errors.fetch_add(records, Ordering::Relaxed);
                    break;
                }
                Err(_) => {
                    record_error(&mut result, records, "sending a produce request timed out".to_owned());
                    progress.errors.fetch_add(records, Ordering::Relaxed);
                    break;
                }
            }
            continue;
        }
        if closed {
            continue;
        }
        // Sleep until the next record is due or the oldest has lingered.
        let mut wake = schedule.due_us().min(window.end_us);
        if let Some(o) = oldest {
            wake = wake.min(o + spec.linger.as_micros() as u64);
        }
        tokio::time::sleep_until(clock.instant_of(wake).into()).await;
    }
    drop(tx);
    match reader_task.await {
        Ok(r) => {
            result.records += r.records;
            result.bytes += r.bytes;
            result.produce.add(&r.produce);
            if r.errors > 0 {
                record_error(&mut result, r.errors, r.first_error.unwrap_or_default());
            }
        }
        Err(e) => record_error(&mut result, 0, format!("the reader task failed: {e}")),
    }
    result
}

fn spec_timeout(_spec: &StreamSpec) -> Duration {
    Duration::from_secs(30)
}

fn acks_wire(acks: Acks) -> i16 {
    match acks {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    }
}

fn due_count(d: &Due) -> u64 {
    match d {
        Due::Each(v) => v.len() as u64,
        Due::All { count, .. } => *count,
    }
}

/// Counts the acknowledged records of one batch due in the measured part and
/// records their latency; returns how many were acknowledged in all.
fn count_acked(r: &mut StreamResult, due: &Due, acked_us: u64, window: &Window, record_bytes: usize) -> u64 {
    match due {
        Due::Each(times) => {
            for &t in times {
                if window.measured(t) {
                    r.records += 1;
                    r.bytes += record_bytes as u64;
                    r.produce.record(acked_us.saturating_sub(t));
                }
            }
            times.len() as u64
        }
        Due::All { at, count } => {
            if window.measured(*at) {
                r.records += count;
                r.bytes += count * record_bytes as u64;
                r.produce.record_n(acked_us.saturating_sub(*at), *count);
            }
            *count
        }
    }
}

struct ConsumerResult {
    consumed: u64,
    e2e: Latency,
    errors: u64,
    first_error: Option<String>,
}

/// Reads `partitions` from their given offsets until the producers are done
/// and it has caught up (or [`DRAIN`] has passed), timing every stamped value.
async fn consume_e2e(
    mut client: Client,
    mut member: Option<Member>,
    topic: String,
    mut partitions: Vec<(i32, i64)>,
    clock: Clock,
    window: Arc<Window>,
    producers_done: Arc<AtomicBool>,
) -> ConsumerResult {
    let mut out = ConsumerResult {
        consumed: 0,
        e2e: Latency::new(),
        errors: 0,
        first_error: None,
    };
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        bytes_max: 16 << 20,
        partition_bytes_max: 4 << 20,
    };
    let mut done_at: Option<Instant> = None;
    loop {
        let done = producers_done.load(Ordering::Acquire);
        if done && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|t| t.elapsed() > DRAIN) {
            break;
        }
        if let Some(m) = &mut member {
            // The assignment settled before the clock started; a change now
            // (another member gone) is an error of the run, not a rebalance
            // to time through.
            match m.beat_if_due(&mut client).await {
                Ok(false) => {}
                Ok(true) => {
                    out.errors += 1;
                    out.first_error = Some(format!(
                        "consumer: the group's assignment changed during the run, to {:?}",
                        m.assigned()
                    ));
                    break;
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error = Some(format!("consumer: {e}"));
                    break;
                }
            }
        }
        if partitions.is_empty() {
            // A member the group gave nothing (more consumers than partitions).
            if done {
                break;
            }
            tokio::time::sleep(options.max_wait).await;
            continue;
        }
        let fetched = match client.fetch(&topic, &partitions, &options).await {
            Ok(f) => f,
            Err(e) => {
                out.errors += 1;
                out.first_error = Some(format!("consumer: {e}"));
                break;
            }
        };
        let now = clock.now_us();
        let mut caught_up = true;
        for f in fetched {
            let Some(slot) = partitions.iter_mut().find(|(p, _)| *p == f.partition) else {
                continue;
            };
            if let Some(e) = f.error {
                out.errors += 1;
                out.first_error
                    .get_or_insert_with(|| format!("consumer: partition {}: {e}", f.partition));
                continue;
            }
            let e2e = &mut out.e2e;
            let walked = walk(&f.records, |v| {
                if let Some(stamp) = v.get(..STAMP_BYTES) {
                    let at = u64::from_be_bytes(stamp.try_into().unwrap_or([0; 8]));
                    if window.measured(at) {
                        e2e.record(now.saturating_sub(at));
                    }
                }
            });
            match walked {
                Some(w) => {
                    out.consumed += w.records;
                    if let Some(next) = w.next_offset {
                        slot.1 = next;
                    }
                }
                None => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("consumer: partition {}: undecodable batches", f.partition));
                }
            }
            if slot.1 < f.high_watermark {
                caught_up = false;
            }
        }
        if done && caught_up {
            break;
        }
    }
    if let Some(m) = &mut member
        && let Err(e) = m.leave(&mut client).await
    {
        out.first_error
            .get_or_insert_with(|| format!("consumer: leaving the group: {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    /// Regression: intervals rounded down to whole microseconds made
    /// `--rate 300000` with two producers send 333,333 records/s.
    #[test]
    fn open_loop_schedule_keeps_the_exact_rate() {
        for per_s in [150_000.0, 333_333.0, 1_000_000.0, 7.0] {
            let mut s = Schedule::starting_at(1_000.0);
            let n = 1_000_000_u64;
            for _ in 0..n {
                s.advance(per_s);
            }
            let achieved = n as f64 * 1e6 / (s.due_us() as f64 - 1_000.0);
            let error = (achieved - per_s).abs() / per_s;
            assert!(error < 1e-5, "asked for {per_s}/s, sent {achieved}/s");
        }
    }
}
