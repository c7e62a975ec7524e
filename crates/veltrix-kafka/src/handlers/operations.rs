//! Authorized operations: what a client may do with a cluster, topic or group,
//! as the bit field Kafka answers with (bit `n` set for the ACL operation of
//! code `n`). There is no authoriser, so a client may do every operation Kafka
//! defines for the resource, which is what Kafka answers without one.

/// Kafka's ACL operation codes, of the operations used below.
const READ: u32 = 3;
const WRITE: u32 = 4;
const CREATE: u32 = 5;
const DELETE: u32 = 6;
const ALTER: u32 = 7;
const DESCRIBE: u32 = 8;
const CLUSTER_ACTION: u32 = 9;
const DESCRIBE_CONFIGS: u32 = 10;
const ALTER_CONFIGS: u32 = 11;
const IDEMPOTENT_WRITE: u32 = 12;

const fn bits(codes: &[u32]) -> i32 {
    let mut field = 0i32;
    let mut i = 0;
    while i < codes.len() {
        field |= 1 << codes[i];
        i += 1;
    }
    field
}

/// The cluster's operations: ALTER, ALTER_CONFIGS, CLUSTER_ACTION, CREATE,
/// DESCRIBE, DESCRIBE_CONFIGS and IDEMPOTENT_WRITE.
pub(super) const CLUSTER_OPERATIONS: i32 = bits(&[
    ALTER,
    ALTER_CONFIGS,
    CLUSTER_ACTION,
    CREATE,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    IDEMPOTENT_WRITE,
]);

/// A topic's operations: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
/// DESCRIBE_CONFIGS and ALTER_CONFIGS.
pub(super) const TOPIC_OPERATIONS: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);

/// A group's operations: READ, DESCRIBE and DELETE.
pub(super) const GROUP_OPERATIONS: i32 = bits(&[READ, DESCRIBE, DELETE]);

/// The field's value when the client did not ask for the operations.
pub(super) const NOT_ASKED: i32 = i32::MIN;

/// The operations to answer with: `all` if asked for, else [`NOT_ASKED`].
pub(super) fn answered(asked: bool, all: i32) -> i32 {
    if asked { all } else { NOT_ASKED }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bit_fields_are_kafkas() {
        assert_eq!(CLUSTER_OPERATIONS, 0b1_1111_1010_0000);
        assert_eq!(TOPIC_OPERATIONS, 0b1101_1111_1000);
        assert_eq!(GROUP_OPERATIONS, 0b1_0100_1000);
    }
}
