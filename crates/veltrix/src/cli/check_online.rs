//! `veltrix check --online`: in shared storage mode, the catalog
//! (PostgreSQL) and the bucket are contacted, read-only, and what they said
//! is added to the report as diagnostics at the key each is about (V401 to
//! V405): PostgreSQL reachable and its catalog's schema version, the bucket
//! listable under the key prefix. Both probes run at once, each within the
//! configured timeouts, so the check ends in bounded time whatever the
//! servers do.

use std::time::Duration;

use veltrix_config::rules::{self, Rule};
use veltrix_config::{OnlineFinding, Report, SharedStorage};
use veltrix_shared::{
    BucketProbeError, BucketProbeReport, BucketProblem, PgConfig, PgProbeReport, S3Config, bucket_probe_deadline,
    postgres_probe_deadline, probe_bucket, probe_postgres,
};

/// The catalog's settings as the probe uses them: the broker's.
pub(crate) fn pg_config(s: &SharedStorage) -> PgConfig {
    PgConfig {
        url: s.postgres_url.clone(),
        connections_max: s.postgres_connections_max,
        statement_timeout_ms: s.postgres_statement_timeout_ms,
        ..PgConfig::default()
    }
}

/// The bucket's settings for the probe: one request, no retry, within
/// `get_timeout_ms` (plus connecting).
pub(crate) fn s3_config(s: &SharedStorage) -> S3Config {
    let defaults = S3Config::default();
    S3Config {
        bucket: s.bucket.clone(),
        endpoint: s.endpoint.clone(),
        region: s.region.clone(),
        allow_http: s.allow_http,
        connect_timeout_ms: defaults.connect_timeout_ms.min(s.get_timeout_ms),
        request_timeout_ms: s.get_timeout_ms,
        retries_max: 0,
        static_credentials: None,
    }
}

