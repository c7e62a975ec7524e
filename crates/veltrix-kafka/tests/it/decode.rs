//! The request decoder and the batch validator under random and mutated input,
//! on stable Rust: the same checks the `request_decode` and `batch_validate`
//! fuzz targets run. This test binary runs on the system allocator, so a count
//! read off the wire that sizes an allocation aborts it, as it would abort the
//! broker.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::Encodable;
use proptest::prelude::*;

#[path = "../../fuzz/checks.rs"]
mod checks;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Any bytes as the quotas file: valid quotas or an error, never a panic.
    #[test]
    fn any_quota_file_decodes_or_is_refused(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        checks::quota_file_decode(&data);
    }

    /// Any bytes as a shared-storage object and its rows: whole, checked
    /// batches or an error, never a panic.
    #[test]
    fn any_shared_object_reads_whole_batches_or_fails(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
        checks::shared_object_read(&data);
    }

    /// Any bytes, steered or not, decode to a request or an error, never a panic.
    #[test]
    fn any_frame_decodes_or_is_refused(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        checks::request_decode(&data);
    }
}

/// Valid batches of every codec, as the client codec writes them, and the
/// records of each as a payload to wrap: the mutations below start from these.
fn valid_batches() -> Vec<Vec<u8>> {
    use kafka_protocol::records::Compression;
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .flat_map(|c| {
        let batch = super::records(&["alpha", "beta", "gamma"], c).to_vec();
        // Mode 1 wraps what follows three control bytes; codec id, count 3.
        let codec = batch[22] & 7;
        let wrapped = [&[1u8, codec, 2][..], &batch[61..]].concat();
        [batch, wrapped]
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes as a batch, or as the records of a batch with a valid header:
    /// a verdict, never a panic; what is accepted decodes with the client codec.
    #[test]
    fn any_batch_bytes_are_validated_or_refused(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        checks::batch_validate(&data);
    }

    /// Valid batches and wrapped records with bytes flipped, cut or overwritten,
    /// so that mutations land inside compressed streams and records.
    #[test]
    fn damaged_valid_batches_are_validated_or_refused(
        pick in 0usize..10,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..4),
        cut in any::<u16>(),
    ) {
        let mut data = valid_batches().swap_remove(pick);
        checks::batch_validate(&data);
        for (at, byte, kind) in edits {
            let at = usize::from(at) % data.len();
            match kind {
                0 => data[at] ^= byte | 1,
                1 => data[at] = byte,
                _ => data.insert(at, byte),
            }
        }
        checks::batch_validate(&data);
        let keep = data.len() - usize::from(cut) % (data.len() / 2);
        checks::batch_validate(&data[..keep]);
    }
}

/// Regression, found by the `request_decode` fuzz target: a 21-byte Metadata v0
/// request whose topic count (0x29ffeeff) made the codec reserve about 50 GB
/// before reading any topic. Failing that allocation aborted the process; the
/// patched codec refuses a count larger than the bytes left, allocating nothing.
#[test]
fn a_huge_array_count_is_refused_without_aborting() {
    let input = [
        0x07, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x29, 0xff, 0xee, 0xff, 0xff, 0x18,
        0x5d, 0x27, 0x12,
    ];
    checks::request_decode(&input);
}

/// Bodies that put the largest count the wire allows where the first fields are
/// read: a 4-byte count of 0x7fffffff (or the varint of u32::MAX in flexible
/// versions) alone, and the same count followed by filler that every later
/// integer field reads as large too.
fn hostile_bodies(flexible: bool) -> Vec<Vec<u8>> {
    let count: &[u8] = if flexible {
        &[0xff, 0xff, 0xff, 0xff, 0x0f]
    } else {
        &[0x7f, 0xff, 0xff, 0xff]
    };
    let mut filled = count.to_vec();
    filled.extend(std::iter::repeat_n(0x7f, 64));
    vec![count.to_vec(), filled, vec![0x7f; 64]]
}

/// Every request and response body of every API and version the codec knows,
/// fed a huge count, is decoded or refused without the process allocating for
/// that count (which would abort it here, on the system allocator). Responses
/// matter too: the client decodes them with the same codec.
#[test]
fn huge_counts_in_any_request_or_response_are_refused_without_aborting() {
    for api in ApiKey::iter() {
        let versions = api.valid_versions();
        for version in versions.min..=versions.max {
            for body in hostile_bodies(api.request_header_version(version) >= 2) {
                let _ = RequestKind::decode(api, &mut Bytes::from(body.clone()), version);
                let _ = ResponseKind::decode(api, &mut Bytes::from(body), version);
            }
        }
    }
}

/// The same through the broker's own entry point, with a real header in front:
/// what a connection hands `decode_request`.
#[test]
fn served_requests_with_huge_counts_are_refused_by_decode_request() {
    for api in ApiKey::iter() {
        let versions = api.valid_versions();
        for version in versions.min..=versions.max {
            let header_version = api.request_header_version(version);
            for body in hostile_bodies(header_version >= 2) {
                let mut frame = BytesMut::new();
                let header = RequestHeader::default()
                    .with_request_api_key(api as i16)
                    .with_request_api_version(version)
                    .with_correlation_id(7);
                header.encode(&mut frame, header_version).unwrap();
                frame.put_slice(&body);
                let _ = veltrix_kafka::decode_request(frame.freeze());
            }
        }
    }
}

/// Found by the `batch_validate` fuzz target: a record whose value length was
/// -21 passed validation and then failed the client codec's decoding.
#[test]
fn fuzz_regression_a_negative_value_length_is_refused() {
    checks::batch_validate(&[89, 144, 40, 22, 5, 187, 187, 187, 185, 187, 0, 0, 0, 41, 0]);
}

/// Found by the `batch_validate` fuzz target: a header key that is not UTF-8
/// passed validation and then failed the client codec's decoding.
#[test]
fn fuzz_regression_a_header_key_that_is_not_utf8_is_refused() {
    checks::batch_validate(&[
        121, 0, 0, 40, 0, 0, 0, 8, 3, 0, 0, 40, 0, 8, 0, 0, 0, 0, 0, 1, 4, 236, 0, 0,
    ]);
}

/// Found by the `batch_validate` fuzz target: a header count written as a
/// 5-byte varint with bits past the 32nd, which Kafka and the validator read
/// as 0, was read as billions of headers by the broker's own record reader
/// (dead letters, routes), which then called the accepted record truncated.
#[test]
fn fuzz_regression_an_overlong_header_count_reads_as_kafka_reads_it() {
    checks::batch_validate(&[
        0x01, 0x00, 0x80, 0x16, 0x3a, 0x80, 0x00, 0x00, 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x60,
    ]);
}

/// Share-group changes as the state store could hand them back: a few groups,
/// topics and partitions so that changes meet, offsets near each other and at
/// the extremes, settings valid or not.
fn share_change() -> impl Strategy<Value = veltrix_core::share::ShareChange> {
    use veltrix_core::share::{Persist, RecordState, ShareChange};
    let group = prop::sample::select(vec!["g1", "g2", ""]).prop_map(String::from);
    let topic = prop::sample::select(vec![
        "00000000000000000000000000000001",
        "00000000000000000000000000000002",
        "zz",
    ])
    .prop_map(String::from);
    let offset = prop_oneof![0i64..50, Just(i64::MAX), Just(i64::MIN), Just(-1i64), 5_000i64..30_000];
    let state = prop::sample::select(vec![
        RecordState::Available,
        RecordState::Acquired,
        RecordState::Acknowledged,
        RecordState::Archived,
    ]);
    let persist = (offset.clone(), 0i64..40, state, any::<u16>()).prop_map(|(first, len, state, deliveries)| Persist {
        first,
        last: first.saturating_add(len),
        state,
        deliveries,
    });
    let setting = prop::sample::select(vec![
        ("share.auto.offset.reset", "earliest"),
        ("share.auto.offset.reset", "by_duration:PT1H"),
        ("share.delivery.count.limit", "3"),
        ("share.delivery.count.limit", "99999"),
        ("share.record.lock.duration.ms", "-5"),
        ("nonsense", "x"),
    ])
    .prop_map(|(k, v)| (k.to_owned(), v.to_owned()));
    prop_oneof![
        4 => (group.clone(), topic.clone(), -1i32..3, proptest::option::of(offset.clone()), proptest::collection::vec(persist, 0..6))
            .prop_map(|(group, topic, partition, start, ranges)| ShareChange::Records { group, topic, partition, start, ranges }),
        1 => (group.clone(), proptest::collection::vec((topic.clone(), -1i32..3, offset), 0..3))
            .prop_map(|(group, starts)| ShareChange::Starts { group, starts }),
        1 => (group.clone(), proptest::collection::vec((topic.clone(), 0i32..3), 0..3))
            .prop_map(|(group, partitions)| ShareChange::DeletePartitions { group, partitions }),
        1 => group.clone().prop_map(|group| ShareChange::DeleteGroup { group }),
        1 => topic.prop_map(|topic| ShareChange::DeleteTopic { topic }),
        1 => (group, proptest::collection::vec(setting, 0..3))
            .prop_map(|(group, settings)| ShareChange::Settings { group, settings }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Replaying any share-group changes neither panics nor builds a window
    /// past its bound, and the snapshot of the result replays to the same state.
    #[test]
    fn any_share_state_replays_and_its_snapshot_replays_the_same(
        changes in proptest::collection::vec(share_change(), 0..24)
    ) {
        checks::share_state_replay(&serde_json::to_vec(&changes).unwrap());
    }
}
