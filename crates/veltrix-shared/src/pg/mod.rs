//! [`PgCatalog`]: the catalog on PostgreSQL, with `tokio-postgres`; it is
//! the [`crate::Cluster`] too (`cluster.rs`), on the same pool.
//!
//! A small pool of connections (`connections_max`); a connection that saw
//! any error is dropped, not reused, and a new one is made on demand, so a
//! restarted server is picked up by itself. Every statement runs under the
//! server's `statement_timeout` and `lock_timeout` and every operation under
//! a client-side deadline, so an unreachable or stalled server yields
//! [`Error::CatalogUnavailable`] in bounded time.

mod cluster;
mod commit;
mod housekeeping;
mod schema;

pub use cluster::PgCluster;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::catalog::{Appended, BatchRow, Catalog, Moved, ObjectCommit, ObjectState, PlacedBatch, Trimmed};
use crate::error::{Error, Result};
use crate::limits::check;

/// Where the catalog is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// A libpq-style URL or key=value string, e.g.
    /// `postgresql://veltrix@127.0.0.1:5432/veltrix`.
    pub url: String,
    /// Connections kept at most (1..=64).
    pub connections_max: usize,
    /// Connecting, TLS and authentication included (100..=60,000 ms).
    pub connect_timeout_ms: u64,
    /// The server's `statement_timeout` and `lock_timeout`, and the client's
    /// deadline for one statement (100..=300,000 ms).
    pub statement_timeout_ms: u64,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            url: "postgresql://127.0.0.1:5432/veltrix".into(),
            connections_max: 4,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 5_000,
        }
    }
}

impl PgConfig {
    /// Every limit within its range.
    pub fn validate(&self) -> Result<()> {
        check("connections_max", self.connections_max as u64, 1, 64)?;
        check("connect_timeout_ms", self.connect_timeout_ms, 100, 60_000)?;
        check("statement_timeout_ms", self.statement_timeout_ms, 100, 300_000)
    }
}

/// The catalog on PostgreSQL.
pub struct PgCatalog {
    config: tokio_postgres::Config,
    statement_timeout: Duration,
    connect_timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Client>>,
    /// Limit on retries of a commit that lost a deadlock or serialization
    /// check to a concurrent writer.
    pub(crate) commit_attempts_max: u32,
}

impl std::fmt::Debug for PgCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCatalog").finish_non_exhaustive()
    }
}

/// A pooled connection: back to the pool by [`Conn::release`] only; dropped
/// otherwise (after an error, in the middle of anything).
pub(crate) struct Conn<'a> {
    client: Option<Client>,
    pool: &'a PgCatalog,
    _permit: SemaphorePermit<'a>,
}

impl Conn<'_> {
    pub(crate) fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection until released")
    }

    fn release(mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool.idle.lock().expect("pool lock").push(client);
        }
    }

    /// Back to the pool after a success or a refusal the server answered
    /// (a transaction refused is rolled back before, so the connection is
    /// sound); dropped after anything else.
    pub(crate) fn finish<T>(self, result: &Result<T>) {
        let refused = matches!(
            result,
            Err(Error::BrokerIdInUse(_)
                | Error::LeaseLost(_)
                | Error::TopicExists(_)
                | Error::UnknownTopic(_)
                | Error::InvalidLimit { .. })
        );
        if result.is_ok() || refused {
            self.release();
        }
    }
}

