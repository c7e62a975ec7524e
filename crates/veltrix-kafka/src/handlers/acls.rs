//! The ACL APIs: CreateAcls, DescribeAcls and DeleteAcls (v1 to v3), as
//! Kafka's `AclApis` answers them. Creating and deleting need ALTER on the
//! cluster, describing DESCRIBE on it (CLUSTER_AUTHORIZATION_FAILED
//! otherwise); with authorization off the three answer SECURITY_DISABLED, as
//! Kafka without an authorizer does.
//!
//! Each binding and each filter is answered on its own: one Kafka refuses is
//! INVALID_REQUEST with Kafka's message, a binding past `acls_max` is
//! POLICY_VIOLATION, a failure to store the change UNKNOWN_SERVER_ERROR for
//! every one (nothing changed). A request of more than
//! [`ACL_CHANGES_MAX`] creations or filters is refused whole, each of them
//! INVALID_REQUEST. Changes are stored (fsynced) before they are answered,
//! on the blocking pool.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{
    AclBinding, AclBindingFilter, AclError, AclOperation, AclPermissionType, PatternType, ResourceType,
};

use super::Ctx;
use super::authz::CLUSTER_DENIED;
use crate::errors::{ResponseError, acl_error};

/// Creations, or deletion filters, one request may carry: Kafka's
/// controller refuses an ACL change of more records than this
/// (`MAX_RECORDS_PER_USER_OP`).
pub const ACL_CHANGES_MAX: usize = 10_000;

/// Kafka's message when no authorizer is configured.
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn too_many(n: usize, what: &str) -> String {
    format!("at most {ACL_CHANGES_MAX} {what} per request, this one has {n}")
}

/// Why a whole ACL request is refused before any binding is looked at:
/// authorization, then whether there is an authorizer.
fn refused(ctx: &Ctx, op: AclOperation) -> Option<(ResponseError, &'static str)> {
    if !ctx.who().on_cluster(op) {
        return Some((ResponseError::ClusterAuthorizationFailed, CLUSTER_DENIED));
    }
    if !ctx.broker.authorizer().enabled() {
        return Some((ResponseError::SecurityDisabled, NO_AUTHORIZER));
    }
    None
}

/// A binding as a creation describes it; codes Kafka does not define are
/// UNKNOWN, which [`AclBinding::validate`] refuses.
fn binding(c: &AclCreation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::from_code(c.resource_type).unwrap_or(ResourceType::Unknown),
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type).unwrap_or(PatternType::Unknown),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: AclOperation::from_code(c.operation).unwrap_or(AclOperation::Unknown),
        permission: AclPermissionType::from_code(c.permission_type).unwrap_or(AclPermissionType::Unknown),
    }
}

/// A filter from DescribeAcls' or DeleteAcls' fields.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(resource_type).unwrap_or(ResourceType::Unknown),
        resource_name: resource_name.as_ref().map(ToString::to_string),
        pattern_type: PatternType::from_code(pattern_type).unwrap_or(PatternType::Unknown),
        principal: principal.as_ref().map(ToString::to_string),
        host: host.as_ref().map(ToString::to_string),
        operation: AclOperation::from_code(operation).unwrap_or(AclOperation::Unknown),
        permission: AclPermissionType::from_code(permission).unwrap_or(AclPermissionType::Unknown),
    }
}

fn creation_result(outcome: Result<(), AclError>) -> AclCreationResult {
    match outcome {
        Ok(()) => AclCreationResult::default().with_error_message(None),
        Err(e) => AclCreationResult::default()
            .with_error_code(acl_error(&e).code())
            .with_error_message(Some(text(&e.to_string()))),
    }
}

pub(super) async fn create_acls(ctx: Ctx, r: CreateAclsRequest) -> CreateAclsResponse {
    let all_failed = |error: ResponseError, message: &str| {
        let result = AclCreationResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)));
        CreateAclsResponse::default().with_results(vec![result; r.creations.len()])
    };
    if let Some((error, message)) = refused(&ctx, AclOperation::Alter) {
        return all_failed(error, message);
    }
    if r.creations.len() > ACL_CHANGES_MAX {
        return all_failed(
            ResponseError::InvalidRequest,
            &too_many(r.creations.len(), "ACL creations"),
        );
    }
    let bindings: Vec<AclBinding> = r.creations.iter().map(binding).collect();
    let broker = ctx.broker.clone();
    let created = tokio::task::spawn_blocking(move || broker.authorizer().create(&bindings)).await;
    let Ok(outcomes) = created else {
        return all_failed(ResponseError::UnknownServerError, "creating the ACLs failed");
    };
    CreateAclsResponse::default().with_results(outcomes.into_iter().map(creation_result).collect())
}

