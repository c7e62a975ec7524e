//! The record search over 1,000,000 records (issue 22's goal: under 2 s):
//! a topic of one partition filled with 1 KiB JSON records with keys and a
//! header, in batches of 500, on the real file system; then searches that
//! must look at every record (a key, a header value and a value text found
//! only in the last record), timed five times each; the median is printed.
//!
//!     cargo bench -p veltrix-core --bench browse
//!     cargo bench -p veltrix-core --bench browse -- --records 200000
//!     cargo test -p veltrix-core --bench browse -- --records 20000   # CI's smoke run

use std::sync::Arc;
use std::time::Instant;

use veltrix_core::browse::{BrowseFilter, BrowseSpec, BrowseStart};
use veltrix_core::records::{OwnedRecord, encode_batch};
use veltrix_core::{Broker, BrokerConfig, TopicConfig};
use veltrix_log::Env;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: i64 = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(Env::system(), dir.path(), BrokerConfig::default()).unwrap());
    broker.create_topic("events", Some(1), TopicConfig::default()).unwrap();
    let p = broker.partition("events", 0).unwrap();
    let pad = "x".repeat(1_000);
    let filled = Instant::now();
    for chunk in (0..records).step_by(500) {
        let batch: Vec<OwnedRecord> = (chunk..(chunk + 500).min(records))
            .map(|i| OwnedRecord {
                key: Some(format!("user-{i}").into_bytes()),
                value: Some(format!("{{\"order\":{i},\"pad\":\"{pad}\"}}").into_bytes()),
                headers: vec![(b"trace".to_vec(), Some(format!("t-{i}").into_bytes()))],
                timestamp_ms: 1_700_000_000_000 + i,
            })
            .collect();
        let appended = p.append(&encode_batch(&batch)).unwrap();
        p.commit(appended.next_offset).unwrap();
    }
    println!("{records} records written in {:.1} s", filled.elapsed().as_secs_f64());
    let last = records - 1;
    let filters = [
        (
            "key",
            BrowseFilter {
                key: Some(format!("user-{last}").into_bytes()),
                ..BrowseFilter::default()
            },
        ),
        (
            "header",
            BrowseFilter {
                header: Some((b"trace".to_vec(), Some(format!("t-{last}").into_bytes()))),
                ..BrowseFilter::default()
            },
        ),
        (
            "text",
            BrowseFilter {
                text: Some(format!("\"order\":{last},").into_bytes()),
                ..BrowseFilter::default()
            },
        ),
    ];
    for (name, filter) in filters {
        let spec = BrowseSpec {
            partition: None,
            start: BrowseStart::Offset(0),
            filter,
            limit: 50,
            scan_max: records as u64,
            shown_bytes_max: 4_096,
        };
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let found = broker.browse("events", &spec).unwrap();
                assert_eq!(found.records.len(), 1, "{name}");
                assert_eq!(found.scanned, records as u64);
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "search by {name:<6} over {records} records: median {:.3} s (min {:.3}, max {:.3})",
            times[2], times[0], times[4]
        );
    }
}
