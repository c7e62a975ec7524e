//! What one producer sends: records generated when they are due (on an open
//! loop's schedule, or as fast as the window lets in a closed loop), packed
//! into one batch per partition, and taken as one request's data when a batch
//! is full or the oldest record has waited `linger`.

use std::fmt::Write;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use veltrix_client::kafka_protocol::messages::produce_request::PartitionProduceData;
use veltrix_client::partitioner;

use super::message_ids::{MESSAGE_ID_HEADER, MESSAGE_ID_HEADER_BYTES_MAX, MessageIds};
use super::{STAMP_BYTES, StreamSpec, Window};
use crate::encode::{BatchWriter, Header};

/// When an open loop's records are due, in microseconds. Kept as a fraction:
/// rounding each interval down to whole microseconds would run fast (150,000
/// records/s is 6.67 µs apart; 6 µs is 166,667/s).
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    next_us: f64,
}

impl Schedule {
    pub(super) fn starting_at(us: f64) -> Schedule {
        Schedule { next_us: us }
    }

    /// When the next record is due.
    pub(super) fn due_us(&self) -> u64 {
        self.next_us as u64
    }

    /// One record sent at `per_s`: the next is due one interval later.
    pub(super) fn advance(&mut self, per_s: f64) {
        self.next_us += 1e6 / per_s.max(1e-9);
    }
}

/// The time records of one partition's batch were due.
#[derive(Debug)]
pub(super) enum Due {
    /// One time each (open loop).
    Each(Vec<u64>),
    /// All at once (closed loop: due when generated).
    All { at: u64, count: u64 },
}

impl Due {
    /// How many records.
    pub(super) fn count(&self) -> u64 {
        match self {
            Due::Each(times) => times.len() as u64,
            Due::All { count, .. } => *count,
        }
    }
}

/// One partition's batch in a request, and when its records were due.
#[derive(Debug)]
pub(super) struct PartitionDue {
    pub(super) partition: i32,
    pub(super) due: Due,
}

/// Records in all of `parts`.
pub(super) fn records(parts: &[PartitionDue]) -> u64 {
    parts.iter().map(|p| p.due.count()).sum()
}

/// One request's data: each partition's batch, and when its records were due.
pub(super) struct Outgoing {
    pub(super) data: Vec<PartitionProduceData>,
    pub(super) parts: Vec<PartitionDue>,
}

/// A producer's records not yet sent.
pub(super) struct Generator<'a> {
    spec: &'a StreamSpec,
    partitions: u32,
    rng: SmallRng,
    /// A closed loop: records are due when generated.
    closed: bool,
    /// One batch being filled per partition.
    batches: Vec<BatchWriter>,
    /// Open loop: when each record of each partition's batch was due.
    due: Vec<Vec<u64>>,
    /// Closed loop: when the records of the batches being filled were
    /// generated.
    closed_due_at: u64,
    /// When the oldest record not yet taken was due.
    oldest: Option<u64>,
    /// Unkeyed records go a request at a time to each partition in turn.
    sticky: u32,
    /// The value written, its first bytes the time it was due.
    value: Vec<u8>,
    /// The key written, when keyed.
    key: String,
    /// Each record's `message-id` header, with `--message-ids`.
    ids: Option<MessageIds>,
    schedule: Schedule,
}

