//! Which client a configuration is for (the Java clients or librdkafka), in
//! which role (producer, consumer or both), and the value each setting takes
//! in that client: the file's, or the client's default when the file does not
//! set it.
//!
//! Defaults matter as much as the file: a missing key is not a neutral
//! choice. The two clients disagree on several that decide whether records
//! are lost or duplicated (`enable.idempotence`, `isolation.level`,
//! `check.crcs`, the partitioner), and the lint reads each setting in the
//! client the file is for.

use crate::keys;
use crate::parse::{Entry, ParsedFile, ValueKind};

/// A Kafka client family, each with its own keys and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// The Java producer and consumer (Kafka 3.x), and clients that take the
    /// same keys.
    Java,
    /// librdkafka, and the clients built on it (confluent-kafka for Python,
    /// Go and .NET, node-rdkafka, rust-rdkafka, kcat).
    Librdkafka,
}

impl Dialect {
    /// `java` or `librdkafka`, as printed and as `--client` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Java => "java",
            Dialect::Librdkafka => "librdkafka",
        }
    }

    /// The dialect named `name` (`java`, `librdkafka`).
    pub fn from_name(name: &str) -> Option<Dialect> {
        match name {
            "java" => Some(Dialect::Java),
            "librdkafka" => Some(Dialect::Librdkafka),
            _ => None,
        }
    }

    /// How prose names the client: `Java`, `librdkafka`.
    pub fn title(self) -> &'static str {
        match self {
            Dialect::Java => "Java",
            Dialect::Librdkafka => "librdkafka",
        }
    }

    /// The other dialect.
    pub fn other(self) -> Dialect {
        match self {
            Dialect::Java => Dialect::Librdkafka,
            Dialect::Librdkafka => Dialect::Java,
        }
    }
}

/// What the client does with the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It produces records.
    Producer,
    /// It consumes records.
    Consumer,
    /// One configuration for both (common with librdkafka).
    Both,
}

impl Role {
    /// `producer`, `consumer` or `both`, as printed and as `--role` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Both => "both",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "producer" => Some(Role::Producer),
            "consumer" => Some(Role::Consumer),
            "both" => Some(Role::Both),
            _ => None,
        }
    }

    /// Whether producer rules apply.
    pub fn produces(self) -> bool {
        matches!(self, Role::Producer | Role::Both)
    }

    /// Whether consumer rules apply.
    pub fn consumes(self) -> bool {
        matches!(self, Role::Consumer | Role::Both)
    }
}

/// Keys only a producer sets.
static PRODUCER_KEYS: &[&str] = &[
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "linger.ms",
    "queue.buffering.max.ms",
    "batch.size",
    "batch.num.messages",
    "retries",
    "message.send.max.retries",
    "delivery.timeout.ms",
    "message.timeout.ms",
    "key.serializer",
    "value.serializer",
    "buffer.memory",
    "max.block.ms",
    "max.request.size",
    "compression.type",
    "compression.codec",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "partitioner",
    "partitioner.class",
    "partitioner.ignore.keys",
    "transactional.id",
    "transaction.timeout.ms",
];

/// Keys only a consumer sets.
static CONSUMER_KEYS: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "max.poll.records",
    "isolation.level",
    "key.deserializer",
    "value.deserializer",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "fetch.wait.max.ms",
    "max.partition.fetch.bytes",
    "fetch.message.max.bytes",
    "check.crcs",
    "partition.assignment.strategy",
    "enable.partition.eof",
    "queued.min.messages",
    "queued.max.messages.kbytes",
];

/// The dialect the keys of `file` belong to: the one that knows more of the
/// keys the other does not. `None` when nothing tells them apart.
pub fn detect_dialect(file: &ParsedFile) -> Option<Dialect> {
    let count = |d: Dialect| {
        file.entries
            .iter()
            .filter(|e| keys::is_known(d, &e.key) && !keys::is_known(d.other(), &e.key))
            .count()
    };
    let (java, rdk) = (count(Dialect::Java), count(Dialect::Librdkafka));
    match java.cmp(&rdk) {
        std::cmp::Ordering::Greater => Some(Dialect::Java),
        std::cmp::Ordering::Less => Some(Dialect::Librdkafka),
        std::cmp::Ordering::Equal => None,
    }
}

/// The role the keys of `file` show. `None` when no key is a producer's or a
/// consumer's alone.
pub fn detect_role(file: &ParsedFile) -> Option<Role> {
    let has = |list: &[&str]| file.entries.iter().any(|e| list.contains(&e.key.as_str()));
    match (has(PRODUCER_KEYS), has(CONSUMER_KEYS)) {
        (true, true) => Some(Role::Both),
        (true, false) => Some(Role::Producer),
        (false, true) => Some(Role::Consumer),
        (false, false) => None,
    }
}

