//! The read-only probes of `veltrix check --online` against a real
//! PostgreSQL and moto (tests/it/support.rs): what each says of a reachable
//! service, of a missing schema or bucket, and that an unreachable or silent
//! one is an error within the probe's deadline, never a hang. Skipped,
//! loudly, only when the services are not installed.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use veltrix_shared::{
    BucketProblem, Error, PgCatalog, PgConfig, S3Config, bucket_probe_deadline, postgres_probe_deadline, probe_bucket,
    probe_postgres,
};

use crate::support::{self, Moto, Postgres};

const BUCKET: &str = "veltrix-probe";

fn pg_config(url: String) -> PgConfig {
    PgConfig {
        url,
        connect_timeout_ms: 500,
        statement_timeout_ms: 500,
        ..PgConfig::default()
    }
}

fn s3_config(endpoint: String, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        endpoint: Some(endpoint),
        allow_http: true,
        connect_timeout_ms: 500,
        request_timeout_ms: 1_000,
        retries_max: 0,
        static_credentials: Some(("test".into(), "test".into())),
        ..S3Config::default()
    }
}

/// Whether the catalog's version table exists.
async fn has_schema(url: &str) -> bool {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT to_regclass('veltrix_schema') IS NOT NULL", &[])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_probe_reads_the_schema_version_and_creates_nothing() {
    let Some(binaries) = support::binaries() else { return };
    let pg = tokio::task::spawn_blocking(|| Postgres::start(binaries)).await.unwrap();
    let config = pg_config(pg.url());

    // An empty database: reachable, no catalog yet, and still none after.
    let report = probe_postgres(&config).await.expect("reachable");
    assert!(report.server_version.starts_with(char::is_numeric), "{report:?}");
    assert_eq!(report.schema_version, None);
    assert!(report.known_version >= 1);
    assert!(!report.schema_too_new());
    assert!(!has_schema(&pg.url()).await, "a probe creates nothing");

    // Once a broker has opened the catalog: this build's version.
    let catalog = PgCatalog::open(&config).await.unwrap();
    drop(catalog);
    let report = probe_postgres(&config).await.unwrap();
    assert_eq!(report.schema_version, Some(report.known_version));

    // Migrated by a newer build: said so.
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .execute("INSERT INTO veltrix_schema (version) VALUES (9999)", &[])
        .await
        .unwrap();
    let report = probe_postgres(&config).await.unwrap();
    assert_eq!(report.schema_version, Some(9999));
    assert!(report.schema_too_new());

    // A database that does not exist: a refusal, not an outage.
    let missing = pg_config(pg.url().replace("/postgres", "/nosuchdb"));
    match probe_postgres(&missing).await {
        Err(Error::Other(text)) => assert!(text.contains("does not exist"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn postgres_probe_of_a_closed_or_silent_port_ends_within_its_deadline() {
    // Nothing listens: refused at once.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = pg_config(format!("postgresql://veltrix@127.0.0.1:{port}/veltrix"));
    let started = Instant::now();
    let e = probe_postgres(&config).await.unwrap_err();
    assert!(matches!(e, Error::CatalogUnavailable(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // A port that accepts connections and never answers: the deadline.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = pg_config(format!("postgresql://veltrix@127.0.0.1:{port}/veltrix"));
    let started = Instant::now();
    let e = probe_postgres(&config).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, Error::CatalogUnavailable(_)), "{e:?}");
    let deadline = postgres_probe_deadline(&config);
    assert!(
        took <= deadline + Duration::from_millis(500),
        "{took:?} past {deadline:?}"
    );
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_probe_lists_under_the_prefix_and_tells_a_missing_bucket() {
    let Some(binaries) = support::binaries() else { return };
    let moto = tokio::task::spawn_blocking(|| {
        let moto = Moto::start(binaries);
        moto.create_bucket(BUCKET);
        moto
    })
    .await
    .unwrap();
    let config = s3_config(moto.endpoint(), BUCKET);
    assert_eq!(probe_bucket(&config, "veltrix").await.unwrap().objects_seen, 0);

    let store = config.build().unwrap();
    store
        .put(&Path::from("veltrix/objects/one"), vec![1u8, 2, 3].into())
        .await
        .unwrap();
    store.put(&Path::from("other/two"), vec![4u8].into()).await.unwrap();
    assert_eq!(probe_bucket(&config, "veltrix").await.unwrap().objects_seen, 1);
    // Listed, not read or written: the objects are as they were.
    assert_eq!(store.list(None).count().await, 2);

    let e = probe_bucket(&s3_config(moto.endpoint(), "no-such-bucket"), "veltrix")
        .await
        .unwrap_err();
    assert_eq!(e.problem, BucketProblem::Missing, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_probe_of_an_unreachable_or_frozen_endpoint_ends_within_its_deadline() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = s3_config(format!("http://127.0.0.1:{port}"), BUCKET);
    let started = Instant::now();
    let e = probe_bucket(&config, "veltrix").await.unwrap_err();
    assert_eq!(e.problem, BucketProblem::Unreachable, "{e:?}");
    assert!(started.elapsed() < bucket_probe_deadline(&config) + Duration::from_millis(500));

    let Some(binaries) = support::binaries() else { return };
    let moto = tokio::task::spawn_blocking(|| {
        let moto = Moto::start(binaries);
        moto.create_bucket(BUCKET);
        moto
    })
    .await
    .unwrap();
    let config = s3_config(moto.endpoint(), BUCKET);
    moto.pause();
    let started = Instant::now();
    let e = probe_bucket(&config, "veltrix").await.unwrap_err();
    let took = started.elapsed();
    moto.resume();
    assert_eq!(e.problem, BucketProblem::Unreachable, "{e:?}");
    let deadline = bucket_probe_deadline(&config);
    assert!(
        took <= deadline + Duration::from_millis(500),
        "{took:?} past {deadline:?}"
    );
}
