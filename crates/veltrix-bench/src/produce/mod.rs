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

use tokio::sync::{Semaphore, mpsc};
use veltrix_client::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use veltrix_client::kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::{Acks, Client, ClientConfig, ClientError, Connection, OffsetSpec};

use crate::group::{self, Member};
use crate::stats::Latency;

mod answers;
mod e2e;
mod generator;
pub mod message_ids;

use answers::{InFlight, count_acked, read_answers};
use e2e::{Consumer, ConsumerResult, Position, consume_e2e};
use generator::{Generator, Outgoing, records};

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

    /// When the clock started, in microseconds since the Unix epoch.
    pub fn started_us(&self) -> u64 {
        self.unix_us_at_start
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

/// One topic's load.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// How reports name it (`produce`, `location_ping`).
    pub name: String,
    pub topic: String,
    /// Partitions to create the topic with, if it does not exist (the
    /// broker's default otherwise).
    pub partitions: Option<i32>,
    /// Settings of the topic, if this run creates it (`retention.ms`,
    /// `veltrix.dedup.window.ms`); an existing topic keeps its own.
    pub topic_configs: Vec<(String, String)>,
    pub acks: Acks,
    /// Bytes of each value.
    pub record_bytes: usize,
    /// Keyed by player (`player-<n>`, uniform over this many) when set, and
    /// partitioned by the Java client's murmur2; otherwise unkeyed, a batch
    /// at a time to each partition in turn.
    pub players: Option<u64>,
    /// Every record carries a unique id in its `message-id` header
    /// ([`message_ids`]), for a topic with a duplicate window.
    pub message_ids: bool,
    /// Every record carries this value in its `event` header ([`EVENT_HEADER`]):
    /// the kind of event, when several kinds share one topic.
    pub event: Option<String>,
    pub producers: usize,
    pub rate: Rate,
    pub batch_bytes: usize,
    pub linger: Duration,
    pub in_flight: usize,
    /// Connections reading the topic for end-to-end latency; 0 for none.
    pub consumers: usize,
}

/// The header naming a record's kind of event (`StreamSpec::event`).
pub const EVENT_HEADER: &[u8] = b"event";

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

