//! Authorized operations: what a client may do with a cluster, topic or group,
//! as the bit field Kafka answers with (bit `n` set for the ACL operation of
//! code `n`), asked of the authorizer as Kafka's `AuthHelper.authorizedOperations`
//! does: each operation Kafka defines for the resource that the principal's
//! ACLs allow. With authorization off, every one of them, which is what Kafka
//! answers without an authorizer.

use veltrix_core::acl::ResourceType;

use super::Ctx;

/// The field's value when the client did not ask for the operations.
pub(super) const NOT_ASKED: i32 = i32::MIN;

/// The operations to answer with for the resource: the authorized ones if
/// asked for, else [`NOT_ASKED`].
pub(super) fn answered(ctx: &Ctx, asked: bool, resource_type: ResourceType, name: &str) -> i32 {
    if asked {
        ctx.who().operations(resource_type, name)
    } else {
        NOT_ASKED
    }
}

#[cfg(test)]
mod tests {
    use veltrix_core::acl::ResourceType;

    #[test]
    fn without_an_authorizer_the_bit_fields_are_kafkas() {
        // ALTER, ALTER_CONFIGS, CLUSTER_ACTION, CREATE, DESCRIBE,
        // DESCRIBE_CONFIGS and IDEMPOTENT_WRITE.
        assert_eq!(ResourceType::Cluster.operation_bits(), 0b1_1111_1010_0000);
        // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS and
        // ALTER_CONFIGS.
        assert_eq!(ResourceType::Topic.operation_bits(), 0b1101_1111_1000);
        // READ, DESCRIBE and DELETE.
        assert_eq!(ResourceType::Group.operation_bits(), 0b1_0100_1000);
    }
}
