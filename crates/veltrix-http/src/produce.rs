//! `POST /api/v1/topics/{name}/records`: one record produced over HTTP (the
//! console's "produce a test record"), appended through the engine as a
//! Kafka produce with `acks=all` would be: the topic's validation and
//! duplicate window, the disk watermarks of its tier, the producer quota of
//! the caller (client id [`CLIENT_ID`]), and answered only once durable.
//! The body:
//!
//! ```json
//! {"key": "k", "value": "v", "headers": [{"key": "h", "value": "x"}], "partition": 0}
//! ```
//!
//! Every field is optional; `key`, `value` and a header's `value` may be
//! null. Without `partition`, a keyed record goes where the Java client's
//! partitioner would put it (murmur2 of the key), another to a random
//! partition. Only with `[listeners] http_mutations = true`, WRITE on the
//! topic. The body is at most `[limits] http_produce_bytes_max` bytes (413
//! past it, read or announced) and must arrive within
//! [`PRODUCE_BODY_MS_MAX`] (408).

use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use veltrix_core::CoreError;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::quotas::QuotaKind;
use veltrix_core::records::{OwnedRecord, encode_batch};
use veltrix_log::LogError;

use crate::security::Caller;
use crate::server::{HttpState, error};

/// The client id quotas see for records produced over HTTP.
pub const CLIENT_ID: &str = "veltrix-http";
/// The time a body has to arrive whole.
pub const PRODUCE_BODY_MS_MAX: u64 = 10_000;
/// Headers one record may carry.
pub const PRODUCE_HEADERS_MAX: usize = 64;

/// One header of the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderBody {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

/// The body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderBody>,
    #[serde(default)]
    partition: Option<i32>,
}

pub async fn produce(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Write, ResourceType::Topic, &topic) {
        return denied.into_response();
    }
    if let Err(off) = s.security.allow_change(Some("produce with `veltrix produce`")) {
        return off.into_response();
    }
    let config = s.security.config();
    let body = match read_body(&s, &headers, body, config.produce_bytes_max).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let record: ProduceBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body: {e}")),
    };
    if record.headers.len() > PRODUCE_HEADERS_MAX {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {PRODUCE_HEADERS_MAX} headers a record"),
        );
    }
    let Some(t) = s.broker.topic(&topic) else {
        return error(StatusCode::NOT_FOUND, format!("no topic `{topic}`"));
    };
    let count = t.partitions.len();
    let partition = match record.partition {
        Some(p) if usize::try_from(p).is_ok_and(|p| p < count) => p,
        Some(p) => {
            return error(
                StatusCode::NOT_FOUND,
                format!("topic `{topic}` has no partition {p} (it has {count})"),
            );
        }
        None => pick_partition(record.key.as_deref().map(str::as_bytes), count),
    };
    let user = caller.user().unwrap_or(veltrix_core::quotas::ANONYMOUS);
    let quota =
        s.broker
            .quotas()
            .record_unless_throttled(QuotaKind::ProducerByteRate, user, CLIENT_ID, body.len() as f64);
    if quota.withheld {
        return too_fast(quota.ms);
    }
    let tier = t.config.tier.unwrap_or_default();
    if let Err(level) = s.broker.disk_admits(tier) {
        return error(
            StatusCode::INSUFFICIENT_STORAGE,
            format!(
                "the disk is filling ({}, {} bytes free): produce to {} topics is refused until space comes back",
                level.name(),
                s.broker.disk().available_bytes(),
                tier.name()
            ),
        );
    }
    append(&s, &topic, partition, record).await
}

