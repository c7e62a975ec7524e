//! The keys each client knows, and how they relate: aliases within a client,
//! equivalents across clients, and the nearest known key of a misspelt one.
//!
//! The lists are the configuration properties of the Java clients (producer,
//! consumer and the security settings they share, Kafka 3.x) and of
//! librdkafka (global and topic properties, 2.x), by name only. An unknown key
//! is reported, not refused outright: clients add keys over time, and Java
//! passes keys it does not know to serializers and interceptors.

use crate::client::Dialect;

/// Every configuration key of the Java producer and consumer, and a few keys
/// commonly passed through them to serializers (the schema registry's).
pub static JAVA_KEYS: &[&str] = &[
    "acks",
    "allow.auto.create.topics",
    "auto.commit.interval.ms",
    "auto.include.jmx.reporter",
    "auto.offset.reset",
    "batch.size",
    "bootstrap.servers",
    "buffer.memory",
    "check.crcs",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "connections.max.idle.ms",
    "default.api.timeout.ms",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "enable.idempotence",
    "enable.metrics.push",
    "exclude.internal.topics",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "heartbeat.interval.ms",
    "interceptor.classes",
    "internal.leave.group.on.close",
    "isolation.level",
    "key.deserializer",
    "key.serializer",
    "linger.ms",
    "max.block.ms",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "max.poll.records",
    "max.request.size",
    "metadata.max.age.ms",
    "metadata.max.idle.ms",
    "metadata.recovery.strategy",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "partition.assignment.strategy",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "partitioner.class",
    "partitioner.ignore.keys",
    "rebalance.timeout.ms",
    "receive.buffer.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.client.callback.handler.class",
    "sasl.jaas.config",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.login.connect.timeout.ms",
    "sasl.login.read.timeout.ms",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
    "sasl.login.retry.backoff.max.ms",
    "sasl.login.retry.backoff.ms",
    "sasl.mechanism",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.header.urlencode",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.token.endpoint.url",
    "security.protocol",
    "security.providers",
    "send.buffer.bytes",
    "session.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "ssl.cipher.suites",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.factory.class",
    "ssl.key.password",
    "ssl.keymanager.algorithm",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.protocol",
    "ssl.provider",
    "ssl.secure.random.implementation",
    "ssl.trustmanager.algorithm",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "transaction.timeout.ms",
    "transactional.id",
    "value.deserializer",
    "value.serializer",
    // Read by the schema registry's serializers, which the Java clients hand
    // every key they are configured with.
    "schema.registry.url",
    "basic.auth.credentials.source",
    "basic.auth.user.info",
    "auto.register.schemas",
    "use.latest.version",
    "specific.avro.reader",
    "key.subject.name.strategy",
    "value.subject.name.strategy",
];

/// Every configuration property of librdkafka (global and topic level),
/// except the callbacks and pointers that only code can set.
pub static LIBRDKAFKA_KEYS: &[&str] = &[
    "acks",
    "allow.auto.create.topics",
    "api.version.fallback.ms",
    "api.version.request",
    "api.version.request.timeout.ms",
    "auto.commit.enable",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "batch.num.messages",
    "batch.size",
    "bootstrap.servers",
    "broker.address.family",
    "broker.address.ttl",
    "broker.version.fallback",
    "builtin.features",
    "check.crcs",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "compression.codec",
    "compression.level",
    "compression.type",
    "connections.max.idle.ms",
    "consume.callback.max.messages",
    "coordinator.query.interval.ms",
    "debug",
    "delivery.report.only.error",
    "delivery.timeout.ms",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.gapless.guarantee",
    "enable.idempotence",
    "enable.metrics.push",
    "enable.partition.eof",
    "enable.random.seed",
    "enable.sasl.oauthbearer.unsecure.jwt",
    "enable.ssl.certificate.verification",
    "fetch.error.backoff.ms",
    "fetch.max.bytes",
    "fetch.message.max.bytes",
    "fetch.min.bytes",
    "fetch.queue.backoff.ms",
    "fetch.wait.max.ms",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "heartbeat.interval.ms",
    "https.ca.location",
    "https.ca.pem",
    "internal.termination.signal",
    "isolation.level",
    "linger.ms",
    "log.connection.close",
    "log.queue",
    "log.thread.name",
    "log_level",
    "max.in.flight",
    "max.in.flight.requests.per.connection",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "max.poll.records",
    "message.copy.max.bytes",
    "message.max.bytes",
    "message.send.max.retries",
    "message.timeout.ms",
    "metadata.broker.list",
    "metadata.max.age.ms",
    "metadata.recovery.rebootstrap.trigger.ms",
    "metadata.recovery.strategy",
    "offset.store.method",
    "offset.store.path",
    "offset.store.sync.interval.ms",
    "partition.assignment.strategy",
    "partitioner",
    "plugin.library.paths",
    "produce.offset.report",
    "queue.buffering.backpressure.threshold",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.ms",
    "queued.max.messages.kbytes",
    "queued.min.messages",
    "queuing.strategy",
    "receive.message.max.bytes",
    "reconnect.backoff.jitter.ms",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.required.acks",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "sasl.kerberos.keytab",
    "sasl.kerberos.kinit.cmd",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.principal",
    "sasl.kerberos.service.name",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.oauthbearer.assertion.algorithm",
    "sasl.oauthbearer.assertion.claim.aud",
    "sasl.oauthbearer.assertion.claim.exp.seconds",
    "sasl.oauthbearer.assertion.claim.iss",
    "sasl.oauthbearer.assertion.claim.jti.include",
    "sasl.oauthbearer.assertion.claim.nbf.seconds",
    "sasl.oauthbearer.assertion.claim.sub",
    "sasl.oauthbearer.assertion.file",
    "sasl.oauthbearer.assertion.jwt.template.file",
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.client.credentials.client.id",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.oauthbearer.extensions",
    "sasl.oauthbearer.grant.type",
    "sasl.oauthbearer.metadata.authentication.type",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.password",
    "sasl.username",
    "security.protocol",
    "session.timeout.ms",
    "share.acknowledgement.mode",
    "socket.blocking.max.ms",
    "socket.connection.setup.timeout.ms",
    "socket.keepalive.enable",
    "socket.max.fails",
    "socket.nagle.disable",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "socket.timeout.ms",
    "ssl.ca.certificate.stores",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.certificate.location",
    "ssl.certificate.pem",
    "ssl.cipher.suites",
    "ssl.crl.location",
    "ssl.curves.list",
    "ssl.endpoint.identification.algorithm",
    "ssl.engine.id",
    "ssl.engine.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.providers",
    "ssl.sigalgs.list",
    "statistics.interval.ms",
    "sticky.partitioning.linger.ms",
    "topic.blacklist",
    "topic.metadata.propagation.max.ms",
    "topic.metadata.refresh.fast.cnt",
    "topic.metadata.refresh.fast.interval.ms",
    "topic.metadata.refresh.interval.ms",
    "topic.metadata.refresh.sparse",
    "transaction.timeout.ms",
    "transactional.id",
];