/// Probes what `report`'s configuration names and adds the findings; `env`
/// is the environment the file was checked with. `Err` says why nothing
/// was contacted (the file has errors, or the storage is local).
pub fn probe(report: &mut Report, env: &[(String, String)]) -> Result<(), &'static str> {
    let Some(config) = &report.config else {
        return Err("the file has errors: nothing was contacted");
    };
    let Some(storage) = config.storage.clone() else {
        return Err("[storage] mode is local: there is nothing to contact");
    };
    let (pg, s3) = (pg_config(&storage), s3_config(&storage));
    // Each probe ends by its own deadline; this one only guards against a
    // probe that would not.
    let bound = postgres_probe_deadline(&pg).max(bucket_probe_deadline(&s3)) + Duration::from_secs(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|_| "no async runtime")?;
    let (catalog, bucket) = runtime.block_on(async {
        let both = async { tokio::join!(probe_postgres(&pg), probe_bucket(&s3, &storage.key_prefix)) };
        match tokio::time::timeout(bound, both).await {
            Ok(both) => both,
            Err(_) => (
                Err(veltrix_shared::Error::CatalogUnavailable(format!(
                    "no answer within {bound:?}"
                ))),
                Err(BucketProbeError {
                    problem: BucketProblem::Unreachable,
                    message: format!("no answer within {bound:?}"),
                }),
            ),
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    let findings = vec![catalog_finding(&storage, catalog), bucket_finding(&storage, bucket)];
    report.add_online(env, findings);
    Ok(())
}

fn finding(rule: &'static Rule, key: &'static str, message: String, label: &str, help: String) -> OnlineFinding {
    OnlineFinding {
        rule,
        key,
        message,
        label: label.to_owned(),
        help,
        note: String::new(),
    }
}

/// V401, V402 or V403.
fn catalog_finding(s: &SharedStorage, probed: veltrix_shared::Result<PgProbeReport>) -> OnlineFinding {
    let p = match probed {
        Ok(p) => p,
        Err(e) => return catalog_unreachable(s, &e),
    };
    if p.schema_too_new() {
        let mut f = finding(
            &rules::CATALOG_SCHEMA_TOO_NEW,
            "postgres_url",
            format!(
                "the catalog's schema version {} is newer than this build's {}",
                p.schema_version.unwrap_or_default(),
                p.known_version
            ),
            "migrated by a newer Veltrix",
            "run the newer build, or point `postgres_url` at another database".to_owned(),
        );
        f.note = "this build would refuse to start rather than write the catalog with older rules".to_owned();
        return f;
    }
    let schema = match p.schema_version {
        None => "no catalog tables yet: they will be created at first start".to_owned(),
        Some(v) if v == p.known_version => format!("catalog schema version {v}, this build's"),
        Some(v) => format!(
            "catalog schema version {v}: this build migrates it to {} at its first start",
            p.known_version
        ),
    };
    let mut f = finding(
        &rules::CATALOG_REACHABLE,
        "postgres_url",
        format!("PostgreSQL {} answered; {schema}", p.server_version),
        "reachable",
        String::new(),
    );
    f.note = format!("contacted read-only: {}", s.postgres_url_redacted());
    f
}

fn catalog_unreachable(s: &SharedStorage, e: &veltrix_shared::Error) -> OnlineFinding {
    let text = match e {
        veltrix_shared::Error::CatalogUnavailable(text) | veltrix_shared::Error::Other(text) => text.clone(),
        e => e.to_string(),
    };
    let help = if text.contains("password") || text.contains("authentication") {
        "check the user and password: give the URL with its password in `VELTRIX_STORAGE__POSTGRES_URL`"
    } else if text.contains("does not exist") {
        "create the database (`createdb`), or correct the database in `postgres_url`"
    } else if text.contains("PostgreSQL URL") {
        "correct `postgres_url`: `postgresql://USER@HOST:PORT/DATABASE`"
    } else {
        "check the host and port in `postgres_url`, that the server is up, and that it accepts TCP connections from this host"
    };
    let mut f = finding(
        &rules::CATALOG_UNREACHABLE,
        "postgres_url",
        format!("PostgreSQL could not be used: {text}"),
        "not reachable",
        help.to_owned(),
    );
    f.note = format!(
        "tried {} (connection {} ms, statements {} ms); a broker in shared mode cannot start without its catalog",
        s.postgres_url_redacted(),
        PgConfig::default().connect_timeout_ms,
        s.postgres_statement_timeout_ms
    );
    f
}

/// V404 or V405.
fn bucket_finding(s: &SharedStorage, probed: Result<BucketProbeReport, BucketProbeError>) -> OnlineFinding {
    let where_ = match &s.endpoint {
        Some(e) => format!("at {e}"),
        None => format!("in AWS S3, {}", s.region),
    };
    let e = match probed {
        Ok(p) => {
            let seen = match p.objects_seen {
                0 => "no object yet".to_owned(),
                1 => "1 object".to_owned(),
                n if n >= veltrix_shared::BUCKET_PROBE_OBJECTS_MAX => format!("at least {n} objects"),
                n => format!("{n} objects"),
            };
            let mut f = finding(
                &rules::BUCKET_REACHABLE,
                "bucket",
                format!(
                    "bucket `{}` {where_} listed under `{}/`: {seen}",
                    s.bucket, s.key_prefix
                ),
                "reachable",
                String::new(),
            );
            f.note = "listed only: whether the credentials may write is known at the first produce".to_owned();
            return f;
        }
        Err(e) => e,
    };
    let (label, help) = match e.problem {
        BucketProblem::Missing => (
            "no such bucket",
            "create the bucket, or correct `bucket` (and `region`)".to_owned(),
        ),
        BucketProblem::Denied => (
            "access denied",
            "check `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment, and that the bucket's policy lets them list and write"
                .to_owned(),
        ),
        BucketProblem::Unreachable => (
            "not reachable",
            format!(
                "check `endpoint`, that the server is up and reachable from this host, within `get_timeout_ms` ({} ms)",
                s.get_timeout_ms
            ),
        ),
        BucketProblem::Settings | BucketProblem::Failed => ("refused", "check `[storage]`'s bucket settings".to_owned()),
    };
    let mut f = finding(
        &rules::BUCKET_UNREACHABLE,
        "bucket",
        format!("bucket `{}` {where_} could not be listed: {}", s.bucket, e.message),
        label,
        help,
    );
    f.note = "a broker in shared mode writes every produce to the bucket".to_owned();
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's settings carry the broker's; and the `[storage]` defaults
    /// are the shared storage's own.
    #[test]
    fn storage_defaults_are_the_shared_storage_s() {
        let s = SharedStorage::new(3, "b", "postgresql://u@h/db");
        let writer = veltrix_shared::WriterConfig::default();
        let reader = veltrix_shared::ReaderConfig::default();
        let collector = veltrix_shared::CollectorConfig::default();
        let pg = PgConfig::default();
        let s3 = S3Config::default();
        assert_eq!(
            (s.flush_interval_ms, s.flush_bytes_max, s.buffered_bytes_max),
            (
                writer.flush_interval_ms,
                writer.flush_bytes_max,
                writer.buffered_bytes_max
            )
        );
        assert_eq!(
            (s.put_timeout_ms, s.commit_timeout_ms, s.key_prefix.as_str()),
            (
                writer.put_timeout_ms,
                writer.commit_timeout_ms,
                writer.key_prefix.as_str()
            )
        );
        assert_eq!(
            (s.cache_bytes_max, s.get_timeout_ms),
            (reader.cache_bytes_max, reader.get_timeout_ms)
        );
        assert_eq!(s.orphan_grace_ms, collector.grace_ms);
        let merge = veltrix_shared::MergeConfig::default();
        assert_eq!(
            (
                s.merge_small_bytes_max as u64,
                s.merged_bytes_max as u64,
                s.merge_age_ms_min
            ),
            (merge.small_bytes_max, merge.merged_bytes_max, merge.age_min_ms)
        );
        assert_eq!(
            (s.postgres_connections_max, s.postgres_statement_timeout_ms),
            (pg.connections_max, pg.statement_timeout_ms)
        );
        assert_eq!((s.region.as_str(), s.allow_http), (s3.region.as_str(), s3.allow_http));
        let pg = pg_config(&s);
        assert_eq!(pg.url, "postgresql://u@h/db");
        pg.validate().unwrap();
        let s3 = s3_config(&s);
        assert_eq!((s3.bucket.as_str(), s3.retries_max), ("b", 0));
        s3.validate().unwrap();
    }
}
