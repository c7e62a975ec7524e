//! Client quotas over the wire: AlterClientQuotas and DescribeClientQuotas,
//! `throttle_time_ms` in Produce and Fetch responses, the muted connection,
//! and a fetch withheld while its client still owes a wait.

use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiVersionsRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::{Client, create_topic, fetch_request, one_batch, produce, start};

/// Sets quota `key` of client id `client` (the tests' client is `it`).
async fn set_quota(c: &mut Client, client: &str, key: &str, value: f64) {
    let entry = EntryData::default()
        .with_entity(vec![
            EntityData::default()
                .with_entity_type(StrBytes::from_static_str("client-id"))
                .with_entity_name(Some(StrBytes::from_string(client.to_owned()))),
        ])
        .with_ops(vec![
            OpData::default()
                .with_key(StrBytes::from_string(key.to_owned()))
                .with_value(value),
        ]);
    let r = c
        .call(AlterClientQuotasRequest::default().with_entries(vec![entry]), 1)
        .await;
    assert_eq!(r.entries[0].error_code, 0, "{:?}", r.entries[0].error_message);
}

fn value(bytes: usize) -> String {
    "v".repeat(bytes)
}

#[tokio::test]
async fn a_produce_over_quota_says_how_long_to_wait_and_the_connection_waits_that_long() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "q", 1).await;
    // 10 kB/s with a burst of 10 kB; 30 kB owes 2 s.
    set_quota(&mut c, "it", "producer_byte_rate", 10_000.0).await;
    let d = c
        .call(
            DescribeClientQuotasRequest::default().with_components(vec![
                ComponentData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_match_type(0)
                    .with_match(Some(StrBytes::from_static_str("it"))),
            ]),
            1,
        )
        .await;
    let entries = d.entries.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].value, 10_000.0);

    let big = value(30_000);
    let pd = kafka_protocol::messages::produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(one_batch(&[big.as_str()], Compression::None)));
    let td = kafka_protocol::messages::produce_request::TopicProduceData::default()
        .with_name(super::topic("q"))
        .with_partition_data(vec![pd]);
    let r = c
        .call(
            kafka_protocol::messages::ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![td]),
            9,
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "nothing refused");
    let throttle = r.throttle_time_ms;
    assert!((1_900..=2_100).contains(&throttle), "{throttle}");
    // The next request is read only once the wait is over, even from a client
    // that would not honour it.
    let asked = Instant::now();
    c.call(ApiVersionsRequest::default(), 3).await;
    let waited = asked.elapsed();
    assert!(waited >= Duration::from_millis(throttle as u64 - 200), "{waited:?}");
    // Another client id has no quota: never throttled.
    let mut other = Client::connect(s.addr).await;
    let (code, _) = produce(&mut other, "q", 0, -1, one_batch(&[big.as_str()], Compression::None)).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn a_fetch_while_owing_is_answered_without_records() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "f", 1).await;
    let big = value(30_000);
    produce(&mut c, "f", 0, -1, one_batch(&[big.as_str()], Compression::None)).await;
    set_quota(&mut c, "it", "consumer_byte_rate", 10_000.0).await;
    // The first fetch gets its batch (the first batch goes whole, KIP-74) and
    // owes 2 s; a second connection of the same client id, at once, gets
    // nothing but the wait left.
    let mut second = Client::connect(s.addr).await;
    let first: kafka_protocol::messages::FetchResponse = c.call(fetch_request("f", 0, 0, 0), 12).await;
    assert!(
        first.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty())
    );
    assert!(first.throttle_time_ms >= 1_900, "{}", first.throttle_time_ms);
    let again: kafka_protocol::messages::FetchResponse = second.call(fetch_request("f", 0, 0, 0), 12).await;
    assert!(again.throttle_time_ms > 0, "{}", again.throttle_time_ms);
    assert!(
        again.responses[0].partitions[0]
            .records
            .as_ref()
            .is_none_or(|r| r.is_empty())
    );
}