/// Creates the topic with `partitions` and `configs` if it does not exist;
/// returns its partition count.
pub async fn ensure_topic(
    bootstrap: &str,
    config: &ClientConfig,
    topic: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
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
            admin.create_topic(topic, partitions, configs).await?;
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

/// The part of the run that counts: records due from the end of the
/// warm-up to the end.
struct Window {
    measure_from_us: u64,
    end_us: u64,
}

impl Window {
    fn measured(&self, us: u64) -> bool {
        us >= self.measure_from_us && us < self.end_us
    }
}

/// How long a produce request may take to be written, and to be answered.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every task of one producer shares.
#[derive(Clone)]
struct ProducerContext {
    spec: Arc<StreamSpec>,
    clock: Clock,
    window: Arc<Window>,
    progress: Arc<Progress>,
    timeout: Duration,
}

impl ProducerContext {
    /// Counts `n` records as errors, in the result and on the progress bar.
    fn errors(&self, r: &mut StreamResult, n: u64, what: String) {
        record_error(r, n, what);
        self.progress.errors.fetch_add(n, Ordering::Relaxed);
    }
}

/// A producer connection, made before the clock starts.
struct ProducerSetup {
    /// Its stream, an index into the run's streams.
    stream: usize,
    /// Its number within the stream.
    index: usize,
    connection: Connection,
}

/// A consumer, made (and settled in its group) before the clock starts.
struct ConsumerSetup {
    stream: usize,
    consumer: Consumer,
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
        partitions.push(ensure_topic(&run.bootstrap, &config, &s.topic, s.partitions, &s.topic_configs).await?);
    }
    // Connect everything before the clock starts.
    let mut producers = Vec::new();
    for (stream, s) in streams.iter().enumerate() {
        for index in 0..s.producers {
            let connection = Client::connect(&run.bootstrap, config.clone()).await?.into_connection();
            producers.push(ProducerSetup {
                stream,
                index,
                connection,
            });
        }
    }
    let mut consumers = Vec::new();
    let mut groups = Vec::new();
    for (stream, s) in streams.iter().enumerate() {
        let group = consumer_group(run, streams.len(), s);
        consumers.extend(
            connect_consumers(run, &config, s, partitions[stream], group.as_deref())
                .await?
                .into_iter()
                .map(|consumer| ConsumerSetup { stream, consumer }),
        );
        groups.push(group);
    }
    let start_us = clock.now_us();
    let window = Arc::new(Window {
        measure_from_us: start_us + u64::try_from(run.warmup.as_micros()).unwrap_or(u64::MAX),
        end_us: start_us + u64::try_from((run.warmup + run.duration).as_micros()).unwrap_or(u64::MAX),
    });
    let producers_done = Arc::new(AtomicBool::new(false));
    let mut consumer_tasks = Vec::new();
    for c in consumers {
        let (window, done) = (window.clone(), producers_done.clone());
        consumer_tasks.push((c.stream, tokio::spawn(consume_e2e(c.consumer, clock, window, done))));
    }
    let mut producer_tasks = Vec::new();
    for p in producers {
        let cx = ProducerContext {
            spec: Arc::new(streams[p.stream].clone()),
            clock,
            window: window.clone(),
            progress: progress.clone(),
            timeout: PRODUCE_TIMEOUT,
        };
        let seed = run.seed ^ ((p.stream as u64) << 32) ^ p.index as u64;
        let task = tokio::spawn(produce(cx, p.index, partitions[p.stream], p.connection, seed));
        producer_tasks.push((p.stream, task));
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
    for (stream, task) in producer_tasks {
        let r = task
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a producer task failed: {e}")))?;
        add_produced(&mut results[stream], r);
    }
    producers_done.store(true, Ordering::Release);
    for (stream, task) in consumer_tasks {
        let r = task
            .await
            .map_err(|e| ClientError::UnexpectedResponse(format!("a consumer task failed: {e}")))?;
        add_consumed(&mut results[stream], r);
    }
    Ok(results)
}

/// The consumer group `s`'s consumers join, if the run uses one: the run's,
/// suffixed with the stream's name when there are several streams.
fn consumer_group(run: &RunSpec, streams: usize, s: &StreamSpec) -> Option<String> {
    let group = run.group.as_ref()?;
    Some(if streams == 1 {
        group.clone()
    } else {
        format!("{group}-{}", s.name)
    })
}

/// `s`'s consumers, each starting at the end of the partitions it reads:
/// without a group, the `partitions` divided among them in turn; in `group`,
/// what the group assigns each once it has settled.
async fn connect_consumers(
    run: &RunSpec,
    config: &ClientConfig,
    s: &StreamSpec,
    partitions: u32,
    group: Option<&str>,
) -> Result<Vec<Consumer>, ClientError> {
    let mut client = Client::connect(&run.bootstrap, config.clone()).await?;
    let all: Vec<(i32, OffsetSpec)> = (0..partitions as i32).map(|p| (p, OffsetSpec::Latest)).collect();
    let latest: Vec<Position> = client
        .list_offsets(&s.topic, &all)
        .await?
        .iter()
        .map(|o| Position {
            partition: o.partition,
            offset: o.offset.unwrap_or(0),
        })
        .collect();
    let count = s.consumers.min(partitions as usize);
    let mut consumers = Vec::new();
    let Some(group) = group else {
        for c in 0..count {
            consumers.push(Consumer {
                client: Client::connect(&run.bootstrap, config.clone()).await?,
                member: None,
                topic: s.topic.clone(),
                positions: latest
                    .iter()
                    .filter(|p| p.partition as usize % s.consumers == c)
                    .copied()
                    .collect(),
            });
        }
        return Ok(consumers);
    };
    let mut members = Vec::new();
    for _ in 0..count {
        let mut client = Client::connect(&run.bootstrap, config.clone()).await?;
        let member = Member::join(&mut client, group, &s.topic).await?;
        members.push(group::Joined { client, member });
    }
    group::settle(&mut members, partitions).await?;
    for group::Joined { client, member } in members {
        let positions = latest
            .iter()
            .filter(|p| member.assigned().contains(&p.partition))
            .copied()
            .collect();
        consumers.push(Consumer {
            client,
            member: Some(member),
            topic: s.topic.clone(),
            positions,
        });
    }
    Ok(consumers)
}

/// Adds one producer's result to its stream's.
fn add_produced(out: &mut StreamResult, r: StreamResult) {
    out.records += r.records;
    out.bytes += r.bytes;
    out.produce.add(&r.produce);
    if r.errors > 0 {
        record_error(out, r.errors, r.first_error.unwrap_or_default());
    }
}

/// Adds one consumer's result to its stream's.
fn add_consumed(out: &mut StreamResult, r: ConsumerResult) {
    out.consumed += r.consumed;
    out.e2e.add(&r.e2e);
    if r.errors > 0 {
        record_error(out, 0, r.first_error.unwrap_or_default());
    }
}

/// One producer connection: this writer loop, which generates records and
/// sends them, and a reader task for the answers ([`read_answers`]).
async fn produce(
    cx: ProducerContext,
    index: usize,
    partitions: u32,
    connection: Connection,
    seed: u64,
) -> StreamResult {
    let mut result = StreamResult::default();
    let version = match connection.version(ApiKey::Produce) {
        Ok(v) => v,
        Err(e) => {
            record_error(&mut result, 0, e.to_string());
            return result;
        }
    };
    let (mut writer, reader) = match connection.into_split() {
        Ok(halves) => halves,
        Err(e) => {
            record_error(&mut result, 0, e.to_string());
            return result;
        }
    };
    let window_permits = Arc::new(Semaphore::new(cx.spec.in_flight.max(1)));
    let (tx, rx) = mpsc::unbounded_channel::<InFlight>();
    let reader_task = tokio::spawn(read_answers(reader, rx, version, cx.clone()));
    let spec = cx.spec.clone();
    let mut generator = Generator::new(&spec, index, partitions, seed, cx.clock.started_us(), cx.clock.now_us());
    loop {
        let now = cx.clock.now_us();
        if now >= cx.window.end_us || tx.is_closed() {
            break;
        }
        let full = generator.generate(now, &cx.window);
        if generator.ready(now, full) {
            let Ok(permit) = window_permits.clone().acquire_owned().await else {
                break;
            };
            let Outgoing { data, parts } = generator.take();
            let request = produce_request(&spec, data, cx.timeout);
            let sent = tokio::time::timeout(cx.timeout, writer.send(&request, version)).await;
            match sent {
                Ok(Ok(correlation_id)) if spec.acks != Acks::None => {
                    let flight = InFlight {
                        correlation_id,
                        parts,
                        _permit: permit,
                    };
                    if tx.send(flight).is_err() {
                        break;
                    }
                }
                Ok(Ok(_)) => {
                    // acks=0: nothing comes back; count what was sent.
                    let sent_us = cx.clock.now_us();
                    for part in &parts {
                        let n = count_acked(&mut result, &part.due, sent_us, &cx.window, spec.record_bytes);
                        cx.progress.acked.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Ok(Err(e)) => {
                    cx.errors(&mut result, records(&parts), e.to_string());
                    break;
                }
                Err(_) => {
                    let why = "sending a produce request timed out".to_owned();
                    cx.errors(&mut result, records(&parts), why);
                    break;
                }
            }
            continue;
        }
        if generator.closed_loop() {
            continue;
        }
        // Sleep until the next record is due or the oldest has lingered.
        let wake = generator.wake_us(cx.window.end_us);
        tokio::time::sleep_until(cx.clock.instant_of(wake).into()).await;
    }
    drop(tx);
    match reader_task.await {
        Ok(r) => add_produced(&mut result, r),
        Err(e) => record_error(&mut result, 0, format!("the reader task failed: {e}")),
    }
    result
}

/// A produce request carrying `data` to `spec`'s topic; the broker is given
/// half of `timeout` to answer it.
fn produce_request(spec: &StreamSpec, data: Vec<PartitionProduceData>, timeout: Duration) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks_wire(spec.acks))
        .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX) / 2)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
                .with_partition_data(data),
        ])
}

fn acks_wire(acks: Acks) -> i16 {
    match acks {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    }
}
