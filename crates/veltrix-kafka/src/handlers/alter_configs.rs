//! IncrementalAlterConfigs (v0 and v1) and AlterConfigs (v0 to v2): changing a
//! topic's settings while it runs.
//!
//! IncrementalAlterConfigs sets (SET) or removes (DELETE, back to the broker's
//! default) individual settings; APPEND and SUBTRACT are for list settings, of
//! which topics here have none. AlterConfigs, the older API, replaces the topic's
//! whole set of settings: anything not given returns to the broker's default.
//!
//! A resource's changes apply all together or not at all: the new settings are
//! validated as a whole (a batch must still fit a segment, ...), written to the
//! catalogue, then given to every partition's log. `validate_only` stops after
//! the validation. Broker settings are static (the configuration file) and are
//! refused with a message saying so. A share group's settings (resource type
//! GROUP, as Kafka's admin client or librdkafka numbers it) are changed with
//! IncrementalAlterConfigs, SET or DELETE, on top of the broker's defaults.
//!
//! Authorization is Kafka's, per resource: ALTER_CONFIGS on the topic
//! (TOPIC_AUTHORIZATION_FAILED), the group (GROUP_AUTHORIZATION_FAILED), or
//! for the broker the cluster (CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use veltrix_core::TopicConfig;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use veltrix_core::share::settings::DEAD_LETTER_TOPIC_KEY;