/// A client's default for `key` (its canonical or alias name), as text.
/// `None` for keys without a default the rules read.
pub fn default_value(dialect: Dialect, key: &str) -> Option<&'static str> {
    use Dialect::{Java, Librdkafka};
    let v = match (dialect, key) {
        // Since Kafka 3.0 (KIP-679) and librdkafka 1.0.
        (_, "acks") => "all",
        (Java, "enable.idempotence") => "true",
        (Librdkafka, "enable.idempotence") => "false",
        (Java, "max.in.flight.requests.per.connection") => "5",
        (Librdkafka, "max.in.flight.requests.per.connection") => "1000000",
        (_, "retries") => "2147483647",
        (Java, "delivery.timeout.ms") => "120000",
        (Librdkafka, "message.timeout.ms") => "300000",
        (Java, "linger.ms") => "0",
        (Librdkafka, "queue.buffering.max.ms") => "5",
        (_, "request.timeout.ms") => "30000",
        (Java, "buffer.memory") => "33554432",
        (Java, "max.block.ms") => "60000",
        (Java, "max.request.size") => "1048576",
        (Librdkafka, "message.max.bytes") => "1000000",
        (Librdkafka, "queue.buffering.max.kbytes") => "1048576",
        (Librdkafka, "queue.buffering.max.messages") => "100000",
        (Librdkafka, "partitioner") => "consistent_random",
        (Java, "partitioner.ignore.keys") => "false",
        (_, "enable.auto.commit") => "true",
        (Librdkafka, "enable.auto.offset.store") => "true",
        (Java, "auto.offset.reset") => "latest",
        (Librdkafka, "auto.offset.reset") => "largest",
        (Java, "isolation.level") => "read_uncommitted",
        (Librdkafka, "isolation.level") => "read_committed",
        (_, "session.timeout.ms") => "45000",
        (_, "heartbeat.interval.ms") => "3000",
        (_, "max.poll.interval.ms") => "300000",
        (Java, "max.poll.records") => "500",
        (Java, "check.crcs") => "true",
        (Librdkafka, "check.crcs") => "false",
        (_, "group.protocol") => "classic",
        (_, "compression.type") => "none",
        (Librdkafka, "compression.codec") => "none",
        // Both clients connect without TLS or SASL unless told, and a SASL
        // client that names no mechanism asks for Kerberos (Kafka's
        // `SaslConfigs.DEFAULT_SASL_MECHANISM`; librdkafka's CONFIGURATION.md).
        (Java, "security.protocol") => "PLAINTEXT",
        (Librdkafka, "security.protocol") => "plaintext",
        (Java, "sasl.mechanism") => "GSSAPI",
        (Librdkafka, "sasl.mechanisms") => "GSSAPI",
        _ => return None,
    };
    Some(v)
}

/// The value a setting takes: set in the file, or the client's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a, T> {
    /// Set in the file by this entry (the last one, if the key repeats).
    Set(&'a Entry, T),
    /// Not set: the client's default applies.
    Default(T),
}

impl<'a, T: Copy> Value<'a, T> {
    /// The value, wherever it comes from.
    pub fn get(&self) -> T {
        match self {
            Value::Set(_, v) | Value::Default(v) => *v,
        }
    }

    /// The entry that sets it, if the file does.
    pub fn entry(&self) -> Option<&'a Entry> {
        match self {
            Value::Set(e, _) => Some(e),
            Value::Default(_) => None,
        }
    }

    /// Whether the file sets it.
    pub fn is_set(&self) -> bool {
        matches!(self, Value::Set(..))
    }
}

/// The settings of one file, read in one client.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// The file.
    pub file: &'a ParsedFile,
    /// The client it is read in.
    pub dialect: Dialect,
    /// The file's text.
    pub source: &'a str,
}

