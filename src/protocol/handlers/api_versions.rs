//! ApiVersions v0-v4. A request newer than v4 is answered by the connection with a v0
//! response carrying UNSUPPORTED_VERSION and the supported ranges (KIP-511), so the client
//! can retry with a version both sides know.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use kafka_protocol::ResponseError;

use crate::protocol::versions::SUPPORTED;

pub async fn handle(_req: ApiVersionsRequest) -> ResponseKind {
    ResponseKind::ApiVersions(response(0))
}

/// The advertised table; only non-default tagged fields are written by the codec.
pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub fn unsupported_version() -> ApiVersionsResponse {
    response(ResponseError::UnsupportedVersion.code())
}
