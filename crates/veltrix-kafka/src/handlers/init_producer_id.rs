//! InitProducerId (v0 to v4): a fresh producer id for an idempotent producer.
//!
//! As in Kafka, a request without a transactional id always gets a new id with
//! epoch 0, even when it names its current id and epoch (v3+, KIP-360): that is
//! how a producer resets its sequence numbers after an error. A request with a
//! transactional id goes to the transaction coordinator: the id's producer id
//! with its epoch bumped (fencing the older producer, whose open transaction
//! is aborted first), the transaction timeout checked against
//! `transaction.max.timeout.ms`.
//!
//! Authorization is Kafka's: a transactional id needs WRITE on it
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer
//! IDEMPOTENT_WRITE on the cluster or, since Kafka 3.0 (KIP-679), WRITE on
//! some topic no DENY covers (CLUSTER_AUTHORIZATION_FAILED otherwise).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};

use super::Ctx;
use crate::errors::{ResponseError, core_error};

/// Whether an idempotent producer may have a producer id.
fn may_write_idempotently(ctx: &Ctx) -> bool {
    let who = ctx.who();
    let allowed = who.allowed_quietly(AclOperation::IdempotentWrite, ResourceType::Cluster, CLUSTER_NAME)
        || who.by_resource_type_quietly(AclOperation::Write, ResourceType::Topic);
    if !allowed {
        who.deny(AclOperation::IdempotentWrite, ResourceType::Cluster, CLUSTER_NAME);
    }
    allowed
}

pub(super) async fn init_producer_id(ctx: Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = &request.transactional_id {
        if !super::authz::allowed(&ctx, AclOperation::Write, ResourceType::TransactionalId, id.0.as_str()) {
            r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return r;
        }
        let id = id.0.to_string();
        let timeout_ms = request.transaction_timeout_ms;
        let expected = (ctx.version >= 3).then_some((request.producer_id.0, request.producer_epoch));
        let broker = ctx.broker.clone();
        let outcome =
            tokio::task::spawn_blocking(move || broker.init_transactional_producer(&id, timeout_ms, expected)).await;
        match outcome {
            Ok(Ok((pid, epoch))) => {
                r.producer_id = ProducerId(pid);
                r.producer_epoch = epoch;
            }
            Ok(Err(e)) => r.error_code = super::transactions::txn_error(&e, ctx.version, 4).code(),
            Err(_) => r.error_code = ResponseError::UnknownServerError.code(),
        }
        return r;
    }
    if !may_write_idempotently(&ctx) {
        r.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return r;
    }
    let broker = ctx.broker.clone();
    // The first id of each block is written durably: off the async workers.
    match tokio::task::spawn_blocking(move || broker.init_producer_id()).await {
        Ok(Ok(id)) => {
            r.producer_id = ProducerId(id);
            r.producer_epoch = 0;
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            r.error_code = core_error(&e).code();
        }
        Err(_) => r.error_code = ResponseError::UnknownServerError.code(),
    }
    r
}

/// InitProducerId on shared storage: an id from the metadata store's
/// counter, never handed out by any broker before, at epoch 0 (as a local
/// broker answers, also when a producer asks to bump its epoch).
/// Transactional ids are refused: transactions are not served there yet.
pub(super) async fn init_producer_id_shared(ctx: Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return r;
    }
    if !may_write_idempotently(&ctx) {
        r.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return r;
    }
    let shared = ctx.config.shared.as_ref().expect("shared storage");
    match shared.node().producer_id().await {
        Ok(id) => {
            r.producer_id = ProducerId(id);
            r.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "allocating a producer id from the metadata store failed");
            r.error_code = if e.is_retriable() {
                ResponseError::CoordinatorNotAvailable.code()
            } else {
                crate::errors::shared_error(&e).code()
            };
        }
    }
    r
}
