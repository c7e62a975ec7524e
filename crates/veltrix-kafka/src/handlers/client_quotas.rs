//! DescribeClientQuotas and AlterClientQuotas (v0, v1), as Kafka answers them
//! for the entity types `user` and `client-id` and the quotas
//! `producer_byte_rate` and `consumer_byte_rate`. Another entity type (`ip`)
//! or quota key (`request_percentage`, `controller_mutation_rate`,
//! `connection_creation_rate`) is INVALID_REQUEST with a message saying so,
//! never silently accepted. An entity name of null is the default.
//! Describing needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS
//! on it, as in Kafka (CLUSTER_AUTHORIZATION_FAILED: the request, or every
//! entry of an alteration).

use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntityData, EntryData as AlterEntryData,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::AclOperation;
use veltrix_core::quotas::{EntityName, QuotaEntity, QuotaKind, QuotaOp};

use super::Ctx;
use super::authz::CLUSTER_DENIED;
use crate::errors::ResponseError;

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";

/// Kafka's filter match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

fn name_of(n: &Option<StrBytes>) -> EntityName {
    match n {
        Some(s) => EntityName::Named(s.to_string()),
        None => EntityName::Default,
    }
}

fn str_of(n: &EntityName) -> Option<StrBytes> {
    match n {
        EntityName::Named(s) => Some(StrBytes::from_string(s.clone())),
        EntityName::Default => None,
    }
}

/// The entity of an alteration, or why it is none Veltrix has.
fn entity(parts: &[(String, Option<StrBytes>)]) -> Result<QuotaEntity, String> {
    let mut e = QuotaEntity {
        user: None,
        client_id: None,
    };
    for (kind, name) in parts {
        let slot = match kind.as_str() {
            USER => &mut e.user,
            CLIENT_ID => &mut e.client_id,
            "ip" => return Err("quotas on `ip` entities (connection creation rates) are not supported".into()),
            other => return Err(format!("unknown quota entity type `{other}`: `user` or `client-id`")),
        };
        if slot.is_some() {
            return Err(format!("the entity names `{kind}` twice"));
        }
        *slot = Some(name_of(name));
    }
    if e.user.is_none() && e.client_id.is_none() {
        return Err("the entity names neither a `user` nor a `client-id`".into());
    }
    Ok(e)
}

/// Every entry of an alteration refused: the principal may not alter
/// quotas.
fn alter_denied(request: &AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let entries = request
        .entries
        .iter()
        .map(|entry| {
            let mut answer = AlterEntryData::default();
            answer.error_code = ResponseError::ClusterAuthorizationFailed.code();
            answer.error_message = Some(StrBytes::from_static_str(CLUSTER_DENIED));
            answer.entity = entry
                .entity
                .iter()
                .map(|e| {
                    let mut d = AlterEntityData::default();
                    d.entity_type = e.entity_type.clone();
                    d.entity_name = e.entity_name.clone();
                    d
                })
                .collect();
            answer
        })
        .collect();
    let mut r = AlterClientQuotasResponse::default();
    r.entries = entries;
    r
}

pub(super) async fn alter_client_quotas(ctx: Ctx, request: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    if !ctx.who().on_cluster(AclOperation::AlterConfigs) {
        return alter_denied(&request);
    }
    // Each entry on its own: a bad one is answered with its error, the good
    // ones are stored together (an fsync, so off the connection's task).
    let mut answers: Vec<AlterEntryData> = Vec::with_capacity(request.entries.len());
    let mut changes = Vec::new();
    let mut slots = Vec::new();
    for entry in &request.entries {
        let parts: Vec<(String, Option<StrBytes>)> = entry
            .entity
            .iter()
            .map(|e| (e.entity_type.to_string(), e.entity_name.clone()))
            .collect();
        let mut answer = AlterEntryData::default();
        // Kafka answers a success with a null message.
        answer.error_message = None;
        answer.entity = entry
            .entity
            .iter()
            .map(|e| {
                let mut d = AlterEntityData::default();
                d.entity_type = e.entity_type.clone();
                d.entity_name = e.entity_name.clone();
                d
            })
            .collect();
        let ops: Result<Vec<QuotaOp>, String> = entry
            .ops
            .iter()
            .map(|op| match QuotaKind::from_key(&op.key) {
                Some(kind) => Ok(QuotaOp {
                    kind,
                    value: (!op.remove).then_some(op.value),
                }),
                None => Err(format!(
                    "quota `{}` is not supported: `producer_byte_rate` or `consumer_byte_rate`",
                    op.key.as_str()
                )),
            })
            .collect();
        match entity(&parts).and_then(|e| ops.map(|o| (e, o))) {
            Ok(change) => {
                slots.push(answers.len());
                changes.push(change);
            }
            Err(message) => {
                answer.error_code = ResponseError::InvalidRequest.code();
                answer.error_message = Some(StrBytes::from_string(message));
            }
        }
        answers.push(answer);
    }
    let broker = ctx.broker.clone();
    let validate_only = request.validate_only;
    let results = tokio::task::spawn_blocking(move || broker.quotas().alter(&changes, validate_only))
        .await
        .unwrap_or_default();
    for (slot, result) in slots.into_iter().zip(results) {
        if let Err(e) = result {
            let code = match e {
                veltrix_core::quotas::QuotaError::Store(_) => ResponseError::UnknownServerError,
                veltrix_core::quotas::QuotaError::TooMany { .. } => ResponseError::PolicyViolation,
                _ => ResponseError::InvalidRequest,
            };
            answers[slot].error_code = code.code();
            answers[slot].error_message = Some(StrBytes::from_string(e.to_string()));
        }
    }
    let mut r = AlterClientQuotasResponse::default();
    r.entries = answers;
    r
}