impl<'a> Settings<'a> {
    /// The file's text at `span`.
    pub fn source_of(&self, span: std::ops::Range<usize>) -> Option<&'a str> {
        self.source.get(span)
    }

    /// The 1-based line of byte `at`.
    pub fn line_of(&self, at: usize) -> usize {
        self.source[..at.min(self.source.len())].matches('\n').count() + 1
    }

    /// The entry that sets `key` (under any of its names), the last one if
    /// several do: clients keep the last value they are given.
    pub fn entry(&self, key: &str) -> Option<&'a Entry> {
        let names = keys::names_of(self.dialect, key);
        self.file.entries.iter().rev().find(|e| names.contains(&e.key.as_str()))
    }

    /// Whether the file sets `key`.
    pub fn is_set(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The text value of `key`, or its default. `None` when neither exists.
    pub fn text(&self, key: &str) -> Option<Value<'a, &'a str>> {
        match self.entry(key) {
            Some(e) => Some(Value::Set(e, e.value.as_str())),
            None => keys::names_of(self.dialect, key)
                .into_iter()
                .find_map(|k| default_value(self.dialect, k))
                .map(Value::Default),
        }
    }

    /// `key` as an integer. `None` when the value does not parse (the
    /// invalid-value rule reports it) or there is no default.
    pub fn int(&self, key: &str) -> Option<Value<'a, i64>> {
        match self.text(key)? {
            Value::Set(e, t) => parse_int(e, t)
                .filter(|v| self.in_range(&e.key, *v))
                .map(|v| Value::Set(e, v)),
            Value::Default(t) => t.parse().ok().map(Value::Default),
        }
    }

    /// Whether `v` is a value the client accepts for `key`: out of range, the
    /// invalid-value rule reports it and no other rule reads it.
    fn in_range(&self, key: &str, v: i64) -> bool {
        use crate::checks::{Kind, canonical, kind_of};
        match kind_of(self.dialect, canonical(self.dialect, key)) {
            Some(Kind::Int(lo, hi)) => (lo..=hi).contains(&v),
            _ => true,
        }
    }

    /// `key` as a boolean, read as the client reads it.
    pub fn bool(&self, key: &str) -> Option<Value<'a, bool>> {
        match self.text(key)? {
            Value::Set(e, t) => parse_bool(self.dialect, t).map(|v| Value::Set(e, v)),
            Value::Default(t) => parse_bool(self.dialect, t).map(Value::Default),
        }
    }

    /// The value of `acks` as the number the protocol sends: -1 for `all`.
    pub fn acks(&self) -> Option<Value<'a, i64>> {
        let parse = |t: &str| {
            if t.eq_ignore_ascii_case("all") {
                Some(-1)
            } else {
                t.trim().parse().ok()
            }
        };
        match self.text("acks")? {
            // Anything but all, -1, 0 and 1 is the invalid-value rule's.
            Value::Set(e, t) => parse(t).filter(|v| (-1..=1).contains(v)).map(|v| Value::Set(e, v)),
            Value::Default(t) => parse(t).map(Value::Default),
        }
    }
}

/// An integer value; JSON numbers with a fraction or exponent are not.
fn parse_int(entry: &Entry, text: &str) -> Option<i64> {
    if entry.kind != ValueKind::Text && entry.kind != ValueKind::Number {
        return None;
    }
    text.trim().parse().ok()
}

/// A boolean as the client reads it: `true`/`false` in any case, and for
/// librdkafka also `t`/`f`/`1`/`0`.
pub fn parse_bool(dialect: Dialect, text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        return Some(true);
    }
    if t.eq_ignore_ascii_case("false") {
        return Some(false);
    }
    match (dialect, t) {
        (Dialect::Librdkafka, "1") => Some(true),
        (Dialect::Librdkafka, "0") => Some(false),
        (Dialect::Librdkafka, t) if t.eq_ignore_ascii_case("t") => Some(true),
        (Dialect::Librdkafka, t) if t.eq_ignore_ascii_case("f") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Format;

    fn file(src: &str) -> ParsedFile {
        ParsedFile::parse(src, Format::Properties)
    }

    #[test]
    fn dialect_and_role_come_from_keys_only_one_side_has() {
        let f = file("bootstrap.servers=x\nqueue.buffering.max.ms=5\nacks=all\n");
        assert_eq!(detect_dialect(&f), Some(Dialect::Librdkafka));
        assert_eq!(detect_role(&f), Some(Role::Producer));
        let f = file("key.deserializer=x\ngroup.id=g\n");
        assert_eq!(detect_dialect(&f), Some(Dialect::Java));
        assert_eq!(detect_role(&f), Some(Role::Consumer));
        let f = file("bootstrap.servers=x\n");
        assert_eq!((detect_dialect(&f), detect_role(&f)), (None, None));
    }

    #[test]
    fn aliases_share_one_value_and_the_last_one_wins() {
        let f = file("retries=3\nmessage.send.max.retries=7\n");
        let s = Settings {
            file: &f,
            dialect: Dialect::Librdkafka,
            source: "",
        };
        assert_eq!(s.int("retries").map(|v| v.get()), Some(7));
        assert_eq!(s.int("message.timeout.ms").map(|v| v.get()), Some(300_000));
        let s = Settings {
            file: &f,
            dialect: Dialect::Java,
            source: "",
        };
        assert_eq!(s.int("retries").map(|v| v.get()), Some(3));
    }

    #[test]
    fn defaults_differ_between_clients() {
        let f = file("");
        let java = Settings {
            file: &f,
            dialect: Dialect::Java,
            source: "",
        };
        let rdk = Settings {
            file: &f,
            dialect: Dialect::Librdkafka,
            source: "",
        };
        assert_eq!(java.bool("enable.idempotence").map(|v| v.get()), Some(true));
        assert_eq!(rdk.bool("enable.idempotence").map(|v| v.get()), Some(false));
        assert_eq!(rdk.int("linger.ms").map(|v| v.get()), Some(5));
        assert_eq!(java.acks().map(|v| v.get()), Some(-1));
        assert_eq!(parse_bool(Dialect::Librdkafka, "T"), Some(true));
        assert_eq!(parse_bool(Dialect::Java, "1"), None);
    }
}
