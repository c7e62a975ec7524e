//! The authorizer: Kafka's decision on one action (principal, client address,
//! operation, resource) from the ACL bindings, as Kafka's `StandardAuthorizer`
//! (`org.apache.kafka.metadata.authorizer.StandardAuthorizerData`) takes it.
//!
//! The bindings are indexed so that a decision reads only the bindings of the
//! action's principal (and `User:*`) on the resources that can apply to it: a
//! literal name and `*` by hash, the prefixes by a walk down a `BTreeMap` that
//! visits only keys that are prefixes of the name (and at most one miss per
//! distinct common prefix). Readers share a `RwLock`; a change stores the
//! bindings, builds their index, then swaps it in, so a decision never waits
//! on an fsync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::ops::{Bound, ControlFlow};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::model::{
    AclBinding, AclBindingFilter, AclError, AclOperation, AclPermissionType, PatternType, ResourceType, WILDCARD,
    WILDCARD_PRINCIPAL,
};
use super::store::AclStore;
use crate::error::Result;

/// Bindings a broker keeps at most (`[acls] acls_max`).
pub const ACLS_MAX_DEFAULT: usize = 100_000;

/// How the authorizer decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclConfig {
    /// Whether ACLs are enforced; when not, every action is allowed (Kafka
    /// without `authorizer.class.name`).
    pub enabled: bool,
    /// Principals allowed everything, whatever the bindings say (Kafka's
    /// `super.users`), as `User:admin`.
    pub super_users: BTreeSet<String>,
    /// Bindings kept at most; creating more is refused.
    pub acls_max: usize,
}

impl Default for AclConfig {
    fn default() -> AclConfig {
        AclConfig {
            enabled: false,
            super_users: BTreeSet::new(),
            acls_max: ACLS_MAX_DEFAULT,
        }
    }
}

/// An authorization decision and its reason, for the audit log (Kafka's
/// `MatchingRule`: `SuperUser`, `MatchingAcl(acl=...)`, `DefaultDeny`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: authorization is disabled.
    Disabled,
    /// Allowed: the principal is a super user.
    SuperUser,
    /// Allowed by this binding; no binding denies.
    AllowedBy(Arc<AclBinding>),
    /// Denied by this binding, whatever others allow.
    DeniedBy(Arc<AclBinding>),
    /// Denied: no binding allows the action (deny by default).
    NoAcl,
}

impl Decision {
    /// Whether the action may go ahead.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Disabled | Decision::SuperUser | Decision::AllowedBy(_))
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Disabled => f.write_str("allowed: authorization is disabled"),
            Decision::SuperUser => f.write_str("allowed: super user"),
            Decision::AllowedBy(b) => write!(f, "allowed by {b}"),
            Decision::DeniedBy(b) => write!(f, "denied by {b}"),
            Decision::NoAcl => f.write_str("denied: no ACL allows it"),
        }
    }
}

/// Whether an ALLOW binding for `granted` allows `requested`: ALL allows
/// everything; READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
/// implies DESCRIBE_CONFIGS (`StandardAuthorizerData.findResult`,
/// `IMPLIES_DESCRIBE` and `IMPLIES_DESCRIBE_CONFIGS`; the same sets as
/// `AclAuthorizer.allowAclExists` before it).
fn allow_covers(granted: AclOperation, requested: AclOperation) -> bool {
    use AclOperation::{All, Alter, AlterConfigs, Delete, Describe, DescribeConfigs, Read, Write};
    match (granted, requested) {
        (All, _) => true,
        (g, Describe) => matches!(g, Describe | Read | Write | Delete | Alter),
        (g, DescribeConfigs) => matches!(g, DescribeConfigs | AlterConfigs),
        (g, r) => g == r,
    }
}

/// Whether a DENY binding for `denied` denies `requested`: only the operation
/// itself or ALL. Implication is for ALLOW only: DENY READ does not deny
/// DESCRIBE, and nothing but DENY DESCRIBE or DENY ALL does
/// (`StandardAuthorizerData.findResult`: "this rule only applies to ALLOW
/// ACLs"; `AclAuthorizer.denyAclExists`).
fn deny_covers(denied: AclOperation, requested: AclOperation) -> bool {
    denied == AclOperation::All || denied == requested
}

/// A hash map seeded per process: lookups are keyed by what clients send.
type Map<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

/// A binding's host, read once.
#[derive(Debug)]
enum HostPattern {
    /// `*`.
    Any,
    /// An IP address; IPv4-mapped IPv6 addresses as IPv4, as Java sees them.
    Addr(IpAddr),
    /// Neither: Kafka compares it with the client's numeric address, which
    /// it never equals.
    Never,
}

