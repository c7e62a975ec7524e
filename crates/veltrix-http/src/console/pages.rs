//! The console's pages: one layout (head, header, navigation, the place
//! for error messages) around each page's body, and the script that fills
//! it. The shells hold no data, not even the topic or group a path names:
//! the scripts read those from the location, so nothing from a request is
//! ever written into HTML here.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The frame around every page; `{{...}}` marks what a page fills in.
const LAYOUT: &str = include_str!("../../assets/console/layout.html");

/// One page: what the layout is filled with.
pub(super) struct Page {
    /// The document's title, before " · Veltrix".
    title: &'static str,
    /// The navigation entry marked as current.
    section: &'static str,
    /// The page's own markup, inside `<main>`.
    body: &'static str,
    /// The module under `/console/assets/` that renders the page.
    script: &'static str,
}

pub(super) const OVERVIEW: Page = Page {
    title: "Overview",
    section: "overview",
    body: include_str!("../../assets/console/overview.html"),
    script: "overview.js",
};

pub(super) const TOPICS: Page = Page {
    title: "Topics",
    section: "topics",
    body: include_str!("../../assets/console/topics.html"),
    script: "topics.js",
};

pub(super) const TOPIC: Page = Page {
    title: "Topic",
    section: "topics",
    body: include_str!("../../assets/console/topic.html"),
    script: "topic.js",
};

pub(super) const GROUPS: Page = Page {
    title: "Groups",
    section: "groups",
    body: include_str!("../../assets/console/groups.html"),
    script: "groups.js",
};

pub(super) const GROUP: Page = Page {
    title: "Group",
    section: "groups",
    body: include_str!("../../assets/console/group.html"),
    script: "group.js",
};

pub(super) const QUEUES: Page = Page {
    title: "Queues",
    section: "queues",
    body: include_str!("../../assets/console/queues.html"),
    script: "queues.js",
};

pub(super) const ALERTS: Page = Page {
    title: "Alerts",
    section: "alerts",
    body: include_str!("../../assets/console/alerts.html"),
    script: "alerts.js",
};

pub(super) const CONFIG: Page = Page {
    title: "Configuration",
    section: "config",
    body: include_str!("../../assets/console/config.html"),
    script: "config.js",
};

impl Page {
    /// The layout filled with this page's parts. Every part is a constant
    /// of this file, so no escaping is needed.
    pub(super) fn html(&self) -> String {
        LAYOUT
            .replace("{{title}}", self.title)
            .replace("{{section}}", self.section)
            .replace("{{script}}", self.script)
            .replace("{{body}}", self.body)
    }

    /// The page as served: HTML, never cached without asking again (the
    /// shell names its assets, which change with the binary).
    pub(super) fn response(&self) -> Response {
        (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            self.html(),
        )
            .into_response()
    }
}
