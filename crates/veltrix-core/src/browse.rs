//! Reading a topic's records for people: the HTTP API's record search and
//! the console's message browser. From an offset, a time, or the last
//! records of each partition, forward, keeping the records whose key,
//! header or value match, within bounds on what is scanned and kept: at most
//! [`BROWSE_LIMIT_MAX`] records, [`BROWSE_SCAN_MAX`] records looked at, and
//! of each key, value and header value at most `shown_bytes_max` bytes
//! copied (its whole size is told). Reads go through the log like a fetch's
//! and change nothing.

use veltrix_log::batch;

use crate::records::{OwnedRecord, records_of};
use crate::{Broker, CoreError, Result};

/// Records one search returns at most.
pub const BROWSE_LIMIT_MAX: usize = 500;
/// Records one search looks at, at most.
pub const BROWSE_SCAN_MAX: u64 = 10_000_000;
/// Bytes of each key, value or header value a search copies, at most.
pub const SHOWN_BYTES_MAX: usize = 65_536;
/// Bytes read from the log at a time.
const READ_BYTES: usize = 1 << 20;

/// Where each partition's scan starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowseStart {
    /// At this offset (brought within the log).
    Offset(i64),
    /// At the first record stamped at or after this time (ms since the epoch).
    Time(i64),
    /// The newest records: each partition's last `limit` (with a filter,
    /// its share of `scan_max`) looked at, the `limit` newest that match
    /// kept.
    Latest,
}

/// What a record must have to be kept; every given part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowseFilter {
    /// The key, exactly.
    pub key: Option<Vec<u8>>,
    /// A header of this name, with this value if one is given.
    pub header: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// Bytes the value contains.
    pub text: Option<Vec<u8>>,
}

impl BrowseFilter {
    fn matches(&self, r: &OwnedRecord) -> bool {
        if let Some(key) = &self.key
            && r.key.as_deref() != Some(key.as_slice())
        {
            return false;
        }
        if let Some((name, value)) = &self.header {
            let found = r
                .headers
                .iter()
                .any(|(k, v)| k == name && value.as_ref().is_none_or(|want| v.as_deref() == Some(want.as_slice())));
            if !found {
                return false;
            }
        }
        match (&self.text, &r.value) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(needle), Some(value)) => memchr::memmem::find(value, needle).is_some(),
        }
    }
}

/// One search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowseSpec {
    /// One partition, or all of them.
    pub partition: Option<i32>,
    pub start: BrowseStart,
    pub filter: BrowseFilter,
    /// Records kept at most (brought within 1..=[`BROWSE_LIMIT_MAX`]).
    pub limit: usize,
    /// Records looked at at most (brought within 1..=[`BROWSE_SCAN_MAX`]).
    pub scan_max: u64,
    /// Bytes of each key, value and header value kept (at most
    /// [`SHOWN_BYTES_MAX`]).
    pub shown_bytes_max: usize,
}

/// Some bytes of a key, value or header value, and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Its first bytes, at most the search's `shown_bytes_max`.
    pub bytes: Vec<u8>,
    /// Its whole length.
    pub size: usize,
}

impl Shown {
    fn of(bytes: &[u8], max: usize) -> Shown {
        Shown {
            bytes: bytes[..bytes.len().min(max)].to_vec(),
            size: bytes.len(),
        }
    }

    /// Whether bytes were left out.
    pub fn cut(&self) -> bool {
        self.bytes.len() < self.size
    }
}

/// A record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowsedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Shown>,
    pub value: Option<Shown>,
    pub headers: Vec<(Vec<u8>, Option<Shown>)>,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Browsed {
    /// By partition, then offset.
    pub records: Vec<BrowsedRecord>,
    /// Records looked at.
    pub scanned: u64,
    /// Whether it stopped before the end of a partition (the limit, or
    /// `scan_max`); `next_offsets` says where each would go on.
    pub truncated: bool,
    /// Per partition searched, the offset after the last record looked at.
    pub next_offsets: Vec<(i32, i64)>,
}

