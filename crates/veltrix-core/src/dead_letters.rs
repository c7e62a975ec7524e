//! The dead-letter writer: copies records share groups archived to their
//! groups' dead-letter topics (KIP-1191), exactly once.
//!
//! Run from the broker's housekeeping ([`Broker::tick`]). For each
//! share-partition owing letters (see `share/dead_letter.rs`) it reads each
//! record from its partition, copies key, value and headers into a letter
//! with headers saying where it came from and why (Kafka's `__dlq.errors.*`
//! names and Veltrix's own), appends the letters to the dead-letter topic's
//! partition of the same number (modulo its partition count, so one
//! partition's letters keep their order), waits until they are durable, and
//! only then marks the records archived for good.
//!
//! Exactly once: every letter carries a deterministic id, [`ID_HEADER`]
//! (group, topic id, partition, offset). A dead-letter topic the broker
//! creates has a duplicate window on that header, as long as its retention,
//! so a letter written again after a crash between the copy and the mark is
//! dropped as a duplicate. A topic declared without such a window gets at
//! least once, and `veltrix check` says so.

use std::sync::Arc;

use veltrix_log::batch;

use crate::broker::Broker;
use crate::catalog::{DedupIdSource, TopicConfig};
use crate::error::{CoreError, Result};
use crate::records::{OwnedRecord, encode_batch, record_at};
use crate::share::{DeadLetterReason, DeadLetterWork, PendingDeadLetter, topic_hex};
use crate::topic::{Partition, Topic};

/// Letters written per housekeeping round, at most: the rest wait for the
/// next round (a tenth of a second later), so one flood of archived records
/// does not hold up the broker's other housekeeping.
pub const DEAD_LETTERS_PER_ROUND_MAX: usize = 1_000;
/// The header holding a letter's id, which the duplicate window of a
/// dead-letter topic created by the broker is keyed on.
pub const ID_HEADER: &str = "veltrix.dlq.id";
/// Retention, and duplicate window, of a dead-letter topic the broker
/// creates: seven days.
pub const CREATED_TOPIC_RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// How long the writer waits before trying letters that failed again.
pub const RETRY_MS: i64 = 1_000;

/// What one round of the writer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterRound {
    /// Letters appended (a duplicate dropped by the window counts too).
    pub written: u64,
    /// Archived records with no letter to write: no record at the offset
    /// any more (retention, a gap), or the group no longer names a topic.
    pub skipped: u64,
    /// Share-partitions whose letters could not be written this round;
    /// they are tried again next round.
    pub failed: u64,
}

impl Broker {
    /// Writes the dead letters owed, at most [`DEAD_LETTERS_PER_ROUND_MAX`].
    /// Blocks on appends and fsyncs: call it where blocking is allowed, in a
    /// Tokio runtime (the dead-letter topic's window ends its reservations on
    /// a task).
    pub fn write_dead_letters(&self) -> DeadLetterRound {
        let mut round = DeadLetterRound::default();
        for work in self.share().dead_letter_work(DEAD_LETTERS_PER_ROUND_MAX) {
            match self.write_letters_of(&work, &mut round) {
                Ok(()) => {}
                Err(e) => {
                    round.failed += 1;
                    self.metrics().share.dead_letter_failures.inc();
                    tracing::error!(
                        group = %work.key.group,
                        partition = work.key.partition,
                        topic = work.topic.as_deref().unwrap_or(""),
                        error = %e,
                        "writing dead letters failed; the records wait, archiving, and are tried again in {RETRY_MS} ms"
                    );
                }
            }
        }
        if round.failed > 0 {
            self.share()
                .dead_letters_retry(self.env().clock.now_ms().saturating_add(RETRY_MS));
        }
        self.metrics().share.dead_letters_skipped.inc_by(round.skipped);
        round
    }

    fn write_letters_of(&self, work: &DeadLetterWork, round: &mut DeadLetterRound) -> Result<()> {
        let done = self.copy_letters(work, round)?;
        self.share()
            .dead_letters_written(&work.key, &done)
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        Ok(())
    }

