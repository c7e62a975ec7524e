//! Read-only probes of the catalog and the bucket, for `veltrix check
//! --online`: is PostgreSQL reachable, which version of the catalog's tables
//! does it hold, can the bucket be listed under the key prefix. Nothing is
//! created or written: the PostgreSQL session is read-only
//! (`default_transaction_read_only`) and the bucket is only listed. Each
//! probe ends within its settings' timeouts, whatever the server does.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path;
use tokio_postgres::NoTls;

use crate::error::{Error, Result};

use crate::pg::PgConfig;
use crate::store::S3Config;

// The catalog's migrations, compiled here a second time (the `pg` module
// keeps them private) so that the version this build knows has one source.
// To become `crate::pg::current_version` once `pg` exports it.
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "pg/schema.rs"]
mod schema;

/// What PostgreSQL said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgProbeReport {
    /// The server's `server_version`, such as `15.8 (Debian 15.8-0+deb12u1)`.
    pub server_version: String,
    /// The catalog's schema version; `None` when its tables do not exist
    /// yet (the broker creates them at its first start).
    pub schema_version: Option<i32>,
    /// The schema version this build writes. A `schema_version` above it is
    /// refused at start ([`Error::SchemaTooNew`]).
    pub known_version: i32,
}

impl PgProbeReport {
    /// Whether this build would refuse the catalog.
    pub fn schema_too_new(&self) -> bool {
        self.schema_version.is_some_and(|v| v > self.known_version)
    }
}

/// What the bucket said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketProbeReport {
    /// Objects seen under the prefix in the first page of the listing (at
    /// most [`BUCKET_PROBE_OBJECTS_MAX`]).
    pub objects_seen: usize,
}

/// Objects a bucket probe lists at most: one page.
pub const BUCKET_PROBE_OBJECTS_MAX: usize = 1000;

/// How long [`probe_postgres`] may take at most: connecting (its
/// `connect_timeout_ms`), then two statements (`statement_timeout_ms`
/// each).
pub fn postgres_probe_deadline(config: &PgConfig) -> Duration {
    Duration::from_millis(config.connect_timeout_ms + 2 * config.statement_timeout_ms)
}

/// Connects to the catalog as the broker would (without TLS), in a
/// read-only session, and reads the server's version and the catalog's
/// schema version. Errors: [`Error::CatalogUnavailable`] when the server
/// cannot be reached or does not answer within
/// [`postgres_probe_deadline`]; [`Error::Other`] when it answers with a
/// refusal (authentication, a missing database) or the settings are wrong.
pub async fn probe_postgres(config: &PgConfig) -> Result<PgProbeReport> {
    config.validate()?;
    let mut pg =
        tokio_postgres::Config::from_str(&config.url).map_err(|e| Error::Other(format!("the PostgreSQL URL: {e}")))?;
    let timeout = config.statement_timeout_ms;
    pg.options(format!(
        "-c statement_timeout={timeout} -c lock_timeout={timeout} -c default_transaction_read_only=on"
    ));
    pg.connect_timeout(Duration::from_millis(config.connect_timeout_ms));
    pg.application_name("veltrix check");
    // Connecting (TCP, startup, authentication) has the connection's
    // timeout, the statements theirs: a server that accepts and then stays
    // silent is told apart from a slow query.
    let connect = Duration::from_millis(config.connect_timeout_ms);
    let (client, connection) = tokio::time::timeout(connect, pg.connect(NoTls))
        .await
        .map_err(|_| Error::CatalogUnavailable(format!("no answer to the connection within {connect:?}")))?
        .map_err(pg_error)?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let statements = Duration::from_millis(2 * config.statement_timeout_ms);
    let probed = tokio::time::timeout(statements, read_versions(&client))
        .await
        .unwrap_or_else(|_| {
            Err(Error::CatalogUnavailable(format!(
                "no answer to the statements within {statements:?}"
            )))
        });
    // Dropping the client ends the session; its connection task then ends
    // by itself, given a moment to say goodbye.
    drop(client);
    let _ = tokio::time::timeout(Duration::from_millis(100), connection).await;
    probed
}

