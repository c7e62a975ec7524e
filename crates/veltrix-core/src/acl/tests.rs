use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use proptest::prelude::*;
use veltrix_log::io::{LockGuard, OpenMode, Storage, StorageFile};
use veltrix_log::sim::SimStorage;

use super::*;
use AclOperation as Op;
use AclPermissionType::{Allow, Deny};
use PatternType::{Literal, Prefixed};
use ResourceType::{Cluster, Group, Topic};

fn binding(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    host: &str,
    operation: AclOperation,
    permission: AclPermissionType,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_owned(),
        pattern_type,
        principal: principal.to_owned(),
        host: host.to_owned(),
        operation,
        permission,
    }
}

/// An ALLOW from any host.
fn allow(rt: ResourceType, name: &str, pt: PatternType, principal: &str, op: AclOperation) -> AclBinding {
    binding(rt, name, pt, principal, "*", op, Allow)
}

/// A DENY from any host.
fn deny(rt: ResourceType, name: &str, pt: PatternType, principal: &str, op: AclOperation) -> AclBinding {
    binding(rt, name, pt, principal, "*", op, Deny)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn enabled() -> AclConfig {
    AclConfig {
        enabled: true,
        super_users: ["User:admin".to_owned()].into(),
        ..AclConfig::default()
    }
}

fn authorizer_with(config: AclConfig, acls: &[AclBinding]) -> Authorizer {
    let a = Authorizer::open(Arc::new(MemoryAclStore::default()), config).unwrap();
    assert!(a.create(acls).iter().all(Result::is_ok), "{acls:?}");
    a
}

fn authorizer(acls: &[AclBinding]) -> Authorizer {
    authorizer_with(enabled(), acls)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Allowed,
    Denied,
    NoAcl,
    SuperUser,
}

fn kind(d: &Decision) -> Want {
    match d {
        Decision::AllowedBy(_) => Want::Allowed,
        Decision::DeniedBy(_) => Want::Denied,
        Decision::NoAcl => Want::NoAcl,
        Decision::SuperUser => Want::SuperUser,
        Decision::Disabled => panic!("enabled"),
    }
}

/// What is asked, of which bindings, and the answer wanted.
type Case<'a> = (
    &'a str,
    Vec<AclBinding>,
    &'a str,
    IpAddr,
    AclOperation,
    ResourceType,
    &'a str,
    Want,
);

