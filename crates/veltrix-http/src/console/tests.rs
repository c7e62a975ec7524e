//! The console's routes without a browser: what each answers, with which
//! headers, and tidy checks over the embedded files (every file a page
//! names is served; no script writes HTML from strings; nothing inline that
//! the Content-Security-Policy would refuse).

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use tower::ServiceExt;

use super::assets::ASSETS;
use super::pages;

const PAGES: [&str; 9] = [
    "/",
    "/console",
    "/console/topics",
    "/console/topics/orders",
    "/console/groups",
    "/console/groups/billing%2Feu",
    "/console/queues",
    "/console/alerts",
    "/console/config",
];

async fn get(path: &str, headers: &[(header::HeaderName, &str)]) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = super::router::<()>()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn assert_secure(path: &str, headers: &HeaderMap) {
    let value = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        value(header::CONTENT_SECURITY_POLICY).as_deref(),
        Some(super::CONTENT_SECURITY_POLICY),
        "{path}"
    );
    assert_eq!(
        value(header::X_CONTENT_TYPE_OPTIONS).as_deref(),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(value(header::X_FRAME_OPTIONS).as_deref(), Some("DENY"), "{path}");
}

#[tokio::test]
async fn every_page_is_html_with_the_security_headers_and_names_its_script() {
    for path in PAGES {
        let (status, headers, body) = get(path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8", "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
        assert_secure(path, &headers);
        assert!(body.starts_with("<!doctype html>"), "{path}");
        assert!(!body.contains("{{"), "{path}: a placeholder left unfilled");
        assert!(
            body.contains(r#"<script type="module" src="/console/assets/"#),
            "{path}"
        );
    }
}

#[test]
fn the_csp_allows_this_origin_only_and_nothing_inline() {
    let csp = super::CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(csp.contains(directive), "{directive}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
}

#[tokio::test]
async fn assets_have_their_content_type_an_etag_and_a_304_when_current() {
    for asset in ASSETS {
        let path = format!("/console/assets/{}", asset.name);
        let (status, headers, body) = get(&path, &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], asset.content_type, "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
        assert_eq!(body.as_bytes(), asset.bytes, "{path}");
        assert_secure(&path, &headers);
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let (status, headers, body) = get(&path, &[(header::IF_NONE_MATCH, &etag)]).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""), "{path}");
        assert_eq!(headers[header::ETAG], etag.as_str(), "{path}");
        let (status, _, _) = get(&path, &[(header::IF_NONE_MATCH, "\"0000000000000000\"")]).await;
        assert_eq!(status, StatusCode::OK, "{path}: another version's tag");
    }
    let types: Vec<&str> = ["console.css", "common.js", "favicon.svg"]
        .iter()
        .map(|n| ASSETS.iter().find(|a| a.name == *n).unwrap().content_type)
        .collect();
    assert_eq!(
        types,
        [
            "text/css; charset=utf-8",
            "text/javascript; charset=utf-8",
            "image/svg+xml"
        ]
    );
}

#[test]
fn etags_differ_between_files_and_are_quoted_hex() {
    let mut tags: Vec<&str> = ASSETS.iter().map(|a| a.etag).collect();
    for tag in &tags {
        assert_eq!(tag.len(), 18, "{tag}");
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
        assert!(tag[1..17].bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
    }
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len(), ASSETS.len());
}

#[tokio::test]
async fn an_unknown_asset_is_a_404_with_the_security_headers() {
    for path in [
        "/console/assets/nope.js",
        "/console/assets/layout.html",
        "/console/assets/..%2Fmod.rs",
    ] {
        let (status, headers, body) = get(path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_secure(path, &headers);
        assert!(body.contains("no console asset"), "{path}: {body}");
    }
}

/// Every `/console/assets/NAME` a page names and every `./NAME` a script
/// imports is served: a missing one would be a failed request in the
/// browser.
#[test]
fn every_file_the_pages_and_scripts_name_is_served() {
    let served = |name: &str| ASSETS.iter().any(|a| a.name == name);
    let html = [
        pages::OVERVIEW,
        pages::TOPICS,
        pages::TOPIC,
        pages::GROUPS,
        pages::GROUP,
        pages::ALERTS,
        pages::CONFIG,
    ]
    .map(|p| p.html());
    for page in &html {
        for name in page.split("/console/assets/").skip(1) {
            let name = &name[..name.find('"').unwrap()];
            assert!(served(name), "a page names {name}");
        }
    }
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        let text = std::str::from_utf8(asset.bytes).unwrap();
        for name in text.split("from './").skip(1) {
            let name = &name[..name.find('\'').unwrap()];
            assert!(served(name), "{} imports {name}", asset.name);
        }
    }
}

/// The scripts build the DOM from text nodes and attributes only: HTML is
/// never parsed from a string (the CSP's Trusted Types refuse it in
/// Chromium; this keeps it so in every browser).
#[test]
fn no_script_writes_html_or_evaluates_strings() {
    for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        let text = std::str::from_utf8(asset.bytes).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(sink), "{} uses {sink}", asset.name);
        }
    }
}

/// Inline scripts, inline styles and handler attributes would be refused
/// by the CSP: none is written.
#[test]
fn the_pages_have_nothing_inline() {
    let html = [
        pages::OVERVIEW,
        pages::TOPICS,
        pages::TOPIC,
        pages::GROUPS,
        pages::GROUP,
        pages::ALERTS,
        pages::CONFIG,
    ]
    .map(|p| p.html());
    for page in &html {
        assert_eq!(page.matches("<script").count(), 1);
        assert!(page.contains("<script type=\"module\" src=\"/console/assets/"));
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        assert!(!page.contains(" onclick=") && !page.contains(" onload=") && !page.contains(" onsubmit="));
    }
}

/// Merged into the broker's router: the console answers `/` and its pages,
/// the API and its JSON 404 are unchanged, and the console is behind the
/// same authentication (here open).
#[tokio::test]
async fn the_broker_router_serves_the_console_beside_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let env = veltrix_log::Env::system();
    let broker = std::sync::Arc::new(veltrix_core::Broker::open(env, dir.path(), Default::default()).unwrap());
    let state = crate::server::HttpState {
        monitor: crate::Monitor::new(broker.clone(), crate::MonitorConfig::default()),
        security: std::sync::Arc::new(crate::HttpSecurity::open(broker.metrics())),
        broker,
        started: std::time::Instant::now(),
        info: serde_json::json!({}),
        ready: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        config_check: None,
    };
    let app = crate::server::router(state);
    let answer = |path: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            (response.status(), response.headers().clone())
        }
    };
    let (status, headers) = answer("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_secure("/", &headers);
    let (status, headers) = answer("/console/assets/common.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    let (status, headers) = answer("/api/v1/topics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get(header::CONTENT_SECURITY_POLICY).is_none(),
        "API answers are not the console's"
    );
    let (status, headers) = answer("/console/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}
