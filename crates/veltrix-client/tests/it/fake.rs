//! A scripted fake broker on an ephemeral port of 127.0.0.1: each request
//! (header and body) is answered as a script says, so a test sees exactly
//! what the client sent and controls exactly what it reads back.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Encodable, decode_request_header_from_buffer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the fake broker does with one request.
pub enum Answer {
    /// Send this body after a response header of this version.
    Body { header_version: i16, body: Bytes },
    /// Send these raw bytes.
    Raw(Vec<u8>),
    /// Never answer.
    Silence,
}

/// A broker that answers each request by its header alone.
pub async fn fake_broker(script: impl Fn(&RequestHeader) -> Answer + Send + Sync + 'static) -> String {
    fake_broker_with_bodies(move |h, _| script(h)).await
}

/// A broker that answers each request with `script`, given its header and
/// the body after it.
pub async fn fake_broker_with_bodies(
    script: impl Fn(&RequestHeader, Bytes) -> Answer + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let script = script.clone();
            tokio::spawn(serve(stream, script));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, script: Arc<impl Fn(&RequestHeader, Bytes) -> Answer>) {
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = Bytes::from(body);
        let header = decode_request_header_from_buffer(&mut body).unwrap();
        let frame = match script(&header, body) {
            Answer::Body { header_version, body } => {
                let mut out = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(header.correlation_id)
                    .encode(&mut out, header_version)
                    .unwrap();
                out.extend_from_slice(&body);
                let mut frame = BytesMut::new();
                frame.put_i32(out.len() as i32);
                frame.extend_from_slice(&out);
                frame.to_vec()
            }
            Answer::Raw(bytes) => bytes,
            Answer::Silence => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

/// An ApiVersions answer serving `served`, encoded at `version`.
pub fn api_versions(error_code: i16, served: &[(ApiKey, i16, i16)], version: i16) -> Answer {
    let response = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            served
                .iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        );
    let mut body = BytesMut::new();
    response.encode(&mut body, version).unwrap();
    Answer::Body {
        header_version: 0,
        body: body.freeze(),
    }
}
