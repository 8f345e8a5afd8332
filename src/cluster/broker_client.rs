//! One Kafka request to another broker and its response, over a plain TCP connection
//! (or the simulated network's, see `sockets`): the inter-broker client that the replica
//! fetcher and the transaction marker sender share. Every length read off the wire is
//! bounded.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sockets::{Network, Stream};

#[derive(Debug, thiserror::Error)]
pub enum BrokerCallError {
    #[error("i/o with the other broker: {0}")]
    Io(#[from] std::io::Error),
    #[error("the other broker's answer is not valid: {0}")]
    Protocol(String),
    #[error("the other broker did not answer within {0:?}")]
    Timeout(Duration),
}

/// A connection to `address` (host:port) on `network`, with Nagle off, within `wait`.
pub async fn connect(
    network: &Network,
    address: &str,
    wait: Duration,
) -> Result<Stream, BrokerCallError> {
    let stream = tokio::time::timeout(wait, network.connect(address))
        .await
        .map_err(|_| BrokerCallError::Timeout(wait))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What one request needs besides its body.
#[derive(Debug, Clone, Copy)]
pub struct CallSpec {
    pub version: i16,
    pub correlation: i32,
    pub client_id: &'static str,
    /// The whole exchange's deadline.
    pub wait: Duration,
    /// The largest response accepted, in bytes.
    pub response_limit: usize,
}

/// Sends `req` on `stream` and reads its response, within `spec.wait`.
pub async fn call<R: Request>(
    stream: &mut Stream,
    spec: CallSpec,
    req: &R,
) -> Result<R::Response, BrokerCallError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(spec.version)
        .with_correlation_id(spec.correlation)
        .with_client_id(Some(StrBytes::from_static_str(spec.client_id)));
    let mut body = BytesMut::new();
    let encode = |e: anyhow::Error| BrokerCallError::Protocol(e.to_string());
    header
        .encode(&mut body, R::header_version(spec.version))
        .map_err(encode)?;
    req.encode(&mut body, spec.version).map_err(encode)?;
    let limit = spec.response_limit;
    let exchange = async {
        stream.write_all(&(body.len() as u32).to_be_bytes()).await?;
        stream.write_all(&body).await?;
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).await?;
        let length = i32::from_be_bytes(length);
        if length < 0 || length as usize > limit {
            return Err(BrokerCallError::Protocol(format!(
                "a response of {length} bytes is above the {limit} bytes allowed"
            )));
        }
        let mut buf = vec![0u8; length as usize];
        stream.read_exact(&mut buf).await?;
        Ok(Bytes::from(buf))
    };
    let mut buf = tokio::time::timeout(spec.wait, exchange)
        .await
        .map_err(|_| BrokerCallError::Timeout(spec.wait))??;
    let header_version = <R::Response as HeaderVersion>::header_version(spec.version);
    let header = ResponseHeader::decode(&mut buf, header_version).map_err(encode)?;
    if header.correlation_id != spec.correlation {
        return Err(BrokerCallError::Protocol(format!(
            "correlation id {} where {} was expected",
            header.correlation_id, spec.correlation
        )));
    }
    R::Response::decode(&mut buf, spec.version).map_err(encode)
}
