//! The bytes a consumer group carries for its members under the `consumer`
//! protocol type: each member's subscription (its JoinGroup metadata) and the
//! partitions the leader assigned it (its SyncGroup assignment), as
//! DescribeGroups returns them.
//!
//! Both are a big-endian `int16` version followed by the body at that version
//! (Kafka's `ConsumerProtocolSubscription` and `ConsumerProtocolAssignment`,
//! v0 to v3), decoded by `kafka-protocol`. As in Kafka's own
//! `ConsumerProtocol`, a version newer than the newest known is read as the
//! newest (later versions only append fields) and bytes after the body are
//! ignored; an empty assignment is a member that has none yet.
//!
//! The codec sizes arrays from the counts it reads before reading their items,
//! so every count is first checked against the bytes left ([`Walk`]): a count of
//! two billion in a few bytes is refused rather than allocated for.

use bytes::Bytes;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName};
use kafka_protocol::protocol::{Decodable, Message};

use crate::error::ClientError;

/// The protocol type of groups of Kafka consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    /// In the order the bytes list them.
    pub partitions: Vec<i32>,
}

impl TopicPartitions {
    /// One topic's entry of a decoded message; each message the codec
    /// generates has a type of its own for it.
    pub(crate) fn of(topic: &TopicName, partitions: &[i32]) -> TopicPartitions {
        TopicPartitions {
            topic: topic.0.as_str().to_owned(),
            partitions: partitions.to_vec(),
        }
    }
}

/// What a consumer group member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSubscription {
    /// The version the bytes were written at.
    pub version: i16,
    pub topics: Vec<String>,
    /// The partitions the member owned when it joined (v1 on; cooperative
    /// rebalancing).
    pub owned_partitions: Vec<TopicPartitions>,
    /// The generation of those partitions (v2 on), `None` when absent or -1.
    pub generation: Option<i32>,
    /// The member's rack (v3 on).
    pub rack: Option<String>,
    /// Length of the assignor's opaque user data, if any.
    pub user_data_bytes: Option<usize>,
}

/// The partitions a consumer group member was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAssignment {
    /// The version the bytes were written at; `None` for an empty assignment.
    pub version: Option<i16>,
    pub partitions: Vec<TopicPartitions>,
    /// Length of the assignor's opaque user data, if any.
    pub user_data_bytes: Option<usize>,
}

fn invalid(what: &'static str, message: impl Into<String>) -> ClientError {
    ClientError::ConsumerProtocol {
        what,
        message: message.into(),
    }
}

/// A cursor over the bytes that checks structure and counts, without
/// allocating. Each `Err` is a short reason.
struct Walk<'a> {
    rest: &'a [u8],
}

impl Walk<'_> {
    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.rest.len() {
            return Err(format!("{n} bytes needed, {} left", self.rest.len()));
        }
        self.rest = &self.rest[n..];
        Ok(())
    }

    fn int16(&mut self) -> Result<i16, String> {
        let b = self.rest.get(..2).ok_or("truncated int16")?;
        let v = i16::from_be_bytes([b[0], b[1]]);
        self.skip(2)?;
        Ok(v)
    }

    fn int32(&mut self) -> Result<i32, String> {
        let b = self.rest.get(..4).ok_or("truncated int32")?;
        let v = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.skip(4)?;
        Ok(v)
    }

    /// A string: `int16` length and the bytes; a negative length is null.
    fn string(&mut self) -> Result<(), String> {
        let len = self.int16()?;
        self.skip(usize::try_from(len).unwrap_or(0))
    }

    /// Bytes: `int32` length and the bytes; a negative length is null.
    fn bytes(&mut self) -> Result<(), String> {
        let len = self.int32()?;
        self.skip(usize::try_from(len).unwrap_or(0))
    }

    /// An array: `int32` count, then `item` that many times. Every item takes
    /// at least `item_bytes_min` bytes, so a count the bytes left cannot hold is
    /// refused before any item is read. A negative count is null.
    fn array(
        &mut self,
        item_bytes_min: usize,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        let count = usize::try_from(self.int32()?).unwrap_or(0);
        if count > self.rest.len() / item_bytes_min {
            return Err(format!("an array of {count} items in {} bytes", self.rest.len()));
        }
        for _ in 0..count {
            item(self)?;
        }
        Ok(())
    }

    /// A topic and its partitions: `string`, `[int32]`.
    fn topic_partitions(&mut self) -> Result<(), String> {
        self.string()?;
        self.array(4, |w| w.int32().map(drop))
    }
}

