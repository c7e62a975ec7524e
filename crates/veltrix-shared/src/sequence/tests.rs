use std::sync::Arc;

use super::*;

fn batch(partition: i32, count: i32, producer: Option<(i64, i16, i32)>) -> BatchEntry {
    BatchEntry {
        topic: Arc::from("t"),
        partition,
        record_count: count,
        max_timestamp: 0,
        producer: producer.map(|(producer_id, epoch, first_seq)| ProducerStamp {
            producer_id,
            epoch,
            first_seq,
        }),
        byte_start: 0,
        byte_len: 1,
        crc32c: 0,
    }
}

fn state() -> CommitState {
    let mut s = CommitState::default();
    s.next_offsets.insert((Arc::from("t"), 0), 10);
    s.next_offsets.insert((Arc::from("t"), 1), 0);
    s
}

#[test]
fn offsets_are_contiguous_per_partition_in_order() {
    let mut s = state();
    let plan = plan(&[batch(0, 3, None), batch(1, 2, None), batch(0, 1, None)], &mut s);
    let bases: Vec<i64> = plan.outcomes.iter().map(|o| o.as_ref().unwrap().base_offset).collect();
    assert_eq!(bases, [10, 0, 13]);
    assert_eq!(plan.outcomes[0].as_ref().unwrap().last_offset, 12);
    assert_eq!(s.next_offsets[&(Arc::from("t"), 0)], 14);
    assert_eq!(plan.new_batches, [0, 1, 2]);
    assert_eq!(plan.changed_partitions.len(), 2);
}

#[test]
fn an_unknown_partition_refuses_its_batch_only() {
    let mut s = state();
    let plan = plan(&[batch(7, 1, None), batch(0, 1, None)], &mut s);
    assert!(matches!(
        plan.outcomes[0],
        Err(Error::UnknownPartition { partition: 7, .. })
    ));
    assert_eq!(plan.outcomes[1].as_ref().unwrap().base_offset, 10);
}

#[test]
fn a_retried_batch_gets_its_original_offsets() {
    let mut s = state();
    let first = plan(&[batch(0, 5, Some((1, 0, 0))), batch(0, 5, Some((1, 0, 5)))], &mut s);
    assert_eq!(first.new_batches, [0, 1]);
    let again = plan(&[batch(0, 5, Some((1, 0, 0))), batch(0, 5, Some((1, 0, 10)))], &mut s);
    let dup = again.outcomes[0].as_ref().unwrap();
    assert_eq!((dup.base_offset, dup.last_offset, dup.duplicate), (10, 14, true));
    assert_eq!(again.outcomes[1].as_ref().unwrap().base_offset, 20);
    assert_eq!(again.new_batches, [1]);
}

#[test]
fn a_retry_within_one_object_is_a_duplicate() {
    let mut s = state();
    let plan = plan(&[batch(0, 2, Some((1, 0, 0))), batch(0, 2, Some((1, 0, 0)))], &mut s);
    assert!(plan.outcomes[1].as_ref().unwrap().duplicate);
    assert_eq!(plan.new_batches, [0]);
}

#[test]
fn sequences_out_of_order_epochs_fenced() {
    let mut s = state();
    plan(&[batch(0, 2, Some((1, 3, 0)))], &mut s);
    let gap = plan(&[batch(0, 1, Some((1, 3, 5)))], &mut s);
    assert!(matches!(
        gap.outcomes[0],
        Err(Error::OutOfOrderSequence {
            expected: 2,
            got: 5,
            ..
        })
    ));
    let old = plan(&[batch(0, 1, Some((1, 2, 2)))], &mut s);
    assert!(matches!(
        old.outcomes[0],
        Err(Error::InvalidProducerEpoch { current: 3, .. })
    ));
    let newer_not_zero = plan(&[batch(0, 1, Some((1, 4, 2)))], &mut s);
    assert!(newer_not_zero.outcomes[0].is_err());
    let newer = plan(&[batch(0, 1, Some((1, 4, 0)))], &mut s);
    assert!(!newer.outcomes[0].as_ref().unwrap().duplicate);
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let mut s = state();
    for i in 0..6 {
        plan(&[batch(0, 1, Some((1, 0, i)))], &mut s);
    }
    let too_old = plan(&[batch(0, 1, Some((1, 0, 0)))], &mut s);
    assert!(matches!(
        too_old.outcomes[0],
        Err(Error::DuplicateSequence { first_seq: 0, .. })
    ));
    let remembered = plan(&[batch(0, 1, Some((1, 0, 1)))], &mut s);
    assert!(remembered.outcomes[0].as_ref().unwrap().duplicate);
}

#[test]
fn sequences_wrap_and_state_round_trips() {
    assert_eq!(last_seq(i32::MAX, 1), i32::MAX);
    assert_eq!(last_seq(i32::MAX, 3), 1);
    let mut s = state();
    plan(&[batch(0, 2, Some((1, 0, i32::MAX - 1)))], &mut s);
    let wrapped = plan(&[batch(0, 1, Some((1, 0, 0)))], &mut s);
    assert!(wrapped.outcomes[0].is_ok());
    let producer = &s.producers[&(Arc::from("t"), 0, 1)];
    let decoded = ProducerState::decode(producer.epoch, &producer.encode_recent());
    assert_eq!(&decoded, producer);
}
