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

pub(super) fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
    AlterableConfig::default()
        .with_name(StrBytes::from_string(name.to_owned()))
        .with_config_operation(operation)
        .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
}

pub(super) async fn alter(
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

pub(super) async fn describe(c: &mut Client, name: &str, key: &str) -> (String, i8) {
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
        (vec![op("cleanup.policy", 0, Some("compact,shred"))], "unknown policy"),
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

const WINDOW: &str = "veltrix.dedup.window.ms";
const HEADER: &str = "veltrix.dedup.id.header";
const ID_SOURCE: &str = "veltrix.dedup.id.source";

/// AlterConfigs on one topic, replacing its whole set with `pairs`: the
/// error code and message.
async fn replace(c: &mut Client, topic: &str, pairs: &[(&str, &str)]) -> (i16, Option<String>) {
    let configs = pairs
        .iter()
        .map(|(k, v)| {
            ReplaceConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_owned()))
            .with_configs(configs),
    ]);
    let r = c.call(request, 2).await;
    let res = &r.responses[0];
    (
        res.error_code,
        res.error_message.as_ref().map(|m| m.as_str().to_owned()),
    )
}

/// CreateTopics of one topic with `configs`: the error code and message.
async fn create(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> (i16, Option<String>) {
    use kafka_protocol::messages::CreateTopicsRequest;
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut t = CreatableTopic::default();
    t.name = topic(name);
    t.num_partitions = 1;
    t.replication_factor = 1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 7).await;
    let res = &r.topics[0];
    (
        res.error_code,
        res.error_message.as_ref().map(|m| m.as_str().to_owned()),
    )
}

/// The duplicate window's three settings go through CreateTopics,
/// IncrementalAlterConfigs (SET and DELETE) and AlterConfigs like the log's,
/// and DescribeConfigs shows them at once. Each bad value is refused whole
/// with INVALID_CONFIG and a message saying what is wrong; a window longer
/// than the retention, reached from either side, with the engine's own.
#[tokio::test]
async fn the_duplicate_window_settings_are_set_deleted_and_refused_like_the_others() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let configs = [("retention.ms", "3600000"), (WINDOW, "120000"), (ID_SOURCE, "key")];
    let (code, message) = create(&mut c, "t", &configs).await;
    assert_eq!(code, errors::NONE, "{message:?}");
    let created = [
        (WINDOW, "120000", SOURCE_TOPIC),
        (ID_SOURCE, "key", SOURCE_TOPIC),
        (HEADER, "message-id", SOURCE_DEFAULT),
    ];
    assert_described(&mut c, "t", &created).await;

    let ops = vec![
        op(WINDOW, 0, Some("600000")),
        op(HEADER, 0, Some("event-id")),
        op(ID_SOURCE, 1, None),
    ];
    let r = alter(&mut c, 2, "t", ops, false).await;
    assert_accepted(r.responses[0].error_code, &r.responses[0].error_message);
    let altered = [
        (WINDOW, "600000", SOURCE_TOPIC),
        (HEADER, "event-id", SOURCE_TOPIC),
        (ID_SOURCE, "header", SOURCE_DEFAULT),
        ("retention.ms", "3600000", SOURCE_TOPIC),
    ];
    assert_described(&mut c, "t", &altered).await;

    let long_header = "h".repeat(256);
    let refused: [(AlterableConfig, &str); 9] = [
        (op(WINDOW, 0, Some("-5")), "must be at least 0"),
        (op(WINDOW, 0, Some("10m")), "not a whole number"),
        (op(WINDOW, 0, Some("31536000001")), "longer than a year"),
        (op(WINDOW, 0, None), "has no value"),
        (op(ID_SOURCE, 0, Some("value")), "use `header`"),
        (op(HEADER, 0, Some("")), "is empty"),
        (op(HEADER, 0, Some(&long_header)), "may be at most 255"),
        // The engine's rule, from the window's side and from the retention's.
        (
            op(WINDOW, 0, Some("7200000")),
            "veltrix.dedup.window.ms = 7200000 is longer than the topic's retention.ms = 3600000",
        ),
        (
            op("retention.ms", 0, Some("60000")),
            "veltrix.dedup.window.ms = 600000 is longer than the topic's retention.ms = 60000",
        ),
    ];
    for (change, why) in refused {
        let name = change.name.as_str().to_owned();
        let r = alter(&mut c, 2, "t", vec![change], false).await;
        let res = &r.responses[0];
        assert_eq!(
            res.error_code,
            errors::ResponseError::InvalidConfig.code(),
            "{name}: {:?}",
            res.error_message
        );
        let message = res.error_message.as_ref().unwrap().as_str();
        assert!(message.contains(why), "{name}: {message:?} should say {why:?}");
        assert_described(&mut c, "t", &altered).await;
    }

    // AlterConfigs replaces the whole set: without `retention.ms` the topic
    // has the broker's 7 days, which a 1-day window fits and an 8-day one
    // does not.
    assert_eq!(
        replace(&mut c, "t", &[(WINDOW, "86400000")]).await,
        (errors::NONE, None)
    );
    let replaced = [
        (WINDOW, "86400000", SOURCE_TOPIC),
        (HEADER, "message-id", SOURCE_DEFAULT),
        ("retention.ms", "604800000", SOURCE_DEFAULT),
    ];
    assert_described(&mut c, "t", &replaced).await;
    let (code, message) = replace(&mut c, "t", &[(WINDOW, "691200000")]).await;
    assert_eq!(code, errors::ResponseError::InvalidConfig.code());
    assert!(message.unwrap().contains("retention.ms = 604800000"));
    assert_described(&mut c, "t", &replaced).await;

    // CreateTopics refuses the same, and creates nothing.
    let (code, message) = create(&mut c, "u", &[("retention.ms", "60000"), (WINDOW, "120000")]).await;
    assert_eq!(code, errors::ResponseError::InvalidConfig.code());
    assert!(
        message
            .unwrap()
            .contains("longer than the topic's retention.ms = 60000")
    );
    let r = c
        .call(
            DescribeConfigsRequest::default().with_resources(vec![resource(2, "u")]),
            4,
        )
        .await;
    assert_eq!(
        r.results[0].error_code,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );
    let (code, message) = create(&mut c, "u", &[(ID_SOURCE, "body")]).await;
    assert_eq!(code, errors::ResponseError::InvalidConfig.code());
    assert!(message.unwrap().contains("or `key`"));
}