use super::Ctx;
use super::authz::{CLUSTER_DENIED, GROUP_DENIED, TOPIC_DENIED};
use crate::errors::{self, Refusal, ResponseError};
use crate::topic_configs;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// A group, as Kafka's admin client names it (`ConfigResource.Type.GROUP`).
pub(super) const RESOURCE_GROUP: i8 = 32;
/// A group, as librdkafka's admin client names it (`RD_KAFKA_RESOURCE_GROUP`).
pub(super) const RESOURCE_GROUP_RDKAFKA: i8 = 3;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Whether `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) is allowed on a
/// configuration resource, as Kafka's `ConfigHelper` and `ControllerApis`
/// decide: on the topic, the group, or for the broker on the cluster; the
/// refusal they answer when not. A type without settings is left to the
/// handler to refuse.
pub(super) fn config_access(ctx: &Ctx, op: AclOperation, resource_type: i8, name: &str) -> Result<(), Refusal> {
    let (rt, name, error, message) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
            TOPIC_DENIED,
        ),
        RESOURCE_BROKER => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
            CLUSTER_DENIED,
        ),
        RESOURCE_GROUP | RESOURCE_GROUP_RDKAFKA => (
            ResourceType::Group,
            name,
            ResponseError::GroupAuthorizationFailed,
            GROUP_DENIED,
        ),
        _ => return Ok(()),
    };
    if ctx.who().allowed(op, rt, name) {
        Ok(())
    } else {
        Err(Refusal::new(error, message))
    }
}

/// Applies `change` to one resource.
fn alter_one(
    ctx: &Ctx,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    change: impl FnOnce(&mut TopicConfig) -> Result<(), String>,
) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => match &ctx.config.shared {
            // On shared storage the catalog's settings are the topic's: the
            // change is checked here, stored there, then applied here.
            Some(shared) => {
                let config = ctx
                    .broker
                    .alter_topic_config(name, true, change)
                    .map_err(|e| Refusal::core(&e))?;
                if validate_only {
                    return Ok(());
                }
                shared
                    .replace_topic_config_blocking(&ctx.broker, name, config)
                    .map_err(|e| e.refusal())
            }
            None => match ctx.broker.alter_topic_config(name, validate_only, change) {
                Ok(_) => Ok(()),
                Err(e) => Err(Refusal::core(&e)),
            },
        },
        RESOURCE_BROKER => Err(Refusal::new(
            ResponseError::InvalidConfig,
            "broker settings are static: change them in the broker's configuration and restart",
        )),
        other => Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("resource type {other} has no alterable settings"),
        )),
    }
}

/// Share-group settings: the operations (SET or DELETE) applied to the
/// group's own settings, validated as a whole, stored unless `validate_only`.
fn alter_group(ctx: &Ctx, group: &str, ops: &[AlterableConfig], validate_only: bool) -> Result<(), Refusal> {
    if ctx.broker.groups().list().iter().any(|g| g.group_id == group) {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("`{group}` is a consumer group; only share groups have settings here"),
        ));
    }
    let invalid = |message: String| Err(Refusal::new(ResponseError::InvalidConfig, message));
    let share = ctx.broker.share();
    let mut overrides = share.overrides(group);
    let mut seen: Vec<&str> = Vec::new();
    for op in ops {
        let key = op.name.as_str();
        if seen.contains(&key) {
            return invalid(format!("`{key}` is given twice"));
        }
        seen.push(key);
        overrides.retain(|(k, _)| k != key);
        match (op.config_operation, &op.value) {
            (OP_SET, Some(_)) if key == DEAD_LETTER_TOPIC_KEY && ctx.config.shared.is_some() => {
                return invalid(format!("`{key}`: shared storage does not serve dead letters yet"));
            }
            (OP_SET, Some(v)) => overrides.push((key.to_owned(), v.as_str().to_owned())),
            (OP_SET, None) => return invalid(format!("`{key}` is set to null")),
            (OP_DELETE, _) => {}
            (other, _) => return invalid(format!("config operation {other} does not apply to `{key}`")),
        }
    }
    if let Err(e) = veltrix_core::share::ShareGroupSettings::resolve(share.config().defaults, &overrides) {
        return invalid(e);
    }
    if validate_only {
        return Ok(());
    }
    share
        .set_settings(group, overrides)
        .map_err(|e| Refusal::new(errors::share_error(&e), e.to_string()))
}

fn incremental_blocking(ctx: &Ctx, request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let mut r = IncrementalAlterConfigsResponse::default();
    for resource in &request.resources {
        let change = |c: &mut TopicConfig| -> Result<(), String> {
            let mut seen: Vec<&str> = Vec::new();
            for op in &resource.configs {
                let key = op.name.as_str();
                if seen.contains(&key) {
                    return Err(format!("`{key}` is given twice"));
                }
                seen.push(key);
                match op.config_operation {
                    OP_SET => topic_configs::set(c, key, op.value.as_ref().map(|v| v.as_str()))?,
                    OP_DELETE => topic_configs::unset(c, key)?,
                    OP_APPEND | OP_SUBTRACT => topic_configs::append_or_subtract(
                        c,
                        key,
                        op.value.as_ref().map(|v| v.as_str()),
                        op.config_operation == OP_APPEND,
                    )?,
                    other => return Err(format!("unknown config operation {other} for `{key}`")),
                }
            }
            Ok(())
        };
        let name = resource.resource_name.as_str();
        let access = config_access(ctx, AclOperation::AlterConfigs, resource.resource_type, name);
        let outcome = access.and_then(|()| match resource.resource_type {
            RESOURCE_GROUP | RESOURCE_GROUP_RDKAFKA => alter_group(ctx, name, &resource.configs, request.validate_only),
            other => alter_one(ctx, other, name, request.validate_only, change),
        });
        let (code, message) = errors::code_and_message(outcome);
        r.responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    r
}

fn replace_blocking(ctx: &Ctx, request: AlterConfigsRequest) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let mut r = AlterConfigsResponse::default();
    for resource in &request.resources {
        let pairs = resource
            .configs
            .iter()
            .map(|c| (c.name.as_str(), c.value.as_ref().map(|v| v.as_str())));
        let change = |c: &mut TopicConfig| -> Result<(), String> {
            *c = topic_configs::from_pairs(pairs)?;
            Ok(())
        };
        let (resource_type, name) = (resource.resource_type, resource.resource_name.as_str());
        // As Kafka's AlterConfigs: topics and the broker are authorized;
        // any other type is refused for itself.
        let access = match resource_type {
            RESOURCE_TOPIC | RESOURCE_BROKER => config_access(ctx, AclOperation::AlterConfigs, resource_type, name),
            _ => Ok(()),
        };
        let outcome = access.and_then(|()| alter_one(ctx, resource_type, name, request.validate_only, change));
        let (code, message) = errors::code_and_message(outcome);
        r.responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    r
}

/// Runs on the blocking pool: a change fsyncs the catalogue.
pub(super) async fn incremental_alter_configs(
    ctx: Ctx,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    tokio::task::spawn_blocking(move || incremental_blocking(&ctx, request))
        .await
        .unwrap_or_default()
}

pub(super) async fn alter_configs(ctx: Ctx, request: AlterConfigsRequest) -> AlterConfigsResponse {
    tokio::task::spawn_blocking(move || replace_blocking(&ctx, request))
        .await
        .unwrap_or_default()
}
