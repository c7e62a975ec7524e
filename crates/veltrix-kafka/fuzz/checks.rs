//! The checks behind the fuzz targets (`request_decode`, `batch_validate`),
//! shared with the proptest smoke tests in `tests/it/decode.rs` so that
//! `cargo test` runs them too.

use bytes::Bytes;
use veltrix_kafka::{Decoded, decode_request};

/// API key and version pairs worth steering towards: every API the broker
/// serves, at the edges of its version range and one past.
fn steer() -> Vec<(i16, i16)> {
    veltrix_kafka::SERVED_APIS
        .iter()
        .flat_map(|api| {
            let key = api.key as i16;
            [
                (key, api.min_version),
                (key, api.max_version),
                (key, api.max_version + 1),
            ]
        })
        .collect()
}

/// Decoding any bytes must give a request or an error, never a panic; a decoded
/// request must be of a served API at a served version. With the first byte
/// odd, the input is steered to an API and version at the edge of what is
/// served, so the body decoders are reached.
pub fn request_decode(data: &[u8]) {
    let frame = match data.split_first() {
        Some((&choice, rest)) if choice & 1 == 1 && rest.len() >= 4 => {
            let steer = steer();
            let (key, version) = steer[usize::from(choice >> 1) % steer.len()];
            let mut frame = Vec::with_capacity(rest.len());
            frame.extend_from_slice(&key.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&rest[4..]);
            frame
        }
        _ => data.to_vec(),
    };
    if let Ok(Decoded::Request { api, version, .. }) = decode_request(Bytes::from(frame)) {
        let served = veltrix_kafka::served_api(api).is_some_and(|s| s.serves(version));
        assert!(served, "decoded {api:?} v{version}, which is not served");
    }
}

/// Validating any bytes as a producer's batch must give a verdict, never a
/// panic, a hang or an unbounded allocation. A batch it accepts must decode
/// with the client codec into as many records as its header says, and its
/// corrected form must carry a valid CRC and need no further correction.
///
/// With the first byte odd, the rest is wrapped as the records of a batch with
/// a valid header and CRC (the second byte picks the codec, the third the record
/// count), so the input reaches the decompressors and the record walker instead
/// of stopping at the CRC.
pub fn batch_validate(data: &[u8]) {
    use veltrix_core::validate;
    use veltrix_log::batch::{self, build};

    const BATCH_BYTES_MAX: usize = 1 << 20;
    let bytes = match data {
        [mode, codec, count, payload @ ..] if mode & 1 == 1 => {
            let mut b = vec![0u8; batch::HEADER_BYTES + payload.len()];
            b[batch::HEADER_BYTES..].copy_from_slice(payload);
            let spec = build::Spec {
                record_count: i32::from(*count % 8) + 1,
                base_timestamp: 1_700_000_000_000,
                max_timestamp: 1_700_000_000_000 + i64::from(mode >> 1),
                attributes: i16::from(codec & 7) | i16::from(mode & 0x08),
                ..build::Spec::default()
            };
            build::write_into(&mut b, spec);
            b
        }
        _ => data.to_vec(),
    };
    let Ok(validated) = validate::validate(&bytes, BATCH_BYTES_MAX) else {
        return;
    };
    assert!(validated.header.record_count >= 1);
    assert!(validated.max_timestamp >= -1);
    let stored = validate::corrected(&bytes, &validated);
    let header = batch::verify(&stored).expect("a corrected batch has a valid CRC");
    assert_eq!(header.max_timestamp, validated.max_timestamp);
    let again = validate::validate(&stored, BATCH_BYTES_MAX).expect("a corrected batch stays valid");
    assert!(!again.needs_correction, "one correction is enough");
    let mut buf = Bytes::copy_from_slice(&stored);
    let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
        .expect("an accepted batch decodes with the client codec");
    let records: usize = sets.iter().map(|s| s.records.len()).sum();
    assert_eq!(records, validated.header.record_count as usize);
    // Routes read a stored batch's records in one pass: all of them.
    let all = veltrix_core::records::records_of(&stored, i64::MIN, usize::MAX)
        .expect("the records of an accepted batch read in one pass");
    assert_eq!(all.len(), records);
    // Dead letters read stored records one by one: each as the client codec
    // reads it.
    for r in sets.iter().flat_map(|s| &s.records) {
        let one = veltrix_core::records::record_at(&stored, r.offset)
            .expect("a record of an accepted batch reads")
            .expect("every record of an accepted batch is found at its offset");
        assert_eq!(one.key.as_deref(), r.key.as_deref());
        assert_eq!(one.value.as_deref(), r.value.as_deref());
        assert_eq!(one.timestamp_ms, r.timestamp);
        for (k, v) in &r.headers {
            assert!(
                one.headers
                    .iter()
                    .any(|(ok, ov)| ok.as_slice() == k.as_bytes() && ov.as_deref() == v.as_deref()),
                "header {k:?} of the record"
            );
        }
    }
}

