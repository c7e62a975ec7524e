//! The [`Cluster`] on PostgreSQL: [`PgCatalog`] itself, on the same pool,
//! timeouts and error mapping, so a topic created here is at once writable
//! through [`crate::Catalog::commit`] (its `veltrix_partitions` rows are
//! created in the same transaction).
//!
//! Leases are timestamps of the server's clock (`clock_timestamp()`, the
//! time of the statement itself, not of its transaction's start): a lease is
//! live while `lease_until > clock_timestamp()`. Every refusal is decided by
//! a statement's own `WHERE`, so two brokers racing for an id or a lease are
//! ordered by the row's lock, never by what either read before.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::{PgCatalog, pg_error};
use crate::cluster::{
    BrokerLease, Cluster, LiveBroker, OffsetRow, ShareClaim, ShareKey, ShareState, TopicRow, check_lease_ms,
    check_partitions, check_producer_ids, check_share_state, decode_listeners, encode_listeners,
};
use crate::error::{Error, Result};

/// The cluster's state on PostgreSQL: the catalog's own type.
pub type PgCluster = PgCatalog;

impl Cluster for PgCatalog {
    async fn register(&self, lease: &BrokerLease, lease_ms: u64) -> Result<()> {
        check_lease_ms(lease_ms)?;
        let ms = lease_ms as f64;
        self.timed(self.statement_timeout, "register", async {
            let mut conn = self.conn().await?;
            // Inserted, or the row taken over only when it is this
            // incarnation's or its lease has run out.
            let taken = conn
                .client()
                .execute(
                    "INSERT INTO veltrix_brokers AS b (broker_id, incarnation, host, port, lease_until, listeners) \
                     VALUES ($1, $2, $3, $4, clock_timestamp() + $5::float8 * interval '1 millisecond', $6) \
                     ON CONFLICT (broker_id) DO UPDATE SET incarnation = EXCLUDED.incarnation, \
                     host = EXCLUDED.host, port = EXCLUDED.port, lease_until = EXCLUDED.lease_until, \
                     listeners = EXCLUDED.listeners \
                     WHERE b.incarnation = EXCLUDED.incarnation OR b.lease_until <= clock_timestamp()",
                    &[
                        &lease.broker_id,
                        &lease.incarnation,
                        &lease.host,
                        &lease.port,
                        &ms,
                        &encode_listeners(&lease.listeners),
                    ],
                )
                .await
                .map_err(pg_error)
                .and_then(|n| {
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(Error::BrokerIdInUse(lease.broker_id))
                    }
                });
            conn.finish(&taken);
            taken
        })
        .await
    }

    async fn renew(&self, broker_id: i32, incarnation: i64, lease_ms: u64) -> Result<()> {
        check_lease_ms(lease_ms)?;
        let ms = lease_ms as f64;
        self.timed(self.statement_timeout, "renew", async {
            let mut conn = self.conn().await?;
            let renewed = conn
                .client()
                .execute(
                    "UPDATE veltrix_brokers \
                     SET lease_until = clock_timestamp() + $3::float8 * interval '1 millisecond' \
                     WHERE broker_id = $1 AND incarnation = $2 AND lease_until > clock_timestamp()",
                    &[&broker_id, &incarnation, &ms],
                )
                .await
                .map_err(pg_error)
                .and_then(|n| {
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(Error::LeaseLost(broker_id))
                    }
                });
            conn.finish(&renewed);
            renewed
        })
        .await
    }

    async fn resign(&self, broker_id: i32, incarnation: i64) -> Result<()> {
        self.timed(self.statement_timeout, "resign", async {
            let mut conn = self.conn().await?;
            let done = conn
                .client()
                .execute(
                    "DELETE FROM veltrix_brokers WHERE broker_id = $1 AND incarnation = $2",
                    &[&broker_id, &incarnation],
                )
                .await
                .map_err(pg_error)
                .map(drop);
            conn.finish(&done);
            done
        })
        .await
    }

    async fn live_brokers(&self) -> Result<Vec<LiveBroker>> {
        self.timed(self.statement_timeout, "live brokers", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT broker_id, host, port, listeners FROM veltrix_brokers \
                     WHERE lease_until > clock_timestamp() ORDER BY broker_id",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows
                .iter()
                .map(|r| LiveBroker {
                    broker_id: r.get(0),
                    host: r.get(1),
                    port: r.get(2),
                    listeners: decode_listeners(r.get(3)),
                })
                .collect())
        })
        .await
    }

    async fn create_topic(&self, topic: &TopicRow) -> Result<()> {
        check_partitions(topic.partitions, 1)?;
        self.timed(self.statement_timeout * 3, "create topic", async {
            let mut conn = self.conn().await?;
            let created = create_topic_on(conn.client(), topic).await;
            conn.finish(&created);
            created
        })
        .await
    }

    async fn topics(&self) -> Result<Vec<TopicRow>> {
        self.timed(self.statement_timeout, "topics", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT name, id, partitions, config FROM veltrix_topics ORDER BY name",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            rows.iter()
                .map(|r| {
                    let id: &[u8] = r.get(1);
                    Ok(TopicRow {
                        name: r.get(0),
                        id: id
                            .try_into()
                            .map_err(|_| Error::Other("a topic id not of 16 bytes".into()))?,
                        partitions: r.get(2),
                        config: r.get(3),
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete_topic(&self, name: &str) -> Result<bool> {
        self.timed(self.statement_timeout * 7, "delete topic", async {
            let mut conn = self.conn().await?;
            let deleted = delete_topic_on(conn.client(), name).await;
            conn.finish(&deleted);
            deleted
        })
        .await
    }

    async fn set_partitions(&self, name: &str, total: i32) -> Result<()> {
        check_partitions(total, 1)?;
        self.timed(self.statement_timeout * 4, "set partitions", async {
            let mut conn = self.conn().await?;
            let grown = set_partitions_on(conn.client(), name, total).await;
            conn.finish(&grown);
            grown
        })
        .await
    }

    async fn set_topic_config(&self, name: &str, config: &str) -> Result<()> {
        self.timed(self.statement_timeout, "set topic config", async {
            let mut conn = self.conn().await?;
            let set = conn
                .client()
                .execute(
                    "UPDATE veltrix_topics SET config = $2 WHERE name = $1",
                    &[&name, &config],
                )
                .await
                .map_err(pg_error)
                .and_then(|n| {
                    if n == 1 {
                        Ok(())
                    } else {
                        Err(Error::UnknownTopic(name.into()))
                    }
                });
            conn.finish(&set);
            set
        })
        .await
    }

    async fn allocate_producer_ids(&self, count: i64) -> Result<i64> {
        check_producer_ids(count)?;
        self.timed(self.statement_timeout, "allocate producer ids", async {
            let mut conn = self.conn().await?;
            // One statement, so one transaction: the counter's row lock
            // orders concurrent brokers, and a block whose answer was lost
            // is skipped, never handed out again.
            let row = conn
                .client()
                .query_one(
                    "UPDATE veltrix_producer_ids SET next_id = next_id + $1 RETURNING next_id - $1",
                    &[&count],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(row.get(0))
        })
        .await
    }

    async fn commit_offsets(&self, group: &str, broker_id: i32, incarnation: i64, offsets: &[OffsetRow]) -> Result<()> {
        self.timed(self.statement_timeout * 4, "commit offsets", async {
            let mut conn = self.conn().await?;
            let committed = commit_offsets_on(conn.client(), group, (broker_id, incarnation), offsets).await;
            conn.finish(&committed);
            committed
        })
        .await
    }

    async fn fetch_offsets(&self, group: &str) -> Result<Vec<OffsetRow>> {
        self.timed(self.statement_timeout, "fetch offsets", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT topic, partition, committed_offset, leader_epoch, metadata \
                     FROM veltrix_group_offsets WHERE group_id = $1 ORDER BY topic, partition",
                    &[&group],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows
                .iter()
                .map(|r| OffsetRow {
                    topic: r.get(0),
                    partition: r.get(1),
                    offset: r.get(2),
                    leader_epoch: r.get(3),
                    metadata: r.get(4),
                })
                .collect())
        })
        .await
    }

    async fn delete_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>) -> Result<()> {
        self.timed(self.statement_timeout, "delete offsets", async {
            let mut conn = self.conn().await?;
            let deleted = match partitions {
                None => {
                    conn.client()
                        .execute("DELETE FROM veltrix_group_offsets WHERE group_id = $1", &[&group])
                        .await
                }
                Some(named) => {
                    let topics: Vec<&str> = named.iter().map(|(t, _)| t.as_str()).collect();
                    let numbers: Vec<i32> = named.iter().map(|(_, p)| *p).collect();
                    conn.client()
                        .execute(
                            "DELETE FROM veltrix_group_offsets o \
                             USING UNNEST($2::text[], $3::int4[]) AS u(topic, partition) \
                             WHERE o.group_id = $1 AND o.topic = u.topic AND o.partition = u.partition",
                            &[&group, &topics, &numbers],
                        )
                        .await
                }
            };
            let deleted = deleted.map_err(pg_error).map(drop);
            conn.finish(&deleted);
            deleted
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<String>> {
        self.timed(self.statement_timeout, "groups", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT DISTINCT group_id FROM veltrix_group_offsets ORDER BY group_id",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn claim_share_state(&self, key: &ShareKey, broker_id: i32, incarnation: i64) -> Result<ShareClaim> {
        self.timed(self.statement_timeout * 3, "claim share state", async {
            let mut conn = self.conn().await?;
            let claimed = claim_share_state_on(conn.client(), key, (broker_id, incarnation)).await;
            conn.finish(&claimed);
            claimed
        })
        .await
    }

    async fn store_share_state(
        &self,
        key: &ShareKey,
        broker: (i32, i64),
        claim: i64,
        state: &ShareState,
    ) -> Result<()> {
        check_share_state(state)?;
        self.timed(self.statement_timeout * 3, "store share state", async {
            let mut conn = self.conn().await?;
            let stored = store_share_state_on(conn.client(), key, broker, claim, state).await;
            conn.finish(&stored);
            stored
        })
        .await
    }

    async fn set_share_settings(&self, group: &str, settings: &str) -> Result<()> {
        self.timed(self.statement_timeout, "set share settings", async {
            let mut conn = self.conn().await?;
            let sql = if settings.is_empty() {
                "DELETE FROM veltrix_share_settings WHERE group_id = $1 AND $2 = ''"
            } else {
                "INSERT INTO veltrix_share_settings (group_id, settings) VALUES ($1, $2) \
                 ON CONFLICT (group_id) DO UPDATE SET settings = $2, updated_at = now()"
            };
            let set = conn
                .client()
                .execute(sql, &[&group, &settings])
                .await
                .map(|_| ())
                .map_err(pg_error);
            conn.finish(&set);
            set
        })
        .await
    }

    async fn delete_share_group(&self, group: &str) -> Result<()> {
        self.timed(self.statement_timeout * 3, "delete share group", async {
            let mut conn = self.conn().await?;
            let deleted = delete_share_group_on(conn.client(), group).await;
            conn.finish(&deleted);
            deleted
        })
        .await
    }

    async fn share_claims(&self, keys: &[ShareKey]) -> Result<Vec<(ShareKey, i64)>> {
        let groups: Vec<&str> = keys.iter().map(|k| k.group.as_str()).collect();
        let topics: Vec<&[u8]> = keys.iter().map(|k| k.topic_id.as_slice()).collect();
        let partitions: Vec<i32> = keys.iter().map(|k| k.partition).collect();
        self.timed(self.statement_timeout, "share claims", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT s.group_id, s.topic_id, s.partition, s.claim FROM veltrix_share_states s \
                     JOIN UNNEST($1::text[], $2::bytea[], $3::int4[]) AS u(g, t, p) \
                     ON s.group_id = u.g AND s.topic_id = u.t AND s.partition = u.p",
                    &[&groups, &topics, &partitions],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().filter_map(share_key_and_value).collect())
        })
        .await
    }

    async fn share_starts(&self, group: &str) -> Result<Vec<(ShareKey, i64)>> {
        self.timed(self.statement_timeout, "share starts", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT group_id, topic_id, partition, start_offset FROM veltrix_share_states \
                     WHERE group_id = $1 AND start_offset IS NOT NULL \
                     ORDER BY topic_id, partition LIMIT $2",
                    &[&group, &(crate::cluster::SHARE_STARTS_LISTED_MAX as i64)],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().filter_map(share_key_and_value).collect())
        })
        .await
    }

    async fn set_share_states(
        &self,
        group: &str,
        broker: (i32, i64),
        states: &[([u8; 16], i32, Option<ShareState>)],
    ) -> Result<()> {
        for share in states.iter().filter_map(|(_, _, s)| s.as_ref()) {
            crate::cluster::check_share_state(share)?;
        }
        // The last of each share-partition named.
        let last: std::collections::BTreeMap<([u8; 16], i32), &Option<ShareState>> =
            states.iter().map(|(t, p, s)| ((*t, *p), s)).collect();
        self.timed(self.statement_timeout * 3, "set share states", async {
            let mut conn = self.conn().await?;
            let set = set_share_states_on(conn.client(), group, broker, &last).await;
            conn.finish(&set);
            set
        })
        .await
    }

    async fn share_settings(&self) -> Result<Vec<(String, String)>> {
        self.timed(self.statement_timeout, "share settings", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT group_id, settings FROM veltrix_share_settings ORDER BY group_id",
                    &[],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
        .await
    }
}

/// Fails with [`Error::LeaseLost`] unless the broker's lease is live; the
/// row stays share-locked to the transaction's end, so a take-over of the
/// id waits for it.
async fn check_lease(tx: &tokio_postgres::Transaction<'_>, (broker_id, incarnation): (i32, i64)) -> Result<()> {
    let live = tx
        .query_opt(
            "SELECT 1 FROM veltrix_brokers WHERE broker_id = $1 AND incarnation = $2 \
             AND lease_until > clock_timestamp() FOR SHARE",
            &[&broker_id, &incarnation],
        )
        .await
        .map_err(pg_error)?;
    if live.is_none() {
        return Err(Error::LeaseLost(broker_id));
    }
    Ok(())
}

async fn claim_share_state_on(client: &mut Client, key: &ShareKey, broker: (i32, i64)) -> Result<ShareClaim> {
    let tx = client.transaction().await.map_err(pg_error)?;
    check_lease(&tx, broker).await?;
    let topic_id = key.topic_id.as_slice();
    let row = tx
        .query_one(
            "INSERT INTO veltrix_share_states (group_id, topic_id, partition, claim, broker_id) \
             VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (group_id, topic_id, partition) DO UPDATE \
             SET claim = veltrix_share_states.claim + 1, broker_id = $4, updated_at = now() \
             RETURNING claim, start_offset, ranges, \
             (SELECT settings FROM veltrix_share_settings WHERE group_id = $1)",
            &[&key.group, &topic_id, &key.partition, &broker.0],
        )
        .await
        .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    let start: Option<i64> = row.get(1);
    let ranges: Option<Vec<u8>> = row.get(2);
    let state = start.map(|start_offset| ShareState {
        start_offset,
        ranges: ranges.unwrap_or_default(),
    });
    Ok(ShareClaim {
        claim: row.get(0),
        state,
        settings: row.get(3),
    })
}

async fn store_share_state_on(
    client: &mut Client,
    key: &ShareKey,
    broker: (i32, i64),
    claim: i64,
    state: &ShareState,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    check_lease(&tx, broker).await?;
    let topic_id = key.topic_id.as_slice();
    let updated = tx
        .execute(
            "UPDATE veltrix_share_states SET start_offset = $5, ranges = $6, updated_at = now() \
             WHERE group_id = $1 AND topic_id = $2 AND partition = $3 AND claim = $4",
            &[
                &key.group,
                &topic_id,
                &key.partition,
                &claim,
                &state.start_offset,
                &state.ranges,
            ],
        )
        .await
        .map_err(pg_error)?;
    if updated != 1 {
        tx.rollback().await.map_err(pg_error)?;
        return Err(Error::ShareStateMoved {
            group: key.group.clone(),
        });
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(())
}

/// A row of (group_id, topic_id, partition, a bigint) as a share-partition
/// and that value; `None` for a topic id of the wrong length.
fn share_key_and_value(r: &tokio_postgres::Row) -> Option<(ShareKey, i64)> {
    let key = ShareKey {
        group: r.get(0),
        topic_id: r.get::<_, &[u8]>(1).try_into().ok()?,
        partition: r.get(2),
    };
    Some((key, r.get(3)))
}

async fn set_share_states_on(
    client: &mut Client,
    group: &str,
    broker: (i32, i64),
    states: &std::collections::BTreeMap<([u8; 16], i32), &Option<ShareState>>,
) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    check_lease(&tx, broker).await?;
    let (mut set_topics, mut set_partitions, mut starts, mut ranges) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut gone_topics, mut gone_partitions) = (Vec::new(), Vec::new());
    for ((topic_id, partition), state) in states {
        match state {
            Some(s) => {
                set_topics.push(topic_id.as_slice());
                set_partitions.push(*partition);
                starts.push(s.start_offset);
                ranges.push(s.ranges.as_slice());
            }
            None => {
                gone_topics.push(topic_id.as_slice());
                gone_partitions.push(*partition);
            }
        }
    }
    tx.execute(
        "INSERT INTO veltrix_share_states (group_id, topic_id, partition, claim, broker_id, start_offset, ranges) \
         SELECT $1, t, p, 1, $2, s, r FROM UNNEST($3::bytea[], $4::int4[], $5::int8[], $6::bytea[]) AS u(t, p, s, r) \
         ON CONFLICT (group_id, topic_id, partition) DO UPDATE \
         SET claim = veltrix_share_states.claim + 1, broker_id = $2, start_offset = EXCLUDED.start_offset, \
         ranges = EXCLUDED.ranges, updated_at = now()",
        &[&group, &broker.0, &set_topics, &set_partitions, &starts, &ranges],
    )
    .await
    .map_err(pg_error)?;
    tx.execute(
        "DELETE FROM veltrix_share_states WHERE group_id = $1 \
         AND (topic_id, partition) IN (SELECT t, p FROM UNNEST($2::bytea[], $3::int4[]) AS u(t, p))",
        &[&group, &gone_topics, &gone_partitions],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}

async fn delete_share_group_on(client: &mut Client, group: &str) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    for table in ["veltrix_share_states", "veltrix_share_settings"] {
        let sql = format!("DELETE FROM {table} WHERE group_id = $1");
        tx.execute(sql.as_str(), &[&group]).await.map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

/// The topic's row and its partitions' rows, in one transaction. Partition
/// rows already there (made by [`crate::Catalog::create_partitions`]) are
/// kept as they are.
async fn create_topic_on(client: &mut Client, topic: &TopicRow) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let inserted = tx
        .execute(
            "INSERT INTO veltrix_topics (name, id, partitions, config) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
            &[&topic.name, &&topic.id[..], &topic.partitions, &topic.config],
        )
        .await
        .map_err(pg_error)?;
    if inserted == 0 {
        tx.rollback().await.map_err(pg_error)?;
        return Err(Error::TopicExists(topic.name.clone()));
    }
    tx.execute(
        "INSERT INTO veltrix_partitions (topic, partition) \
         SELECT $1, generate_series(0, $2 - 1) ON CONFLICT DO NOTHING",
        &[&topic.name, &topic.partitions],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}

/// The topic and everything of it, in one transaction. Its partitions' rows
/// are locked first, in partition order (the order commits lock them in), so
/// a commit racing the delete either finishes before it or finds no
/// partition after it, and never leaves a batch row behind.
async fn delete_topic_on(client: &mut Client, name: &str) -> Result<bool> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let deleted = tx
        .query_opt("DELETE FROM veltrix_topics WHERE name = $1 RETURNING id", &[&name])
        .await
        .map_err(pg_error)?;
    let Some(deleted) = deleted else {
        tx.rollback().await.map_err(pg_error)?;
        return Ok(false);
    };
    let id: Vec<u8> = deleted.get(0);
    tx.execute(
        "SELECT 1 FROM veltrix_partitions WHERE topic = $1 ORDER BY partition FOR UPDATE",
        &[&name],
    )
    .await
    .map_err(pg_error)?;
    super::housekeeping::release_topic_objects(&tx, name).await?;
    tx.execute("DELETE FROM veltrix_share_states WHERE topic_id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    for table in [
        "veltrix_batches",
        "veltrix_producers",
        "veltrix_partitions",
        "veltrix_group_offsets",
    ] {
        let sql = format!("DELETE FROM {table} WHERE topic = $1");
        tx.execute(sql.as_str(), &[&name]).await.map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(true)
}

/// Grows the topic under its row's lock; asking for its current count is
/// answered as done, for fewer with [`Error::InvalidLimit`].
async fn set_partitions_on(client: &mut Client, name: &str, total: i32) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let row = tx
        .query_opt(
            "SELECT partitions FROM veltrix_topics WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .map_err(pg_error)?;
    let current: Option<i32> = row.map(|r| r.get(0));
    let checked = match current {
        None => Err(Error::UnknownTopic(name.into())),
        Some(current) => check_partitions(total, current).map(|()| current),
    };
    let current = match checked {
        Ok(current) => current,
        Err(refusal) => {
            tx.rollback().await.map_err(pg_error)?;
            return Err(refusal);
        }
    };
    if current < total {
        tx.execute(
            "UPDATE veltrix_topics SET partitions = $2 WHERE name = $1",
            &[&name, &total],
        )
        .await
        .map_err(pg_error)?;
        tx.execute(
            "INSERT INTO veltrix_partitions (topic, partition) \
             SELECT $1, generate_series($2, $3 - 1) ON CONFLICT DO NOTHING",
            &[&name, &current, &total],
        )
        .await
        .map_err(pg_error)?;
    }
    tx.commit().await.map_err(pg_error)
}

/// The lease checked and its row share-locked, then the offsets stored, in
/// one transaction. The lock makes a take-over of the id wait for this
/// transaction's end, so once another incarnation holds the id no offset of
/// the old one is stored.
async fn commit_offsets_on(client: &mut Client, group: &str, broker: (i32, i64), offsets: &[OffsetRow]) -> Result<()> {
    let tx = client.transaction().await.map_err(pg_error)?;
    check_lease(&tx, broker).await?;
    // One row per partition (the last one named wins): an upsert may not
    // touch a row twice.
    let by_partition: BTreeMap<(&str, i32), &OffsetRow> =
        offsets.iter().map(|o| ((o.topic.as_str(), o.partition), o)).collect();
    let rows: Vec<&OffsetRow> = by_partition.into_values().collect();
    let topics: Vec<&str> = rows.iter().map(|o| o.topic.as_str()).collect();
    let partitions: Vec<i32> = rows.iter().map(|o| o.partition).collect();
    let committed: Vec<i64> = rows.iter().map(|o| o.offset).collect();
    let epochs: Vec<i32> = rows.iter().map(|o| o.leader_epoch).collect();
    let metadata: Vec<&str> = rows.iter().map(|o| o.metadata.as_str()).collect();
    tx.execute(
        "INSERT INTO veltrix_group_offsets \
         (group_id, topic, partition, committed_offset, leader_epoch, metadata) \
         SELECT $1::text, t, p, o, e, m \
         FROM UNNEST($2::text[], $3::int4[], $4::int8[], $5::int4[], $6::text[]) AS u(t, p, o, e, m) \
         ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
         committed_offset = EXCLUDED.committed_offset, leader_epoch = EXCLUDED.leader_epoch, \
         metadata = EXCLUDED.metadata, committed_at = now()",
        &[&group, &topics, &partitions, &committed, &epochs, &metadata],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)
}
