//! Retention and the release of objects no batch needs, on PostgreSQL.
//!
//! A trim locks the partition's row first, in the order commits and topic
//! deletes lock them, so it waits for a commit in flight rather than
//! deadlocking with it. Released objects are rows of their own (one per
//! release): two trims releasing the same object in concurrent
//! transactions each leave a row, and whichever the collector reads last
//! finds the object's batches gone.

use std::sync::Arc;

use tokio_postgres::Client;

use super::{PgCatalog, pg_error};
use crate::catalog::{Moved, PlacedBatch, Trimmed};
use crate::error::{Error, Result};

impl PgCatalog {
    pub(crate) async fn start_offset_of(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        self.timed(self.statement_timeout, "start offset", async {
            let mut conn = self.conn().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT start_offset FROM veltrix_partitions WHERE topic = $1 AND partition = $2",
                    &[&topic, &partition],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    pub(crate) async fn trim_partition(
        &self,
        topic: &str,
        partition: i32,
        before_ms: i64,
        rows_max: usize,
    ) -> Result<Option<Trimmed>> {
        self.timed(self.statement_timeout * 2, "retention", async {
            let mut conn = self.conn().await?;
            let trimmed = trim_on(conn.client(), topic, partition, before_ms, rows_max as i64).await;
            conn.finish(&trimmed);
            trimmed
        })
        .await
    }

    pub(crate) async fn delete_before_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        rows_max: usize,
    ) -> Result<Option<Trimmed>> {
        self.timed(self.statement_timeout * 2, "delete records", async {
            let mut conn = self.conn().await?;
            let trimmed = delete_before_on(conn.client(), topic, partition, offset, rows_max as i64).await;
            conn.finish(&trimmed);
            trimmed
        })
        .await
    }

    pub(crate) async fn drop_released_objects(&self, grace_ms: i64, rows_max: usize) -> Result<Vec<String>> {
        self.timed(self.statement_timeout * 2, "released objects", async {
            let mut conn = self.conn().await?;
            let dropped = drop_released_on(conn.client(), grace_ms, rows_max as i64).await;
            conn.finish(&dropped);
            dropped
        })
        .await
    }

    pub(crate) async fn expire_idle_producers(&self, idle_ms: i64, rows_max: usize) -> Result<u64> {
        // The outer condition is evaluated again on a row a commit updated
        // meanwhile, so a producer that just committed is kept.
        self.timed(self.statement_timeout * 2, "producer expiry", async {
            let mut conn = self.conn().await?;
            let expired = conn
                .client()
                .execute(
                    "DELETE FROM veltrix_producers p USING (
                        SELECT topic, partition, producer_id FROM veltrix_producers
                        WHERE updated_at < now() - make_interval(secs => $1::float8 / 1000)
                        LIMIT $2
                     ) idle
                     WHERE p.topic = idle.topic AND p.partition = idle.partition
                       AND p.producer_id = idle.producer_id
                       AND p.updated_at < now() - make_interval(secs => $1::float8 / 1000)",
                    &[&(idle_ms as f64), &(rows_max as i64)],
                )
                .await
                .map_err(pg_error);
            conn.finish(&expired);
            expired
        })
        .await
    }

    pub(crate) async fn prune_old_orphan_claims(&self, age_ms: i64, rows_max: usize) -> Result<u64> {
        self.timed(self.statement_timeout * 2, "orphan claims", async {
            let mut conn = self.conn().await?;
            let pruned = conn
                .client()
                .execute(
                    "DELETE FROM veltrix_objects WHERE key IN (
                        SELECT key FROM veltrix_objects
                        WHERE state = 'orphan'
                          AND recorded_at < now() - make_interval(secs => $1::float8 / 1000)
                        LIMIT $2
                     ) AND state = 'orphan'",
                    &[&(age_ms as f64), &(rows_max as i64)],
                )
                .await
                .map_err(pg_error);
            conn.finish(&pruned);
            pruned
        })
        .await
    }

