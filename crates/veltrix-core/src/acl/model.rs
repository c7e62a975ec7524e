//! Kafka's ACL model as plain data: the four enums with their wire codes and
//! printed names, a binding (one ACL) and a filter over bindings, as
//! DescribeAcls, CreateAcls and DeleteAcls carry them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The principal every principal matches, as Kafka spells it (`User:*`, the
/// only wildcard principal: `Group:*` is a principal like any other).
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The host every client address matches, and the literal resource name
/// every name of its type matches.
pub const WILDCARD: &str = "*";

/// The only name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind}; one of {expected}")]
pub struct UnknownName {
    /// What was parsed: "resource type", "pattern type", "operation", "permission type".
    pub kind: &'static str,
    /// The text refused.
    pub value: String,
    /// The names accepted, as Kafka prints them.
    pub expected: String,
}

/// `s` lowercased without `_` and `-`, so `TRANSACTIONAL_ID`,
/// `transactional-id` and `TransactionalId` are one name.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// One of Kafka's ACL enums: its variants, their wire codes (`i8`) and their
/// names as Kafka prints them (the Java enum constants). Serialised by name.
macro_rules! kafka_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, $printed:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in the order of their codes.
            pub const VALUES: &'static [$name] = &[$($name::$variant),*];

            /// Kafka's wire code.
            pub const fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value of a wire code; `None` for a code Kafka does not define.
            pub const fn from_code(code: i8) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The name as Kafka prints it (`TRANSACTIONAL_ID`).
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $printed,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            /// Any case, words joined by `_`, `-` or nothing.
            fn from_str(s: &str) -> Result<$name, UnknownName> {
                let folded = fold(s);
                $name::VALUES
                    .iter()
                    .copied()
                    .find(|v| fold(v.name()) == folded)
                    .ok_or_else(|| UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: $name::VALUES.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
                    })
            }
        }
    };
}

kafka_enum! {
    /// What an ACL is about (`org.apache.kafka.common.resource.ResourceType`).
    ResourceType, "resource type" {
        /// A code this broker does not know; never in a binding.
        Unknown = 0, "UNKNOWN";
        /// Any type: in filters only.
        Any = 1, "ANY";
        /// A topic, by name.
        Topic = 2, "TOPIC";
        /// A consumer, share or streams group, by id.
        Group = 3, "GROUP";
        /// The cluster, always named [`CLUSTER_NAME`].
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token, by id.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user, for delegation tokens made on its behalf.
        User = 7, "USER";
    }
}

