//! DescribeCluster: the one broker, node 0, which is also the controller (v0 to
//! v2).
//!
//! This listener is a broker endpoint. From v1 a client may ask for controller
//! endpoints instead; as in Kafka, asking a broker for them is
//! MISMATCHED_ENDPOINT_TYPE and an endpoint type that does not exist is
//! UNSUPPORTED_ENDPOINT_TYPE. The broker is never fenced, so v2's
//! `include_fenced_brokers` changes nothing. As in Kafka, no ACL is needed
//! to describe the cluster; its authorized operations need DESCRIBE on it.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};

use super::{Ctx, operations};
use crate::errors::ResponseError;

/// Kafka's endpoint types.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

pub(super) fn describe_cluster(ctx: &Ctx, request: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut r = DescribeClusterResponse::default();
    // Before v1 the request has no endpoint type and the codec reads it as 1.
    match request.endpoint_type {
        ENDPOINT_BROKER => {}
        ENDPOINT_CONTROLLER => {
            r.error_code = ResponseError::MismatchedEndpointType.code();
            r.error_message = Some(StrBytes::from_static_str(
                "this is a broker endpoint; controller endpoints are not exposed",
            ));
            return r;
        }
        other => {
            r.error_code = ResponseError::UnsupportedEndpointType.code();
            r.error_message = Some(StrBytes::from_string(format!("unsupported endpoint type {other}")));
            return r;
        }
    }
    // This broker, or on shared storage the live brokers, as Metadata.
    r.brokers = super::metadata::brokers(ctx)
        .into_iter()
        .map(|b| {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = b.node_id;
            broker.host = b.host;
            broker.port = b.port;
            broker
        })
        .collect();
    r.cluster_id = StrBytes::from_static_str("veltrix");
    r.controller_id = r.brokers.first().map_or(BrokerId(0), |b| b.broker_id);
    r.error_message = None;
    // As Kafka's `AuthHelper.computeDescribeClusterResponse`: the brokers for
    // anyone; the authorized operations need DESCRIBE on the cluster (0
    // without).
    if request.include_cluster_authorized_operations {
        r.cluster_authorized_operations = if ctx.who().on_cluster(AclOperation::Describe) {
            operations::answered(ctx, true, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    } else {
        r.cluster_authorized_operations = operations::NOT_ASKED;
    }
    r
}