impl HostPattern {
    fn of(host: &str) -> HostPattern {
        if host == WILDCARD {
            return HostPattern::Any;
        }
        match host.parse::<IpAddr>() {
            Ok(a) => HostPattern::Addr(a.to_canonical()),
            Err(_) => HostPattern::Never,
        }
    }

    /// `client` is canonical already.
    fn matches(&self, client: IpAddr) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Addr(a) => *a == client,
            HostPattern::Never => false,
        }
    }
}

/// One binding as the index keeps it.
#[derive(Debug)]
struct Rule {
    binding: Arc<AclBinding>,
    host: HostPattern,
}

/// A resource pattern's rules, by principal.
type Principals = Map<String, Vec<Rule>>;

/// The rules of one resource type.
#[derive(Debug, Default)]
struct TypeIndex {
    /// LITERAL patterns by name, `*` included.
    literal: Map<String, Principals>,
    /// PREFIXED patterns by prefix.
    prefixed: BTreeMap<String, Principals>,
}

/// The longest common prefix of `a` and `b`, in bytes, cut back to a
/// character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !a.is_char_boundary(n) {
        n -= 1;
    }
    n
}

impl TypeIndex {
    /// Calls `f` with the rules of every pattern that applies to `name`: the
    /// literal name, the literal `*`, then every prefix of `name` that is a
    /// PREFIXED pattern, longest first; stops at the first `Break`.
    fn visit<'a, T>(&'a self, name: &str, mut f: impl FnMut(&'a Principals) -> ControlFlow<T>) -> ControlFlow<T> {
        if let Some(p) = self.literal.get(name) {
            f(p)?;
        }
        if name != WILDCARD
            && let Some(p) = self.literal.get(WILDCARD)
        {
            f(p)?;
        }
        // Every prefix pattern of `name` is at most `upper`, itself a prefix
        // of `name`. The greatest key up to `upper` either is a prefix of it
        // (applies; the next ones are shorter), or shares a common prefix with
        // it that every remaining one fits in (StandardAuthorizerData's
        // `checkSection` walks its sorted set the same way).
        let mut upper = name;
        while let Some((key, p)) = self
            .prefixed
            .range::<str, _>((Bound::Unbounded, Bound::Included(upper)))
            .next_back()
        {
            if upper.starts_with(key.as_str()) {
                f(p)?;
                match key.char_indices().next_back() {
                    Some((last, _)) => upper = &name[..last],
                    None => break,
                }
            } else {
                upper = &name[..common_prefix(upper, key)];
            }
        }
        ControlFlow::Continue(())
    }
}

/// The bindings and their index; replaced whole on a change.
#[derive(Debug)]
struct Acls {
    all: BTreeSet<Arc<AclBinding>>,
    /// By resource type code (UNKNOWN's and ANY's stay empty).
    types: [TypeIndex; 8],
}

impl Acls {
    fn new(all: BTreeSet<Arc<AclBinding>>) -> Acls {
        let mut types: [TypeIndex; 8] = Default::default();
        for b in &all {
            let Some(index) = types.get_mut(b.resource_type.code() as usize) else {
                continue;
            };
            let patterns = match b.pattern_type {
                PatternType::Literal => index.literal.entry(b.resource_name.clone()).or_default(),
                PatternType::Prefixed => index.prefixed.entry(b.resource_name.clone()).or_default(),
                // Never stored: bindings are validated.
                _ => continue,
            };
            patterns.entry(b.principal.clone()).or_default().push(Rule {
                binding: b.clone(),
                host: HostPattern::of(&b.host),
            });
        }
        Acls { all, types }
    }

    fn index(&self, resource_type: ResourceType) -> Option<&TypeIndex> {
        self.types.get(usize::try_from(resource_type.code()).ok()?)
    }

    /// What the bindings say of the action: a matching DENY wins, then a
    /// matching ALLOW, else no ACL. `client` is canonical.
    fn decide(
        &self,
        principal: &str,
        client: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        let Some(index) = self.index(resource_type) else {
            return Decision::NoAcl;
        };
        let wildcard = (principal != WILDCARD_PRINCIPAL).then_some(WILDCARD_PRINCIPAL);
        let mut allow: Option<&Arc<AclBinding>> = None;
        let flow = index.visit(name, |patterns| {
            for key in std::iter::once(principal).chain(wildcard) {
                for rule in patterns.get(key).into_iter().flatten() {
                    if !rule.host.matches(client) {
                        continue;
                    }
                    let b = &rule.binding;
                    match b.permission {
                        AclPermissionType::Deny if deny_covers(b.operation, operation) => {
                            return ControlFlow::Break(b);
                        }
                        AclPermissionType::Allow if allow.is_none() && allow_covers(b.operation, operation) => {
                            allow = Some(b);
                        }
                        _ => {}
                    }
                }
            }
            ControlFlow::Continue(())
        });
        match (flow, allow) {
            (ControlFlow::Break(deny), _) => Decision::DeniedBy(deny.clone()),
            (ControlFlow::Continue(()), Some(b)) => Decision::AllowedBy(b.clone()),
            (ControlFlow::Continue(()), None) => Decision::NoAcl,
        }
    }
}