/// A share-state store that replays what it was given and keeps the last
/// snapshot it was asked to write.
#[derive(Debug, Default)]
struct MemoryShareStore {
    replay: Vec<veltrix_core::share::ShareChange>,
    snapshot: std::sync::Arc<std::sync::Mutex<Option<Vec<veltrix_core::share::ShareChange>>>>,
}

impl veltrix_core::share::ShareStateStore for MemoryShareStore {
    fn replay(&self) -> veltrix_core::Result<Vec<veltrix_core::share::ShareChange>> {
        Ok(self.replay.clone())
    }
    fn append(
        &self,
        _change: &veltrix_core::share::ShareChange,
        _now_ms: i64,
    ) -> veltrix_core::Result<veltrix_core::share::Ticket> {
        Ok(veltrix_core::share::Ticket(0))
    }
    fn wait_durable(&self, _ticket: veltrix_core::share::Ticket) -> veltrix_core::Result<()> {
        Ok(())
    }
    fn compaction_due(&self) -> bool {
        false
    }
    fn replace_with(&self, state: Vec<veltrix_core::share::ShareChange>, _now_ms: i64) -> veltrix_core::Result<()> {
        *self.snapshot.lock().unwrap() = Some(state);
        Ok(())
    }
    fn tick(&self) -> veltrix_core::Result<()> {
        Ok(())
    }
    fn close(&self) {}
}

/// Share-group state as read back from disk (the change log's records are
/// JSON under a CRC; a bad disk or an older version can still hand back any
/// well-formed change): replaying any changes must neither panic nor build a
/// window past its bound, and the snapshot of what was replayed must replay
/// to the same state.
pub fn share_state_replay(data: &[u8]) {
    use veltrix_core::share::{ShareChange, ShareConfig, ShareCoordinator};
    let Ok(changes) = serde_json::from_slice::<Vec<ShareChange>>(data) else {
        return;
    };
    let snapshot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let open = |replay: Vec<ShareChange>| {
        let store = MemoryShareStore {
            replay,
            snapshot: snapshot.clone(),
        };
        ShareCoordinator::open(
            veltrix_log::Env::system(),
            ShareConfig::default(),
            Box::new(store),
            &|_| true,
        )
    };
    let Ok(first) = open(changes) else {
        return;
    };
    let stats = first.stats();
    for s in &stats {
        let window = s.summary.end - s.summary.start;
        assert!((0..=20_000).contains(&window), "window {window} after replay: {s:?}");
    }
    // Groups are kept for their settings or their state; one with neither
    // (its settings all removed, no partition read) need not come back.
    let kept = |c: &ShareCoordinator, stats: &[veltrix_core::share::SharePartitionStats]| {
        c.list()
            .into_iter()
            .filter(|g| !c.overrides(&g.group_id).is_empty() || stats.iter().any(|s| s.key.group == g.group_id))
            .map(|g| (g.group_id, g.settings))
            .collect::<Vec<_>>()
    };
    let settings = kept(&first, &stats);
    first.compact().expect("compacting into memory");
    let written = snapshot.lock().unwrap().take().expect("a snapshot was written");
    let second = open(written).expect("the snapshot replays");
    let strip = |v: Vec<veltrix_core::share::SharePartitionStats>| {
        v.into_iter().map(|s| (s.key, s.summary)).collect::<Vec<_>>()
    };
    let second_stats = second.stats();
    assert_eq!(kept(&second, &second_stats), settings);
    assert_eq!(strip(second_stats), strip(stats));
}

