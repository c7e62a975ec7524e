//! Memory limits of the Kafka front door.

use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use tokio::io::AsyncWriteExt;
use veltrix_kafka::errors;

use super::{Client, start};

/// A request that does not fit the global in-flight budget waits until another
/// request's bytes are released: here connection A announces a 4000-byte request
/// and stalls mid-body, holding the whole budget; B's small request is answered
/// only after A's connection goes away.
#[tokio::test]
async fn requests_wait_for_the_global_in_flight_budget() {
    let s = start(|k| {
        k.request_bytes_max = 4000;
        k.in_flight_bytes_max = 4000;
    })
    .await;
    let mut a = Client::connect(s.addr).await;
    a.stream.write_all(&4000i32.to_be_bytes()).await.unwrap();
    a.stream.write_all(&[0u8; 100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut b = Client::connect(s.addr).await;
    let waiting = tokio::spawn(async move { b.call(ApiVersionsRequest::default(), 3).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "B was served while A held the whole budget");

    drop(a);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert_eq!(
        answer
            .expect("B served once A's bytes were released")
            .unwrap()
            .error_code,
        errors::NONE
    );
}
