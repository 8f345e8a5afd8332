//! Request framing: `[length i32][api_key i16][api_version i16][correlation_id i32]...`.
//!
//! A length that is negative or above the configured maximum is refused before any
//! allocation, and the connection is closed; so is a frame too short to hold a header.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame could not be turned into a request. Each closes that one connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    NegativeLength(i32),
    #[error("frame length {length} is above the maximum of {max} bytes")]
    TooLarge { length: usize, max: usize },
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?}")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode a response: {0}")]
    Encode(String),
}

/// Checks a length prefix before anything is read or allocated for it.
pub fn check_length(length: i32, max: usize) -> Result<usize, FrameError> {
    if length < 0 {
        return Err(FrameError::NegativeLength(length));
    }
    let length = length as usize;
    if length > max {
        return Err(FrameError::TooLarge { length, max });
    }
    if length < 8 {
        return Err(FrameError::TooShort(length));
    }
    Ok(length)
}

/// The first fields of every request header, readable whatever the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

pub fn peek_prefix(frame: &[u8]) -> Result<HeaderPrefix, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let mut buf = &frame[..8];
    Ok(HeaderPrefix {
        api_key: buf.get_i16(),
        api_version: buf.get_i16(),
        correlation_id: buf.get_i32(),
    })
}

/// Decodes header and body of a request whose API and version the broker supports.
pub fn decode_request(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(RequestHeader, RequestKind), FrameError> {
    let malformed = |reason: String| FrameError::Malformed {
        api,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let request = RequestKind::decode(api, &mut frame, version)
        .map_err(|e| malformed(format!("body: {e}")))?;
    Ok((header, request))
}

/// Encodes a whole response frame, length prefix included.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0u8; 4]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let length = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_allocation() {
        assert!(matches!(
            check_length(-1, 1000),
            Err(FrameError::NegativeLength(-1))
        ));
        assert!(matches!(
            check_length(i32::MAX, 1000),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            check_length(3, 1000),
            Err(FrameError::TooShort(3))
        ));
        assert_eq!(check_length(100, 1000).unwrap(), 100);
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        assert!(peek_prefix(&[0, 18]).is_err());
        let garbage = Bytes::from_static(&[0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff]);
        assert!(decode_request(ApiKey::Metadata, 9, garbage).is_err());
    }
}
