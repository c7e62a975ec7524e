//! The web console: pages served on the HTTP listener, at `/`
//! and under `/console/`, with their assets embedded in the binary.
//!
//! The server sends static shells only (a shared header and navigation, and
//! each page's empty tables); the page's script fetches the JSON API with
//! the browser's own credentials and renders what it is allowed to see. So
//! the console knows nothing the API does not tell, and asks the broker's
//! ACLs nothing itself: a refusal from the API is shown on the page.
//!
//! Every console response carries a strict Content-Security-Policy (scripts
//! and styles from this origin only, nothing inline, Trusted Types required
//! so that no script can write HTML from a string), `nosniff` and
//! `X-Frame-Options: DENY`. The assets are hand-written HTML, CSS and
//! vanilla JavaScript: no build step, nothing fetched from elsewhere.

mod assets;
mod pages;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

/// What a console page may load and do: everything from this origin only,
/// no inline script or style, no plugins, no framing, and (in browsers that
/// support it) no HTML written from strings.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The console's routes, merged into the broker's router (and so behind
/// its authentication: the pages are under the API's access setting).
pub fn routes() -> Router<crate::server::HttpState> {
    router()
}

/// The routes for any state: they read none, which lets the tests serve
/// them without a broker.
fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { pages::OVERVIEW.response() }))
        .route("/console", get(|| async { pages::OVERVIEW.response() }))
        .route("/console/topics", get(|| async { pages::TOPICS.response() }))
        .route("/console/topics/{name}", get(|| async { pages::TOPIC.response() }))
        .route("/console/groups", get(|| async { pages::GROUPS.response() }))
        .route("/console/groups/{id}", get(|| async { pages::GROUP.response() }))
        .route("/console/queues", get(|| async { pages::QUEUES.response() }))
        .route("/console/alerts", get(|| async { pages::ALERTS.response() }))
        .route("/console/config", get(|| async { pages::CONFIG.response() }))
        .route("/console/assets/{name}", get(assets::asset))
        .layer(axum::middleware::map_response(secure))
}

/// The headers every console response carries, whatever its status.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests;