/// librdkafka's aliases: two names of one property, the alias first.
pub static LIBRDKAFKA_ALIASES: &[(&str, &str)] = &[
    ("acks", "request.required.acks"),
    ("bootstrap.servers", "metadata.broker.list"),
    ("compression.type", "compression.codec"),
    ("delivery.timeout.ms", "message.timeout.ms"),
    ("linger.ms", "queue.buffering.max.ms"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("max.partition.fetch.bytes", "fetch.message.max.bytes"),
    ("retries", "message.send.max.retries"),
    ("sasl.mechanism", "sasl.mechanisms"),
    (
        "sasl.oauthbearer.client.credentials.client.id",
        "sasl.oauthbearer.client.id",
    ),
    (
        "sasl.oauthbearer.client.credentials.client.secret",
        "sasl.oauthbearer.client.secret",
    ),
];

/// How a value of one client's key becomes a value of the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// The same value.
    Same,
    /// Multiplied by the factor (kilobytes to bytes).
    Times(u64),
    /// Divided by the factor (bytes to kilobytes).
    Over(u64),
    /// The values mean different things: no automatic conversion.
    Manual,
}

impl Convert {
    /// `value` converted, if it converts.
    pub fn apply(self, value: &str) -> Option<String> {
        match self {
            Convert::Same => Some(value.to_owned()),
            Convert::Times(f) => value.trim().parse::<u64>().ok()?.checked_mul(f).map(|v| v.to_string()),
            Convert::Over(f) => value.trim().parse::<u64>().ok().map(|v| (v / f).max(1).to_string()),
            Convert::Manual => None,
        }
    }
}

/// The same setting in the other client: a key only one client knows, the
/// other client's key for it, and how its value converts.
pub static EQUIVALENTS: &[(&str, Dialect, &str, Convert)] = &[
    (
        "queue.buffering.max.ms",
        Dialect::Librdkafka,
        "linger.ms",
        Convert::Same,
    ),
    (
        "message.timeout.ms",
        Dialect::Librdkafka,
        "delivery.timeout.ms",
        Convert::Same,
    ),
    (
        "message.send.max.retries",
        Dialect::Librdkafka,
        "retries",
        Convert::Same,
    ),
    ("request.required.acks", Dialect::Librdkafka, "acks", Convert::Same),
    (
        "compression.codec",
        Dialect::Librdkafka,
        "compression.type",
        Convert::Same,
    ),
    (
        "metadata.broker.list",
        Dialect::Librdkafka,
        "bootstrap.servers",
        Convert::Same,
    ),
    (
        "fetch.message.max.bytes",
        Dialect::Librdkafka,
        "max.partition.fetch.bytes",
        Convert::Same,
    ),
    (
        "fetch.wait.max.ms",
        Dialect::Librdkafka,
        "fetch.max.wait.ms",
        Convert::Same,
    ),
    (
        "max.in.flight",
        Dialect::Librdkafka,
        "max.in.flight.requests.per.connection",
        Convert::Same,
    ),
    ("sasl.mechanisms", Dialect::Librdkafka, "sasl.mechanism", Convert::Same),
    (
        "message.max.bytes",
        Dialect::Librdkafka,
        "max.request.size",
        Convert::Same,
    ),
    (
        "queue.buffering.max.kbytes",
        Dialect::Librdkafka,
        "buffer.memory",
        Convert::Times(1024),
    ),
    (
        "buffer.memory",
        Dialect::Java,
        "queue.buffering.max.kbytes",
        Convert::Over(1024),
    ),
    ("max.request.size", Dialect::Java, "message.max.bytes", Convert::Same),
    ("fetch.max.wait.ms", Dialect::Java, "fetch.wait.max.ms", Convert::Same),
    ("partitioner.class", Dialect::Java, "partitioner", Convert::Manual),
];