    pub(crate) async fn small_objects_of(
        &self,
        size_below: u64,
        age_min_ms: i64,
        count_max: usize,
    ) -> Result<Vec<(String, u64)>> {
        self.timed(self.statement_timeout, "small objects", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT o.key, o.size_bytes FROM veltrix_objects o
                     WHERE o.state = 'committed' AND o.size_bytes < $1
                       AND o.recorded_at < now() - make_interval(secs => $2::float8 / 1000)
                       AND EXISTS (SELECT 1 FROM veltrix_batches b WHERE b.object_key = o.key)
                     ORDER BY o.recorded_at LIMIT $3",
                    &[&(size_below as i64), &(age_min_ms as f64), &(count_max as i64)],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
        })
        .await
    }

    pub(crate) async fn batches_in_objects(&self, keys: &[String]) -> Result<Vec<PlacedBatch>> {
        self.timed(self.statement_timeout, "batches of objects", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT topic, partition, base_offset, object_key, byte_start, byte_len, crc32c
                     FROM veltrix_batches WHERE object_key = ANY($1)",
                    &[&keys],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows
                .iter()
                .map(|r| PlacedBatch {
                    topic: Arc::from(r.get::<_, &str>(0)),
                    partition: r.get(1),
                    base_offset: r.get(2),
                    object_key: r.get(3),
                    byte_start: r.get::<_, i64>(4) as u64,
                    byte_len: r.get::<_, i32>(5) as u32,
                    crc32c: r.get::<_, i64>(6) as u32,
                })
                .collect())
        })
        .await
    }

    pub(crate) async fn rewrite_objects(
        &self,
        merged: &str,
        size: u64,
        moves: &[Moved],
        sources: &[String],
    ) -> Result<usize> {
        self.timed(self.statement_timeout * 2, "merge", async {
            let mut conn = self.conn().await?;
            let moved = rewrite_on(conn.client(), merged, size, moves, sources).await;
            conn.finish(&moved);
            moved
        })
        .await
    }

    pub(crate) async fn forget_objects(&self, keys: &[String]) -> Result<()> {
        self.timed(self.statement_timeout, "forget objects", async {
            let mut conn = self.conn().await?;
            conn.client()
                .execute(
                    "DELETE FROM veltrix_objects WHERE key = ANY($1) AND state = 'dropped'",
                    &[&keys],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(())
        })
        .await
    }
}

async fn trim_on(
    client: &mut Client,
    topic: &str,
    partition: i32,
    before_ms: i64,
    rows_max: i64,
) -> Result<Option<Trimmed>> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let Some(row) = tx
        .query_opt(
            "SELECT start_offset FROM veltrix_partitions WHERE topic = $1 AND partition = $2 FOR UPDATE",
            &[&topic, &partition],
        )
        .await
        .map_err(pg_error)?
    else {
        tx.rollback().await.map_err(pg_error)?;
        return Ok(None);
    };
    let start: i64 = row.get(0);
    // The first batch new enough, by its timestamp or by when it was
    // committed (a producer's clock cannot age a batch just written), bounds
    // the prefix; the primary key's order finds it without reading the rest
    // of the partition.
    let removed = tx
        .query(
            "WITH keep AS (
                SELECT b.base_offset FROM veltrix_batches b JOIN veltrix_objects o ON o.key = b.object_key
                WHERE b.topic = $1 AND b.partition = $2
                  AND (b.max_timestamp >= $3 OR o.recorded_at >= to_timestamp($3::float8 / 1000))
                ORDER BY b.base_offset LIMIT 1
            ), doomed AS (
                SELECT base_offset FROM veltrix_batches
                WHERE topic = $1 AND partition = $2
                  AND base_offset < coalesce((SELECT base_offset FROM keep), 9223372036854775807)
                ORDER BY base_offset LIMIT $4
            )
            DELETE FROM veltrix_batches b USING doomed d
            WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = d.base_offset
            RETURNING b.last_offset, b.object_key",
            &[&topic, &partition, &before_ms, &rows_max],
        )
        .await
        .map_err(pg_error)?;
    let Some(last) = removed.iter().map(|r| r.get::<_, i64>(0)).max() else {
        tx.rollback().await.map_err(pg_error)?;
        return Ok(Some(Trimmed {
            batches: 0,
            start_offset: start,
        }));
    };
    let keys: Vec<&str> = removed.iter().map(|r| r.get::<_, &str>(1)).collect();
    finish_removal(tx, (topic, partition), start.max(last + 1), keys).await
}