impl PgCatalog {
    /// Connects once and creates or migrates the schema.
    pub async fn open(config: &PgConfig) -> Result<PgCatalog> {
        config.validate()?;
        let mut pg = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| Error::Other(format!("the PostgreSQL URL: {e}")))?;
        let timeout = config.statement_timeout_ms;
        pg.options(format!(
            "-c statement_timeout={timeout} -c lock_timeout={timeout} \
             -c idle_in_transaction_session_timeout={}",
            timeout * 2
        ));
        pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms));
        pg.keepalives(true);
        pg.application_name("veltrix");
        let catalog = PgCatalog {
            config: pg,
            statement_timeout: Duration::from_millis(timeout),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            permits: Semaphore::new(config.connections_max),
            idle: Mutex::new(Vec::new()),
            commit_attempts_max: 10,
        };
        catalog.migrate().await?;
        Ok(catalog)
    }

    /// Retries of a commit that lost to a concurrent one (1..=100).
    pub fn with_commit_attempts_max(mut self, attempts: u32) -> Result<Self> {
        check("commit_attempts_max", attempts.into(), 1, 100)?;
        self.commit_attempts_max = attempts;
        Ok(self)
    }

    pub(crate) async fn conn(&self) -> Result<Conn<'_>> {
        let permit = self.permits.acquire().await.map_err(|_| Error::Closed)?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => self.connect().await?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<Client> {
        let connecting = self.config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Error::CatalogUnavailable("connect timed out".into()))?
            .map_err(pg_error)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "catalog connection closed");
            }
        });
        Ok(client)
    }

    /// One operation on a pooled connection, under `deadline`.
    pub(crate) async fn timed<T>(
        &self,
        deadline: Duration,
        what: &'static str,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(deadline, op)
            .await
            .map_err(|_| Error::CatalogUnavailable(format!("{what} timed out after {deadline:?}")))?
    }

    async fn migrate(&self) -> Result<()> {
        let deadline = self.connect_timeout + self.statement_timeout * 4;
        self.timed(deadline, "schema migration", async {
            let mut conn = self.conn().await?;
            migrate_on(conn.client()).await?;
            conn.release();
            Ok(())
        })
        .await
    }
}

async fn migrate_on(client: &mut Client) -> Result<()> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS veltrix_schema (version integer NOT NULL)")
        .await
        .map_err(pg_error)?;
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    let row = tx
        .query_one("SELECT coalesce(max(version), 0) FROM veltrix_schema", &[])
        .await
        .map_err(pg_error)?;
    let found: i32 = row.get(0);
    let known = schema::current_version();
    if found > known {
        return Err(Error::SchemaTooNew { found, known });
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(pg_error)?;
        let version = i as i32 + 1;
        tx.execute("INSERT INTO veltrix_schema (version) VALUES ($1)", &[&version])
            .await
            .map_err(pg_error)?;
        tracing::info!(version, "catalog schema migrated");
    }
    tx.commit().await.map_err(pg_error)
}

/// A `tokio-postgres` error as the crate's: connection trouble, timeouts,
/// a server shutting down or out of resources are retriable.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> Error {
    let Some(code) = e.code() else {
        return Error::CatalogUnavailable(e.to_string());
    };
    let class = &code.code()[..2];
    if matches!(class, "08" | "53" | "57" | "40") || *code == SqlState::LOCK_NOT_AVAILABLE {
        Error::CatalogUnavailable(e.to_string())
    } else {
        Error::Other(format!("catalog: {e}"))
    }
}