/// Whether `dialect` knows `key`.
pub fn is_known(dialect: Dialect, key: &str) -> bool {
    keys_of(dialect).contains(&key)
}

/// The keys `dialect` knows.
pub fn keys_of(dialect: Dialect) -> &'static [&'static str] {
    match dialect {
        Dialect::Java => JAVA_KEYS,
        Dialect::Librdkafka => LIBRDKAFKA_KEYS,
    }
}

/// Every name of `key` in `dialect`: itself, and its librdkafka alias or
/// canonical name.
pub fn names_of(dialect: Dialect, key: &str) -> Vec<&str> {
    let mut names = vec![key];
    if dialect == Dialect::Librdkafka {
        for &(alias, canonical) in LIBRDKAFKA_ALIASES {
            if alias == key {
                names.push(canonical);
            } else if canonical == key {
                names.push(alias);
            }
        }
    }
    names
}

/// The other client's key for `key` of `from`, and how a value converts.
pub fn equivalent(from: Dialect, key: &str) -> Option<(&'static str, Convert)> {
    EQUIVALENTS
        .iter()
        .find(|&&(k, d, _, _)| d == from && k == key)
        .map(|&(_, _, other, factor)| (other, factor))
}

/// `key` with `_` and `-` read as `.`, lowercase: the forms a key is often
/// misspelt in.
fn normalized(key: &str) -> String {
    key.to_ascii_lowercase().replace(['_', '-'], ".")
}

/// The known key of `dialect` nearest to an unknown `key`, if it is close
/// enough to be a misspelling: equal once `_`/`-` are read as `.`, or within
/// an edit distance that grows with the key's length (one edit, plus one per
/// six characters).
pub fn did_you_mean(dialect: Dialect, key: &str) -> Option<&'static str> {
    let wanted = normalized(key);
    let limit = 1 + wanted.chars().count() / 6;
    keys_of(dialect)
        .iter()
        .map(|&k| (strsim::damerau_levenshtein(&wanted, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, k)| (d, k.len()))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_keys_find_their_intended_key() {
        assert_eq!(
            did_you_mean(Dialect::Java, "enable.idempotency"),
            Some("enable.idempotence")
        );
        assert_eq!(did_you_mean(Dialect::Java, "ack"), Some("acks"));
        assert_eq!(
            did_you_mean(Dialect::Librdkafka, "enable_auto_offset_store"),
            Some("enable.auto.offset.store")
        );
        assert_eq!(did_you_mean(Dialect::Java, "Linger.MS"), Some("linger.ms"));
        assert_eq!(did_you_mean(Dialect::Java, "my.application.setting"), None);
        assert_eq!(did_you_mean(Dialect::Java, "foo"), None);
    }

    #[test]
    fn key_lists_are_sorted_unique_and_hold_what_the_rules_read() {
        for list in [JAVA_KEYS, LIBRDKAFKA_KEYS] {
            let mut seen = std::collections::HashSet::new();
            for k in list {
                assert!(seen.insert(k), "{k} twice");
            }
        }
        for k in [
            "acks",
            "enable.idempotence",
            "max.in.flight.requests.per.connection",
            "retries",
            "delivery.timeout.ms",
        ] {
            assert!(is_known(Dialect::Java, k) && is_known(Dialect::Librdkafka, k), "{k}");
        }
        for &(alias, canonical) in LIBRDKAFKA_ALIASES {
            assert!(is_known(Dialect::Librdkafka, alias) && is_known(Dialect::Librdkafka, canonical));
        }
        for &(key, from, other, _) in EQUIVALENTS {
            let to = match from {
                Dialect::Java => Dialect::Librdkafka,
                Dialect::Librdkafka => Dialect::Java,
            };
            assert!(
                is_known(from, key) && !is_known(to, key),
                "{key} belongs to {from:?} only"
            );
            assert!(is_known(to, other), "{other} is a {to:?} key");
        }
    }
}
