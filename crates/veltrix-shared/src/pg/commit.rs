//! One object's commit: a single transaction that locks the partitions'
//! rows (in one order, so concurrent writers queue instead of deadlocking),
//! reads their producers, decides every batch ([`crate::sequence`]), then
//! records the object, its batches, the partitions' next offsets and the
//! producers' state. The partitions' row locks order commits: a second
//! writer on the same partitions waits, then reads the offsets the first
//! one left, so racing writers never overlap and never leave holes.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::Transaction;

use super::{PgCatalog, is_conflict, pg_error};
use crate::catalog::{Appended, ObjectCommit};
use crate::error::{Error, Result};
use crate::sequence::{self, CommitPlan, CommitState, PartitionKey, ProducerState};

enum Attempt {
    Done(Vec<Result<Appended>>),
    /// Lost to a concurrent transaction: run again.
    Conflict,
}

pub(super) async fn commit(pg: &PgCatalog, object: &ObjectCommit) -> Result<Vec<Result<Appended>>> {
    for _ in 0..pg.commit_attempts_max {
        let attempt = pg.timed(pg.statement_timeout * 4, "commit", async {
            let mut conn = pg.conn().await?;
            let outcome = attempt(conn.client().transaction().await.map_err(pg_error)?, object).await;
            if outcome.is_ok() {
                conn.release();
            }
            outcome
        });
        match attempt.await? {
            Attempt::Done(outcomes) => return Ok(outcomes),
            Attempt::Conflict => tracing::debug!(key = %object.key, "commit conflicted; again"),
        }
    }
    Err(Error::Conflict(pg.commit_attempts_max))
}

async fn attempt(tx: Transaction<'_>, object: &ObjectCommit) -> Result<Attempt> {
    match run(&tx, object).await {
        Ok(outcomes) => match tx.commit().await {
            Ok(()) => Ok(Attempt::Done(outcomes)),
            Err(e) if is_conflict(&e) => Ok(Attempt::Conflict),
            Err(e) => Err(pg_error(e)),
        },
        Err(Failure::Conflict) => Ok(Attempt::Conflict),
        Err(Failure::Error(e)) => Err(e),
        Err(Failure::Done(outcomes)) => {
            tx.rollback().await.map_err(pg_error)?;
            Ok(Attempt::Done(outcomes))
        }
    }
}

enum Failure {
    Conflict,
    Error(Error),
    /// Answered without writing anything (every batch refused or a duplicate).
    Done(Vec<Result<Appended>>),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_conflict(&e) {
            Failure::Conflict
        } else {
            Failure::Error(pg_error(e))
        }
    }
}

/// The statements of one attempt; `Ok` when COMMIT should follow.
async fn run(tx: &Transaction<'_>, object: &ObjectCommit) -> Result<Vec<Result<Appended>>, Failure> {
    let mut state = read_state(tx, object).await?;
    let plan = sequence::plan(&object.batches, &mut state);
    if plan.new_batches.is_empty() {
        return Err(Failure::Done(plan.outcomes));
    }
    let claimed = tx
        .execute(
            "INSERT INTO veltrix_objects (key, state, size_bytes) VALUES ($1, 'committed', $2) \
             ON CONFLICT DO NOTHING",
            &[&object.key, &(object.size as i64)],
        )
        .await?;
    if claimed == 0 {
        return Err(Failure::Error(Error::ObjectCollected(object.key.clone())));
    }
    // The three writes are independent: sent at once, one round trip.
    let (batches, partitions, producers) = futures_util::future::join3(
        insert_batches(tx, object, &plan),
        update_partitions(tx, &plan, &state),
        upsert_producers(tx, &plan, &state),
    )
    .await;
    batches?;
    partitions?;
    producers?;
    Ok(plan.outcomes)
}

