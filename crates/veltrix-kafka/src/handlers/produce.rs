//! Produce: append batches; answer after the fsync for acks=all.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::Partition;
use veltrix_log::batch;

use super::Ctx;
use crate::errors::{self, code};

/// Appends every batch of one partition's records; returns the first base offset
/// and the offset after the last batch. A retry of an idempotent producer's batch
/// already in the log is answered with its original offsets, and the caller then
/// waits for those to be durable like any other.
fn append_all(partition: &Partition, records: &Bytes) -> Result<(i64, i64), (i16, String)> {
    let corrupt = |why: &str| (errors::CORRUPT_MESSAGE, why.to_owned());
    let mut rest = &records[..];
    let mut first = None;
    let mut next = 0;
    while !rest.is_empty() {
        let size = batch::peek_size(rest)
            .filter(|s| *s <= rest.len())
            .ok_or_else(|| corrupt("a record batch is truncated"))?;
        let mut one = BytesMut::from(&rest[..size]);
        let appended = partition.append(&mut one).map_err(|e| (code(&e), e.to_string()))?;
        first.get_or_insert(appended.base_offset);
        next = appended.next_offset.max(next);
        rest = &rest[size..];
    }
    first.map(|f| (f, next)).ok_or_else(|| corrupt("no record batch"))
}

pub(super) async fn produce(ctx: Ctx, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let broker = ctx.broker.clone();
    // The per-partition error message exists from v8.
    let with_messages = ctx.version >= 8;
    let responses = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut to_commit: Vec<(Arc<Partition>, i64)> = Vec::new();
        for topic in &request.topic_data {
            let topic_name = topic.name.0.as_str();
            let mut t = TopicProduceResponse::default();
            t.name = topic.name.clone();
            for pd in &topic.partition_data {
                let mut p = PartitionProduceResponse::default();
                p.index = pd.index;
                p.base_offset = -1;
                p.log_append_time_ms = -1;
                let result = if !matches!(acks, -1..=1) {
                    Err((
                        errors::INVALID_REQUIRED_ACKS,
                        format!("acks must be -1, 0 or 1, not {acks}"),
                    ))
                } else {
                    broker
                        .partition(topic_name, pd.index)
                        .map_err(|e| (code(&e), e.to_string()))
                        .and_then(|partition| {
                            let records = pd.records.clone().unwrap_or_default();
                            let (base, next) = append_all(&partition, &records)?;
                            p.log_start_offset = partition.log().log_start();
                            to_commit.push((partition, next));
                            Ok(base)
                        })
                };
                match result {
                    Ok(base) => p.base_offset = base,
                    Err((error_code, message)) => {
                        p.error_code = error_code;
                        if with_messages {
                            p.error_message = Some(StrBytes::from_string(message));
                        }
                    }
                }
                t.partition_responses.push(p);
            }
            out.push(t);
        }
        // acks=all: answer only once every batch is durable. acks=0/1: answer
        // now; the commit still runs so that the high watermark moves.
        let commit = move || -> Vec<(i32, i16)> {
            let mut failures = Vec::new();
            for (partition, next) in to_commit {
                if let Err(e) = partition.commit(next) {
                    failures.push((partition.index, code(&e)));
                }
            }
            failures
        };
        if acks == -1 {
            let failures = commit();
            for t in &mut out {
                for p in &mut t.partition_responses {
                    if let Some((_, c)) = failures.iter().find(|(i, _)| *i == p.index) {
                        p.error_code = *c;
                        p.base_offset = -1;
                    }
                }
            }
        } else {
            std::thread::spawn(commit);
        }
        out
    })
    .await
    .ok()?;
    if acks == 0 {
        return None;
    }
    let mut r = ProduceResponse::default();
    r.responses = responses;
    Some(r)
}