/// The version the bytes declare, and the version to read the body at: the
/// declared one, or the newest known for a newer one.
fn read_version<M: Message>(what: &'static str, bytes: &[u8]) -> Result<(i16, i16), ClientError> {
    let version = Walk { rest: bytes }.int16().map_err(|e| invalid(what, e))?;
    if version < M::VERSIONS.min {
        return Err(invalid(what, format!("version {version} does not exist")));
    }
    Ok((version, version.min(M::VERSIONS.max)))
}

/// Decodes a member's subscription (its JoinGroup metadata).
pub fn decode_subscription(bytes: &[u8]) -> Result<ConsumerSubscription, ClientError> {
    const WHAT: &str = "subscription";
    let (version, read_at) = read_version::<ConsumerProtocolSubscription>(WHAT, bytes)?;
    let body = &bytes[2..];
    let mut walk = Walk { rest: body };
    let checked = (|| {
        walk.array(2, Walk::string)?;
        walk.bytes()?;
        if read_at >= 1 {
            walk.array(6, Walk::topic_partitions)?;
        }
        if read_at >= 2 {
            walk.int32()?;
        }
        if read_at >= 3 {
            walk.string()?;
        }
        Ok::<(), String>(())
    })();
    checked.map_err(|e| invalid(WHAT, e))?;
    let s = ConsumerProtocolSubscription::decode(&mut Bytes::copy_from_slice(body), read_at)
        .map_err(|e| invalid(WHAT, e.to_string()))?;
    Ok(ConsumerSubscription {
        version,
        topics: s.topics.iter().map(|t| t.as_str().to_owned()).collect(),
        owned_partitions: s
            .owned_partitions
            .iter()
            .map(|tp| TopicPartitions::of(&tp.topic, &tp.partitions))
            .collect(),
        generation: (s.generation_id >= 0).then_some(s.generation_id),
        rack: s.rack_id.map(|r| r.as_str().to_owned()),
        user_data_bytes: s.user_data.map(|d| d.len()),
    })
}

