//! Cases of the APIs without an ACL (ApiVersions, SASL) and of the ACL and
//! SCRAM administration APIs.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiVersionsRequest, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest, DescribeUserScramCredentialsRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use veltrix_core::auth::ScramMechanism;

use super::*;

const ILLEGAL_SASL_STATE: i16 = 34;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

pub(super) async fn api_versions(m: &mut Matrix) {
    let r = m.alice.call(ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, NONE);
}

/// A PLAINTEXT listener has no SASL: the answer says so, not an ACL.
pub(super) async fn sasl_handshake(m: &mut Matrix) {
    let mut c = m.alice_again().await;
    let r = c
        .call(SaslHandshakeRequest::default().with_mechanism(text("PLAIN")), 1)
        .await;
    assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
}

pub(super) async fn sasl_authenticate(m: &mut Matrix) {
    let mut c = m.alice_again().await;
    let r = c
        .call(SaslAuthenticateRequest::default().with_auth_bytes(zeros(4)), 2)
        .await;
    assert_eq!(r.error_code, ILLEGAL_SASL_STATE);
}

/// A creation of an ACL for `principal` to READ `topic`.
fn creation(principal: &str, resource_type: i8, name: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_resource_pattern_type(PatternType::Literal.code())
        .with_principal(text(principal))
        .with_host(text("*"))
        .with_operation(Op::Read.code())
        .with_permission_type(AclPermissionType::Allow.code())
}

fn bob_filter() -> AclBindingFilter {
    AclBindingFilter {
        principal: Some("User:bob".to_owned()),
        ..AclBindingFilter::ANY
    }
}

pub(super) async fn describe_acls(m: &mut Matrix) {
    let all = DescribeAclsRequest::default()
        .with_resource_type_filter(Rt::Any.code())
        .with_resource_name_filter(None)
        .with_pattern_type_filter(PatternType::Any.code())
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(Op::Any.code())
        .with_permission_type(AclPermissionType::Any.code());
    let r = m.alice.call(all.clone(), 3).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert!(r.resources.is_empty());
    m.allow_cluster(Op::Describe);
    m.allow(Op::Read, Rt::Topic, "da-t");
    let r = m.alice.call(all.clone(), 3).await;
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    let mut described: Vec<(i8, String, i8)> = r
        .resources
        .iter()
        .flat_map(|res| {
            res.acls
                .iter()
                .map(move |a| (res.resource_type, res.resource_name.to_string(), a.operation))
        })
        .collect();
    described.sort();
    assert_eq!(
        described,
        vec![
            (Rt::Topic.code(), "da-t".to_owned(), Op::Read.code()),
            (Rt::Cluster.code(), "kafka-cluster".to_owned(), Op::Describe.code()),
        ]
    );
    // A filter with a code Kafka does not define.
    let r = m.alice.call(all.with_operation(99), 3).await;
    assert_eq!(r.error_code, INVALID_REQUEST);
}

pub(super) async fn create_acls(m: &mut Matrix) {
    let request = CreateAclsRequest::default().with_creations(vec![creation("User:bob", Rt::Topic.code(), "ca-t")]);
    let r = m.alice.call(request.clone(), 3).await;
    assert_eq!(r.results[0].error_code, CLUSTER_DENIED);
    assert!(m.broker.authorizer().describe(&bob_filter()).is_empty());
    m.allow_cluster(Op::Alter);
    let r = m.alice.call(request, 3).await;
    assert_eq!(r.results[0].error_code, NONE, "{:?}", r.results[0].error_message);
    assert_eq!(m.broker.authorizer().describe(&bob_filter()).len(), 1);
    // Each binding on its own: a bad type, the cluster under another name.
    let r = m
        .alice
        .call(
            CreateAclsRequest::default().with_creations(vec![
                creation("User:bob", 99, "x"),
                creation("User:bob", Rt::Cluster.code(), "other"),
                creation("User:bob", Rt::Group.code(), "ca-g"),
            ]),
            3,
        )
        .await;
    let codes: Vec<i16> = r.results.iter().map(|c| c.error_code).collect();
    assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST, NONE]);
    assert!(r.results[1].error_message.as_ref().unwrap().contains("kafka-cluster"));
    // Past 10,000 creations the request is refused whole.
    let many: Vec<AclCreation> = (0..10_001)
        .map(|i| creation("User:bob", Rt::Topic.code(), &format!("many-{i}")))
        .collect();
    let r = m.alice.call(CreateAclsRequest::default().with_creations(many), 3).await;
    assert_eq!(r.results.len(), 10_001);
    assert!(r.results.iter().all(|c| c.error_code == INVALID_REQUEST));
    assert_eq!(m.broker.authorizer().describe(&bob_filter()).len(), 2);
}