/// The end of a trim or a DeleteRecords: the partition's start offset set,
/// the removed batches' objects released, the transaction committed.
async fn finish_removal(
    tx: tokio_postgres::Transaction<'_>,
    (topic, partition): (&str, i32),
    start: i64,
    mut keys: Vec<&str>,
) -> Result<Option<Trimmed>> {
    let batches = keys.len() as u64;
    tx.execute(
        "UPDATE veltrix_partitions SET start_offset = $3 WHERE topic = $1 AND partition = $2",
        &[&topic, &partition, &start],
    )
    .await
    .map_err(pg_error)?;
    keys.sort_unstable();
    keys.dedup();
    tx.execute(
        "INSERT INTO veltrix_released_objects (object_key) SELECT UNNEST($1::text[])",
        &[&keys],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(Some(Trimmed {
        batches,
        start_offset: start,
    }))
}

async fn rewrite_on(
    client: &mut Client,
    merged: &str,
    size: u64,
    moves: &[Moved],
    sources: &[String],
) -> Result<usize> {
    let topics: Vec<&str> = moves.iter().map(|m| &*m.topic).collect();
    let partitions: Vec<i32> = moves.iter().map(|m| m.partition).collect();
    let offsets: Vec<i64> = moves.iter().map(|m| m.base_offset).collect();
    let froms: Vec<&str> = moves.iter().map(|m| m.from_key.as_str()).collect();
    let starts: Vec<i64> = moves.iter().map(|m| m.byte_start as i64).collect();
    let tx = client.transaction().await.map_err(pg_error)?;
    // The partitions' rows first, in the order commits, trims and topic
    // deletes lock them.
    tx.execute(
        "SELECT 1 FROM veltrix_partitions
         WHERE (topic, partition) IN (SELECT * FROM UNNEST($1::text[], $2::int4[]))
         ORDER BY topic, partition FOR UPDATE",
        &[&topics, &partitions],
    )
    .await
    .map_err(pg_error)?;
    let recorded = tx
        .execute(
            "INSERT INTO veltrix_objects (key, state, size_bytes) VALUES ($1, 'committed', $2)
             ON CONFLICT DO NOTHING",
            &[&merged, &(size as i64)],
        )
        .await
        .map_err(pg_error)?;
    if recorded == 0 {
        tx.rollback().await.map_err(pg_error)?;
        return Err(Error::ObjectCollected(merged.to_owned()));
    }
    let moved = tx
        .execute(
            "UPDATE veltrix_batches b SET object_key = $1, byte_start = m.s
             FROM UNNEST($2::text[], $3::int4[], $4::int8[], $5::text[], $6::int8[]) AS m(t, p, o, f, s)
             WHERE b.topic = m.t AND b.partition = m.p AND b.base_offset = m.o AND b.object_key = m.f",
            &[&merged, &topics, &partitions, &offsets, &froms, &starts],
        )
        .await
        .map_err(pg_error)?;
    if moved == 0 {
        tx.rollback().await.map_err(pg_error)?;
        return Ok(0);
    }
    tx.execute(
        "INSERT INTO veltrix_released_objects (object_key) SELECT UNNEST($1::text[])",
        &[&sources],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(moved as usize)
}

async fn delete_before_on(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    rows_max: i64,
) -> Result<Option<Trimmed>> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let Some(row) = tx
        .query_opt(
            "SELECT start_offset, next_offset FROM veltrix_partitions
             WHERE topic = $1 AND partition = $2 FOR UPDATE",
            &[&topic, &partition],
        )
        .await
        .map_err(pg_error)?
    else {
        tx.rollback().await.map_err(pg_error)?;
        return Ok(None);
    };
    let (start, end): (i64, i64) = (row.get(0), row.get(1));
    let start = start.max(offset.min(end));
    let removed = tx
        .query(
            "DELETE FROM veltrix_batches b USING (
                SELECT base_offset FROM veltrix_batches
                WHERE topic = $1 AND partition = $2 AND last_offset < $3
                ORDER BY base_offset LIMIT $4
            ) d
            WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = d.base_offset
            RETURNING b.object_key",
            &[&topic, &partition, &start, &rows_max],
        )
        .await
        .map_err(pg_error)?;
    let keys: Vec<&str> = removed.iter().map(|r| r.get::<_, &str>(0)).collect();
    finish_removal(tx, (topic, partition), start, keys).await
}

async fn drop_released_on(client: &mut Client, grace_ms: i64, rows_max: i64) -> Result<Vec<String>> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let taken = tx
        .query(
            "DELETE FROM veltrix_released_objects WHERE id IN (
                SELECT id FROM veltrix_released_objects
                WHERE released_at < now() - make_interval(secs => $1::float8 / 1000)
                ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
            ) RETURNING object_key",
            &[&(grace_ms as f64), &rows_max],
        )
        .await
        .map_err(pg_error)?;
    let keys: Vec<&str> = taken.iter().map(|r| r.get::<_, &str>(0)).collect();
    let dropped = tx
        .query(
            "UPDATE veltrix_objects o SET state = 'dropped'
             WHERE o.key = ANY($1) AND o.state = 'committed'
               AND NOT EXISTS (SELECT 1 FROM veltrix_batches b WHERE b.object_key = o.key)
             RETURNING o.key",
            &[&keys],
        )
        .await
        .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(dropped.iter().map(|r| r.get(0)).collect())
}

/// Releases the objects of a topic's batches, inside the transaction that
/// deletes them.
pub(crate) async fn release_topic_objects(tx: &tokio_postgres::Transaction<'_>, topic: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO veltrix_released_objects (object_key)
         SELECT DISTINCT object_key FROM veltrix_batches WHERE topic = $1",
        &[&topic],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}