    /// Appends the letters of `work` durably; returns the offsets of the
    /// records that are done (a letter written, or none to write).
    fn copy_letters(&self, work: &DeadLetterWork, round: &mut DeadLetterRound) -> Result<Vec<i64>> {
        let all: Vec<i64> = work.records.iter().map(|r| r.offset).collect();
        let source = self.topic_by_id(&work.key.topic);
        let source_partition = source.as_ref().and_then(|t| t.partition(work.key.partition).cloned());
        let (Some(dlq_name), Some(source), Some(source_partition)) = (&work.topic, source, source_partition) else {
            // No topic named any more, or the source is gone: nothing to copy.
            round.skipped += all.len() as u64;
            return Ok(all);
        };
        let dlq = self.dead_letter_topic(dlq_name)?;
        if dlq.id == source.id {
            // A group reading its own dead-letter topic: each letter would
            // be read, perhaps rejected, and written again, without end.
            tracing::warn!(
                group = %work.key.group,
                topic = %source.name,
                "a share group's dead-letter topic is a topic it reads; its archived records there get no letter"
            );
            round.skipped += all.len() as u64;
            return Ok(all);
        }
        let target = dlq
            .partition(work.key.partition % dlq.partitions.len() as i32)
            .cloned()
            .ok_or_else(|| CoreError::UnknownTopic(dlq_name.to_string()))?;
        let batch_bytes_max = target.log().config().batch_bytes_max as usize;
        let mut reader = SourceReader::new(&source_partition);
        let mut letters = Vec::new();
        let mut bytes = 0usize;
        let mut done = Vec::new();
        let mut in_batch = Vec::new();
        for r in &work.records {
            let Some(record) = reader.record(r.offset)? else {
                round.skipped += 1;
                done.push(r.offset);
                continue;
            };
            let mut letter = self.letter(work, &source, r, record);
            let mut size = letter.encoded_bytes_max();
            if size + batch::HEADER_BYTES > batch_bytes_max {
                // The copy does not fit the topic's batches: the letter says
                // so, and where the record is, rather than never being written.
                letter = self.letter(work, &source, r, OwnedRecord::default());
                letter.headers.push((
                    b"veltrix.dlq.dropped".to_vec(),
                    Some(
                        format!(
                            "key, value and headers left out: {size} bytes, over the batch limit of {batch_bytes_max} bytes"
                        )
                        .into_bytes(),
                    ),
                ));
                size = letter.encoded_bytes_max();
            }
            if !letters.is_empty() && bytes + size + batch::HEADER_BYTES > batch_bytes_max {
                self.append_letters(&dlq, &target, &letters)?;
                round.written += letters.len() as u64;
                done.append(&mut in_batch);
                letters.clear();
                bytes = 0;
            }
            bytes += size;
            letters.push(letter);
            in_batch.push(r.offset);
        }
        if !letters.is_empty() {
            self.append_letters(&dlq, &target, &letters)?;
            round.written += letters.len() as u64;
            done.append(&mut in_batch);
        }
        Ok(done)
    }

    /// The dead-letter topic `name`, created if it does not exist and the
    /// broker may create it.
    fn dead_letter_topic(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !self.share().config().dead_letter_topics_auto_create {
            return Err(CoreError::UnknownTopic(format!(
                "{name} (dead-letter topics are not created on demand: create it, or set \
                 `[share] dead_letter_topics_auto_create = true`)"
            )));
        }
        let config = TopicConfig {
            retention_ms: Some(CREATED_TOPIC_RETENTION_MS),
            dedup_window_ms: Some(CREATED_TOPIC_RETENTION_MS as u64),
            dedup_id_header: Some(ID_HEADER.to_owned()),
            dedup_id_source: Some(DedupIdSource::Header),
            ..TopicConfig::default()
        };
        match self.create_topic(name, None, config) {
            Ok(t) => {
                tracing::info!(topic = name, "created a dead-letter topic");
                Ok(t)
            }
            // Created meanwhile by someone else.
            Err(CoreError::TopicExists(_)) => self.topic(name).ok_or_else(|| CoreError::UnknownTopic(name.into())),
            Err(e) => Err(e),
        }
    }