impl Broker {
    /// Searches `topic`'s records as `spec` says.
    pub fn browse(&self, topic: &str, spec: &BrowseSpec) -> Result<Browsed> {
        let t = self
            .topic(topic)
            .ok_or_else(|| CoreError::UnknownTopic(topic.to_owned()))?;
        let partitions: Vec<_> = match spec.partition {
            Some(p) => vec![self.partition(topic, p)?],
            None => t.partitions.clone(),
        };
        let spec = BrowseSpec {
            limit: spec.limit.clamp(1, BROWSE_LIMIT_MAX),
            scan_max: spec.scan_max.clamp(1, BROWSE_SCAN_MAX),
            shown_bytes_max: spec.shown_bytes_max.min(SHOWN_BYTES_MAX),
            ..spec.clone()
        };
        let mut found = Browsed::default();
        if spec.start == BrowseStart::Latest {
            latest(&partitions, &spec, &mut found)?;
            return Ok(found);
        }
        for p in partitions {
            let next = scan(&p, &spec, &mut found)?;
            found.next_offsets.push((p.index, next));
        }
        Ok(found)
    }
}

/// Where a partition's scan starts.
fn start_offset(p: &crate::Partition, spec: &BrowseSpec) -> Result<i64> {
    let log = p.log();
    let (first, end) = (log.log_start(), log.high_watermark());
    Ok(match spec.start {
        BrowseStart::Offset(o) => o.clamp(first, end),
        BrowseStart::Latest => (end - spec.limit as i64).max(first),
        BrowseStart::Time(ms) => log.offset_for_timestamp(ms)?.map_or(end, |hit| hit.offset.max(first)),
    })
}

/// Scans one partition forward from the start `spec` gives into `found`,
/// until the end, the limit or `scan_max`; the offset after the last record
/// looked at.
fn scan(p: &crate::Partition, spec: &BrowseSpec, found: &mut Browsed) -> Result<i64> {
    let from = start_offset(p, spec)?;
    let end = p.log().high_watermark();
    // The batch found by time may begin with older records: passed over
    // until the first at or after the time, as Kafka's ListOffsets by time.
    let mut before = match spec.start {
        BrowseStart::Time(ms) => Some(ms),
        _ => None,
    };
    let (limit, scan_max, shown_max) = (spec.limit, spec.scan_max, spec.shown_bytes_max);
    let records = &mut found.records;
    let walked = walk(p, from, end, &mut found.scanned, scan_max, &mut |offset, record| {
        if records.len() >= limit {
            return false;
        }
        if before.is_some_and(|ms| record.timestamp_ms < ms) {
            return true;
        }
        before = None;
        if spec.filter.matches(&record) {
            records.push(shown(p.index, offset, record, shown_max));
        }
        true
    })?;
    found.truncated |= walked < end;
    Ok(walked)
}

/// The newest records that match, across partitions: each partition's last
/// records are looked at (its last `limit` without a filter; with one, its
/// share of `scan_max`), and the `limit` newest matches by timestamp kept.
fn latest(partitions: &[std::sync::Arc<crate::Partition>], spec: &BrowseSpec, found: &mut Browsed) -> Result<()> {
    let filtered = spec.filter != BrowseFilter::default();
    let share = (spec.scan_max / partitions.len().max(1) as u64).max(spec.limit as u64);
    let window = i64::try_from(if filtered { share } else { spec.limit as u64 }).unwrap_or(i64::MAX);
    let mut newest = std::collections::BinaryHeap::new();
    for p in partitions {
        let (first, end) = (p.log().log_start(), p.log().high_watermark());
        let from = end.saturating_sub(window).max(first);
        found.truncated |= from > first;
        let next = walk(p, from, end, &mut found.scanned, u64::MAX, &mut |offset, record| {
            if spec.filter.matches(&record) {
                newest.push(std::cmp::Reverse(Newest(shown(
                    p.index,
                    offset,
                    record,
                    spec.shown_bytes_max,
                ))));
                if newest.len() > spec.limit {
                    newest.pop();
                    found.truncated = true;
                }
            }
            true
        })?;
        found.next_offsets.push((p.index, next));
    }
    found.records = newest.into_iter().map(|std::cmp::Reverse(Newest(r))| r).collect();
    found.records.sort_by_key(|r| (r.partition, r.offset));
    Ok(())
}

/// A record ordered by when it was stamped (then where it is), for keeping
/// the newest.
struct Newest(BrowsedRecord);