/// The broker's ACL bindings and the decisions taken from them.
pub struct Authorizer {
    config: AclConfig,
    store: Arc<dyn AclStore>,
    /// Serialises changes: one at a time computes, stores and publishes the
    /// next bindings.
    changes: Mutex<()>,
    /// Read by every decision; written only to swap in the next index.
    acls: RwLock<Acls>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("config", &self.config)
            .field("acls", &self.len())
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// The bindings `store` holds, enforced as `config` says. More bindings
    /// than `acls_max` are kept (forgetting a DENY would allow what it
    /// denied); only creating more is refused.
    pub fn open(store: Arc<dyn AclStore>, config: AclConfig) -> Result<Authorizer> {
        let all: BTreeSet<Arc<AclBinding>> = store.load()?.into_iter().map(Arc::new).collect();
        if all.len() > config.acls_max {
            tracing::warn!(
                acls = all.len(),
                acls_max = config.acls_max,
                "more ACL bindings stored than acls_max; none can be created until some are deleted"
            );
        }
        Ok(Authorizer {
            config,
            store,
            changes: Mutex::new(()),
            acls: RwLock::new(Acls::new(all)),
        })
    }

    /// How it decides.
    pub fn config(&self) -> &AclConfig {
        &self.config
    }

    /// Whether ACLs are enforced. When not, Kafka answers the ACL requests
    /// with `SECURITY_DISABLED`.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn read(&self) -> RwLockReadGuard<'_, Acls> {
        self.acls.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `principal` (`User:alice`) connected from `host` may do
    /// `operation` on the resource of `resource_type` named `resource_name`.
    /// Disabled: allowed. Super user: allowed. Otherwise a binding that
    /// denies wins; then one that allows; else denied.
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> Decision {
        if !self.config.enabled {
            return Decision::Disabled;
        }
        if self.config.super_users.contains(principal) {
            return Decision::SuperUser;
        }
        self.read()
            .decide(principal, host.to_canonical(), operation, resource_type, resource_name)
    }