/// The body, read whole within the limits: a `Content-Length` over `max`
/// is refused unread, a body that grows past it as soon as it does, and a
/// body that trickles is cut at [`PRODUCE_BODY_MS_MAX`].
async fn read_body(s: &HttpState, headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, Response> {
    let too_large = || {
        s.broker
            .metrics()
            .http
            .produce_refused
            .with_label_values(&["too_large"])
            .inc();
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a record produced over HTTP is at most {max} bytes of JSON (`[limits] http_produce_bytes_max`)"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let within = Duration::from_millis(PRODUCE_BODY_MS_MAX);
    match tokio::time::timeout(within, collect(body, max)).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(too_large()),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
        Err(_) => {
            s.broker
                .metrics()
                .http
                .produce_refused
                .with_label_values(&["slow_body"])
                .inc();
            Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {PRODUCE_BODY_MS_MAX} ms"),
            ))
        }
    }
}

/// The body's bytes, or `None` as soon as they pass `max`.
async fn collect(mut body: Body, max: usize) -> Result<Option<Vec<u8>>, axum::Error> {
    use hyper::body::Body as _;
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            if bytes.len() + data.len() > max {
                return Ok(None);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Some(bytes))
}

fn too_fast(ms: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("over the producer quota: wait {ms} ms"),
    );
    let seconds = ms.div_ceil(1000).max(1);
    if let Ok(v) = seconds.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A keyed record's partition as the Java client picks it (murmur2 of the
/// key); another's at random.
fn pick_partition(key: Option<&[u8]>, count: usize) -> i32 {
    let count = count.max(1) as u32;
    let p = match key {
        Some(key) => (murmur2(key) & 0x7fff_ffff) as u32 % count,
        None => rand::random::<u32>() % count,
    };
    p as i32
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`): 32 bits, seed
/// `0x9747b28c`, the bytes read little-endian four at a time.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Appends the record on the blocking pool (through the topic's duplicate
/// window when it has one) and answers once it is durable.
async fn append(s: &HttpState, topic: &str, partition: i32, body: ProduceBody) -> Response {
    let now_ms = s.broker.env().clock.now_ms();
    let record = OwnedRecord {
        key: body.key.map(String::into_bytes),
        value: body.value.map(String::into_bytes),
        headers: body
            .headers
            .into_iter()
            .map(|h| (h.key.into_bytes(), h.value.map(String::into_bytes)))
            .collect(),
        timestamp_ms: now_ms,
    };
    let broker = s.broker.clone();
    let name = topic.to_owned();
    let appended = tokio::task::spawn_blocking(move || {
        let (p, dedup) = broker.partition_and_dedup(&name, partition)?;
        let batch = encode_batch(std::slice::from_ref(&record));
        let appended = match dedup {
            Some(dedup) => dedup.append(&p, &batch)?,
            None => p.append_batches(&batch)?,
        };
        Ok::<_, CoreError>((p, appended, batch.len()))
    })
    .await;
    let (p, appended, bytes) = match appended {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return core_error(e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let (base, next) = (appended.base_offset, appended.next_offset);
    if let Err(e) = p.commit_async(next).await {
        return core_error(e);
    }
    s.broker
        .metrics()
        .traffic
        .produced(bytes as u64, u64::try_from(next - base).unwrap_or(0));
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "topic": topic,
            "partition": partition,
            // A duplicate (by the topic's window) is stored as no record.
            "offset": (next > base).then_some(base),
            "duplicate": next <= base,
            "timestamp_ms": now_ms,
        })),
    )
        .into_response()
}

fn core_error(e: CoreError) -> Response {
    let status = match &e {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. } => StatusCode::NOT_FOUND,
        CoreError::InvalidBatch { .. } | CoreError::InvalidConfig(_) => StatusCode::BAD_REQUEST,
        CoreError::LimitReached(_) | CoreError::Timeout(_) => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Log(LogError::DiskFull { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        CoreError::Log(LogError::Poisoned { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Java client's partitioner's own test vectors, and an empty key.
    #[test]
    fn murmur2_is_kafkas() {
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert_eq!(pick_partition(Some(b"abc"), 7), 479_470_107 % 7);
        assert!((0..3).contains(&pick_partition(None, 3)));
    }
}
