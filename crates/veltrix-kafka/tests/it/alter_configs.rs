//! IncrementalAlterConfigs and AlterConfigs: a topic's settings change while it
//! runs, all or nothing, and DescribeConfigs and appends see the change at once.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig as ReplaceConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::admin::{create_topic_with, resource, value_and_source};
use super::*;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(name.to_owned()))
        .with_config_operation(operation)
        .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
}

async fn alter(
    c: &mut Client,
    resource_type: i8,
    name: &str,
    ops: Vec<AlterableConfig>,
    validate_only: bool,
) -> IncrementalAlterConfigsResponse {
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(ops),
        ]);
    c.call(request, 1).await
}

async fn describe(c: &mut Client, name: &str, key: &str) -> (String, i8) {
    let r = c
        .call(
            DescribeConfigsRequest::default().with_resources(vec![resource(2, name)]),
            4,
        )
        .await;
    value_and_source(&r.results[0], key)
}

/// Asserts that DescribeConfigs gives each of `topic`'s settings, by key, this
/// value and source.
async fn assert_described(c: &mut Client, topic: &str, settings: &[(&str, &str, i8)]) {
    for &(key, value, source) in settings {
        assert_eq!(describe(c, topic, key).await, (value.to_owned(), source), "{key}");
    }
}

/// Asserts that a resource's change was accepted, showing the broker's
/// message when it was not.
fn assert_accepted(error_code: i16, error_message: &Option<StrBytes>) {
    assert_eq!(error_code, errors::NONE, "{error_message:?}");
}

/// A batch of one record with a value of `bytes` bytes.
fn batch_of(bytes: usize) -> Bytes {
    let value = "x".repeat(bytes);
    records(&[value.as_str()], Compression::None)
}

#[tokio::test]
async fn incremental_alter_sets_and_deletes_settings_that_take_effect_at_once() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 2).await;
    assert_eq!(produce(&mut c, "t", 1, -1, batch_of(20_000)).await.0, errors::NONE);

    let r = alter(
        &mut c,
        2,
        "t",
        vec![
            op("max.message.bytes", 0, Some("10000")),
            op("retention.ms", 0, Some("3600000")),
        ],
        false,
    )
    .await;
    assert_accepted(r.responses[0].error_code, &r.responses[0].error_message);
    let changed = [
        ("max.message.bytes", "10000", SOURCE_TOPIC),
        ("retention.ms", "3600000", SOURCE_TOPIC),
    ];
    assert_described(&mut c, "t", &changed).await;
    // Both partitions' logs run with the new limit.
    for partition in 0..2 {
        let (err, _) = produce(&mut c, "t", partition, -1, batch_of(20_000)).await;
        assert_eq!(
            err,
            errors::ResponseError::MessageTooLarge.code(),
            "partition {partition}"
        );
    }

    let r = alter(&mut c, 2, "t", vec![op("max.message.bytes", 1, None)], false).await;
    assert_eq!(r.responses[0].error_code, errors::NONE);
    let left = [
        ("max.message.bytes", "1048588", SOURCE_DEFAULT),
        ("retention.ms", "3600000", SOURCE_TOPIC),
    ];
    assert_described(&mut c, "t", &left).await;
    assert_eq!(produce(&mut c, "t", 0, -1, batch_of(20_000)).await.0, errors::NONE);
}

#[tokio::test]
async fn a_bad_change_is_refused_whole_and_validate_only_changes_nothing() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(&mut c, "t", 1, &[("retention.ms", "60000")]).await;
    let refused: [(Vec<AlterableConfig>, &str); 5] = [
        // The second change breaks a cross-field rule: a batch must fit a segment.
        (
            vec![op("retention.ms", 0, Some("1")), op("segment.bytes", 0, Some("8192"))],
            "batch_bytes_max",
        ),
        (vec![op("cleanup.policy", 0, Some("compact"))], "settable"),
        (vec![op("retention.ms", 0, Some("soon"))], "whole number"),
        (vec![op("retention.ms", 2, Some("5"))], "list settings"),
        (
            vec![op("retention.ms", 0, Some("5")), op("retention.ms", 1, None)],
            "twice",
        ),
    ];
    for (ops, why) in refused {
        let r = alter(&mut c, 2, "t", ops, false).await;
        let res = &r.responses[0];
        assert_eq!(res.error_code, errors::ResponseError::InvalidConfig.code());
        let message = res.error_message.as_ref().unwrap().as_str();
        assert!(message.contains(why), "{message:?} should mention {why:?}");
        assert_eq!(
            describe(&mut c, "t", "retention.ms").await.0,
            "60000",
            "nothing changed"
        );
    }
    let r = alter(&mut c, 2, "t", vec![op("retention.ms", 0, Some("5"))], true).await;
    assert_eq!(r.responses[0].error_code, errors::NONE);
    assert_eq!(describe(&mut c, "t", "retention.ms").await.0, "60000", "validate_only");

    let r = alter(&mut c, 2, "nope", vec![op("retention.ms", 0, Some("5"))], false).await;
    assert_eq!(
        r.responses[0].error_code,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );
    let r = alter(&mut c, 4, "0", vec![op("log.retention.ms", 0, Some("5"))], false).await;
    assert_eq!(r.responses[0].error_code, errors::ResponseError::InvalidConfig.code());
    assert!(r.responses[0].error_message.as_ref().unwrap().contains("static"));
}

#[tokio::test]
async fn alter_configs_replaces_the_whole_set() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(&mut c, "t", 1, &[("retention.ms", "60000"), ("segment.ms", "1000")]).await;
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![
                ReplaceConfig::default()
                    .with_name(StrBytes::from_static_str("retention.bytes"))
                    .with_value(Some(StrBytes::from_static_str("1048576"))),
            ]),
    ]);
    let r = c.call(request, 2).await;
    assert_accepted(r.responses[0].error_code, &r.responses[0].error_message);
    let replaced = [
        ("retention.bytes", "1048576", SOURCE_TOPIC),
        ("retention.ms", "604800000", SOURCE_DEFAULT),
        ("segment.ms", "604800000", SOURCE_DEFAULT),
    ];
    assert_described(&mut c, "t", &replaced).await;
}
