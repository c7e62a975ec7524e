//! Access control lists, as Kafka defines them (KIP-11, KIP-290 prefixed
//! patterns): bindings that allow or deny a principal, from a host, an
//! operation on resources named literally, by `*`, or by prefix; and the
//! authorizer that decides each request's actions from them as Kafka's
//! `StandardAuthorizer` does (super users; DENY over ALLOW; ALLOW of READ,
//! WRITE, DELETE or ALTER implying DESCRIBE; deny by default).
//!
//! Plain data and decisions only: principals arrive as `Type:name` strings
//! and client addresses as [`std::net::IpAddr`]; the adapters authenticate,
//! map decisions to Kafka's error codes and write the audit log. The bindings
//! are durable state behind [`AclStore`], indexed in memory so that a
//! decision reads only the bindings that can apply to it.

mod authorizer;
mod model;
mod store;
#[cfg(test)]
mod tests;

pub use authorizer::{ACLS_MAX_DEFAULT, AclConfig, Authorizer, Decision};
pub use model::{
    AclBinding, AclBindingFilter, AclError, AclOperation, AclPermissionType, CLUSTER_NAME, CLUSTER_OPERATIONS,
    DELEGATION_TOKEN_OPERATIONS, GROUP_OPERATIONS, PatternType, ResourceType, TOPIC_OPERATIONS,
    TRANSACTIONAL_ID_OPERATIONS, USER_OPERATIONS, UnknownName, WILDCARD, WILDCARD_PRINCIPAL, operation_bits,
};
pub use store::{ACLS_FILE, ACLS_FILE_BYTES_MAX, AclStore, FileAclStore, MemoryAclStore, decode as decode_acls_file};