impl Newest {
    fn key(&self) -> (i64, i32, i64) {
        (self.0.timestamp_ms, self.0.partition, self.0.offset)
    }
}

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Hands each record of `p` from `from` to `end` to `visit`, counting them
/// in `scanned`, until `visit` says stop or `scanned` reaches `scan_max`;
/// the offset after the last record handed over.
fn walk(
    p: &crate::Partition,
    from: i64,
    end: i64,
    scanned: &mut u64,
    scan_max: u64,
    visit: &mut dyn FnMut(i64, OwnedRecord) -> bool,
) -> Result<i64> {
    let mut at = from;
    while at < end {
        let read = match p.log().read(at, READ_BYTES) {
            Ok(r) => r,
            Err(veltrix_log::LogError::OffsetOutOfRange { .. }) => return Ok(at),
            Err(e) => return Err(e.into()),
        };
        if read.records.is_empty() {
            break;
        }
        let mut rest = &read.records[..];
        while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
            let (one, tail) = rest.split_at(size);
            rest = tail;
            let records =
                records_of(one, at, usize::MAX).map_err(|source| CoreError::InvalidBatch { batch: 0, source })?;
            for (offset, record) in records {
                if offset >= end || *scanned >= scan_max || !visit(offset, record) {
                    return Ok(offset.min(end));
                }
                *scanned += 1;
                at = offset + 1;
            }
        }
        at = at.max(read.next_offset);
    }
    Ok(at.min(end))
}

