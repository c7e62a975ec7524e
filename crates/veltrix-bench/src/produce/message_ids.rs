//! The unique message ids of `--message-ids`: one per record, in the header
//! a topic's duplicate window reads (`message-id`, Veltrix's default), so that
//! a run measures what checking every record against the window costs, with
//! none of them a duplicate.
//!
//! An id is `<run>-<producer>-<sequence>` in fixed-width hexadecimal: the run
//! (the microsecond it started), so that a second run against the same topic
//! within its window is not dropped as duplicates of the first; the producer
//! within the run; and the producer's own count. Each id is written in place
//! into one buffer, so a record's id costs 16 digit writes and no allocation.

use crate::encode::HEADER_FRAMING_BYTES_MAX;

/// The header the ids go in.
pub const MESSAGE_ID_HEADER: &[u8] = b"message-id";

const RUN_DIGITS: usize = 16;
const PRODUCER_DIGITS: usize = 8;
const SEQUENCE_DIGITS: usize = 16;
/// Bytes of every id.
pub const MESSAGE_ID_BYTES: usize = RUN_DIGITS + 1 + PRODUCER_DIGITS + 1 + SEQUENCE_DIGITS;
const SEQUENCE_AT: usize = MESSAGE_ID_BYTES - SEQUENCE_DIGITS;
/// The most bytes the header takes in a record.
pub const MESSAGE_ID_HEADER_BYTES_MAX: usize = HEADER_FRAMING_BYTES_MAX + MESSAGE_ID_HEADER.len() + MESSAGE_ID_BYTES;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `v` as `out.len()` hexadecimal digits, most significant first.
fn put_hex(out: &mut [u8], mut v: u64) {
    for digit in out.iter_mut().rev() {
        *digit = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// One producer's ids, each different from every other id of any producer of
/// any run.
#[derive(Debug, Clone)]
pub struct MessageIds {
    id: [u8; MESSAGE_ID_BYTES],
    next: u64,
}

impl MessageIds {
    /// The ids of producer `producer` of the run that started at `run_us`
    /// (microseconds since the Unix epoch).
    pub fn new(run_us: u64, producer: u32) -> MessageIds {
        let mut id = [b'-'; MESSAGE_ID_BYTES];
        put_hex(&mut id[..RUN_DIGITS], run_us);
        put_hex(
            &mut id[RUN_DIGITS + 1..RUN_DIGITS + 1 + PRODUCER_DIGITS],
            u64::from(producer),
        );
        MessageIds { id, next: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> &[u8] {
        put_hex(&mut self.id[SEQUENCE_AT..], self.next);
        self.next += 1;
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_across_producers_and_runs_and_of_one_length() {
        let mut seen = HashSet::new();
        for run_us in [1_700_000_000_000_000, 1_700_000_000_000_001] {
            for producer in [0, 1, u32::MAX] {
                let mut ids = MessageIds::new(run_us, producer);
                for _ in 0..1000 {
                    let id = ids.next_id().to_vec();
                    assert_eq!(id.len(), MESSAGE_ID_BYTES);
                    assert!(seen.insert(id), "an id was handed out twice");
                }
            }
        }
    }

    #[test]
    fn an_id_reads_as_run_producer_and_sequence() {
        let mut ids = MessageIds::new(0x1234, 7);
        ids.next_id();
        assert_eq!(ids.next_id(), b"0000000000001234-00000007-0000000000000001");
    }
}
