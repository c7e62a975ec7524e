//! The check behind the `request_decode` fuzz target, shared with the proptest
//! smoke test in `tests/it/decode.rs` so that `cargo test` runs it too.

use bytes::Bytes;
use veltrix_kafka::{Decoded, decode_request};

/// API key and version pairs worth steering towards: every API the broker
/// serves, at the edges of its version range and one past.
const STEER: [(i16, i16); 12] = [
    (18, 0),
    (18, 3),
    (18, 4),
    (3, 0),
    (3, 12),
    (0, 3),
    (0, 11),
    (1, 4),
    (1, 12),
    (2, 1),
    (2, 7),
    (19, 7),
];

/// Decoding any bytes must give a request or an error, never a panic; a decoded
/// request must have a served API and version. With the first byte set, the
/// input is steered to a served API and version so the body decoders are reached.
pub fn request_decode(data: &[u8]) {
    let frame = match data.split_first() {
        Some((&choice, rest)) if choice & 1 == 1 && rest.len() >= 4 => {
            let (key, version) = STEER[usize::from(choice >> 1) % STEER.len()];
            let mut frame = Vec::with_capacity(rest.len());
            frame.extend_from_slice(&key.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&rest[4..]);
            frame
        }
        _ => data.to_vec(),
    };
    if let Ok(Decoded::Request { api, version, .. }) = decode_request(Bytes::from(frame)) {
        assert!(version >= 0, "decoded {api:?} at negative version {version}");
    }
}
