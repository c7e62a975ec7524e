//! Transaction markers: the control batch that ends a producer's transaction
//! in one partition, as Kafka writes it.
//!
//! A marker is a batch with the transactional and control attribute bits,
//! the producer's id and epoch, sequence -1, and one record whose key says
//! commit or abort (version 0, type 1 or 0) and whose value carries the
//! coordinator's epoch (version 0, int32). Consumers never see it as a
//! record: `read_committed` consumers learn from it where a transaction
//! ended, and every client skips control batches.

use crate::records::{OwnedRecord, ProducerStamp, encode_batch_with};

/// The attributes bit of a batch written in a transaction.
pub const TRANSACTIONAL_BIT: i16 = 0x10;
/// The attributes bit of a control batch.
pub const CONTROL_BIT: i16 = 0x20;
/// Control record types.
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// The marker ending the transaction of `producer_id` at `producer_epoch`.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let record = OwnedRecord {
        key: Some(key),
        value: Some(value),
        headers: Vec::new(),
        timestamp_ms: now_ms,
    };
    let stamp = ProducerStamp {
        producer_id,
        epoch: producer_epoch,
        base_sequence: -1,
    };
    encode_batch_with(&[record], Some(stamp), TRANSACTIONAL_BIT | CONTROL_BIT)
}

#[cfg(test)]
mod tests {
    use veltrix_client::kafka_protocol::records::RecordBatchDecoder;
    use veltrix_log::batch;

    use super::*;

    #[test]
    fn a_marker_is_a_control_batch_kafka_clients_decode() {
        for commit in [true, false] {
            let bytes = marker_batch(42, 3, commit, 0, 1_700_000_000_000);
            let h = batch::parse_fixed(&bytes[..batch::HEADER_BYTES]).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, -1));
            assert_eq!(h.record_count, 1);
            // The wire codec clients use reads it as a control record.
            let mut buf = bytes::Bytes::from(bytes);
            let decoded = RecordBatchDecoder::decode(&mut buf).unwrap();
            assert_eq!(decoded.records.len(), 1);
            let r = &decoded.records[0];
            assert!(r.control);
            assert!(r.transactional);
            let key = r.key.clone().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert_eq!(r.producer_id, 42);
        }
    }
}
