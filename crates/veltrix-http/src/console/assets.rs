//! The console's stylesheet, scripts and icon, embedded in the binary and
//! served under `/console/assets/`.
//!
//! Their names carry no version, so a browser must not keep one past an
//! upgrade: each is served `no-cache` with an `ETag` (a hash of its bytes,
//! computed at compile time), and a browser that already holds it gets a
//! 304 without the body.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
pub(super) struct Asset {
    pub(super) name: &'static str,
    pub(super) content_type: &'static str,
    pub(super) bytes: &'static [u8],
    /// `"<hash of bytes, hex>"`, quoted as `ETag` wants.
    pub(super) etag: &'static str,
}

/// An [`Asset`] from its file under `assets/console/`, its hash taken at
/// compile time.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {{
        const BYTES: &[u8] = include_bytes!(concat!("../../assets/console/", $name));
        const ETAG: [u8; 18] = etag(fnv1a(BYTES));
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: BYTES,
            etag: match std::str::from_utf8(&ETAG) {
                Ok(s) => s,
                Err(_) => panic!("an etag is ASCII"),
            },
        }
    }};
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file served; anything else under `/console/assets/` is a 404.
pub(super) const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("common.js", JS),
    asset!("chart.js", JS),
    asset!("overview.js", JS),
    asset!("topics.js", JS),
    asset!("topic.js", JS),
    asset!("records.js", JS),
    asset!("groups.js", JS),
    asset!("group.js", JS),
    asset!("reset.js", JS),
    asset!("deletion.js", JS),
    asset!("queues.js", JS),
    asset!("alerts.js", JS),
    asset!("config.js", JS),
];

/// 64-bit FNV-1a: not for security, only to tell one version of a file
/// from another.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The hash as a quoted entity tag: `"` 16 hex digits `"`.
const fn etag(hash: u64) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        tag[1 + i] = HEX[((hash >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    tag
}

/// `GET /console/assets/{name}`: the file, a 304 when the browser's copy
/// is current, or a 404.
pub(super) async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return crate::server::error(StatusCode::NOT_FOUND, format!("no console asset `{name}`"));
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, HeaderValue::from_static(asset.etag)),
    ];
    let current = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == asset.etag));
    if current {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.bytes).into_response()
}