impl<'a> Generator<'a> {
    /// The generator of producer `index` of `spec`'s stream, over `partitions`,
    /// in the run that started at `run_us`; its first record is due at a
    /// random point of one interval after `now_us`, so that the producers do
    /// not send in step.
    pub(super) fn new(
        spec: &'a StreamSpec,
        index: usize,
        partitions: u32,
        seed: u64,
        run_us: u64,
        now_us: u64,
    ) -> Generator<'a> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let closed = spec.rate.closed_loop();
        let spread = if closed {
            0.0
        } else {
            rng.random::<f64>() * 1e6 / per_producer_rate(spec, Duration::ZERO).max(1e-9)
        };
        Generator {
            spec,
            partitions,
            rng,
            closed,
            batches: (0..partitions).map(|_| BatchWriter::new()).collect(),
            due: (0..partitions).map(|_| Vec::new()).collect(),
            closed_due_at: 0,
            oldest: None,
            sticky: (index as u32) % partitions.max(1),
            value: vec![0x5a_u8; spec.record_bytes],
            key: String::new(),
            ids: spec
                .message_ids
                .then(|| MessageIds::new(run_us, u32::try_from(index).unwrap_or(u32::MAX))),
            schedule: Schedule::starting_at(now_us as f64 + spread),
        }
    }

    pub(super) fn closed_loop(&self) -> bool {
        self.closed
    }

    /// Appends every record due by `now` to its partition's batch; true when
    /// one did not fit, so the batches must be sent first.
    pub(super) fn generate(&mut self, now: u64, window: &Window) -> bool {
        let spec = self.spec;
        if self.closed && self.oldest.is_none() {
            self.closed_due_at = now;
        }
        loop {
            let at = if self.closed { now } else { self.schedule.due_us() };
            if !self.closed && at > now {
                return false;
            }
            let key: Option<&[u8]> = match spec.players {
                Some(players) => {
                    self.key.clear();
                    let _ = write!(self.key, "player-{}", self.rng.random_range(0..players.max(1)));
                    Some(self.key.as_bytes())
                }
                None => None,
            };
            let p = match key {
                Some(k) => partitioner::partition_for_key(k, self.partitions),
                None => self.sticky,
            } as usize;
            let batch = &mut self.batches[p];
            let header_bytes = if self.ids.is_some() {
                MESSAGE_ID_HEADER_BYTES_MAX
            } else {
                spec.event.as_ref().map_or(0, |e| {
                    crate::encode::HEADER_FRAMING_BYTES_MAX + super::EVENT_HEADER.len() + e.len()
                })
            };
            let key_len = key.map_or(0, <[u8]>::len);
            if !batch.is_empty() && batch.bytes_with(key_len, spec.record_bytes, header_bytes) > spec.batch_bytes {
                return true;
            }
            if spec.record_bytes >= STAMP_BYTES {
                self.value[..STAMP_BYTES].copy_from_slice(&at.to_be_bytes());
            }
            let header = match (self.ids.as_mut(), &spec.event) {
                (Some(ids), _) => Some(Header {
                    key: MESSAGE_ID_HEADER,
                    value: ids.next_id(),
                }),
                (None, Some(event)) => Some(Header {
                    key: super::EVENT_HEADER,
                    value: event.as_bytes(),
                }),
                (None, None) => None,
            };
            batch.push((at / 1000) as i64, key, &self.value, header);
            if !self.closed {
                self.due[p].push(at);
                let since = Duration::from_micros(at.saturating_sub(window.measure_from_us));
                self.schedule.advance(per_producer_rate(spec, since));
            }
            self.oldest.get_or_insert(at);
        }
    }

    /// Whether to send now: a batch is `full`, or the oldest record has
    /// waited `linger`.
    pub(super) fn ready(&self, now: u64, full: bool) -> bool {
        full || self
            .oldest
            .is_some_and(|o| now.saturating_sub(o) >= self.spec.linger.as_micros() as u64)
    }

    /// Every non-empty batch, as one request's data; the next unkeyed records
    /// go to the next partition.
    pub(super) fn take(&mut self) -> Outgoing {
        let mut out = Outgoing {
            data: Vec::new(),
            parts: Vec::new(),
        };
        for (p, batch) in self.batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let count = batch.len() as u64;
            out.data.push(
                PartitionProduceData::default()
                    .with_index(p as i32)
                    .with_records(Some(batch.take())),
            );
            let due = if self.closed {
                Due::All {
                    at: self.closed_due_at,
                    count,
                }
            } else {
                Due::Each(std::mem::take(&mut self.due[p]))
            };
            out.parts.push(PartitionDue {
                partition: p as i32,
                due,
            });
        }
        self.oldest = None;
        if self.spec.players.is_none() {
            self.sticky = (self.sticky + 1) % self.partitions.max(1);
        }
        out
    }

    /// When an open loop has something to do: the next record is due or the
    /// oldest has lingered, and no later than `end_us`.
    pub(super) fn wake_us(&self, end_us: u64) -> u64 {
        let mut wake = self.schedule.due_us().min(end_us);
        if let Some(o) = self.oldest {
            wake = wake.min(o + self.spec.linger.as_micros() as u64);
        }
        wake
    }
}

