//! Authorization in the handlers: whether the request's principal, from its
//! address, may do an operation on a resource, as Kafka's `AuthHelper` asks
//! its authorizer (`veltrix_core::acl::Authorizer`). A denial is written to
//! the audit log (rate-limited per client address) and counted in
//! `veltrix_kafka_authorization_denied_total`; checks that only filter what a
//! listing shows (Metadata of every topic, ListGroups, offsets of every
//! partition) are quiet, as Kafka's are where it says `logIfDenied = false`.
//!
//! With authorization disabled every check answers at once, before any
//! lookup or allocation; a super user's, after one lookup in the set of
//! super users.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use veltrix_core::Broker;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use veltrix_core::warn_limit::WarnLimiter;

use super::Ctx;
use crate::metrics::KafkaMetrics;

/// Kafka's messages for its authorization errors (`Errors.*.message()`).
pub(super) const TOPIC_DENIED: &str = "Topic authorization failed.";
pub(super) const GROUP_DENIED: &str = "Group authorization failed.";
pub(super) const CLUSTER_DENIED: &str = "Cluster authorization failed.";
pub(super) const TRANSACTIONAL_ID_DENIED: &str = "Transactional Id authorization failed.";

/// The longest resource name written whole to the audit log; longer ones
/// (a client chooses group ids) are cut.
const AUDIT_NAME_BYTES_MAX: usize = 256;

/// Who asks, borrowed from a request's context.
#[derive(Clone, Copy)]
pub(super) struct Who<'a> {
    broker: &'a Broker,
    principal: &'a str,
    peer: SocketAddr,
    limiter: &'a WarnLimiter,
    metrics: &'a KafkaMetrics,
}

/// Who asks, owned: for work moved to the blocking pool. Cloning it counts
/// references; nothing is copied.
#[derive(Clone)]
pub(super) struct Asker {
    broker: Arc<Broker>,
    principal: Arc<str>,
    peer: SocketAddr,
    limiter: Arc<WarnLimiter>,
    metrics: KafkaMetrics,
}

impl Asker {
    pub(super) fn who(&self) -> Who<'_> {
        Who {
            broker: &self.broker,
            principal: &self.principal,
            peer: self.peer,
            limiter: &self.limiter,
            metrics: &self.metrics,
        }
    }
}