/// The quotas file as read back from disk: any bytes decode to valid quotas
/// or an error, never a panic; what decodes is stored and read back the same.
pub fn quota_file_decode(data: &[u8]) {
    use veltrix_core::quotas::{MemoryQuotaStore, QuotaStore, decode_quotas_file};
    let Ok(all) = decode_quotas_file(data) else {
        return;
    };
    for (entity, values) in &all {
        assert!(entity.user.is_some() || entity.client_id.is_some(), "{entity:?}");
        assert!(values.values().all(|v| v.is_finite() && *v >= 1.0), "{values:?}");
    }
    let store = MemoryQuotaStore::default();
    store.save(&all).unwrap();
    assert_eq!(store.load().unwrap(), all);
}

/// Any bytes as an object in the bucket, with batch rows pointing into it
/// (ranges and checksums from the input, some right, some wrong, some past
/// the end): each read is the rows' bytes checked whole, or an error, never
/// a panic; and any bytes as a producer's remembered batches in the catalog
/// decode. What shared storage reads back from the bucket and PostgreSQL.
pub fn shared_object_read(data: &[u8]) {
    use std::sync::Arc;
    use veltrix_shared::{BatchEntry, Catalog, MemCatalog, ObjectCommit, Reader, ReaderConfig};

    let _ = veltrix_shared::sequence::ProducerState::decode(0, data);
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 8) + 1;
    if rest.len() < count * 3 {
        return;
    }
    let (spec, body) = rest.split_at(count * 3);
    let mut batches = Vec::with_capacity(count);
    let mut start = 0u64;
    for s in spec.chunks_exact(3) {
        let len = u32::from(u16::from_be_bytes([s[0], s[1]])) % 512 + 1;
        let end = (start + u64::from(len)).min(body.len() as u64);
        let right = body.get(start as usize..end as usize).map_or(0, crc32c::crc32c);
        batches.push(BatchEntry {
            topic: Arc::from("t"),
            partition: 0,
            record_count: 1,
            max_timestamp: 0,
            producer: None,
            byte_start: start,
            byte_len: len,
            crc32c: if s[2] & 1 == 0 { right } else { right ^ u32::from(s[2]) },
        });
        start += u64::from(len);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let catalog = Arc::new(MemCatalog::new());
        catalog.create_partitions("t", 1).await.expect("partitions");
        let store = Arc::new(object_store::memory::InMemory::new());
        let key = "o/1".to_owned();
        object_store::ObjectStore::put(
            &*store,
            &object_store::path::Path::from(key.as_str()),
            object_store::PutPayload::from(Bytes::copy_from_slice(body)),
        )
        .await
        .expect("put");
        let commit = ObjectCommit {
            key,
            size: body.len() as u64,
            batches: batches.clone(),
        };
        catalog.commit(&commit).await.expect("commit");
        let config = ReaderConfig {
            cache_bytes_max: 4096,
            ..ReaderConfig::default()
        };
        let reader = Reader::new(config, catalog, store).expect("reader");
        for offset in [0, 1, (count / 2) as i64] {
            if let Ok(read) = reader.read("t", 0, offset, 1 << 20).await {
                for b in read {
                    let row = &batches[b.base_offset as usize];
                    assert_eq!(
                        b.bytes.len(),
                        row.byte_len as usize,
                        "a batch served whole or not at all"
                    );
                    assert_eq!(
                        crc32c::crc32c(&b.bytes),
                        row.crc32c,
                        "a batch served only when it checks"
                    );
                }
            }
        }
    });
}
