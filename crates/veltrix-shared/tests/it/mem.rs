//! The writer, reader and collector on the in-memory catalog and store: the
//! same rules, no services, so they run everywhere.

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use veltrix_shared::{
    AppendRequest, Catalog, Error, MemCatalog, ProducerStamp, Reader, ReaderConfig, Writer, WriterConfig,
};

fn request(partition: i32, text: &str, producer: Option<ProducerStamp>) -> AppendRequest {
    AppendRequest {
        topic: Arc::from("t"),
        partition,
        record_count: 2,
        max_timestamp: 0,
        producer,
        bytes: Bytes::from(text.to_owned()),
    }
}

#[tokio::test]
async fn appends_are_answered_after_the_commit_and_read_back() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store = Arc::new(InMemory::new());
    let config = WriterConfig {
        flush_interval_ms: 5,
        ..WriterConfig::default()
    };
    let writer = Writer::start(config, catalog.clone(), store.clone()).unwrap();
    let (a, b) = tokio::join!(
        writer.append(request(0, "a", None)),
        writer.append(request(0, "b", None))
    );
    let mut bases = [a.unwrap().base_offset, b.unwrap().base_offset];
    bases.sort();
    assert_eq!(bases, [0, 2]);
    let stamp = ProducerStamp {
        producer_id: 7,
        epoch: 0,
        first_seq: 0,
    };
    let first = writer.append(request(1, "c", Some(stamp))).await.unwrap();
    let retry = writer.append(request(1, "c", Some(stamp))).await.unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (first.base_offset, true));

    catalog.set_unavailable(true);
    let err = writer.append(request(1, "d", None)).await.unwrap_err();
    assert!(matches!(err, Error::CatalogUnavailable(_)) && err.is_retriable());
    catalog.set_unavailable(false);
    assert_eq!(writer.append(request(1, "e", None)).await.unwrap().base_offset, 2);

    let reader = Reader::new(ReaderConfig::default(), catalog.clone(), store).unwrap();
    let read = reader.read("t", 1, 0, 1 << 20).await.unwrap();
    let texts: Vec<&[u8]> = read.iter().map(|b| &b.bytes[..]).collect();
    assert_eq!(texts, [&b"c"[..], &b"e"[..]]);
    writer.close().await;
}

#[tokio::test]
async fn limits_are_checked() {
    let catalog = Arc::new(MemCatalog::new());
    let store = Arc::new(InMemory::new());
    let bad = WriterConfig {
        flush_interval_ms: 0,
        ..WriterConfig::default()
    };
    assert!(matches!(
        Writer::start(bad, catalog.clone(), store.clone()),
        Err(Error::InvalidLimit {
            name: "flush_interval_ms",
            ..
        })
    ));
    let config = WriterConfig {
        batch_bytes_max: 1 << 10,
        ..WriterConfig::default()
    };
    let writer = Writer::start(config, catalog, store).unwrap();
    let mut big = request(0, "", None);
    big.bytes = Bytes::from(vec![0; 2 << 10]);
    assert!(matches!(writer.append(big).await, Err(Error::BatchTooLarge { .. })));
}