/// Whether the transaction lost to a concurrent one and may simply run again.
pub(crate) fn is_conflict(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

impl Catalog for PgCatalog {
    async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        self.timed(self.statement_timeout * 2, "create partitions", async {
            let mut conn = self.conn().await?;
            conn.client()
                .execute(
                    "INSERT INTO veltrix_partitions (topic, partition) \
                     SELECT $1, generate_series(0, $2 - 1) ON CONFLICT DO NOTHING",
                    &[&topic, &count],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(())
        })
        .await
    }

    async fn commit(&self, object: &ObjectCommit) -> Result<Vec<Result<Appended>>> {
        commit::commit(self, object).await
    }

    async fn end_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        self.timed(self.statement_timeout, "end offset", async {
            let mut conn = self.conn().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT next_offset FROM veltrix_partitions WHERE topic = $1 AND partition = $2",
                    &[&topic, &partition],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn batches(&self, topic: &str, partition: i32, offset: i64, rows_max: usize) -> Result<Vec<BatchRow>> {
        self.timed(self.statement_timeout, "batch lookup", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "SELECT base_offset, last_offset, max_timestamp, object_key, byte_start, \
                     byte_len, crc32c FROM veltrix_batches \
                     WHERE topic = $1 AND partition = $2 AND last_offset >= $3 \
                     ORDER BY last_offset LIMIT $4",
                    &[&topic, &partition, &offset, &(rows_max as i64)],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows
                .iter()
                .map(|r| BatchRow {
                    base_offset: r.get(0),
                    last_offset: r.get(1),
                    max_timestamp: r.get(2),
                    object_key: r.get(3),
                    byte_start: r.get::<_, i64>(4) as u64,
                    byte_len: r.get::<_, i32>(5) as u32,
                    crc32c: r.get::<_, i64>(6) as u32,
                })
                .collect())
        })
        .await
    }

    async fn object_states(&self, keys: &[String]) -> Result<HashMap<String, ObjectState>> {
        self.timed(self.statement_timeout, "object states", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query("SELECT key, state FROM veltrix_objects WHERE key = ANY($1)", &[&keys])
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows
                .iter()
                .map(|r| {
                    let state = match r.get::<_, &str>(1) {
                        "committed" => ObjectState::Committed,
                        "dropped" => ObjectState::Dropped,
                        _ => ObjectState::Orphan,
                    };
                    (r.get(0), state)
                })
                .collect())
        })
        .await
    }

    async fn claim_orphans(&self, keys: &[(String, u64)]) -> Result<Vec<String>> {
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let sizes: Vec<i64> = keys.iter().map(|(_, s)| *s as i64).collect();
        self.timed(self.statement_timeout, "orphan claim", async {
            let mut conn = self.conn().await?;
            let rows = conn
                .client()
                .query(
                    "INSERT INTO veltrix_objects (key, state, size_bytes) \
                     SELECT k, 'orphan', s FROM UNNEST($1::text[], $2::int8[]) AS u(k, s) \
                     ON CONFLICT DO NOTHING RETURNING key",
                    &[&names, &sizes],
                )
                .await
                .map_err(pg_error)?;
            conn.release();
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn start_offset(&self, topic: &str, partition: i32) -> Result<Option<i64>> {
        self.start_offset_of(topic, partition).await
    }

    async fn trim(&self, topic: &str, partition: i32, before_ms: i64, rows_max: usize) -> Result<Option<Trimmed>> {
        self.trim_partition(topic, partition, before_ms, rows_max).await
    }

    async fn delete_before(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        rows_max: usize,
    ) -> Result<Option<Trimmed>> {
        self.delete_before_offset(topic, partition, offset, rows_max).await
    }

    async fn drop_released(&self, grace_ms: i64, rows_max: usize) -> Result<Vec<String>> {
        self.drop_released_objects(grace_ms, rows_max).await
    }

    async fn expire_producers(&self, idle_ms: i64, rows_max: usize) -> Result<u64> {
        self.expire_idle_producers(idle_ms, rows_max).await
    }

    async fn prune_orphan_claims(&self, age_ms: i64, rows_max: usize) -> Result<u64> {
        self.prune_old_orphan_claims(age_ms, rows_max).await
    }

    async fn forget(&self, keys: &[String]) -> Result<()> {
        self.forget_objects(keys).await
    }

    async fn small_objects(&self, size_below: u64, age_min_ms: i64, count_max: usize) -> Result<Vec<(String, u64)>> {
        self.small_objects_of(size_below, age_min_ms, count_max).await
    }

    async fn batches_in(&self, keys: &[String]) -> Result<Vec<PlacedBatch>> {
        self.batches_in_objects(keys).await
    }

    async fn rewrite(&self, merged: &str, size: u64, moves: &[Moved], sources: &[String]) -> Result<usize> {
        self.rewrite_objects(merged, size, moves, sources).await
    }
}