#[test]
fn authorize_decides_as_kafka() {
    use Want::*;
    let alice = "User:alice";
    let a = ip("10.0.0.1");
    let t = |name| allow(Topic, name, Literal, alice, Op::Read);
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("deny by default", vec![], alice, a, Op::Read, Topic, "t", NoAcl),
        ("literal", vec![t("t")], alice, a, Op::Read, Topic, "t", Allowed),
        ("literal, another name", vec![t("t")], alice, a, Op::Read, Topic, "t2", NoAcl),
        ("literal is not a prefix", vec![t("t")], alice, a, Op::Read, Topic, "tt", NoAcl),
        ("literal, another operation", vec![t("t")], alice, a, Op::Write, Topic, "t", NoAcl),
        ("literal, another type", vec![t("t")], alice, a, Op::Read, Group, "t", NoAcl),
        ("wildcard resource", vec![t("*")], alice, a, Op::Read, Topic, "anything", Allowed),
        ("wildcard resource, another type", vec![t("*")], alice, a, Op::Read, Group, "g", NoAcl),
        ("prefixed", vec![allow(Topic, "orders.", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "orders.eu", Allowed),
        ("prefixed, the prefix itself", vec![allow(Topic, "orders.", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "orders.", Allowed),
        ("prefixed, shorter name", vec![allow(Topic, "orders.", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "orders", NoAcl),
        ("prefixed, between keys", vec![allow(Topic, "a", Prefixed, alice, Op::Read), allow(Topic, "ab", Prefixed, "User:bob", Op::Read), allow(Topic, "abz", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "abc", Allowed),
        ("prefixed, multibyte", vec![allow(Topic, "é", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "éa", Allowed),
        ("prefixed, multibyte miss", vec![allow(Topic, "éb", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "éa", NoAcl),
        ("another principal", vec![t("t")], "User:bob", a, Op::Read, Topic, "t", NoAcl),
        ("principal wildcard", vec![allow(Topic, "t", Literal, "User:*", Op::Read)], "User:bob", a, Op::Read, Topic, "t", Allowed),
        ("principal wildcard, any principal type", vec![allow(Topic, "t", Literal, "User:*", Op::Read)], "Group:ops", a, Op::Read, Topic, "t", Allowed),
        ("Group:* is no wildcard", vec![allow(Topic, "t", Literal, "Group:*", Op::Read)], "Group:ops", a, Op::Read, Topic, "t", NoAcl),
        ("host match", vec![binding(Topic, "t", Literal, alice, "10.0.0.1", Op::Read, Allow)], alice, a, Op::Read, Topic, "t", Allowed),
        ("host mismatch", vec![binding(Topic, "t", Literal, alice, "10.0.0.1", Op::Read, Allow)], alice, ip("10.0.0.2"), Op::Read, Topic, "t", NoAcl),
        ("host, IPv4-mapped client", vec![binding(Topic, "t", Literal, alice, "10.0.0.1", Op::Read, Allow)], alice, ip("::ffff:10.0.0.1"), Op::Read, Topic, "t", Allowed),
        ("host, IPv6 as Java prints it", vec![binding(Topic, "t", Literal, alice, "0:0:0:0:0:0:0:1", Op::Read, Allow)], alice, ip("::1"), Op::Read, Topic, "t", Allowed),
        ("host, a name never matches", vec![binding(Topic, "t", Literal, alice, "localhost", Op::Read, Allow)], alice, ip("127.0.0.1"), Op::Read, Topic, "t", NoAcl),
        ("deny beats allow", vec![t("t"), deny(Topic, "t", Literal, alice, Op::Read)], alice, a, Op::Read, Topic, "t", Denied),
        ("deny via ALL", vec![t("t"), deny(Topic, "t", Literal, alice, Op::All)], alice, a, Op::Read, Topic, "t", Denied),
        ("deny via User:*", vec![t("t"), deny(Topic, "t", Literal, "User:*", Op::Read)], alice, a, Op::Read, Topic, "t", Denied),
        ("deny via wildcard resource", vec![t("t"), deny(Topic, "*", Literal, alice, Op::Read)], alice, a, Op::Read, Topic, "t", Denied),
        ("deny via prefix beats literal allow", vec![t("orders.eu"), deny(Topic, "orders.", Prefixed, alice, Op::Read)], alice, a, Op::Read, Topic, "orders.eu", Denied),
        ("deny from another host", vec![t("t"), binding(Topic, "t", Literal, alice, "10.0.0.9", Op::Read, Deny)], alice, a, Op::Read, Topic, "t", Allowed),
        ("deny of another operation", vec![t("t"), deny(Topic, "t", Literal, alice, Op::Write)], alice, a, Op::Read, Topic, "t", Allowed),
        ("deny without allow", vec![deny(Topic, "t", Literal, alice, Op::Read)], alice, a, Op::Read, Topic, "t", Denied),
        ("ALL allows everything", vec![allow(Topic, "t", Literal, alice, Op::All)], alice, a, Op::AlterConfigs, Topic, "t", Allowed),
        ("READ implies DESCRIBE", vec![t("t")], alice, a, Op::Describe, Topic, "t", Allowed),
        ("WRITE implies DESCRIBE", vec![allow(Topic, "t", Literal, alice, Op::Write)], alice, a, Op::Describe, Topic, "t", Allowed),
        ("DELETE implies DESCRIBE", vec![allow(Topic, "t", Literal, alice, Op::Delete)], alice, a, Op::Describe, Topic, "t", Allowed),
        ("ALTER implies DESCRIBE", vec![allow(Topic, "t", Literal, alice, Op::Alter)], alice, a, Op::Describe, Topic, "t", Allowed),
        ("CREATE does not imply DESCRIBE", vec![allow(Topic, "t", Literal, alice, Op::Create)], alice, a, Op::Describe, Topic, "t", NoAcl),
        ("ALTER_CONFIGS implies DESCRIBE_CONFIGS", vec![allow(Topic, "t", Literal, alice, Op::AlterConfigs)], alice, a, Op::DescribeConfigs, Topic, "t", Allowed),
        ("DESCRIBE does not grant READ", vec![allow(Topic, "t", Literal, alice, Op::Describe)], alice, a, Op::Read, Topic, "t", NoAcl),
        ("DESCRIBE_CONFIGS does not grant ALTER_CONFIGS", vec![allow(Topic, "t", Literal, alice, Op::DescribeConfigs)], alice, a, Op::AlterConfigs, Topic, "t", NoAcl),
        ("DENY READ does not deny DESCRIBE", vec![t("t"), deny(Topic, "t", Literal, alice, Op::Read)], alice, a, Op::Describe, Topic, "t", Allowed),
        ("DENY DESCRIBE does not deny READ", vec![t("t"), deny(Topic, "t", Literal, alice, Op::Describe)], alice, a, Op::Read, Topic, "t", Allowed),
        ("DENY DESCRIBE denies the implied DESCRIBE", vec![t("t"), deny(Topic, "t", Literal, alice, Op::Describe)], alice, a, Op::Describe, Topic, "t", Denied),
        ("cluster", vec![allow(Cluster, CLUSTER_NAME, Literal, alice, Op::IdempotentWrite)], alice, a, Op::IdempotentWrite, Cluster, CLUSTER_NAME, Allowed),
        ("super user, whatever denies", vec![deny(Topic, "*", Literal, "User:*", Op::All)], "User:admin", a, Op::Read, Topic, "t", SuperUser),
        ("super users by exact principal", vec![deny(Topic, "*", Literal, "User:*", Op::All)], "User:Admin", a, Op::Read, Topic, "t", Denied),
    ];
    for (what, acls, principal, host, op, rt, name, want) in cases {
        let d = authorizer(&acls).authorize(principal, host, op, rt, name);
        assert_eq!(kind(&d), want, "{what}: {d}");
        if let Decision::AllowedBy(b) | Decision::DeniedBy(b) = &d {
            assert!(acls.contains(b), "{what}: {b} is one of the bindings");
            assert_eq!(b.permission == Allow, want == Want::Allowed, "{what}: {d}");
        }
        assert_eq!(d.is_allowed(), matches!(want, Allowed | SuperUser), "{what}");
    }
}

#[test]
fn a_disabled_authorizer_allows_everything() {
    let config = AclConfig {
        enabled: false,
        ..enabled()
    };
    let a = authorizer_with(config, &[deny(Topic, "*", Literal, "User:*", Op::All)]);
    let d = a.authorize("User:alice", ip("10.0.0.1"), Op::Write, Topic, "t");
    assert_eq!(d, Decision::Disabled);
    assert!(d.is_allowed());
    assert_eq!(
        a.authorized_operations("User:alice", ip("10.0.0.1"), Group, "g"),
        Group.operation_bits()
    );
}

#[test]
fn authorized_operations_are_the_allowed_ones_among_the_types() {
    let alice = "User:alice";
    let h = ip("10.0.0.1");
    let bit = |ops: &[AclOperation]| operation_bits(ops);
    let a = authorizer(&[
        allow(Topic, "t", Literal, alice, Op::Read),
        allow(Topic, "t", Literal, alice, Op::AlterConfigs),
        // Not a topic operation: never in the bits.
        allow(Topic, "t", Literal, alice, Op::IdempotentWrite),
        allow(Group, "g", Literal, alice, Op::All),
        deny(Group, "g", Literal, alice, Op::Delete),
    ]);
    assert_eq!(
        a.authorized_operations(alice, h, Topic, "t"),
        bit(&[Op::Read, Op::Describe, Op::AlterConfigs, Op::DescribeConfigs])
    );
    assert_eq!(
        a.authorized_operations(alice, h, Group, "g"),
        bit(&[Op::Read, Op::Describe])
    );
    assert_eq!(a.authorized_operations(alice, h, Cluster, CLUSTER_NAME), 0);
    assert_eq!(
        a.authorized_operations("User:admin", h, Cluster, CLUSTER_NAME),
        Cluster.operation_bits()
    );
    assert_eq!(a.authorized_operations(alice, h, ResourceType::Any, "t"), 0);
}

#[test]
fn the_operation_lists_are_the_kafka_adapters() {
    // crates/veltrix-kafka/src/handlers/operations.rs
    assert_eq!(Cluster.operation_bits(), 0b1_1111_1010_0000);
    assert_eq!(Topic.operation_bits(), 0b1101_1111_1000);
    assert_eq!(Group.operation_bits(), 0b1_0100_1000);
    assert_eq!(ResourceType::TransactionalId.operation_bits(), 1 << 4 | 1 << 8);
    assert_eq!(ResourceType::User.operation_bits(), 1 << 13 | 1 << 14);
    assert_eq!(ResourceType::Any.operation_bits(), 0);
}

#[test]
fn authorize_by_resource_type_is_kafkas() {
    let alice = "User:alice";
    let h = ip("10.0.0.1");
    let w = |name: &str, pt| allow(Topic, name, pt, alice, Op::Write);
    let dw = |name: &str, pt| deny(Topic, name, pt, alice, Op::Write);
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<AclBinding>, &str, bool)> = vec![
        ("nothing", vec![], alice, false),
        ("a literal", vec![w("t", Literal)], alice, true),
        ("a literal denied literally", vec![w("t", Literal), dw("t", Literal)], alice, false),
        ("a literal and another denied", vec![w("t", Literal), dw("u", Literal)], alice, true),
        ("a prefix denied", vec![w("a", Prefixed), dw("a", Prefixed)], alice, false),
        ("a prefix, a longer one denied", vec![w("a", Prefixed), dw("ab", Prefixed)], alice, true),
        ("a literal under a denied prefix", vec![w("abc", Literal), dw("ab", Prefixed)], alice, false),
        ("a prefix under a denied literal", vec![w("ab", Prefixed), dw("ab", Literal)], alice, true),
        ("the wildcard", vec![w("*", Literal), dw("t", Literal)], alice, true),
        ("the wildcard denied", vec![w("t", Literal), dw("*", Literal)], alice, false),
        ("ALL", vec![allow(Topic, "t", Literal, alice, Op::All)], alice, true),
        ("no implication", vec![allow(Topic, "t", Literal, alice, Op::Read)], alice, false),
        ("User:*", vec![allow(Topic, "t", Literal, "User:*", Op::Write)], alice, true),
        ("another principal's", vec![allow(Topic, "t", Literal, "User:bob", Op::Write)], alice, false),
        ("another host's", vec![binding(Topic, "t", Literal, alice, "10.0.0.2", Op::Write, Allow)], alice, false),
        ("another type's", vec![allow(Group, "t", Literal, alice, Op::Write)], alice, false),
        ("a super user", vec![dw("*", Literal)], "User:admin", true),
    ];
    for (what, acls, principal, want) in cases {
        let d = authorizer(&acls).authorize_by_resource_type(principal, h, Op::Write, Topic);
        assert_eq!(d.is_allowed(), want, "{what}: {d}");
    }
}

fn filter() -> AclBindingFilter {
    AclBindingFilter::ANY
}

#[test]
fn filters_select_as_describe_and_delete_acls_do() {
    let b1 = allow(Topic, "orders", Literal, "User:alice", Op::Read);
    let b2 = allow(Topic, "*", Literal, "User:bob", Op::Write);
    let b3 = binding(Topic, "ord", Prefixed, "User:alice", "10.0.0.1", Op::Describe, Deny);
    let b4 = allow(Topic, "pay", Prefixed, "User:carol", Op::Read);
    let b5 = allow(Group, "orders", Literal, "User:alice", Op::Read);
    let all = [b1.clone(), b2.clone(), b3.clone(), b4.clone(), b5.clone()];
    let a = authorizer(&all);
    let name = |n: &str| Some(n.to_owned());
    let cases: Vec<(&str, AclBindingFilter, Vec<&AclBinding>)> = vec![
        ("ANY", filter(), vec![&b1, &b2, &b3, &b4, &b5]),
        (
            "MATCH: what applies to topic orders",
            AclBindingFilter {
                resource_type: Topic,
                resource_name: name("orders"),
                pattern_type: PatternType::Match,
                ..filter()
            },
            vec![&b1, &b2, &b3],
        ),
        (
            "MATCH without a name: the type's",
            AclBindingFilter {
                resource_type: Topic,
                pattern_type: PatternType::Match,
                ..filter()
            },
            vec![&b1, &b2, &b3, &b4],
        ),
        (
            "ANY pattern type: the name exactly",
            AclBindingFilter {
                resource_type: Topic,
                resource_name: name("orders"),
                ..filter()
            },
            vec![&b1],
        ),
        (
            "LITERAL *: the wildcard binding only",
            AclBindingFilter {
                resource_name: name("*"),
                pattern_type: Literal,
                ..filter()
            },
            vec![&b2],
        ),
        (
            "PREFIXED ord",
            AclBindingFilter {
                resource_name: name("ord"),
                pattern_type: Prefixed,
                ..filter()
            },
            vec![&b3],
        ),
        (
            "a name, any type",
            AclBindingFilter {
                resource_name: name("orders"),
                pattern_type: Literal,
                ..filter()
            },
            vec![&b1, &b5],
        ),
        (
            "a principal",
            AclBindingFilter {
                principal: name("User:alice"),
                ..filter()
            },
            vec![&b1, &b3, &b5],
        ),
        (
            "User:* is a principal like another in filters",
            AclBindingFilter {
                principal: name("User:*"),
                ..filter()
            },
            vec![],
        ),
        (
            "a host",
            AclBindingFilter {
                host: name("10.0.0.1"),
                ..filter()
            },
            vec![&b3],
        ),
        (
            "an operation, no implication",
            AclBindingFilter {
                operation: Op::Describe,
                ..filter()
            },
            vec![&b3],
        ),
        (
            "a permission",
            AclBindingFilter {
                permission: Allow,
                ..filter()
            },
            vec![&b1, &b2, &b4, &b5],
        ),
        (
            "UNKNOWN matches nothing",
            AclBindingFilter {
                operation: Op::Unknown,
                ..filter()
            },
            vec![],
        ),
    ];
    for (what, f, want) in cases {
        let want: Vec<AclBinding> = want.into_iter().cloned().collect();
        assert_eq!(a.describe(&f), sorted(want), "{what}");
    }
    for b in &all {
        assert_eq!(a.describe(&b.to_filter()), vec![b.clone()], "{b}");
    }

    // DeleteAcls: one result per filter; a binding two filters select is
    // listed under both; an invalid filter removes nothing.
    let by_bob = AclBindingFilter {
        principal: name("User:bob"),
        ..filter()
    };
    let orders = AclBindingFilter {
        resource_type: Topic,
        resource_name: name("orders"),
        pattern_type: PatternType::Match,
        ..filter()
    };
    let unknown = AclBindingFilter {
        pattern_type: PatternType::Unknown,
        ..filter()
    };
    let results = a.delete(&[by_bob, orders, unknown]);
    assert_eq!(results[0], Ok(vec![b2.clone()]));
    assert_eq!(results[1], Ok(sorted(vec![b1, b2, b3])));
    assert_eq!(results[2], Err(AclError::Invalid("Unknown patternFilter.".into())));
    assert_eq!(a.describe(&filter()), vec![b4, b5]);
    assert_eq!(a.len(), 2);
    // Deleting what is gone removes nothing and succeeds.
    assert_eq!(a.delete(&[filter()])[0].as_ref().map(Vec::len), Ok(2));
    assert!(a.is_empty());
    assert_eq!(a.delete(&[filter()]), vec![Ok(vec![])]);
}

#[test]
fn filters_refuse_unknown_fields_as_kafka() {
    assert_eq!(filter().validate(), Ok(()));
    for f in [
        AclBindingFilter {
            resource_type: ResourceType::Unknown,
            ..filter()
        },
        AclBindingFilter {
            pattern_type: PatternType::Unknown,
            ..filter()
        },
    ] {
        assert_eq!(f.validate(), Err(AclError::Invalid("Unknown patternFilter.".into())));
    }
    for f in [
        AclBindingFilter {
            operation: Op::Unknown,
            ..filter()
        },
        AclBindingFilter {
            permission: AclPermissionType::Unknown,
            ..filter()
        },
    ] {
        assert_eq!(f.validate(), Err(AclError::Invalid("Unknown entryFilter.".into())));
    }
}

#[test]
fn bindings_are_validated_as_create_acls_does() {
    let ok = allow(Topic, "t", Literal, "User:alice", Op::Read);
    let with = |f: &dyn Fn(&mut AclBinding)| {
        let mut b = ok.clone();
        f(&mut b);
        b
    };
    let no_colon = "Could not parse principal from `alice` (no colon is present separating the principal type from \
                    the principal name)";
    #[rustfmt::skip]
    let refused: Vec<(AclBinding, &str)> = vec![
        (with(&|b| b.resource_type = ResourceType::Any), "Invalid resourceType ANY"),
        (with(&|b| b.resource_type = ResourceType::Unknown), "Invalid resourceType UNKNOWN"),
        (with(&|b| b.pattern_type = PatternType::Match), "Invalid patternType MATCH"),
        (with(&|b| b.pattern_type = PatternType::Any), "Invalid patternType ANY"),
        (with(&|b| b.pattern_type = PatternType::Unknown), "Invalid patternType UNKNOWN"),
        (with(&|b| b.operation = Op::Any), "Invalid operation ANY"),
        (with(&|b| b.operation = Op::Unknown), "Invalid operation UNKNOWN"),
        (with(&|b| b.permission = AclPermissionType::Any), "Invalid permissionType ANY"),
        (with(&|b| b.permission = AclPermissionType::Unknown), "Invalid permissionType UNKNOWN"),
        (with(&|b| b.resource_name.clear()), "Invalid empty resource name"),
        (with(&|b| { b.resource_type = Cluster; b.resource_name = "my-cluster".into() }), "The only valid name for the CLUSTER resource is kafka-cluster"),
        (with(&|b| { b.resource_type = Cluster; b.resource_name = "*".into() }), "The only valid name for the CLUSTER resource is kafka-cluster"),
        (with(&|b| b.principal = "alice".into()), no_colon),
        (with(&|b| b.principal = "User:".into()), "Could not parse principal from `User:` (expected principalType:principalName)"),
        (with(&|b| b.principal = ":alice".into()), "Could not parse principal from `:alice` (expected principalType:principalName)"),
    ];
    // What Kafka accepts.
    let accepted = [
        ok.clone(),
        with(&|b| {
            b.pattern_type = Prefixed;
            b.resource_name = "*".into()
        }),
        with(&|b| b.principal = "Group:ops".into()),
        with(&|b| b.principal = "User:CN=alice,O=acme:x".into()),
        with(&|b| b.host = "not-an-address".into()),
        with(&|b| b.operation = Op::IdempotentWrite),
        with(&|b| {
            b.resource_type = Cluster;
            b.resource_name = CLUSTER_NAME.into()
        }),
    ];
    for (b, message) in &refused {
        assert_eq!(b.validate(), Err(AclError::Invalid((*message).into())), "{b}");
    }
    for b in &accepted {
        assert_eq!(b.validate(), Ok(()), "{b}");
    }
    // CreateAcls: each binding on its own; an identical one stored once.
    let a = authorizer(&[]);
    let mut request: Vec<AclBinding> = refused.iter().map(|(b, _)| b.clone()).collect();
    request.extend(accepted.iter().cloned());
    request.push(ok.clone());
    let results = a.create(&request);
    for (r, (_, message)) in results.iter().zip(&refused) {
        assert_eq!(*r, Err(AclError::Invalid((*message).into())));
    }
    assert!(results[refused.len()..].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(a.len(), accepted.len());
    assert_eq!(a.create(&[ok]), vec![Ok(())]);
    assert_eq!(a.len(), accepted.len());
}

#[test]
fn enums_have_kafkas_codes_and_names() {
    fn round_trip<T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display>(
        values: &[T],
        code: fn(T) -> i8,
        from_code: fn(i8) -> Option<T>,
    ) where
        T::Err: std::fmt::Debug,
    {
        for (i, v) in values.iter().enumerate() {
            assert_eq!(code(*v), i as i8);
            assert_eq!(from_code(i as i8), Some(*v));
            assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
            assert_eq!(v.to_string().to_lowercase().parse::<T>().unwrap(), *v);
        }
        assert_eq!(from_code(values.len() as i8), None);
        assert_eq!(from_code(-1), None);
    }
    round_trip(ResourceType::VALUES, ResourceType::code, ResourceType::from_code);
    round_trip(PatternType::VALUES, PatternType::code, PatternType::from_code);
    round_trip(AclOperation::VALUES, AclOperation::code, AclOperation::from_code);
    round_trip(
        AclPermissionType::VALUES,
        AclPermissionType::code,
        AclPermissionType::from_code,
    );
    assert_eq!(ResourceType::VALUES.len(), 8);
    assert_eq!(PatternType::VALUES.len(), 5);
    assert_eq!(AclOperation::VALUES.len(), 15);
    assert_eq!(AclPermissionType::VALUES.len(), 4);

    assert_eq!(ResourceType::TransactionalId.to_string(), "TRANSACTIONAL_ID");
    assert_eq!(Op::DescribeConfigs.to_string(), "DESCRIBE_CONFIGS");
    assert_eq!(Op::IdempotentWrite.code(), 12);
    assert_eq!(ResourceType::User.code(), 7);
    for s in ["topic", "TOPIC", "Topic"] {
        assert_eq!(s.parse::<ResourceType>(), Ok(Topic));
    }
    for s in [
        "transactional-id",
        "transactional_id",
        "TransactionalId",
        "TRANSACTIONAL_ID",
    ] {
        assert_eq!(s.parse::<ResourceType>(), Ok(ResourceType::TransactionalId));
    }
    assert_eq!("idempotent-write".parse::<AclOperation>(), Ok(Op::IdempotentWrite));
    assert_eq!("Prefixed".parse::<PatternType>(), Ok(Prefixed));
    assert_eq!("allow".parse::<AclPermissionType>(), Ok(Allow));
    let e = "topics".parse::<ResourceType>().unwrap_err();
    assert_eq!(e.kind, "resource type");
    assert!(e.to_string().contains("TRANSACTIONAL_ID"), "{e}");

    // Serialised by Kafka's names.
    let b = allow(
        ResourceType::TransactionalId,
        "tx",
        Literal,
        "User:a",
        Op::DescribeConfigs,
    );
    let json = serde_json::to_string(&b).unwrap();
    assert!(
        json.contains(r#""resource_type":"TRANSACTIONAL_ID""#) && json.contains(r#""operation":"DESCRIBE_CONFIGS""#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<AclBinding>(&json).unwrap(), b);
    assert_eq!(
        b.to_string(),
        "(pattern=ResourcePattern(resourceType=TRANSACTIONAL_ID, name=tx, patternType=LITERAL), \
         entry=(principal=User:a, host=*, operation=DESCRIBE_CONFIGS, permissionType=ALLOW))"
    );
}

#[test]
fn bindings_are_bounded_by_acls_max() {
    let config = AclConfig {
        acls_max: 3,
        ..enabled()
    };
    let a = authorizer_with(config.clone(), &[]);
    let b = |i: usize| allow(Topic, &format!("t{i}"), Literal, "User:alice", Op::Read);
    let results = a.create(&[b(0), b(1), b(2), b(3)]);
    assert_eq!(results[..3], [Ok(()), Ok(()), Ok(())]);
    assert_eq!(results[3], Err(AclError::TooMany { max: 3 }));
    assert_eq!(a.len(), 3);
    // Full: an identical binding still succeeds; a new one does not.
    assert_eq!(a.create(&[b(0), b(4)]), vec![Ok(()), Err(AclError::TooMany { max: 3 })]);
    a.delete(&[b(0).to_filter()]);
    assert_eq!(a.create(&[b(4)]), vec![Ok(())]);

    // A store holding more than the limit keeps them all: a DENY forgotten
    // would allow what it denied.
    let store = Arc::new(MemoryAclStore::default());
    store.save(&(0..5).map(b).collect::<Vec<_>>()).unwrap();
    let a = Authorizer::open(store, config).unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a.create(&[b(9)]), vec![Err(AclError::TooMany { max: 3 })]);
    assert_eq!(a.create(&[b(1)]), vec![Ok(())]);
}

#[test]
fn the_authorizer_is_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Authorizer>();
    let a = Arc::new(authorizer(&[]));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || {
                let name = format!("t{i}");
                a.create(&[allow(Topic, &name, Literal, "User:alice", Op::Read)]);
                a.authorize("User:alice", ip("10.0.0.1"), Op::Read, Topic, &name)
                    .is_allowed()
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
    assert_eq!(a.len(), 4);
}

// Durability through the simulated storage.

const DIR: &str = "/data";

fn sim_store(storage: Arc<dyn Storage>) -> Arc<dyn AclStore> {
    Arc::new(FileAclStore::new(storage, Path::new(DIR)))
}

fn sim_storage() -> SimStorage {
    let storage = SimStorage::new();
    storage.create_dir_all(Path::new(DIR)).unwrap();
    storage
}

fn reopen(storage: &SimStorage) -> Authorizer {
    Authorizer::open(sim_store(Arc::new(storage.clone())), enabled()).unwrap()
}

fn old_set() -> Vec<AclBinding> {
    vec![
        allow(Topic, "orders", Literal, "User:alice", Op::Read),
        deny(Topic, "orders.", Prefixed, "User:*", Op::Write),
    ]
}

fn new_set() -> Vec<AclBinding> {
    vec![
        allow(Group, "g", Literal, "User:alice", Op::Read),
        binding(Topic, "*", Literal, "User:bob", "10.0.0.1", Op::All, Allow),
    ]
}

fn everything(a: &Authorizer) -> Vec<AclBinding> {
    a.describe(&filter())
}

fn sorted(mut v: Vec<AclBinding>) -> Vec<AclBinding> {
    v.sort();
    v
}

#[test]
fn bindings_survive_a_restart_and_a_power_loss_once_created() {
    for seed in 0..8 {
        let storage = sim_storage();
        let a = reopen(&storage);
        assert_eq!(a.create(&old_set()), vec![Ok(()); 2]);
        assert_eq!(a.delete(&[old_set()[0].to_filter()])[0].as_ref().map(Vec::len), Ok(1));
        assert_eq!(a.create(&new_set()), vec![Ok(()); 2]);
        let want = sorted(vec![old_set()[1].clone(), new_set()[0].clone(), new_set()[1].clone()]);
        assert_eq!(everything(&a), want);
        if seed % 2 == 0 {
            storage.crash(true, seed);
        } else {
            storage.crash_reordered(seed);
        }
        let again = reopen(&storage);
        assert_eq!(everything(&again), want, "seed {seed}");
        assert!(
            again
                .authorize("User:bob", ip("10.0.0.1"), Op::Read, Topic, "x")
                .is_allowed()
        );
        let bytes = storage.read_file(&Path::new(DIR).join(ACLS_FILE)).unwrap();
        assert_eq!(sorted(decode_acls_file(&bytes).unwrap()), want);
    }
}

#[test]
fn a_failed_fsync_changes_nothing_and_the_next_change_is_durable() {
    let storage = sim_storage();
    let a = reopen(&storage);
    a.create(&old_set());
    storage.fail_syncs(true);
    let results = a.create(&new_set());
    assert!(
        results.iter().all(|r| matches!(r, Err(AclError::Store(_)))),
        "{results:?}"
    );
    assert!(
        a.delete(&[filter()])
            .iter()
            .all(|r| matches!(r, Err(AclError::Store(_))))
    );
    assert_eq!(everything(&a), sorted(old_set()), "nothing took effect");
    storage.fail_syncs(false);
    storage.crash(true, 7);
    assert_eq!(everything(&reopen(&storage)), sorted(old_set()));

    // Again, then a change that succeeds: it is durable, though the failed
    // one left its temporary file behind.
    let a = reopen(&storage);
    storage.fail_syncs(true);
    assert!(a.create(&new_set()).iter().all(Result::is_err));
    storage.fail_syncs(false);
    assert_eq!(a.create(&new_set()), vec![Ok(()); 2]);
    storage.crash(true, 8);
    let mut want = old_set();
    want.extend(new_set());
    assert_eq!(everything(&reopen(&storage)), sorted(want));
}

/// Storage that loses power after `budget` changes: every change after it
/// (opening, writing, syncing, renaming, removing) fails, as if never made.
#[derive(Debug)]
struct CutStorage {
    inner: SimStorage,
    budget: Arc<AtomicI64>,
}

#[derive(Debug)]
struct CutFile {
    inner: Arc<dyn StorageFile>,
    budget: Arc<AtomicI64>,
}

fn spend(budget: &AtomicI64) -> io::Result<()> {
    if budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
        return Err(io::Error::other("power lost"));
    }
    Ok(())
}

impl StorageFile for CutFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.write_all_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.set_len(len)
    }
}

impl Storage for CutStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        spend(&self.budget)?;
        Ok(Arc::new(CutFile {
            inner: self.inner.open(path, mode)?,
            budget: self.budget.clone(),
        }))
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync_dir(path)
    }
    fn lock_exclusive(&self, path: &Path) -> io::Result<LockGuard> {
        self.inner.lock_exclusive(path)
    }
}

#[test]
fn a_power_loss_at_any_step_of_a_change_keeps_the_old_or_the_new_bindings() {
    let old = sorted(old_set());
    let mut new = old_set();
    new.extend(new_set());
    let new = sorted(new);
    let mut completed = false;
    for budget in 0..64 {
        for seed in 0..4u64 {
            let storage = sim_storage();
            assert_eq!(reopen(&storage).create(&old_set()), vec![Ok(()); 2]);
            // A leftover temporary file, as a failed change leaves it.
            storage
                .open(&Path::new(DIR).join(format!("{ACLS_FILE}.tmp")), OpenMode::CreateNew)
                .unwrap()
                .write_all_at(b"{", 0)
                .unwrap();
            let cut = Arc::new(CutStorage {
                inner: storage.clone(),
                budget: Arc::new(AtomicI64::new(i64::MAX)),
            });
            let a = Authorizer::open(sim_store(cut.clone()), enabled()).unwrap();
            cut.budget.store(budget, Ordering::SeqCst);
            let results = a.create(&new_set());
            let created = results.iter().all(Result::is_ok);
            assert_eq!(everything(&a), if created { new.clone() } else { old.clone() });
            if seed % 2 == 0 {
                storage.crash(true, seed);
            } else {
                storage.crash_reordered(seed);
            }
            let after = everything(&reopen(&storage));
            if created {
                assert_eq!(after, new, "budget {budget}, seed {seed}: acknowledged, so durable");
                completed = true;
            } else {
                assert!(after == old || after == new, "budget {budget}, seed {seed}: {after:?}");
            }
        }
        if completed {
            return;
        }
    }
    panic!("the change never completed");
}

#[test]
fn the_file_decoder_refuses_what_the_store_never_writes() {
    assert!(decode_acls_file(b"{").is_err());
    assert!(decode_acls_file(br#"{"version":2,"acls":[]}"#).is_err());
    assert_eq!(decode_acls_file(br#"{"version":1,"acls":[]}"#), Ok(vec![]));
    let one = r#"{"resource_type":"TOPIC","resource_name":"t","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW"}"#;
    let good = format!(r#"{{"version":1,"acls":[{one}]}}"#);
    assert_eq!(decode_acls_file(good.as_bytes()).unwrap().len(), 1);
    let twice = format!(r#"{{"version":1,"acls":[{one},{one}]}}"#);
    assert!(decode_acls_file(twice.as_bytes()).unwrap_err().contains("twice"));
    let invalid = good.replace("LITERAL", "MATCH");
    assert!(
        decode_acls_file(invalid.as_bytes())
            .unwrap_err()
            .contains("Invalid patternType MATCH")
    );
    let unknown_field = good.replace(r#""host""#, r#""hosts":"*","host""#);
    assert!(decode_acls_file(unknown_field.as_bytes()).is_err());
}

// The index against a linear scan.

const PRINCIPALS: &[&str] = &["User:alice", "User:bob", "User:*", "Group:alice"];
const BINDING_HOSTS: &[&str] = &["*", "10.0.0.1", "10.0.0.2", "::1", "::ffff:10.0.0.2", "host"];
const CLIENTS: &[&str] = &["10.0.0.1", "10.0.0.2", "::1", "::ffff:10.0.0.1", "0:0:0:0:0:0:0:1"];

/// Names over a small alphabet (with a two-byte letter), so that literals,
/// prefixes and `*` collide often.
fn name_strategy(min: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("*".to_owned()),
        6 => proptest::collection::vec(prop::sample::select(vec!['a', 'b', 'é', '*']), min..5)
            .prop_map(|cs| cs.into_iter().collect::<String>()),
    ]
}

fn binding_strategy() -> impl Strategy<Value = AclBinding> {
    let ops: Vec<AclOperation> = AclOperation::VALUES[2..].to_vec();
    (
        prop::sample::select(vec![Topic, Group]),
        name_strategy(1),
        prop::sample::select(vec![Literal, Prefixed]),
        prop::sample::select(PRINCIPALS),
        prop::sample::select(BINDING_HOSTS),
        prop::sample::select(ops),
        prop::sample::select(vec![Allow, Deny]),
    )
        .prop_map(|(rt, name, pt, principal, host, op, perm)| binding(rt, &name, pt, principal, host, op, perm))
}

/// An action: principal, client address, operation, resource type and name.
type Query<'a> = (&'a str, &'a str, AclOperation, ResourceType, String);

fn query_strategy() -> impl Strategy<Value = Query<'static>> {
    (
        prop::sample::select(PRINCIPALS),
        prop::sample::select(CLIENTS),
        prop::sample::select(AclOperation::VALUES.to_vec()),
        prop::sample::select(vec![Topic, Group]),
        name_strategy(0),
    )
}

/// Whether `b` applies to the action, ignoring its operation: the rules
/// spelled out once more, over every binding.
fn model_applies(b: &AclBinding, principal: &str, client: IpAddr, rt: ResourceType, name: &str) -> bool {
    let resource = b.resource_type == rt
        && match b.pattern_type {
            Literal => b.resource_name == name || b.resource_name == "*",
            Prefixed => name.starts_with(b.resource_name.as_str()),
            _ => false,
        };
    let host = b.host == "*"
        || b.host
            .parse::<IpAddr>()
            .is_ok_and(|h| h.to_canonical() == client.to_canonical());
    resource && (b.principal == principal || b.principal == "User:*") && host
}

fn model_covers(b: &AclBinding, op: AclOperation) -> bool {
    let implied = match op {
        Op::Describe => [Op::Read, Op::Write, Op::Delete, Op::Alter].contains(&b.operation),
        Op::DescribeConfigs => b.operation == Op::AlterConfigs,
        _ => false,
    };
    b.operation == Op::All || b.operation == op || (b.permission == Allow && implied)
}

/// Kafka's decision by a scan of every binding.
fn model_decide(all: &[AclBinding], q: &Query<'_>) -> Want {
    let (principal, client, op, rt, name) = q;
    let applying: Vec<&AclBinding> = all
        .iter()
        .filter(|b| model_applies(b, principal, ip(client), *rt, name) && model_covers(b, *op))
        .collect();
    if applying.iter().any(|b| b.permission == Deny) {
        Want::Denied
    } else if applying.iter().any(|b| b.permission == Allow) {
        Want::Allowed
    } else {
        Want::NoAcl
    }
}

/// `Authorizer.authorizeByResourceType`'s default, as written in Kafka.
fn model_by_type(all: &[AclBinding], principal: &str, client: &str, op: AclOperation, rt: ResourceType) -> bool {
    let hardcode = (principal, client, op, rt, "hardcode".to_owned());
    if model_decide(all, &hardcode) == Want::Allowed {
        return true;
    }
    let (mut deny_literal, mut deny_prefixed, mut allows) = (vec![], vec![], vec![]);
    let mut wildcard_allow = false;
    for b in all {
        let host_ok = b.host == "*"
            || b.host
                .parse::<IpAddr>()
                .is_ok_and(|h| h.to_canonical() == ip(client).to_canonical());
        if b.resource_type != rt
            || !host_ok
            || !(b.principal == principal || b.principal == "User:*")
            || !(b.operation == op || b.operation == Op::All)
        {
            continue;
        }
        match (b.permission, b.pattern_type) {
            (Deny, Literal) if b.resource_name == "*" => return false,
            (Deny, Literal) => deny_literal.push(b.resource_name.clone()),
            (Deny, _) => deny_prefixed.push(b.resource_name.clone()),
            (Allow, Literal) if b.resource_name == "*" => wildcard_allow = true,
            (Allow, pt) => allows.push((pt, b.resource_name.clone())),
            _ => {}
        }
    }
    wildcard_allow
        || allows.iter().any(|(pt, name)| {
            (*pt != Literal || !deny_literal.contains(name))
                && !deny_prefixed.iter().any(|d| name.starts_with(d.as_str()))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_index_decides_as_a_scan_of_every_binding(
        bindings in proptest::collection::vec(binding_strategy(), 0..40),
        queries in proptest::collection::vec(query_strategy(), 1..24),
    ) {
        let a = authorizer_with(AclConfig { super_users: Default::default(), ..enabled() }, &bindings);
        for q in &queries {
            let (principal, client, op, rt, name) = q;
            let d = a.authorize(principal, ip(client), *op, *rt, name);
            prop_assert_eq!(kind(&d), model_decide(&bindings, q), "{:?}: {}", q, d);
            if let Decision::AllowedBy(b) | Decision::DeniedBy(b) = &d {
                prop_assert!(model_applies(b, principal, ip(client), *rt, name) && model_covers(b, *op), "{}", b);
            }
            let bits = rt
                .operations()
                .iter()
                .filter(|op| model_decide(&bindings, &(*principal, *client, **op, *rt, name.clone())) == Want::Allowed)
                .fold(0, |bits, op| bits | 1 << op.code());
            prop_assert_eq!(a.authorized_operations(principal, ip(client), *rt, name), bits);
            prop_assert_eq!(
                a.authorize_by_resource_type(principal, ip(client), *op, *rt).is_allowed(),
                model_by_type(&bindings, principal, client, *op, *rt),
                "by type {:?}", q
            );
        }
    }
}