impl Ctx {
    /// The request's principal and address, to authorize its actions.
    pub(super) fn who(&self) -> Who<'_> {
        Who {
            broker: &self.broker,
            principal: &self.principal,
            peer: self.peer,
            limiter: &self.limiter,
            metrics: &self.metrics,
        }
    }

    /// [`Ctx::who`], owned.
    pub(super) fn asker(&self) -> Asker {
        Asker {
            broker: self.broker.clone(),
            principal: self.principal.clone(),
            peer: self.peer,
            limiter: self.limiter.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Which names of a request an operation is allowed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Names {
    /// Every one: authorization is off, or a super user asks.
    All,
    /// These.
    Only(HashSet<String>),
}

impl Names {
    pub(super) fn contains(&self, name: &str) -> bool {
        match self {
            Names::All => true,
            Names::Only(names) => names.contains(name),
        }
    }
}

/// `name`, cut to at most [`AUDIT_NAME_BYTES_MAX`] bytes on a character
/// boundary.
fn audit_name(name: &str) -> &str {
    if name.len() <= AUDIT_NAME_BYTES_MAX {
        return name;
    }
    let mut end = AUDIT_NAME_BYTES_MAX;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

impl<'a> Who<'a> {
    /// The broker whose authorizer decides.
    pub(super) fn broker(self) -> &'a Broker {
        self.broker
    }

    /// Whether every action is allowed without asking: authorization is
    /// off, or the principal is a super user.
    pub(super) fn unchecked(self) -> bool {
        let authorizer = self.broker.authorizer();
        !authorizer.enabled() || authorizer.config().super_users.contains(self.principal)
    }

    fn decide(self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        self.broker
            .authorizer()
            .authorize(self.principal, self.peer.ip(), op, rt, name)
            .is_allowed()
    }

    fn denied(self, op: AclOperation, rt: ResourceType, name: &str) {
        veltrix_core::audit::denied(
            self.limiter,
            self.peer,
            self.principal,
            op.name(),
            rt.name(),
            audit_name(name),
        );
        self.metrics
            .authorization_denied
            .with_label_values(&[op.name(), rt.name()])
            .inc();
    }

    /// Whether `op` on the resource is allowed; a denial is audited.
    pub(super) fn allowed(self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        if !self.broker.authorizer().enabled() {
            return true;
        }
        let allowed = self.decide(op, rt, name);
        if !allowed {
            self.denied(op, rt, name);
        }
        allowed
    }

    /// As [`Who::allowed`], a denial neither audited nor counted: for
    /// checks that only choose what a listing shows, or that another check
    /// follows.
    pub(super) fn allowed_quietly(self, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        !self.broker.authorizer().enabled() || self.decide(op, rt, name)
    }

    /// Whether `op` on the cluster is allowed; a denial is audited.
    pub(super) fn on_cluster(self, op: AclOperation) -> bool {
        self.allowed(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// The names among `names` that `op` is allowed on, each distinct name
    /// asked once (and audited once when denied), as Kafka's
    /// `filterByAuthorized`.
    pub(super) fn names<'n>(
        self,
        op: AclOperation,
        rt: ResourceType,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Names {
        self.filter(op, rt, names, true)
    }

    /// As [`Who::names`], denials neither audited nor counted.
    pub(super) fn names_quietly<'n>(
        self,
        op: AclOperation,
        rt: ResourceType,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Names {
        self.filter(op, rt, names, false)
    }

    fn filter<'n>(
        self,
        op: AclOperation,
        rt: ResourceType,
        names: impl IntoIterator<Item = &'n str>,
        audit: bool,
    ) -> Names {
        if self.unchecked() {
            return Names::All;
        }
        let mut seen = HashSet::new();
        let mut allowed = HashSet::new();
        for name in names {
            if !seen.insert(name) {
                continue;
            }
            if self.decide(op, rt, name) {
                allowed.insert(name.to_owned());
            } else if audit {
                self.denied(op, rt, name);
            }
        }
        Names::Only(allowed)
    }

    /// Whether the principal may `op` some resource of type `rt` that no
    /// DENY covers (Kafka's `authorizeByResourceType`, KIP-679); quiet.
    pub(super) fn by_resource_type_quietly(self, op: AclOperation, rt: ResourceType) -> bool {
        self.unchecked()
            || self
                .broker
                .authorizer()
                .authorize_by_resource_type(self.principal, self.peer.ip(), op, rt)
                .is_allowed()
    }

    /// Audits and counts a denial decided by the caller from quiet checks.
    pub(super) fn deny(self, op: AclOperation, rt: ResourceType, name: &str) {
        self.denied(op, rt, name);
    }

    /// Kafka's authorized operations of a resource: bit `n` for each
    /// operation of code `n` the principal may do on it (every operation of
    /// its type when authorization is off). Never audited.
    pub(super) fn operations(self, rt: ResourceType, name: &str) -> i32 {
        if self.unchecked() {
            return rt.operation_bits();
        }
        self.broker
            .authorizer()
            .authorized_operations(self.principal, self.peer.ip(), rt, name)
    }
}

/// [`Who::allowed`] of the request's principal.
pub(super) fn allowed(ctx: &Ctx, op: AclOperation, rt: ResourceType, name: &str) -> bool {
    ctx.who().allowed(op, rt, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_all_or_the_ones_listed() {
        assert!(Names::All.contains("anything"));
        let only = Names::Only(HashSet::from(["a".to_owned()]));
        assert!(only.contains("a"));
        assert!(!only.contains("b"));
    }

    #[test]
    fn long_names_are_cut_for_the_audit_log_on_a_character_boundary() {
        assert_eq!(audit_name("short"), "short");
        let long = "é".repeat(200);
        let cut = audit_name(&long);
        assert!(cut.len() <= AUDIT_NAME_BYTES_MAX && cut.len() >= AUDIT_NAME_BYTES_MAX - 1);
        assert!(long.starts_with(cut));
    }
}
