//! InitProducerId (v0 to v4): a fresh producer id for an idempotent producer.
//!
//! As in Kafka, a request without a transactional id always gets a new id with
//! epoch 0, even when it names its current id and epoch (v3+, KIP-360): that is
//! how a producer resets its sequence numbers after an error. Transactions are not
//! supported yet: a transactional id is refused with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED (final for clients, see
//! `group_admin.rs`) and a log line, so a transactional producer fails at once.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;
use crate::errors::{ResponseError, core_error};

pub(super) async fn init_producer_id(ctx: Ctx, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(id) = &request.transactional_id {
        if let Some(suppressed) = ctx.limiter.allow("transactional_producer", Some(ctx.peer.ip())) {
            tracing::warn!(transactional_id = %id.0.as_str(), suppressed, "transactional producer refused: transactions are not supported");
        }
        r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
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
