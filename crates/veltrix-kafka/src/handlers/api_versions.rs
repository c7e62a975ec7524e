//! ApiVersions: which APIs and versions this broker serves.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use super::SERVED_APIS;
use crate::errors::ResponseError;

pub(super) fn api_versions(error_code: i16) -> ApiVersionsResponse {
    api_versions_for(error_code, false)
}

/// The APIs served: on shared storage, without those it does not serve yet.
pub(super) fn api_versions_for(error_code: i16, shared: bool) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = SERVED_APIS
        .iter()
        .filter(|api| !shared || super::served_on_shared_storage_key(api.key))
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect();
    r
}

pub(crate) fn api_versions_unsupported() -> ResponseKind {
    ResponseKind::ApiVersions(api_versions(ResponseError::UnsupportedVersion.code()))
}
