//! `GET /api/v1/topics/{name}/records`: a topic's records, searched (the
//! engine's `browse`): from an offset, a time, or the last records of each
//! partition, by key, header and value text. READ on the topic, as a fetch.
//!
//! Parameters, all optional: `partition`; `offset` or `time_ms` (else the
//! newest: the `limit` newest matches among each partition's last records,
//! its last `limit` without a filter, its share of `scan_max` with one); `key`; `header` (a name) with
//! `header_value`; `text` (bytes the value contains); `limit` (default 50,
//! at most 500); `scan_max` (records looked at, default 1,000,000). Each
//! key, value and header value is answered as `{"size", "text", "hex",
//! "cut"}`: its length, its text when it is UTF-8 (else null), the hex of its
//! first 4,096 bytes, and whether bytes were left out.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use veltrix_core::CoreError;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::browse::{BrowseFilter, BrowseSpec, BrowseStart, Browsed, BrowsedRecord, Shown};

use crate::security::Caller;
use crate::server::{HttpState, error};

/// Bytes of each key, value and header value answered.
pub const SHOWN_BYTES: usize = 4_096;
/// Records answered unless asked for another number.
const LIMIT_DEFAULT: usize = 50;
/// Records looked at unless asked for another number.
const SCAN_DEFAULT: u64 = 1_000_000;

/// The query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    partition: Option<i32>,
    offset: Option<i64>,
    time_ms: Option<i64>,
    key: Option<String>,
    header: Option<String>,
    header_value: Option<String>,
    text: Option<String>,
    limit: Option<usize>,
    scan_max: Option<u64>,
}

impl RecordsQuery {
    fn spec(self) -> Result<BrowseSpec, &'static str> {
        let start = match (self.offset, self.time_ms) {
            (Some(_), Some(_)) => return Err("give `offset` or `time_ms`, not both"),
            (Some(o), None) => BrowseStart::Offset(o),
            (None, Some(ms)) => BrowseStart::Time(ms),
            (None, None) => BrowseStart::Latest,
        };
        if self.header_value.is_some() && self.header.is_none() {
            return Err("`header_value` needs `header`");
        }
        Ok(BrowseSpec {
            partition: self.partition,
            start,
            filter: BrowseFilter {
                key: self.key.map(String::into_bytes),
                header: self
                    .header
                    .map(|h| (h.into_bytes(), self.header_value.map(String::into_bytes))),
                text: self.text.filter(|t| !t.is_empty()).map(String::into_bytes),
            },
            limit: self.limit.unwrap_or(LIMIT_DEFAULT),
            scan_max: self.scan_max.unwrap_or(SCAN_DEFAULT),
            shown_bytes_max: SHOWN_BYTES,
        })
    }
}

pub async fn records(
    State(s): State<HttpState>,
    Extension(caller): Extension<Caller>,
    Path(topic): Path<String>,
    Query(q): Query<RecordsQuery>,
) -> Response {
    if let Err(denied) = caller.check(&s, AclOperation::Read, ResourceType::Topic, &topic) {
        return denied.into_response();
    }
    let spec = match q.spec() {
        Ok(spec) => spec,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let broker = s.broker.clone();
    match tokio::task::spawn_blocking(move || broker.browse(&topic, &spec)).await {
        Ok(Ok(found)) => axum::Json(browsed_json(&found)).into_response(),
        Ok(Err(e @ (CoreError::UnknownTopic(_) | CoreError::UnknownPartition { .. }))) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn browsed_json(found: &Browsed) -> Value {
    let next: serde_json::Map<String, Value> = found
        .next_offsets
        .iter()
        .map(|(p, o)| (p.to_string(), json!(o)))
        .collect();
    json!({
        "records": found.records.iter().map(record_json).collect::<Vec<_>>(),
        "scanned": found.scanned,
        "truncated": found.truncated,
        "next_offsets": next,
    })
}

fn record_json(r: &BrowsedRecord) -> Value {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| json!({ "key": String::from_utf8_lossy(k), "value": v.as_ref().map(shown_json) }))
        .collect();
    json!({
        "partition": r.partition,
        "offset": r.offset,
        "timestamp_ms": r.timestamp_ms,
        "key": r.key.as_ref().map(shown_json),
        "value": r.value.as_ref().map(shown_json),
        "headers": headers,
    })
}

/// Its text when the bytes shown are UTF-8 (a character cut at the end
/// left out), else null; and their hex.
fn shown_json(s: &Shown) -> Value {
    let text = match std::str::from_utf8(&s.bytes) {
        Ok(t) => Some(t),
        Err(e) if s.cut() && e.error_len().is_none() => std::str::from_utf8(&s.bytes[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let hex: String = s.bytes.iter().map(|b| format!("{b:02x}")).collect();
    json!({ "size": s.size, "text": text, "hex": hex, "cut": s.cut() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_when_utf8_hex_always() {
        let v = shown_json(&Shown {
            bytes: b"hi".to_vec(),
            size: 2,
        });
        assert_eq!(v, json!({ "size": 2, "text": "hi", "hex": "6869", "cut": false }));
        let binary = shown_json(&Shown {
            bytes: vec![0xff, 0x00],
            size: 2,
        });
        assert_eq!(binary["text"], Value::Null);
        // "é" is two bytes; the first alone, cut, is left out of the text.
        let cut = shown_json(&Shown {
            bytes: vec![b'a', 0xc3],
            size: 3,
        });
        assert_eq!(cut["text"], "a");
    }

    #[test]
    fn offset_and_time_do_not_go_together() {
        let q = RecordsQuery {
            offset: Some(1),
            time_ms: Some(2),
            ..RecordsQuery::default()
        };
        assert!(q.spec().is_err());
        let q = RecordsQuery {
            header_value: Some("x".into()),
            ..RecordsQuery::default()
        };
        assert!(q.spec().is_err());
    }
}