/// A filter component: its match type and name.
type Filter = (i8, Option<String>);

/// Whether `name` passes a filter component.
fn passes(name: Option<&EntityName>, match_type: i8, wanted: Option<&str>) -> bool {
    match (name, match_type) {
        (None, _) => false,
        (Some(n), MATCH_EXACT) => matches!(n, EntityName::Named(s) if Some(s.as_str()) == wanted),
        (Some(n), MATCH_DEFAULT) => *n == EntityName::Default,
        (Some(n), _) => matches!(n, EntityName::Named(_)),
    }
}

pub(super) fn describe_client_quotas(ctx: &Ctx, request: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let mut r = DescribeClientQuotasResponse::default();
    r.error_message = None;
    if !ctx.who().on_cluster(AclOperation::DescribeConfigs) {
        r.error_code = ResponseError::ClusterAuthorizationFailed.code();
        r.error_message = Some(StrBytes::from_static_str(CLUSTER_DENIED));
        r.entries = None;
        return r;
    }
    let fail = |mut r: DescribeClientQuotasResponse, message: String| {
        r.error_code = ResponseError::InvalidRequest.code();
        r.error_message = Some(StrBytes::from_string(message));
        r
    };
    let (mut user, mut client): (Option<Filter>, Option<Filter>) = (None, None);
    for c in &request.components {
        let slot = match c.entity_type.as_str() {
            USER => &mut user,
            CLIENT_ID => &mut client,
            other => return fail(r, format!("unknown quota entity type `{other}`: `user` or `client-id`")),
        };
        if slot.is_some() {
            return fail(r, format!("the filter names `{}` twice", c.entity_type.as_str()));
        }
        if !matches!(c.match_type, MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED) {
            return fail(r, format!("unknown match type {}", c.match_type));
        }
        if c.match_type == MATCH_EXACT && c._match.is_none() {
            return fail(r, "an exact match needs a name".into());
        }
        *slot = Some((c.match_type, c._match.as_ref().map(ToString::to_string)));
    }
    let entries = ctx
        .broker
        .quotas()
        .entities()
        .into_iter()
        .filter(|(e, _)| {
            let ok = |name: Option<&EntityName>, f: &Option<Filter>| match f {
                Some((t, m)) => passes(name, *t, m.as_deref()),
                // Strict: the entity has no component the filter leaves out.
                None => !request.strict || name.is_none(),
            };
            ok(e.user.as_ref(), &user) && ok(e.client_id.as_ref(), &client)
        })
        .map(|(e, values)| {
            let mut entry = EntryData::default();
            for (kind, name) in [(USER, &e.user), (CLIENT_ID, &e.client_id)] {
                if let Some(n) = name {
                    let mut d = EntityData::default();
                    d.entity_type = StrBytes::from_static_str(kind);
                    d.entity_name = str_of(n);
                    entry.entity.push(d);
                }
            }
            entry.values = values
                .into_iter()
                .map(|(k, v)| {
                    let mut d = ValueData::default();
                    d.key = StrBytes::from_static_str(k.key());
                    d.value = v;
                    d
                })
                .collect();
            entry
        })
        .collect();
    r.entries = Some(entries);
    r
}