/// A `tokio-postgres` error as the crate's ([`crate::pg::pg_error`] decides
/// which), with the server's own message when it sent one (`database
/// "x" does not exist`, `password authentication failed for user "y"`).
fn pg_error(e: tokio_postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        // The client's words and what caused them: `error connecting to
        // server: Connection refused (os error 111)`.
        None => match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    match crate::pg::pg_error(e) {
        Error::CatalogUnavailable(_) => Error::CatalogUnavailable(detail),
        _ => Error::Other(detail),
    }
}

async fn read_versions(client: &tokio_postgres::Client) -> Result<PgProbeReport> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), to_regclass('veltrix_schema') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg_error)?;
    let server_version: String = row.get(0);
    let schema_version = if row.get::<_, bool>(1) {
        let row = client
            .query_one("SELECT coalesce(max(version), 0) FROM veltrix_schema", &[])
            .await
            .map_err(pg_error)?;
        Some(row.get::<_, i32>(0)).filter(|v| *v > 0)
    } else {
        None
    };
    Ok(PgProbeReport {
        server_version,
        schema_version,
        known_version: schema::current_version(),
    })
}

/// How long [`probe_bucket`] may take at most: the client's connection
/// timeout and its requests with their retries.
pub fn bucket_probe_deadline(config: &S3Config) -> Duration {
    let request = Duration::from_millis(config.request_timeout_ms);
    Duration::from_millis(config.connect_timeout_ms) + request * (config.retries_max as u32 + 1)
}

/// Why a bucket could not be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketProblem {
    /// The settings cannot make a client (an endpoint that is no URL).
    Settings,
    /// The bucket does not exist.
    Missing,
    /// The credentials were refused, or may not list the bucket.
    Denied,
    /// No answer: the endpoint unreachable, or slower than the deadline.
    Unreachable,
    /// Any other error the store answered with.
    Failed,
}

/// A failed [`probe_bucket`]: the kind of failure, and the store's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BucketProbeError {
    pub problem: BucketProblem,
    pub message: String,
}

/// Lists the bucket under `<prefix>/`, one page, with the credentials of the
/// environment (or the config's static ones), within
/// [`bucket_probe_deadline`]. Reads no object and writes nothing.
pub async fn probe_bucket(config: &S3Config, prefix: &str) -> Result<BucketProbeReport, BucketProbeError> {
    let fail = |problem, message: String| BucketProbeError { problem, message };
    let store = config
        .build()
        .map_err(|e| fail(BucketProblem::Settings, e.to_string()))?;
    let prefix = Path::from(prefix);
    let deadline = bucket_probe_deadline(config);
    let listed = tokio::time::timeout(deadline, async {
        let mut seen = 0;
        let mut listing = store.list(Some(&prefix)).take(BUCKET_PROBE_OBJECTS_MAX);
        while let Some(meta) = listing.next().await {
            meta?;
            seen += 1;
        }
        Ok::<_, object_store::Error>(seen)
    })
    .await
    .map_err(|_| fail(BucketProblem::Unreachable, format!("no answer within {deadline:?}")))?;
    let e = match listed {
        Ok(objects_seen) => return Ok(BucketProbeReport { objects_seen }),
        Err(e) => e,
    };
    let text = e.to_string();
    let problem = match e {
        object_store::Error::NotFound { .. } => BucketProblem::Missing,
        _ if text.contains("NoSuchBucket") => BucketProblem::Missing,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            BucketProblem::Denied
        }
        _ if text.contains("AccessDenied") || text.contains("InvalidAccessKeyId") => BucketProblem::Denied,
        // The client's own failures (connecting, timing out, retries
        // exhausted) carry no status from the server.
        _ if text.contains("error sending request") || text.contains("timed out") || text.contains("retries") => {
            BucketProblem::Unreachable
        }
        _ => BucketProblem::Failed,
    };
    Err(fail(problem, text))
}
