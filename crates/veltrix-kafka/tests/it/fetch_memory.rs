//! Fetch responses are bounded by the broker, not by what the client asks for.

use kafka_protocol::records::Compression;

use super::{Client, create_topic, fetch_request, produce, records, start};

/// A client's `max_bytes` of 2 GiB is cut to `fetch_bytes_max`: the response
/// holds whole batches up to that many bytes, and the next fetch goes on
/// from there.
#[tokio::test]
async fn a_fetch_returns_at_most_fetch_bytes_max_whatever_the_client_asks() {
    let s = start(|k| k.fetch_bytes_max = 64 << 10).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let value = "v".repeat(16 << 10);
    for _ in 0..20 {
        let (error, _) = produce(&mut c, "t", 0, -1, records(&[value.as_str()], Compression::None)).await;
        assert_eq!(error, 0);
    }
    let mut request = fetch_request("t", 0, 0, 0);
    request.max_bytes = i32::MAX;
    request.topics[0].partitions[0].partition_max_bytes = i32::MAX;
    let response = c.call(request, 4).await;
    let data = response.responses[0].partitions[0].records.clone().unwrap();
    assert!(!data.is_empty());
    assert!(data.len() <= 64 << 10, "{} bytes returned", data.len());
}