pub(super) fn describe_acls(ctx: &Ctx, r: DescribeAclsRequest) -> DescribeAclsResponse {
    if let Some((error, message)) = refused(ctx, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)));
    }
    let f = filter(
        r.resource_type_filter,
        &r.resource_name_filter,
        r.pattern_type_filter,
        &r.principal_filter,
        &r.host_filter,
        r.operation,
        r.permission_type,
    );
    if let Err(e) = f.validate() {
        return DescribeAclsResponse::default()
            .with_error_code(acl_error(&e).code())
            .with_error_message(Some(text(&e.to_string())));
    }
    // One entry per resource pattern, its bindings in order.
    let mut resources: BTreeMap<(ResourceType, String, PatternType), Vec<AclDescription>> = BTreeMap::new();
    for b in ctx.broker.authorizer().describe(&f) {
        resources
            .entry((b.resource_type, b.resource_name, b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(StrBytes::from_string(b.principal))
                    .with_host(StrBytes::from_string(b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((rt, name, pattern), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(StrBytes::from_string(name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default()
        .with_error_message(None)
        .with_resources(resources)
}

fn matching(b: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_message(None)
        .with_resource_type(b.resource_type.code())
        .with_resource_name(StrBytes::from_string(b.resource_name))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(StrBytes::from_string(b.principal))
        .with_host(StrBytes::from_string(b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

fn delete_filter(f: &DeleteAclsFilter) -> AclBindingFilter {
    filter(
        f.resource_type_filter,
        &f.resource_name_filter,
        f.pattern_type_filter,
        &f.principal_filter,
        &f.host_filter,
        f.operation,
        f.permission_type,
    )
}

pub(super) async fn delete_acls(ctx: Ctx, r: DeleteAclsRequest) -> DeleteAclsResponse {
    let all_failed = |error: ResponseError, message: &str| {
        let result = DeleteAclsFilterResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)));
        DeleteAclsResponse::default().with_filter_results(vec![result; r.filters.len()])
    };
    if let Some((error, message)) = refused(&ctx, AclOperation::Alter) {
        return all_failed(error, message);
    }
    if r.filters.len() > ACL_CHANGES_MAX {
        return all_failed(ResponseError::InvalidRequest, &too_many(r.filters.len(), "ACL filters"));
    }
    let filters: Vec<AclBindingFilter> = r.filters.iter().map(delete_filter).collect();
    let broker = ctx.broker.clone();
    let deleted = tokio::task::spawn_blocking(move || broker.authorizer().delete(&filters)).await;
    let Ok(outcomes) = deleted else {
        return all_failed(ResponseError::UnknownServerError, "deleting the ACLs failed");
    };
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok(removed) => DeleteAclsFilterResult::default()
                .with_error_message(None)
                .with_matching_acls(removed.into_iter().map(matching).collect()),
            Err(e) => DeleteAclsFilterResult::default()
                .with_error_code(acl_error(&e).code())
                .with_error_message(Some(text(&e.to_string()))),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_kafka_does_not_define_are_unknown_and_refused() {
        let c = AclCreation::default()
            .with_resource_type(99)
            .with_resource_name(text("t"))
            .with_resource_pattern_type(3)
            .with_principal(text("User:a"))
            .with_host(text("*"))
            .with_operation(3)
            .with_permission_type(3);
        let b = binding(&c);
        assert_eq!(b.resource_type, ResourceType::Unknown);
        assert!(matches!(b.validate(), Err(AclError::Invalid(_))));
        let ok = binding(&c.with_resource_type(2));
        assert_eq!(ok.validate(), Ok(()));
        let f = filter(2, &None, 42, &None, &None, 1, 1);
        assert_eq!(f.pattern_type, PatternType::Unknown);
        assert!(f.validate().is_err());
    }
}
