//! Connection handling against scripted fake brokers: version negotiation (the
//! highest common version, the v0 fallback, no common version), frame limits,
//! timeouts and an absent broker.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader};
use tokio::net::TcpListener;
use veltrix_client::{ClientConfig, ClientError, Connection};

use crate::fake::{Answer, api_versions, fake_broker};

fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        ..ClientConfig::default()
    }
}

/// A broker that offers ApiVersions (v0 to v3) and Metadata (v0 to v12), and
/// answers every other request with `other`, given its header.
async fn metadata_broker(other: impl Fn(&RequestHeader) -> Answer + Send + Sync + 'static) -> String {
    fake_broker(move |h| {
        if h.request_api_key == ApiKey::ApiVersions as i16 {
            return api_versions(
                0,
                &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)],
                h.request_api_version,
            );
        }
        other(h)
    })
    .await
}

#[tokio::test]
async fn each_api_gets_the_highest_version_both_sides_speak() {
    let addr = fake_broker(|h| {
        assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
        api_versions(
            0,
            &[
                (ApiKey::ApiVersions, 0, 3),
                (ApiKey::Metadata, 0, 9),
                (ApiKey::Produce, 3, 13),
                (ApiKey::Fetch, 13, 18),
            ],
            h.request_api_version,
        )
    })
    .await;
    let c = Connection::connect(&addr, quick()).await.unwrap();
    assert_eq!(c.version(ApiKey::Metadata).unwrap(), 9, "the broker's max");
    assert_eq!(c.version(ApiKey::Produce).unwrap(), 12, "the client's max");
    let e = c.version(ApiKey::Fetch).unwrap_err();
    assert!(matches!(
        e,
        ClientError::Unsupported {
            broker: Some((13, 18)),
            client: (4, 12),
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        format!("the broker at {addr} does not support Fetch: it serves v13-v18, this client speaks v4-v12")
    );
    let e = c.version(ApiKey::CreateTopics).unwrap_err();
    assert!(e.to_string().contains("it serves no version of it"), "{e}");
}

#[tokio::test]
async fn an_older_broker_answering_in_v0_is_asked_again_at_its_version() {
    let addr = fake_broker(|h| match h.request_api_version {
        // As Kafka does for a version it does not serve: the error in the v0 layout.
        3 => api_versions(35, &[(ApiKey::ApiVersions, 0, 2)], 0),
        2 => api_versions(0, &[(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 1, 5)], 2),
        v => panic!("asked with ApiVersions v{v}"),
    })
    .await;
    let c = Connection::connect(&addr, quick()).await.unwrap();
    assert_eq!(c.version(ApiKey::Metadata).unwrap(), 5);
    assert_eq!(c.broker_versions(ApiKey::ApiVersions), Some((0, 2)));
}

#[tokio::test]
async fn a_broker_without_a_common_api_versions_version_is_refused_clearly() {
    let addr = fake_broker(|_| api_versions(35, &[(ApiKey::ApiVersions, 7, 9)], 0)).await;
    let e = Connection::connect(&addr, quick()).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Unsupported {
                api: ApiKey::ApiVersions,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn oversized_frames_break_the_connection_before_the_body_is_read() {
    // A length far past the limit, and no body at all.
    let addr = metadata_broker(|_| Answer::Raw(i32::MAX.to_be_bytes().to_vec())).await;
    let mut c = Connection::connect(&addr, quick()).await.unwrap();
    let v = c.version(ApiKey::Metadata).unwrap();
    let e = c.call(&MetadataRequest::default(), v).await.unwrap_err();
    assert!(matches!(e, ClientError::BadFrame { len: 2147483647, .. }), "{e}");
    let e = c.call(&MetadataRequest::default(), v).await.unwrap_err();
    assert!(matches!(e, ClientError::Broken { .. }), "{e}");
}

#[tokio::test]
async fn a_silent_broker_times_out() {
    let addr = metadata_broker(|_| Answer::Silence).await;
    let mut c = Connection::connect(&addr, quick()).await.unwrap();
    let started = std::time::Instant::now();
    let e = c.call(&MetadataRequest::default(), 12).await.unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Timeout {
                api: ApiKey::Metadata,
                timeout_ms: 500,
                ..
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A late answer could still arrive: the connection is not reused.
    assert!(matches!(
        c.call(&MetadataRequest::default(), 12).await,
        Err(ClientError::Broken { .. })
    ));

    let silent = fake_broker(|_| Answer::Silence).await;
    let e = Connection::connect(&silent, quick()).await.unwrap_err();
    assert!(matches!(e, ClientError::ConnectTimeout { .. }), "{e}");
}

#[tokio::test]
async fn a_wrong_correlation_id_is_a_protocol_error() {
    let addr = metadata_broker(|h| {
        let mut frame = BytesMut::new();
        frame.put_i32(5);
        frame.put_i32(h.correlation_id + 100);
        frame.put_u8(0);
        Answer::Raw(frame.to_vec())
    })
    .await;
    let mut c = Connection::connect(&addr, quick()).await.unwrap();
    let e = c.call(&MetadataRequest::default(), 12).await.unwrap_err();
    assert!(matches!(e, ClientError::CorrelationMismatch { .. }), "{e}");
}

#[tokio::test]
async fn no_broker_is_a_connect_error_that_says_so() {
    // Bind and drop to find a port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let e = Connection::connect(&addr.to_string(), quick()).await.unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("is the broker running?"), "{e}");
}