pub(super) async fn delete_acls(m: &mut Matrix) {
    m.broker.authorizer().create(&[AclBinding {
        principal: "User:bob".to_owned(),
        ..binding(
            AclPermissionType::Allow,
            Op::Read,
            Rt::Topic,
            "dla-t",
            PatternType::Literal,
        )
    }]);
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(Rt::Any.code())
        .with_resource_name_filter(None)
        .with_pattern_type_filter(PatternType::Any.code())
        .with_principal_filter(Some(text("User:bob")))
        .with_host_filter(None)
        .with_operation(Op::Any.code())
        .with_permission_type(AclPermissionType::Any.code());
    let request = DeleteAclsRequest::default().with_filters(vec![filter]);
    let r = m.alice.call(request.clone(), 3).await;
    assert_eq!(r.filter_results[0].error_code, CLUSTER_DENIED);
    assert_eq!(m.broker.authorizer().describe(&bob_filter()).len(), 1);
    m.allow_cluster(Op::Alter);
    let r = m.alice.call(request, 3).await;
    let result = &r.filter_results[0];
    assert_eq!(result.error_code, NONE, "{:?}", result.error_message);
    assert_eq!(result.matching_acls.len(), 1);
    assert_eq!(result.matching_acls[0].resource_name.as_str(), "dla-t");
    assert!(m.broker.authorizer().describe(&bob_filter()).is_empty());
}

fn upsertion(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(text(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt-of-the-earth"))
        .with_salted_password(zeros(
            ScramMechanism::from_code(mechanism).map_or(32, |m| m.key_bytes()),
        ))
}

fn deletion(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(text(user))
        .with_mechanism(mechanism)
}

fn codes(r: &AlterUserScramCredentialsResponse) -> Vec<(String, i16)> {
    let mut out: Vec<(String, i16)> = r.results.iter().map(|u| (u.user.to_string(), u.error_code)).collect();
    out.sort();
    out
}

pub(super) async fn describe_scram(m: &mut Matrix) {
    let sha256 = ScramMechanism::Sha256.code();
    let r = m
        .admin
        .call(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion("carol", sha256, 4096)]),
            0,
        )
        .await;
    assert_eq!(codes(&r), vec![("carol".to_owned(), NONE)]);
    let named = |users: &[&str]| {
        DescribeUserScramCredentialsRequest::default().with_users(Some(
            users.iter().map(|u| UserName::default().with_name(text(u))).collect(),
        ))
    };
    let r = m.alice.call(named(&["carol"]), 0).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert!(r.results.is_empty());
    m.allow_cluster(Op::Describe);
    let r = m.alice.call(named(&["carol", "nobody", "dave", "dave"]), 0).await;
    assert_eq!(r.error_code, NONE);
    /// A user's name, error, and (mechanism, iterations) of its credentials.
    type Described = (String, i16, Vec<(i8, i32)>);
    let answers: Vec<Described> = r
        .results
        .iter()
        .map(|u| {
            let infos = u.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect();
            (u.user.to_string(), u.error_code, infos)
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            ("carol".to_owned(), NONE, vec![(sha256, 4096)]),
            ("nobody".to_owned(), RESOURCE_NOT_FOUND, vec![]),
            ("dave".to_owned(), DUPLICATE_RESOURCE, vec![]),
        ]
    );
    // No user named: every user with credentials.
    let r = m
        .alice
        .call(DescribeUserScramCredentialsRequest::default().with_users(None), 0)
        .await;
    let users: Vec<String> = r.results.iter().map(|u| u.user.to_string()).collect();
    assert_eq!(users, vec!["carol".to_owned()]);
}

