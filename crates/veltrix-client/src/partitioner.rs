//! Choosing a partition for a record, as the Java client does.
//!
//! A keyed record goes to `toPositive(murmur2(key)) % partitions`, Java's
//! `BuiltInPartitioner.partitionForKey`, so that a key lands on the same
//! partition whichever of the two clients produced it. Unkeyed records are
//! spread round-robin.

/// Kafka's murmur2: 32-bit MurmurHash2 with seed `0x9747b28c`, reading the data
/// as little-endian 32-bit words, exactly as `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java takes the length as an int; keys never reach 2^32 bytes, and
    // truncating would match Java's overflow anyway.
    let mut h = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition of a keyed record among `partitions` (at least 1).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    // Java's toPositive: clear the sign bit (not abs, which overflows).
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

/// Spreads unkeyed records over the partitions in turn.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    /// The next record's position in the cycle.
    next: u32,
}

impl RoundRobin {
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }

    /// The next partition among `partitions` (at least 1).
    pub fn next_partition(&mut self, partitions: u32) -> u32 {
        assert!(partitions > 0, "a topic has at least one partition");
        let p = self.next % partitions;
        self.next = self.next.wrapping_add(1);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors, from `UtilsTest.testMurmur2` in the Java client;
    /// they cover every tail length (0 to 3 trailing bytes).
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    /// Values from the Java implementation quoted by Akka's Murmur2Spec, which
    /// ports it for Kafka-compatible sharding.
    #[test]
    fn murmur2_matches_other_published_values() {
        let cases: [(&[u8], i32); 5] = [
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn keyed_partitions_clear_the_sign_bit_instead_of_negating() {
        // murmur2("21") is negative: Java's toPositive keeps the low 31 bits.
        let positive = (-973_932_308i32 as u32) & 0x7fff_ffff;
        assert_eq!(positive, 1_173_551_340);
        for n in 1..=12 {
            assert_eq!(partition_for_key(b"21", n), positive % n);
        }
        // abs() would give 973_932_308 % 7 = 6; toPositive gives 1_173_551_340 % 7 = 3.
        assert_eq!(partition_for_key(b"21", 7), 3);
    }

    #[test]
    fn round_robin_cycles_through_every_partition() {
        let mut rr = RoundRobin::new();
        let got: Vec<u32> = (0..7).map(|_| rr.next_partition(3)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
    }
}
