//! `check` on a configuration declaring 5 000 topics (each with its own
//! settings) and 500 alerts, under the production profile: parsing, schema,
//! cross-field rules and lints, with no diagnostic to render. The target is
//! well under 100 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use veltrix_config::{FixedProbe, check_source};

const TOPICS: usize = 5_000;
const ALERTS: usize = 500;

fn config() -> String {
    let mut s = String::from(
        "[broker]\nprofile = \"production\"\ndata_dir = \"/var/lib/veltrix\"\ntopics_max = 10000\npartitions_total_max = 100000\n\n\
         [limits]\nin_flight_bytes_max = 1_073_741_824\n\n[defaults]\npartitions = 6\n\n\
         [groups]\noffsets_retention_ms = 2_592_000_000\n\n",
    );
    for i in 0..TOPICS {
        s.push_str(&format!(
            "[[topic]]\nname = \"topic-{i:04}\"\npartitions = {}\nretention_ms = 604_800_000\n\
             retention_bytes = 10_737_418_240\nsegment_bytes_max = 268_435_456\nbatch_bytes_max = 1_048_588\n\
             tier = \"standard\"\nkeyed = true\npeak_records_per_second = 2_000\n\n",
            6 + i % 7
        ));
    }
    for i in 0..ALERTS {
        s.push_str(&format!(
            "[[alert]]\ngroup = \"group-{i}\"\ntopic = \"topic-{:04}\"\nlag_ms_max = 60_000\nfor_ms = 300_000\n\n",
            i * 7
        ));
    }
    s
}

fn bench(c: &mut Criterion) {
    let source = config();
    let probe = FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    };
    let report = check_source("veltrix.toml", &source, &[], &probe);
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    assert_eq!(report.config.as_ref().map(|c| c.topics.len()), Some(TOPICS));
    c.bench_function("check 5000 topics 500 alerts", |b| {
        b.iter(|| check_source("veltrix.toml", std::hint::black_box(&source), &[], &probe))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