kafka_enum! {
    /// How a binding's resource name matches names
    /// (`org.apache.kafka.common.resource.PatternType`).
    PatternType, "pattern type" {
        /// A code this broker does not know; never in a binding.
        Unknown = 0, "UNKNOWN";
        /// Any pattern type, the filter's name matched exactly: in filters only.
        Any = 1, "ANY";
        /// Every binding that would apply to the filter's name (literal, `*`,
        /// prefixes): in filters only.
        Match = 2, "MATCH";
        /// The name itself; `*` is every name of the type.
        Literal = 3, "LITERAL";
        /// Every name starting with the binding's name.
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// What a binding allows or denies (`org.apache.kafka.common.acl.AclOperation`).
    AclOperation, "operation" {
        /// A code this broker does not know; never in a binding.
        Unknown = 0, "UNKNOWN";
        /// Any operation: in filters only.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Fetch, consume, commit offsets.
        Read = 3, "READ";
        /// Produce.
        Write = 4, "WRITE";
        /// Create topics (on the cluster or the topic).
        Create = 5, "CREATE";
        /// Delete topics, records, groups.
        Delete = 6, "DELETE";
        /// Alter partitions, ACLs.
        Alter = 7, "ALTER";
        /// Metadata, offsets, group descriptions.
        Describe = 8, "DESCRIBE";
        /// Broker-to-broker requests.
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Read configurations.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Change configurations.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent producers' InitProducerId (on the cluster).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens for a user.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe a user's delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
}

kafka_enum! {
    /// Whether a binding allows or denies (`org.apache.kafka.common.acl.AclPermissionType`).
    AclPermissionType, "permission type" {
        /// A code this broker does not know; never in a binding.
        Unknown = 0, "UNKNOWN";
        /// Either: in filters only.
        Any = 1, "ANY";
        /// Denies, over any binding that allows.
        Deny = 2, "DENY";
        /// Allows, unless a binding denies.
        Allow = 3, "ALLOW";
    }
}

/// A topic's operations, as Kafka answers them in Metadata's
/// `topic_authorized_operations` (`AclEntry.supportedOperations`).
pub const TOPIC_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];

/// A group's operations (DescribeGroups, ConsumerGroupDescribe), as the Kafka
/// adapter answers them today. Kafka 4's `AclEntry.supportedOperations` adds
/// DESCRIBE_CONFIGS and ALTER_CONFIGS (group configs, KIP-848).
pub const GROUP_OPERATIONS: &[AclOperation] = &[AclOperation::Read, AclOperation::Delete, AclOperation::Describe];

/// The cluster's operations (Metadata, DescribeCluster).
pub const CLUSTER_OPERATIONS: &[AclOperation] = &[
    AclOperation::Create,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
];

/// A transactional id's operations.
pub const TRANSACTIONAL_ID_OPERATIONS: &[AclOperation] = &[AclOperation::Write, AclOperation::Describe];

/// A delegation token's operations.
pub const DELEGATION_TOKEN_OPERATIONS: &[AclOperation] = &[AclOperation::Describe];

/// A user's operations (delegation tokens on its behalf).
pub const USER_OPERATIONS: &[AclOperation] = &[AclOperation::CreateTokens, AclOperation::DescribeTokens];

/// Kafka's bit field of `operations`: bit `n` set for the operation of code `n`.
pub const fn operation_bits(operations: &[AclOperation]) -> i32 {
    let mut bits = 0i32;
    let mut i = 0;
    while i < operations.len() {
        bits |= 1 << operations[i].code();
        i += 1;
    }
    bits
}

impl ResourceType {
    /// The operations Kafka defines for a resource of this type; none for
    /// ANY and UNKNOWN.
    pub const fn operations(self) -> &'static [AclOperation] {
        match self {
            ResourceType::Topic => TOPIC_OPERATIONS,
            ResourceType::Group => GROUP_OPERATIONS,
            ResourceType::Cluster => CLUSTER_OPERATIONS,
            ResourceType::TransactionalId => TRANSACTIONAL_ID_OPERATIONS,
            ResourceType::DelegationToken => DELEGATION_TOKEN_OPERATIONS,
            ResourceType::User => USER_OPERATIONS,
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }

    /// [`ResourceType::operations`] as Kafka's bit field: what a client may
    /// do without an authorizer.
    pub const fn operation_bits(self) -> i32 {
        operation_bits(self.operations())
    }
}

/// Why an ACL change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A binding or filter Kafka refuses: `INVALID_REQUEST`, with this
    /// message (Kafka's own, where it has one) as the `error_message`.
    #[error("{0}")]
    Invalid(String),
    /// The broker keeps `acls_max` bindings already.
    #[error("the broker keeps at most {max} ACL bindings")]
    TooMany {
        /// The limit, `acls_max`.
        max: usize,
    },
    /// The change could not be stored; nothing changed.
    #[error("storing the ACLs failed: {0}")]
    Store(String),
}

/// One ACL: who (`principal` from `host`) may or may not (`permission`) do
/// what (`operation`) to which resources (`resource_type`, `resource_name`
/// read as `pattern_type` says).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    /// Never ANY or UNKNOWN.
    pub resource_type: ResourceType,
    /// A name, `*` (LITERAL: every name), or a prefix (PREFIXED); never empty.
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `Type:name`, as `User:alice`; `User:*` is every principal.
    pub principal: String,
    /// A client's IP address, or `*` for every one.
    pub host: String,
    /// Never ANY or UNKNOWN; ALL is every operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermissionType,
}