    /// Kafka's authorized operations of a resource (`authorized_operations`
    /// in Metadata, DescribeCluster, DescribeGroups...): bit `n` set for each
    /// operation of code `n` that [`ResourceType::operations`] lists and
    /// [`Authorizer::authorize`] allows.
    pub fn authorized_operations(
        &self,
        principal: &str,
        host: IpAddr,
        resource_type: ResourceType,
        resource_name: &str,
    ) -> i32 {
        if !self.config.enabled || self.config.super_users.contains(principal) {
            return resource_type.operation_bits();
        }
        let client = host.to_canonical();
        let acls = self.read();
        resource_type
            .operations()
            .iter()
            .filter(|op| {
                acls.decide(principal, client, **op, resource_type, resource_name)
                    .is_allowed()
            })
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// Whether `principal` from `host` may do `operation` on at least one
    /// resource of `resource_type` that no DENY covers, as Kafka's
    /// `Authorizer.authorizeByResourceType` (KIP-679; an idempotent producer
    /// without IDEMPOTENT_WRITE on the cluster may InitProducerId with WRITE
    /// on any topic). Reads every binding of the type: for rare requests.
    /// Operations are not implied here, as in Kafka.
    pub fn authorize_by_resource_type(
        &self,
        principal: &str,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> Decision {
        // Kafka first asks `authorize` about a literal resource named
        // "hardcode", so that super users pass whatever the DENY bindings.
        let hardcode = self.authorize(principal, host, operation, resource_type, "hardcode");
        if hardcode.is_allowed() {
            return hardcode;
        }
        let client = host.to_canonical();
        let acls = self.read();
        let Some(index) = acls.index(resource_type) else {
            return Decision::NoAcl;
        };
        let wildcard = (principal != WILDCARD_PRINCIPAL).then_some(WILDCARD_PRINCIPAL);
        let applies = |patterns: &'_ Principals| -> Vec<Arc<AclBinding>> {
            std::iter::once(principal)
                .chain(wildcard)
                .filter_map(|key| patterns.get(key))
                .flatten()
                .filter(|r| r.host.matches(client) && deny_covers(r.binding.operation, operation))
                .map(|r| r.binding.clone())
                .collect()
        };
        let patterns = index.literal.values().chain(index.prefixed.values()).flat_map(applies);
        let mut deny_literal = BTreeSet::new();
        let mut deny_prefixed = BTreeSet::new();
        let mut allows = Vec::new();
        let mut wildcard_allow = None;
        for b in patterns {
            let literal = b.pattern_type == PatternType::Literal;
            match b.permission {
                AclPermissionType::Deny if literal && b.resource_name == WILDCARD => return Decision::DeniedBy(b),
                AclPermissionType::Deny if literal => {
                    deny_literal.insert(b.resource_name.clone());
                }
                AclPermissionType::Deny => {
                    deny_prefixed.insert(b.resource_name.clone());
                }
                AclPermissionType::Allow if literal && b.resource_name == WILDCARD => wildcard_allow = Some(b),
                AclPermissionType::Allow => allows.push(b),
                _ => {}
            }
        }
        if let Some(b) = wildcard_allow {
            return Decision::AllowedBy(b);
        }
        // An allowed literal name not denied literally, or an allowed prefix,
        // counts unless a denied prefix covers it.
        allows
            .into_iter()
            .find(|b| {
                let name = b.resource_name.as_str();
                let denied_literally = b.pattern_type == PatternType::Literal && deny_literal.contains(name);
                let dominated = name
                    .char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .any(|prefix| deny_prefixed.contains(prefix));
                !denied_literally && !dominated
            })
            .map_or(Decision::NoAcl, Decision::AllowedBy)
    }

    /// Adds `bindings`, as CreateAcls does: each one checked on its own (the
    /// result has one entry per binding); one identical to a stored binding
    /// is not stored twice, and succeeds. The new bindings are stored
    /// durably, all together, before they take effect and before this
    /// returns.
    pub fn create(&self, bindings: &[AclBinding]) -> Vec<std::result::Result<(), AclError>> {
        let _changes = self.lock_changes();
        let mut next = self.read().all.clone();
        let before = next.len();
        let max = self.config.acls_max;
        let results: Vec<_> = bindings
            .iter()
            .map(|b| {
                b.validate()?;
                if next.contains(b) {
                    return Ok(());
                }
                if next.len() >= max {
                    return Err(AclError::TooMany { max });
                }
                next.insert(Arc::new(b.clone()));
                Ok(())
            })
            .collect();
        if next.len() == before {
            return results;
        }
        match self.publish(next) {
            Ok(()) => results,
            Err(e) => results.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
        }
    }

    /// The bindings `filter` selects, in order (resource type, name, pattern
    /// type, principal, host, operation, permission).
    pub fn describe(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.read()
            .all
            .iter()
            .filter(|b| filter.matches(b))
            .map(|b| (**b).clone())
            .collect()
    }

    /// Removes the bindings `filters` select, as DeleteAcls does: one result
    /// per filter, the bindings it selected (a binding two filters select is
    /// listed under both, as Kafka's controller answers), or why the filter
    /// was refused. The removals are stored durably, together, before they
    /// take effect and before this returns; when that fails, every filter
    /// fails and nothing is removed.
    pub fn delete(&self, filters: &[AclBindingFilter]) -> Vec<std::result::Result<Vec<AclBinding>, AclError>> {
        let _changes = self.lock_changes();
        let mut next = self.read().all.clone();
        let results: Vec<_> = filters
            .iter()
            .map(|f| {
                f.validate()?;
                Ok(next
                    .iter()
                    .filter(|b| f.matches(b))
                    .map(|b| (**b).clone())
                    .collect::<Vec<_>>())
            })
            .collect();
        let before = next.len();
        for removed in results.iter().flatten().flatten() {
            next.remove(removed);
        }
        if next.len() == before {
            return results;
        }
        match self.publish(next) {
            Ok(()) => results,
            Err(e) => results.into_iter().map(|r| r.and(Err(e.clone()))).collect(),
        }
    }

    /// Stores `next`, then makes it the bindings decisions read.
    fn publish(&self, next: BTreeSet<Arc<AclBinding>>) -> std::result::Result<(), AclError> {
        let list: Vec<AclBinding> = next.iter().map(|b| (**b).clone()).collect();
        self.store.save(&list).map_err(|e| AclError::Store(e.to_string()))?;
        let acls = Acls::new(next);
        // The old index is dropped after the lock is released.
        let _old = std::mem::replace(&mut *self.acls.write().unwrap_or_else(|p| p.into_inner()), acls);
        Ok(())
    }

    /// Bindings stored.
    pub fn len(&self) -> usize {
        self.read().all.len()
    }

    /// Whether no binding is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