    fn append_letters(&self, dlq: &Topic, target: &Arc<Partition>, letters: &[OwnedRecord]) -> Result<()> {
        let bytes = encode_batch(letters);
        let appended = match &dlq.dedup {
            Some(dedup) => dedup.append(target, &bytes)?,
            None => target.append_batches(&bytes)?,
        };
        target.commit(appended.next_offset)
    }

    /// The letter of one archived record.
    fn letter(&self, work: &DeadLetterWork, source: &Topic, r: &PendingDeadLetter, record: OwnedRecord) -> OwnedRecord {
        let key = &work.key;
        let message = match r.reason {
            DeadLetterReason::Rejected => format!("rejected by a consumer of share group {}", key.group),
            DeadLetterReason::DeliveryLimit => format!(
                "not accepted after {} deliveries, the delivery limit of share group {}",
                r.deliveries, key.group
            ),
            DeadLetterReason::LockTimeout => format!(
                "the lock of its last delivery (of {}) ran out in share group {}",
                r.deliveries, key.group
            ),
        };
        let mut headers = record.headers;
        let mut add = |k: &str, v: String| headers.push((k.as_bytes().to_vec(), Some(v.into_bytes())));
        add("__dlq.errors.topic", source.name.clone());
        add("__dlq.errors.partition", key.partition.to_string());
        add("__dlq.errors.offset", r.offset.to_string());
        add("__dlq.errors.group", key.group.clone());
        add("__dlq.errors.delivery.count", r.deliveries.to_string());
        add("__dlq.errors.message", message);
        add("veltrix.dlq.reason", r.reason.as_str().to_owned());
        add("veltrix.dlq.original.timestamp", record.timestamp_ms.to_string());
        if r.first_delivery_ms > 0 {
            add("veltrix.dlq.first.delivery.ms", r.first_delivery_ms.to_string());
            add("veltrix.dlq.last.delivery.ms", r.last_delivery_ms.to_string());
        }
        if let Some(member) = &r.last_owner {
            add("veltrix.dlq.last.member.id", member.to_string());
            if let Some(client) = self.share().member_client_id(&key.group, member) {
                add("veltrix.dlq.last.client.id", client);
            }
        }
        add(ID_HEADER, letter_id(work, r.offset));
        OwnedRecord {
            key: record.key,
            value: record.value,
            headers,
            timestamp_ms: self.env().clock.now_ms(),
        }
    }
}

/// A letter's id: the same for the same archived record, in every run.
fn letter_id(work: &DeadLetterWork, offset: i64) -> String {
    format!(
        "{}/{}/{}/{}",
        work.key.group,
        topic_hex(&work.key.topic),
        work.key.partition,
        offset
    )
}

/// Reads records of one partition by offset, keeping the last batch read
/// (archived records often sit side by side).
struct SourceReader<'a> {
    partition: &'a Partition,
    batch: Option<(i64, i64, bytes::Bytes)>,
}

impl<'a> SourceReader<'a> {
    fn new(partition: &'a Partition) -> Self {
        SourceReader { partition, batch: None }
    }

    /// The record at `offset`, `None` if the log has none there (any more).
    fn record(&mut self, offset: i64) -> Result<Option<OwnedRecord>> {
        let cached = matches!(&self.batch, Some((first, last, _)) if *first <= offset && offset <= *last);
        if !cached {
            self.batch = None;
            let log = self.partition.log();
            let read = match log.read(offset, log.config().batch_bytes_max as usize) {
                Ok(read) => read,
                Err(veltrix_log::LogError::OffsetOutOfRange { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(size) = batch::peek_size(&read.records).filter(|s| *s <= read.records.len()) else {
                return Ok(None);
            };
            let header = batch::parse_fixed(&read.records[..size])
                .map_err(|e| CoreError::InvalidConfig(format!("a stored batch does not parse: {e}")))?;
            self.batch = Some((header.base_offset, header.last_offset(), read.records.slice(..size)));
        }
        let Some((first, last, bytes)) = &self.batch else {
            return Ok(None);
        };
        if offset < *first || offset > *last {
            return Ok(None);
        }
        record_at(bytes, offset).map_err(|source| CoreError::InvalidBatch { batch: 0, source })
    }
}

#[cfg(test)]
mod tests;