pub(super) async fn alter_scram(m: &mut Matrix) {
    let (sha256, sha512) = (ScramMechanism::Sha256.code(), ScramMechanism::Sha512.code());
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![upsertion("erin", sha512, 8192)])
        .with_deletions(vec![deletion("frank", sha256)]);
    let r = m.alice.call(request, 0).await;
    assert_eq!(
        codes(&r),
        vec![
            ("erin".to_owned(), CLUSTER_DENIED),
            ("frank".to_owned(), CLUSTER_DENIED)
        ]
    );
    assert!(m.broker.credentials().get("erin", ScramMechanism::Sha512).is_none());
    m.allow_cluster(Op::Alter);
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![
            upsertion("erin", sha512, 8192),
            upsertion("gus", 9, 8192),
            upsertion("hal", sha256, 100),
            // Both mechanisms of one user: one change each, both made.
            upsertion("ivy", sha256, 4096),
            upsertion("ivy", sha512, 4096),
            // One credential twice: the user is refused.
            upsertion("jo", sha256, 4096),
            upsertion("jo", sha256, 8192),
        ])
        .with_deletions(vec![deletion("frank", sha256)]);
    let r = m.alice.call(request, 0).await;
    assert_eq!(
        codes(&r),
        vec![
            ("erin".to_owned(), NONE),
            ("frank".to_owned(), RESOURCE_NOT_FOUND),
            ("gus".to_owned(), UNSUPPORTED_SASL_MECHANISM),
            ("hal".to_owned(), UNACCEPTABLE_CREDENTIAL),
            ("ivy".to_owned(), NONE),
            ("jo".to_owned(), DUPLICATE_RESOURCE),
        ]
    );
    let credentials = m.broker.credentials();
    assert_eq!(
        credentials.get("erin", ScramMechanism::Sha512).map(|c| c.iterations()),
        Some(8192)
    );
    assert!(credentials.get("ivy", ScramMechanism::Sha256).is_some());
    assert!(credentials.get("ivy", ScramMechanism::Sha512).is_some());
    assert!(credentials.get("jo", ScramMechanism::Sha256).is_none());
    let r = m
        .alice
        .call(
            AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion("erin", sha512)]),
            0,
        )
        .await;
    assert_eq!(codes(&r), vec![("erin".to_owned(), NONE)]);
    assert!(m.broker.credentials().get("erin", ScramMechanism::Sha512).is_none());
}

/// With authorization off the ACL APIs answer SECURITY_DISABLED, as Kafka
/// without an authorizer; the SCRAM APIs are served.
pub(super) async fn security_disabled(m: &mut Matrix) {
    let r = m.alice.call(DescribeAclsRequest::default(), 3).await;
    assert_eq!(r.error_code, SECURITY_DISABLED);
    let r = m
        .alice
        .call(
            CreateAclsRequest::default().with_creations(vec![creation("User:bob", Rt::Topic.code(), "t")]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, SECURITY_DISABLED);
    let r = m
        .alice
        .call(
            DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()]),
            3,
        )
        .await;
    assert_eq!(r.filter_results[0].error_code, SECURITY_DISABLED);
    assert!(m.broker.authorizer().is_empty());
    let r = m
        .alice
        .call(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion(
                "kim",
                ScramMechanism::Sha256.code(),
                4096,
            )]),
            0,
        )
        .await;
    assert_eq!(codes(&r), vec![("kim".to_owned(), NONE)]);
}