impl AclBinding {
    /// Checks the binding as Kafka's CreateAcls does (the broker's
    /// `AclApis.handleCreateAcls`, then the controller's
    /// `AclControlManager.validateNewAcl`), with its messages. Stricter than
    /// Kafka on one point: the principal's type and name must both be
    /// non-empty (Kafka only asks for a colon).
    pub fn validate(&self) -> Result<(), AclError> {
        let invalid = |m: String| Err(AclError::Invalid(m));
        if matches!(self.resource_type, ResourceType::Unknown | ResourceType::Any) {
            return invalid(format!("Invalid resourceType {}", self.resource_type));
        }
        if !matches!(self.pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return invalid(format!("Invalid patternType {}", self.pattern_type));
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return invalid(format!("Invalid operation {}", self.operation));
        }
        if !matches!(self.permission, AclPermissionType::Allow | AclPermissionType::Deny) {
            return invalid(format!("Invalid permissionType {}", self.permission));
        }
        if self.resource_name.is_empty() {
            return invalid("Invalid empty resource name".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return invalid(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        match self.principal.split_once(':') {
            None => invalid(format!(
                "Could not parse principal from `{}` (no colon is present separating the principal type \
                 from the principal name)",
                self.principal
            )),
            Some((kind, name)) if kind.is_empty() || name.is_empty() => invalid(format!(
                "Could not parse principal from `{}` (expected principalType:principalName)",
                self.principal
            )),
            Some(_) => Ok(()),
        }
    }

    /// The filter matching this binding and no other.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission: self.permission,
        }
    }
}

impl fmt::Display for AclBinding {
    /// As Kafka prints an `AclBinding`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(pattern=ResourcePattern(resourceType={}, name={}, patternType={}), entry=(principal={}, host={}, \
             operation={}, permissionType={}))",
            self.resource_type,
            self.resource_name,
            self.pattern_type,
            self.principal,
            self.host,
            self.operation,
            self.permission
        )
    }
}

/// Which bindings DescribeAcls lists or DeleteAcls removes: each field
/// constrains the binding's, or is ANY (`None` for strings) and matches all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBindingFilter {
    /// ANY, or the type itself.
    pub resource_type: ResourceType,
    /// `None`: any name. Otherwise compared as `pattern_type` says.
    pub resource_name: Option<String>,
    /// ANY (the name compared exactly, whatever the pattern type), MATCH
    /// (the bindings that apply to the name), or LITERAL or PREFIXED (that
    /// type, the name compared exactly).
    pub pattern_type: PatternType,
    /// `None`: any principal; else exactly this one (`User:*` matches only
    /// bindings for `User:*`).
    pub principal: Option<String>,
    /// `None`: any host; else exactly this one.
    pub host: Option<String>,
    /// ANY, or the operation itself (no implication).
    pub operation: AclOperation,
    /// ANY, or the permission itself.
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    /// Every binding.
    pub const ANY: AclBindingFilter = AclBindingFilter {
        resource_type: ResourceType::Any,
        resource_name: None,
        pattern_type: PatternType::Any,
        principal: None,
        host: None,
        operation: AclOperation::Any,
        permission: AclPermissionType::Any,
    };

    /// Checks the filter as Kafka's DeleteAcls does
    /// (`AclControlManager.validateFilter`): no UNKNOWN field. A filter
    /// with one matches nothing.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown {
            return Err(AclError::Invalid("Unknown patternFilter.".into()));
        }
        if self.operation == AclOperation::Unknown || self.permission == AclPermissionType::Unknown {
            return Err(AclError::Invalid("Unknown entryFilter.".into()));
        }
        Ok(())
    }

    /// Whether the filter selects `binding`, as Kafka's
    /// `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(binding) && self.matches_entry(binding)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match) && self.pattern_type != b.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == b.pattern_type {
            return *name == b.resource_name;
        }
        // MATCH: the bindings that would apply to a resource called `name`.
        match b.pattern_type {
            PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&b.resource_name),
            _ => false,
        }
    }

    fn matches_entry(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermissionType::Any || self.permission == b.permission)
    }
}

impl Default for AclBindingFilter {
    fn default() -> AclBindingFilter {
        AclBindingFilter::ANY
    }
}