/// Locks the object's partitions' rows, in (topic, partition) order, and
/// reads them and their producers.
async fn read_state(tx: &Transaction<'_>, object: &ObjectCommit) -> Result<CommitState, Failure> {
    let mut keys: Vec<PartitionKey> = object.batches.iter().map(|b| (b.topic.clone(), b.partition)).collect();
    keys.sort();
    keys.dedup();
    let topics: Vec<&str> = keys.iter().map(|(t, _)| &**t).collect();
    let partitions: Vec<i32> = keys.iter().map(|(_, p)| *p).collect();
    let rows = tx
        .query(
            "SELECT p.topic, p.partition, p.next_offset FROM veltrix_partitions p \
             JOIN UNNEST($1::text[], $2::int4[]) AS u(topic, partition) \
             ON p.topic = u.topic AND p.partition = u.partition \
             ORDER BY p.topic, p.partition FOR UPDATE OF p",
            &[&topics, &partitions],
        )
        .await?;
    let interned: HashMap<(&str, i32), &PartitionKey> = keys.iter().map(|k| ((&*k.0, k.1), k)).collect();
    let mut state = CommitState::default();
    for row in &rows {
        let key = interned[&(row.get::<_, &str>(0), row.get::<_, i32>(1))];
        state.next_offsets.insert(key.clone(), row.get(2));
    }
    let mut producer_keys: Vec<(Arc<str>, i32, i64)> = object
        .batches
        .iter()
        .filter_map(|b| b.producer.map(|p| (b.topic.clone(), b.partition, p.producer_id)))
        .collect();
    producer_keys.sort();
    producer_keys.dedup();
    if producer_keys.is_empty() {
        return Ok(state);
    }
    let topics: Vec<&str> = producer_keys.iter().map(|(t, _, _)| &**t).collect();
    let partitions: Vec<i32> = producer_keys.iter().map(|(_, p, _)| *p).collect();
    let ids: Vec<i64> = producer_keys.iter().map(|(_, _, id)| *id).collect();
    let rows = tx
        .query(
            "SELECT p.topic, p.partition, p.producer_id, p.epoch, p.recent \
             FROM veltrix_producers p \
             JOIN UNNEST($1::text[], $2::int4[], $3::int8[]) AS u(topic, partition, producer_id) \
             ON p.topic = u.topic AND p.partition = u.partition AND p.producer_id = u.producer_id",
            &[&topics, &partitions, &ids],
        )
        .await?;
    for row in &rows {
        let key = interned[&(row.get::<_, &str>(0), row.get::<_, i32>(1))];
        let producer = ProducerState::decode(row.get(3), row.get(4));
        state.producers.insert((key.0.clone(), key.1, row.get(2)), producer);
    }
    Ok(state)
}

async fn insert_batches(
    tx: &Transaction<'_>,
    object: &ObjectCommit,
    plan: &CommitPlan,
) -> Result<u64, tokio_postgres::Error> {
    let n = plan.new_batches.len();
    let (mut topics, mut partitions) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut bases, mut lasts, mut times) = (Vec::with_capacity(n), Vec::new(), Vec::new());
    let (mut starts, mut lens, mut crcs) = (Vec::with_capacity(n), Vec::new(), Vec::new());
    for &i in &plan.new_batches {
        let batch = &object.batches[i];
        let Ok(appended) = &plan.outcomes[i] else { continue };
        topics.push(&*batch.topic);
        partitions.push(batch.partition);
        bases.push(appended.base_offset);
        lasts.push(appended.last_offset);
        times.push(batch.max_timestamp);
        starts.push(batch.byte_start as i64);
        lens.push(batch.byte_len as i32);
        crcs.push(i64::from(batch.crc32c));
    }
    tx.execute(
        "INSERT INTO veltrix_batches (topic, partition, base_offset, last_offset, max_timestamp, \
         object_key, byte_start, byte_len, crc32c) \
         SELECT t, p, b, l, m, $9, s, n, c FROM UNNEST($1::text[], $2::int4[], $3::int8[], \
         $4::int8[], $5::int8[], $6::int8[], $7::int4[], $8::int8[]) AS u(t, p, b, l, m, s, n, c)",
        &[
            &topics,
            &partitions,
            &bases,
            &lasts,
            &times,
            &starts,
            &lens,
            &crcs,
            &object.key,
        ],
    )
    .await
}

async fn update_partitions(
    tx: &Transaction<'_>,
    plan: &CommitPlan,
    state: &CommitState,
) -> Result<u64, tokio_postgres::Error> {
    let topics: Vec<&str> = plan.changed_partitions.iter().map(|(t, _)| &**t).collect();
    let partitions: Vec<i32> = plan.changed_partitions.iter().map(|(_, p)| *p).collect();
    let nexts: Vec<i64> = plan.changed_partitions.iter().map(|k| state.next_offsets[k]).collect();
    tx.execute(
        "UPDATE veltrix_partitions p SET next_offset = u.next \
         FROM UNNEST($1::text[], $2::int4[], $3::int8[]) AS u(topic, partition, next) \
         WHERE p.topic = u.topic AND p.partition = u.partition",
        &[&topics, &partitions, &nexts],
    )
    .await
}

async fn upsert_producers(
    tx: &Transaction<'_>,
    plan: &CommitPlan,
    state: &CommitState,
) -> Result<u64, tokio_postgres::Error> {
    if plan.changed_producers.is_empty() {
        return Ok(0);
    }
    let keys = &plan.changed_producers;
    let topics: Vec<&str> = keys.iter().map(|(t, _, _)| &**t).collect();
    let partitions: Vec<i32> = keys.iter().map(|(_, p, _)| *p).collect();
    let ids: Vec<i64> = keys.iter().map(|(_, _, id)| *id).collect();
    let epochs: Vec<i16> = keys.iter().map(|k| state.producers[k].epoch).collect();
    let recents: Vec<Vec<u8>> = keys.iter().map(|k| state.producers[k].encode_recent()).collect();
    tx.execute(
        "INSERT INTO veltrix_producers (topic, partition, producer_id, epoch, recent) \
         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int2[], $5::bytea[]) \
         ON CONFLICT (topic, partition, producer_id) DO UPDATE \
         SET epoch = EXCLUDED.epoch, recent = EXCLUDED.recent, updated_at = now()",
        &[&topics, &partitions, &ids, &epochs, &recents],
    )
    .await
}