/// One producer's share of the stream's rate `since` the measured part began.
fn per_producer_rate(spec: &StreamSpec, since: Duration) -> f64 {
    spec.rate.at(since) / spec.producers.max(1) as f64
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use veltrix_client::{Acks, DecodeLimits, decode_batches};

    use super::super::message_ids::MESSAGE_ID_BYTES;
    use super::super::{Rate, StreamSpec, Window};
    use super::{Generator, Schedule};

    fn spec(message_ids: bool) -> StreamSpec {
        StreamSpec {
            name: "produce".into(),
            topic: "t".into(),
            partitions: Some(3),
            topic_configs: Vec::new(),
            acks: Acks::All,
            record_bytes: 100,
            players: Some(50),
            message_ids,
            event: None,
            producers: 2,
            rate: Rate::default(),
            batch_bytes: 16 << 10,
            linger: Duration::from_millis(5),
            in_flight: 1,
            consumers: 0,
        }
    }

    /// The `message-id` header of every record a closed-loop generator
    /// writes in `requests` requests of each of two producers, decoded by the
    /// client's decoder; each batch within the batch size.
    fn ids_written(spec: &StreamSpec, requests: usize) -> Vec<Option<Vec<u8>>> {
        headers_written(spec, requests, b"message-id")
    }

    /// The header `key` of every record, as [`ids_written`] writes them.
    fn headers_written(spec: &StreamSpec, requests: usize, key: &[u8]) -> Vec<Option<Vec<u8>>> {
        let window = Window {
            measure_from_us: 0,
            end_us: u64::MAX,
        };
        let run_us = 1_700_000_000_000_000;
        let mut ids = Vec::new();
        for producer in 0..2 {
            let mut g = Generator::new(spec, producer, 3, 7, run_us, run_us);
            for n in 0..requests {
                assert!(g.generate(run_us + n as u64, &window), "a closed loop fills a batch");
                for data in g.take().data {
                    let batch = data.records.expect("a batch");
                    assert!(batch.len() <= spec.batch_bytes);
                    for b in decode_batches(&batch, &DecodeLimits::default()).unwrap() {
                        for r in b.records {
                            assert!(r.headers.len() <= 1);
                            let id = r.headers.iter().find(|(k, _)| k.as_bytes() == key);
                            ids.push(id.map(|(_, v)| v.as_deref().unwrap_or(&[]).to_vec()));
                        }
                    }
                }
            }
        }
        ids
    }

    #[test]
    fn with_message_ids_every_record_carries_an_id_of_its_own() {
        let ids = ids_written(&spec(true), 5);
        assert!(ids.len() > 1000, "only {} records", ids.len());
        let unique: HashSet<Vec<u8>> = ids.iter().map(|id| id.clone().expect("a message-id header")).collect();
        assert_eq!(unique.len(), ids.len(), "an id was written twice");
        assert!(unique.iter().all(|id| id.len() == MESSAGE_ID_BYTES));
    }

    #[test]
    fn without_message_ids_records_have_no_header() {
        let ids = ids_written(&spec(false), 2);
        assert!(!ids.is_empty() && ids.iter().all(Option::is_none));
    }

    #[test]
    fn with_an_event_every_record_names_it_in_its_event_header() {
        let spec = StreamSpec {
            event: Some("purchase".into()),
            ..spec(false)
        };
        let events = headers_written(&spec, 5, b"event");
        assert!(events.len() > 1000, "only {} records", events.len());
        assert!(events.iter().all(|e| e.as_deref() == Some(b"purchase".as_slice())));
    }

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
