//! Warnings about risky client settings, once per client id and kind: a
//! producer sending with acks=0 or acks=1 to a topic marked critical (an
//! acknowledged record can be lost), or sending without idempotence (a retry
//! can store a record twice). The broker cannot fix a client's configuration,
//! but it can say, in its log, which client to look at before the incident.

use std::collections::HashSet;
use std::sync::Mutex;

/// Distinct `(client id, kind)` pairs remembered; past it no new warning is
/// logged (one last line says so), so a storm of client ids cannot grow memory.
pub const CLIENT_WARNINGS_MAX: usize = 10_000;

/// What was already said.
#[derive(Debug, Default)]
pub struct ClientWarnings {
    said: Mutex<HashSet<(String, &'static str)>>,
}

impl ClientWarnings {
    /// Whether this is the first time for `(client_id, kind)`: the caller
    /// logs the warning then. Bounded by [`CLIENT_WARNINGS_MAX`].
    pub fn first(&self, client_id: &str, kind: &'static str) -> bool {
        let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if said.contains(&(client_id.to_owned(), kind)) {
            return false;
        }
        if said.len() >= CLIENT_WARNINGS_MAX {
            if said.len() == CLIENT_WARNINGS_MAX {
                said.insert((String::new(), "limit"));
                tracing::warn!(
                    limit = CLIENT_WARNINGS_MAX,
                    "client configuration warnings: limit of distinct clients reached; no more will be logged"
                );
            }
            return false;
        }
        said.insert((client_id.to_owned(), kind));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_kind_is_warned_about_once_and_memory_is_bounded() {
        let w = ClientWarnings::default();
        assert!(w.first("a", "acks"));
        assert!(!w.first("a", "acks"));
        assert!(w.first("a", "idempotence"));
        assert!(w.first("b", "acks"));
        for i in 0..CLIENT_WARNINGS_MAX * 2 {
            w.first(&format!("c{i}"), "acks");
        }
        assert!(!w.first("new", "acks"));
        assert_eq!(w.said.lock().unwrap().len(), CLIENT_WARNINGS_MAX + 1);
    }
}
