//! The audit log: failed authentications and denied operations, on the
//! tracing target `veltrix::audit` (so a log pipeline can route them apart),
//! each with the principal, the client's address, and what was refused. A
//! client that fails in a loop is logged once per `warning_interval_ms` per
//! kind and address, the next line saying how many were left out; the
//! metrics count every one.

use std::net::SocketAddr;

use crate::warn_limit::WarnLimiter;

/// A client failed to authenticate (TLS certificate, SASL, HTTP credentials,
/// or in time).
pub fn authentication_failed(
    limiter: &WarnLimiter,
    peer: SocketAddr,
    listener: &str,
    mechanism: &str,
    user: Option<&str>,
    reason: &str,
) {
    if let Some(suppressed) = limiter.allow("authentication_failed", Some(peer.ip())) {
        tracing::warn!(
            target: "veltrix::audit",
            event = "authentication_failed",
            %peer,
            listener,
            mechanism,
            user = user.unwrap_or(""),
            reason,
            suppressed,
            "authentication failed"
        );
    }
}

/// An operation was refused for want of an ACL.
pub fn denied(
    limiter: &WarnLimiter,
    peer: SocketAddr,
    principal: &str,
    operation: &str,
    resource_type: &str,
    resource: &str,
) {
    if let Some(suppressed) = limiter.allow("authorization_denied", Some(peer.ip())) {
        tracing::warn!(
            target: "veltrix::audit",
            event = "authorization_denied",
            %peer,
            principal,
            operation,
            resource_type,
            resource,
            suppressed,
            "operation denied"
        );
    }
}