/// Decodes a member's assignment (what SyncGroup gave it). No bytes at all is
/// no assignment yet, as during a rebalance.
pub fn decode_assignment(bytes: &[u8]) -> Result<ConsumerAssignment, ClientError> {
    const WHAT: &str = "assignment";
    if bytes.is_empty() {
        return Ok(ConsumerAssignment {
            version: None,
            partitions: Vec::new(),
            user_data_bytes: None,
        });
    }
    let (version, read_at) = read_version::<ConsumerProtocolAssignment>(WHAT, bytes)?;
    let body = &bytes[2..];
    let mut walk = Walk { rest: body };
    let checked = (|| {
        walk.array(6, Walk::topic_partitions)?;
        walk.bytes()
    })();
    checked.map_err(|e| invalid(WHAT, e))?;
    let a = ConsumerProtocolAssignment::decode(&mut Bytes::copy_from_slice(body), read_at)
        .map_err(|e| invalid(WHAT, e.to_string()))?;
    Ok(ConsumerAssignment {
        version: Some(version),
        partitions: a
            .assigned_partitions
            .iter()
            .map(|tp| TopicPartitions::of(&tp.topic, &tp.partitions))
            .collect(),
        user_data_bytes: a.user_data.map(|d| d.len()),
    })
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_owned()))
    }

    /// The version and the body, as a Java consumer writes them.
    fn versioned(version: i16, body: &impl Encodable) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i16(version);
        body.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    fn assignment() -> ConsumerProtocolAssignment {
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![
                AssignedTopic::default()
                    .with_topic(name("orders"))
                    .with_partitions(vec![0, 2, 4]),
                AssignedTopic::default()
                    .with_topic(name("payments"))
                    .with_partitions(vec![1]),
            ])
            .with_user_data(Some(Bytes::from_static(b"sticky")))
    }

    fn topics(a: &[TopicPartitions]) -> Vec<(&str, &[i32])> {
        a.iter().map(|t| (t.topic.as_str(), t.partitions.as_slice())).collect()
    }

    #[test]
    fn assignments_decode_at_every_version() {
        // The layout is the same at v0 to v3; each must still be read at its own.
        for version in 0..=3 {
            let decoded = decode_assignment(&versioned(version, &assignment())).unwrap();
            assert_eq!(decoded.version, Some(version));
            assert_eq!(
                topics(&decoded.partitions),
                [("orders", &[0, 2, 4][..]), ("payments", &[1][..])]
            );
            assert_eq!(decoded.user_data_bytes, Some(6));
        }
        // librdkafka writes a null user data.
        let bare = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            AssignedTopic::default().with_topic(name("t")).with_partitions(vec![]),
        ]);
        let decoded = decode_assignment(&versioned(0, &bare)).unwrap();
        assert_eq!(topics(&decoded.partitions), [("t", &[][..])]);
        assert_eq!(decoded.user_data_bytes, None);
    }

    #[test]
    fn an_empty_assignment_is_no_partitions_yet() {
        let decoded = decode_assignment(&[]).unwrap();
        assert_eq!(decoded.version, None);
        assert!(decoded.partitions.is_empty());
    }

    #[test]
    fn newer_versions_are_read_as_the_newest_known_and_trailing_bytes_ignored() {
        let mut bytes = versioned(3, &assignment());
        bytes[..2].copy_from_slice(&7i16.to_be_bytes());
        bytes.extend_from_slice(b"a field from the future");
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(decoded.version, Some(7));
        assert_eq!(decoded.partitions.len(), 2);
    }

    #[test]
    fn subscriptions_decode_at_every_version() {
        let subscription = |version: i16| {
            let mut s = ConsumerProtocolSubscription::default().with_topics(vec![
                StrBytes::from_static_str("orders"),
                StrBytes::from_static_str("payments"),
            ]);
            if version >= 1 {
                s.owned_partitions = vec![
                    OwnedTopic::default()
                        .with_topic(name("orders"))
                        .with_partitions(vec![3]),
                ];
            }
            if version >= 2 {
                s.generation_id = 9;
            }
            if version >= 3 {
                s.rack_id = Some(StrBytes::from_static_str("rack-a"));
            }
            s
        };
        for version in 0..=3 {
            let decoded = decode_subscription(&versioned(version, &subscription(version))).unwrap();
            assert_eq!(decoded.version, version);
            assert_eq!(decoded.topics, ["orders", "payments"]);
            let owned = topics(&decoded.owned_partitions);
            assert_eq!(
                owned,
                if version >= 1 {
                    vec![("orders", &[3][..])]
                } else {
                    vec![]
                }
            );
            assert_eq!(decoded.generation, (version >= 2).then_some(9));
            assert_eq!(decoded.rack.as_deref(), (version >= 3).then_some("rack-a"));
            assert_eq!(decoded.user_data_bytes, None);
        }
    }

    #[test]
    fn damaged_bytes_are_errors_not_panics() {
        let good = versioned(1, &assignment());
        // Every truncation but the empty one (no assignment) fails cleanly.
        for len in 1..good.len() {
            assert!(decode_assignment(&good[..len]).is_err(), "{len}");
        }
        assert!(decode_assignment(&(-1i16).to_be_bytes()).is_err());
        // Counts far beyond the bytes are refused before anything is sized by them.
        let mut huge = vec![0, 0];
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        huge.extend_from_slice(&[0; 16]);
        let e = decode_assignment(&huge).unwrap_err();
        assert!(e.to_string().contains("2147483647 items"), "{e}");
        let mut inner = vec![0, 0, 0, 0, 0, 1, 0, 1, b't'];
        inner.extend_from_slice(&(1i32 << 30).to_be_bytes());
        assert!(decode_assignment(&inner).is_err());
        let mut subscription = vec![0, 3];
        subscription.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_subscription(&subscription).is_err());
        // A string that is not UTF-8 is the codec's to refuse.
        let bad_utf8 = [0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_assignment(&bad_utf8).is_err());
    }

    proptest::proptest! {
        /// Arbitrary bytes, and valid encodings with bytes flipped, are decoded
        /// or refused, never a panic or an allocation the input cannot back.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let _ = decode_assignment(&bytes);
            let _ = decode_subscription(&bytes);
            let mut damaged = versioned(1, &assignment());
            let at = flip.0 % damaged.len();
            damaged[at] ^= flip.1;
            let _ = decode_assignment(&damaged);
        }
    }
}
