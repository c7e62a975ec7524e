//! Security administration: ACLs (CreateAcls, DescribeAcls, DeleteAcls) and
//! SCRAM credentials (DescribeUserScramCredentials,
//! AlterUserScramCredentials). Plain data with Kafka's codes (resource types,
//! pattern types, operations, permissions, mechanisms); naming them is the
//! caller's business.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::Client;
use crate::error::{ClientError, KafkaError, check};

/// An ACL, as Kafka's AclBinding, with Kafka's codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// Which ACLs: `None` fields match any value; codes `1` (ANY) likewise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

/// A user's SCRAM credentials as the broker describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: String,
    /// Mechanism code (1: SCRAM-SHA-256, 2: SCRAM-SHA-512) and iterations.
    pub credentials: Vec<(i8, i32)>,
}

/// A credential to set: what AlterUserScramCredentials carries (never the
/// password itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUpsert {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn owned(s: &StrBytes) -> String {
    s.as_str().to_owned()
}

impl Client {
    /// Creates ACLs; one result per ACL, in order.
    pub async fn create_acls(&mut self, acls: &[Acl]) -> Result<Vec<Option<KafkaError>>, ClientError> {
        let version = self.connection.version(ApiKey::CreateAcls)?;
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type)
                    .with_resource_name(text(&a.resource_name))
                    .with_resource_pattern_type(a.pattern_type)
                    .with_principal(text(&a.principal))
                    .with_host(text(&a.host))
                    .with_operation(a.operation)
                    .with_permission_type(a.permission)
            })
            .collect();
        let response = self
            .connection
            .call(&CreateAclsRequest::default().with_creations(creations), version)
            .await?;
        Ok(response
            .results
            .iter()
            .map(|r| KafkaError::from_code(r.error_code, r.error_message.as_ref().map(owned)))
            .collect())
    }

    /// The ACLs `filter` matches.
    pub async fn describe_acls(&mut self, filter: &AclFilter) -> Result<Vec<Acl>, ClientError> {
        let version = self.connection.version(ApiKey::DescribeAcls)?;
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type)
            .with_resource_name_filter(filter.resource_name.as_deref().map(text))
            .with_pattern_type_filter(filter.pattern_type)
            .with_principal_filter(filter.principal.as_deref().map(text))
            .with_host_filter(filter.host.as_deref().map(text))
            .with_operation(filter.operation)
            .with_permission_type(filter.permission);
        let response = self.connection.call(&request, version).await?;
        check(response.error_code, response.error_message.as_ref().map(owned), || {
            "describing ACLs".to_owned()
        })?;
        let mut acls = Vec::new();
        for r in &response.resources {
            for a in &r.acls {
                acls.push(Acl {
                    resource_type: r.resource_type,
                    resource_name: owned(&r.resource_name),
                    pattern_type: r.pattern_type,
                    principal: owned(&a.principal),
                    host: owned(&a.host),
                    operation: a.operation,
                    permission: a.permission_type,
                });
            }
        }
        Ok(acls)
    }

    /// Deletes the ACLs each filter matches; what each removed.
    pub async fn delete_acls(&mut self, filters: &[AclFilter]) -> Result<Vec<Vec<Acl>>, ClientError> {
        let version = self.connection.version(ApiKey::DeleteAcls)?;
        let request = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type)
                        .with_resource_name_filter(f.resource_name.as_deref().map(text))
                        .with_pattern_type_filter(f.pattern_type)
                        .with_principal_filter(f.principal.as_deref().map(text))
                        .with_host_filter(f.host.as_deref().map(text))
                        .with_operation(f.operation)
                        .with_permission_type(f.permission)
                })
                .collect(),
        );
        let response = self.connection.call(&request, version).await?;
        let mut removed = Vec::new();
        for r in &response.filter_results {
            check(r.error_code, r.error_message.as_ref().map(owned), || {
                "deleting ACLs".to_owned()
            })?;
            removed.push(
                r.matching_acls
                    .iter()
                    .map(|m| Acl {
                        resource_type: m.resource_type,
                        resource_name: owned(&m.resource_name),
                        pattern_type: m.pattern_type,
                        principal: owned(&m.principal),
                        host: owned(&m.host),
                        operation: m.operation,
                        permission: m.permission_type,
                    })
                    .collect(),
            );
        }
        Ok(removed)
    }

    /// The SCRAM credentials of `users` (all users when `None`).
    pub async fn describe_user_credentials(
        &mut self,
        users: Option<&[&str]>,
    ) -> Result<Vec<UserCredentials>, ClientError> {
        let version = self.connection.version(ApiKey::DescribeUserScramCredentials)?;
        let request = DescribeUserScramCredentialsRequest::default()
            .with_users(users.map(|u| u.iter().map(|n| UserName::default().with_name(text(n))).collect()));
        let response = self.connection.call(&request, version).await?;
        check(response.error_code, response.error_message.as_ref().map(owned), || {
            "describing users".to_owned()
        })?;
        response
            .results
            .iter()
            .map(|r| {
                let user = owned(&r.user);
                check(r.error_code, r.error_message.as_ref().map(owned), || {
                    format!("user `{user}`")
                })?;
                Ok(UserCredentials {
                    credentials: r.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect(),
                    user,
                })
            })
            .collect()
    }

    /// Sets and deletes SCRAM credentials; one result per user named.
    pub async fn alter_user_credentials(
        &mut self,
        upserts: &[ScramUpsert],
        deletions: &[(String, i8)],
    ) -> Result<Vec<(String, Option<KafkaError>)>, ClientError> {
        let version = self.connection.version(ApiKey::AlterUserScramCredentials)?;
        let request = AlterUserScramCredentialsRequest::default()
            .with_upsertions(
                upserts
                    .iter()
                    .map(|u| {
                        ScramCredentialUpsertion::default()
                            .with_name(text(&u.user))
                            .with_mechanism(u.mechanism)
                            .with_iterations(u.iterations)
                            .with_salt(Bytes::from(u.salt.clone()))
                            .with_salted_password(Bytes::from(u.salted_password.clone()))
                    })
                    .collect(),
            )
            .with_deletions(
                deletions
                    .iter()
                    .map(|(user, mechanism)| {
                        ScramCredentialDeletion::default()
                            .with_name(text(user))
                            .with_mechanism(*mechanism)
                    })
                    .collect(),
            );
        let response = self.connection.call(&request, version).await?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                (
                    owned(&r.user),
                    KafkaError::from_code(r.error_code, r.error_message.as_ref().map(owned)),
                )
            })
            .collect())
    }
}