fn shown(partition: i32, offset: i64, r: OwnedRecord, max: usize) -> BrowsedRecord {
    BrowsedRecord {
        partition,
        offset,
        timestamp_ms: r.timestamp_ms,
        key: r.key.as_deref().map(|b| Shown::of(b, max)),
        value: r.value.as_deref().map(|b| Shown::of(b, max)),
        headers: r
            .headers
            .into_iter()
            .map(|(k, v)| (k, v.as_deref().map(|b| Shown::of(b, max))))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use veltrix_log::Env;
    use veltrix_log::sim::{SimClock, SimStorage};

    use super::*;
    use crate::{BrokerConfig, TopicConfig};

    fn record(i: i64) -> OwnedRecord {
        OwnedRecord {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("{{\"n\": {i}, \"pad\": \"{}\"}}", "x".repeat(i as usize % 7)).into_bytes()),
            headers: vec![(
                b"kind".to_vec(),
                Some(if i % 10 == 0 { b"ten".to_vec() } else { b"one".to_vec() }),
            )],
            timestamp_ms: 1_000 + i,
        }
    }

    /// A broker with topic `t` of two partitions: 100 records in partition
    /// 0 (in batches of 10), none in 1.
    fn broker() -> Broker {
        let env = Env::new(
            Arc::new(SimStorage::new()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        let b = Broker::open(env, "/data", BrokerConfig::default()).unwrap();
        b.create_topic("t", Some(2), TopicConfig::default()).unwrap();
        let p = b.partition("t", 0).unwrap();
        for chunk in 0..10 {
            let records: Vec<_> = (chunk * 10..chunk * 10 + 10).map(record).collect();
            let appended = p.append(&crate::records::encode_batch(&records)).unwrap();
            p.commit(appended.next_offset).unwrap();
        }
        b
    }

    fn spec(start: BrowseStart, filter: BrowseFilter) -> BrowseSpec {
        BrowseSpec {
            partition: None,
            start,
            filter,
            limit: 500,
            scan_max: 1_000,
            shown_bytes_max: 1_024,
        }
    }

    fn offsets(found: &Browsed) -> Vec<i64> {
        found.records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn finds_by_key_header_and_text() {
        let b = broker();
        let by_key = BrowseFilter {
            key: Some(b"k42".to_vec()),
            ..BrowseFilter::default()
        };
        let found = b.browse("t", &spec(BrowseStart::Offset(0), by_key)).unwrap();
        assert_eq!(offsets(&found), [42]);
        assert_eq!(found.scanned, 100);
        assert!(!found.truncated);
        assert_eq!(found.next_offsets, [(0, 100), (1, 0)]);
        let by_header = BrowseFilter {
            header: Some((b"kind".to_vec(), Some(b"ten".to_vec()))),
            ..BrowseFilter::default()
        };
        let found = b.browse("t", &spec(BrowseStart::Offset(0), by_header)).unwrap();
        assert_eq!(offsets(&found), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
        let by_text = BrowseFilter {
            text: Some(b"\"n\": 7,".to_vec()),
            ..BrowseFilter::default()
        };
        assert_eq!(
            offsets(&b.browse("t", &spec(BrowseStart::Offset(0), by_text)).unwrap()),
            [7]
        );
    }

    #[test]
    fn starts_at_an_offset_a_time_or_the_end() {
        let b = broker();
        let all = BrowseFilter::default();
        let from_time = b.browse("t", &spec(BrowseStart::Time(1_095), all.clone())).unwrap();
        assert_eq!(offsets(&from_time), [95, 96, 97, 98, 99]);
        let latest = BrowseSpec {
            limit: 3,
            ..spec(BrowseStart::Latest, all.clone())
        };
        assert_eq!(offsets(&b.browse("t", &latest).unwrap()), [97, 98, 99]);
        let past_end = b.browse("t", &spec(BrowseStart::Offset(1_000), all.clone())).unwrap();
        assert!(past_end.records.is_empty());
        let one = BrowseSpec {
            partition: Some(0),
            ..spec(BrowseStart::Offset(-5), all)
        };
        assert_eq!(b.browse("t", &one).unwrap().records.len(), 100);
    }

    #[test]
    fn the_newest_matches_come_from_every_partition() {
        let b = broker();
        let ten = BrowseFilter {
            header: Some((b"kind".to_vec(), Some(b"ten".to_vec()))),
            ..BrowseFilter::default()
        };
        let newest = BrowseSpec {
            limit: 3,
            ..spec(BrowseStart::Latest, ten)
        };
        let found = b.browse("t", &newest).unwrap();
        assert_eq!(offsets(&found), [70, 80, 90], "older matches than the last 3 records");
        assert!(found.truncated);
        // Partition 1 gets newer records: the newest 4 are all its own.
        let p1 = b.partition("t", 1).unwrap();
        let later: Vec<_> = (0..5)
            .map(|i| OwnedRecord {
                timestamp_ms: 5_000 + i,
                ..record(i)
            })
            .collect();
        let appended = p1.append(&crate::records::encode_batch(&later)).unwrap();
        p1.commit(appended.next_offset).unwrap();
        let four = BrowseSpec {
            limit: 4,
            ..spec(BrowseStart::Latest, BrowseFilter::default())
        };
        let found = b.browse("t", &four).unwrap();
        let at: Vec<(i32, i64)> = found.records.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(at, [(1, 1), (1, 2), (1, 3), (1, 4)]);
    }

    #[test]
    fn stops_at_its_bounds_and_says_where() {
        let b = broker();
        let limited = BrowseSpec {
            limit: 4,
            ..spec(BrowseStart::Offset(10), BrowseFilter::default())
        };
        let found = b.browse("t", &limited).unwrap();
        assert_eq!(offsets(&found), [10, 11, 12, 13]);
        assert!(found.truncated);
        assert_eq!(found.next_offsets[0], (0, 14));
        let scanned = BrowseSpec {
            scan_max: 25,
            ..spec(
                BrowseStart::Offset(0),
                BrowseFilter {
                    key: Some(b"k99".to_vec()),
                    ..BrowseFilter::default()
                },
            )
        };
        let found = b.browse("t", &scanned).unwrap();
        assert!(found.records.is_empty() && found.truncated);
        assert_eq!(found.scanned, 25);
        let cut = BrowseSpec {
            shown_bytes_max: 4,
            ..spec(BrowseStart::Offset(6), BrowseFilter::default())
        };
        let r = &b.browse("t", &cut).unwrap().records[0];
        let value = r.value.as_ref().unwrap();
        assert_eq!((value.bytes.as_slice(), value.cut()), (&b"{\"n\""[..], true));
        assert!(matches!(b.browse("nope", &cut), Err(CoreError::UnknownTopic(_))));
        assert!(
            b.browse(
                "t",
                &BrowseSpec {
                    partition: Some(9),
                    ..cut
                }
            )
            .is_err()
        );
    }
}
