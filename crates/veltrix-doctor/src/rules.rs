//! The rule catalogue: every problem `veltrix doctor` can report about a
//! client configuration, with a stable id, a kebab-case name, a one-line
//! summary and the explanation `veltrix doctor --explain RULE` prints.
//!
//! Ids are stable: `D0xx` are about the file itself (syntax, keys, values),
//! `D1xx` about producers, `D2xx` about consumers. A rule's severity is its
//! usual one; a few findings are raised or lowered by what exactly they found
//! (an unknown key close to a known one is an error, one far from all is a
//! warning), and each finding carries its own.

pub use veltrix_diagnostic::Severity;

/// Which clients' configurations a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any configuration.
    File,
    /// Producers.
    Producer,
    /// Consumers.
    Consumer,
}

impl Scope {
    /// `file`, `producer` or `consumer`, as the catalogue prints it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::File => "file",
            Scope::Producer => "producer",
            Scope::Consumer => "consumer",
        }
    }
}

/// One rule of the catalogue; it applies to the configurations of its
/// [`Scope`].
pub type Rule = veltrix_diagnostic::Rule<Scope>;

veltrix_diagnostic::catalogue! { Scope;
    SYNTAX = "D001" "syntax" Error File
        "the file cannot be read: not a JSON object, or a `.properties` escape Java refuses"
        "A JSON configuration must be one object whose members are settings (`{\"acks\": \"all\"}`); nested objects join their keys with `.` (`{\"enable\": {\"idempotence\": true}}` is `enable.idempotence`). The diagnostic points at the first place the reader gave up; settings before it are still checked.\n\n`.properties` files have one syntax error only: every line that is not blank or a comment (`#`, `!`) is a key and a value, separated by `=`, `:` or whitespace, as `java.util.Properties` reads them, but a `\\u` not followed by four hex digits makes `Properties.load` throw (\"Malformed \\\\uxxxx encoding\"), and the client never starts.";
    UNKNOWN_KEY = "D002" "unknown-key" Error File
        "a key the client does not know"
        "A misspelt key (`enable.idempotency`) is not a setting: the Java clients log that it \"was supplied but isn't a known config\" and carry on with the default, and librdkafka refuses to start with \"No such configuration property\". Either way the file says one thing and the client does another.\n\nWhen the key is close to a known key of the client, the finding is an error and says which key was meant. A key far from every known key is only a warning: clients add keys over time, and the Java clients pass every key to serializers and interceptors, which may read it. The lists of known keys are the Java producer and consumer keys of Kafka 3.x and librdkafka 2.x's properties.";
    OTHER_CLIENT_KEY = "D003" "other-client-key" Warning File
        "a key of the other client"
        "The file is for one client (see `--client`) but sets a key only the other one knows, such as librdkafka's `queue.buffering.max.ms` in a Java configuration. The Java client ignores it and keeps its default (a warning); librdkafka refuses to start (an error for a librdkafka file). Configurations copied between a Java service and a librdkafka-based one (Python, Go, .NET, Node.js) often carry such keys.\n\nThe fix names the client's own key for the same setting when there is one (`linger.ms`), with the value converted when the units differ (`queue.buffering.max.kbytes` counts kilobytes, `buffer.memory` bytes).";
    INVALID_VALUE = "D004" "invalid-value" Error File
        "a value the client does not accept"
        "Each setting the rules read has a type: a boolean (`true`, `false`), an integer in a range, or one of a few words (`acks` is `all`, `-1`, `0` or `1`). A value outside them (`acks=yes`, `retries=-1`, `enable.idempotence=on`) makes the client refuse to start, and a value such as `linger.ms=5ms` is not read as 5.\n\nThe diagnostic lists the values allowed. Durations are integers of milliseconds and sizes integers of bytes, with the unit in the key's name.";
    DUPLICATE_KEY = "D005" "duplicate-key" Warning File
        "a key set more than once"
        "When a key appears twice, the client keeps the last value and silently drops the first. A reader of the file, looking at the first, believes otherwise. This also covers librdkafka's aliases: `linger.ms` and `queue.buffering.max.ms` are one setting, as are `retries` and `message.send.max.retries`.\n\nDelete all but one.";
    CLIENT_UNDETERMINED = "D006" "client-undetermined" Note File
        "the client or role could not be told from the keys"
        "Which client a configuration is for decides which keys exist and which defaults apply, and the two disagree where it matters (`enable.idempotence` is on by default in Java clients since Kafka 3.0 and off in librdkafka). The client is told from keys only one of them knows (`key.serializer`, `max.block.ms` are Java's; `queue.buffering.max.ms`, `enable.auto.offset.store` are librdkafka's), and the role from keys only producers or only consumers set.\n\nWhen the keys do not tell, the Java client is assumed, and both roles. Pass `--client java|librdkafka` and `--role producer|consumer|both` to say which.";

    EMPTY_FILE = "D007" "empty-file" Warning File
        "the file sets nothing"
        "A configuration file with no settings at all (empty, or only blank lines and comments) leaves every setting at the client's default. That may be what was meant, but more often the file is not the one the client reads (a wrong path, a template never filled in, a copy that failed). The findings about defaults that follow apply to it as to any file.";
    CONTINUATION_SWALLOWS_KEY = "D008" "continuation-swallows-key" Error File
        "a line ending in `\\` swallows the setting on the next line"
        "In a `.properties` file a line that ends with an odd number of backslashes continues on the next line, whose leading white space is dropped: `acks=all \\` followed by `linger.ms=5` is one setting, `acks` = `all linger.ms=5`. The client then refuses the value, or worse accepts it, and the setting on the next line is never made. A stray backslash is easy to leave after editing a multi-line list. The diagnostic names the swallowed key and the fix removes the backslash, keeping both settings.";
    SECURITY_NOT_OFFERED = "D009" "security-not-offered" Error File
        "a `security.protocol` or SASL mechanism the broker does not offer, or not on the listener the client reaches"
        "Veltrix serves Kafka's four security protocols (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`; clients read them in any case) and three SASL mechanisms: `SCRAM-SHA-512`, `SCRAM-SHA-256` and `PLAIN`. It does not offer `GSSAPI` (Kerberos) or `OAUTHBEARER`. A client whose settings do not fit the listener it connects to never gets past its first request, and its errors (timeouts, disconnections, an authentication failure) rarely say why.\n\nWithout `--broker` the rule reads the file alone. A `security.protocol` that is none of the four (`TLS`, `SSL_SASL`) is an error: the client refuses to start; the fix names the protocol the word most likely means. Over `SASL_PLAINTEXT` or `SASL_SSL`, a mechanism Veltrix does not offer is an error: `GSSAPI`, `OAUTHBEARER`, a misspelt or lowercase name (mechanism names are case-sensitive), a list (a client uses one), and also no mechanism at all, since both clients then ask for `GSSAPI`, their default (`sasl.mechanism` in Java, `sasl.mechanisms` or `sasl.mechanism` in librdkafka; a Java file with librdkafka's `sasl.mechanisms` only is read with the default too). A mechanism set while the protocol is `PLAINTEXT` or `SSL` is a warning: the client never authenticates with it, whatever its credentials say; the fix deletes it. `PLAIN` over `SASL_PLAINTEXT` is a warning: PLAIN sends the password itself, in clear on that protocol; use `SASL_SSL` or a SCRAM mechanism.\n\nWith `--broker HOST:PORT` the broker's DescribeConfigs tells its listeners (`listeners`, `advertised.listeners`, `listener.security.protocol.map`, and each SASL listener's `sasl.enabled.mechanisms`), and the listener at the client's address (the first of its `bootstrap.servers` that is one, or the `--broker` address when the file has none) decides: a `security.protocol` other than the listener's is an error with the listener's as the fix, and so is a mechanism the listener does not offer (the fix picks the strongest it does). When none of the listeners is at the client's addresses, a warning lists them, and the protocol is not compared. `--broker` at one of the client's own addresses (or alone, for its first bootstrap server) connects as the client does, with its TLS and SASL settings; when that fails because of the protocol or the mechanism, the failure is this rule's finding: the listener speaks TLS and the client does not, or the reverse (told from the broker's answer: a TLS alert to a request in clear, a connection closed at the TLS handshake), the listener wants SASL (with the mechanisms it offers) or has none, or it does not offer the client's mechanism (with the ones it does, from its SaslHandshake answer). `--broker` at another address (the broker's loopback listener) is reached without TLS or SASL, and every listener is described on each of them.";
    BOOTSTRAP_MALFORMED = "D010" "bootstrap-malformed" Error File
        "a `bootstrap.servers` the client cannot read"
        "`bootstrap.servers` is a comma-separated list of `host:port` pairs (`broker-1:9092,broker-2:9092`). Semicolons or spaces as separators, a scheme (`kafka://`, `PLAINTEXT://`, which belong to broker listeners), or a missing port make the Java client refuse to start (\"Invalid url in bootstrap.servers\") and librdkafka try addresses that do not exist. The fix writes the list as the client reads it, with Kafka's port 9092 where none was given.";
    BROKER_CONNECTION_FAILED = "D011" "broker-connection-failed" Error File
        "`--broker` could not connect as the client: the broker's certificate, the client's credentials or files"
        "With `--broker` the doctor connects to the broker the way the client does, from its file: `security.protocol`; for TLS the CA (`ssl.ca.location` in librdkafka, `ssl.truststore.location` with `ssl.truststore.type=PEM` in Java; without one, the public roots of Mozilla's programme), the client certificate and key (`ssl.certificate.location` and `ssl.key.location`, or a PEM `ssl.keystore.location`) and whether the broker's name is checked (`ssl.endpoint.identification.algorithm`); for SASL the mechanism and the user's name and password (`sasl.username` and `sasl.password`, or `username` and `password` in `sasl.jaas.config`). When the connection fails, the client would fail the same way, and this rule says why: the broker's certificate is not signed by a CA the client trusts, is not valid for the host the client connects to, or has expired; the broker refused the TLS handshake (most often: it wants a client certificate it trusts); the broker refused the user's credentials (a wrong user name or password, or no credentials for that mechanism); the broker did not prove it holds the user's SCRAM keys. Failures of the protocol and mechanism are D009's.\n\nSettings the doctor cannot follow (a JKS or PKCS12 store, an encrypted key, certificates written in the file, no password) are a note when the broker can be asked in clear instead (its listeners then judge the client's protocol and mechanism), else a warning, and the rules that read the broker's limits are skipped. The password is never shown: a finding about credentials points at the user name, never at the line holding the password. A broker that cannot be reached at all (nothing listening, a timeout) stops the doctor with exit status 2.";
    ACKS_ZERO = "D101" "acks-zero" Error Producer
        "acks=0: the producer never learns whether a record was stored"
        "With `acks=0` the broker sends no answer: the producer counts a record as sent once it is written to the socket. A broker that is down, restarting, refusing the batch (too large, unknown topic) or crashing before the write reaches disk loses the record, and neither the producer nor the application ever hears of it. Retries cannot help, since there is no error to retry.\n\nUse `acks=all`: the broker answers once the batch is durable (on Veltrix, after the fsync; on a replicated Kafka cluster, once every in-sync replica has it).";
    ACKS_ONE = "D102" "acks-one" Warning Producer
        "acks=1: acknowledged records can be lost when the leader fails"
        "With `acks=1` the leader acknowledges a batch as soon as it has appended it, before it is safe. On a replicated Kafka cluster, if the leader fails before a follower has copied the batch, a follower without it becomes leader and the acknowledged records are gone. On Veltrix, `acks=1` is answered before the fsync, so a broker crash or power loss right after the acknowledgement loses the records.\n\nUse `acks=all`, which idempotence also requires.";
    IDEMPOTENCE_DISABLED = "D103" "idempotence-disabled" Warning Producer
        "idempotence is off: a retry can store a record twice"
        "When a produce request times out or the connection drops after the broker stored the batch but before the answer arrived, the producer retries and the broker stores the batch a second time: consumers see duplicates. With `enable.idempotence=true` the producer numbers its batches and the broker drops the repeat, so retries are safe and keep order.\n\nJava clients enable idempotence by default since Kafka 3.0; librdkafka does not (its default is `false`). Set `enable.idempotence=true`; it needs `acks=all`, `retries` > 0 and at most 5 requests in flight, which are the defaults.";
    IDEMPOTENCE_CONFLICT = "D104" "idempotence-conflict" Error Producer
        "enable.idempotence=true with settings it cannot work with: the producer refuses to start"
        "The idempotent producer needs `acks=all`, `retries` of at least 1 and `max.in.flight.requests.per.connection` of at most 5. When the file sets `enable.idempotence=true` explicitly together with a conflicting value, the Java producer throws a ConfigException at construction (\"Must set acks to all in order to use the idempotent producer\") and librdkafka fails to create the producer (\"`acks` must be set to `all` when `enable.idempotence` is true\").\n\nRemove the conflicting setting; idempotence sets the right value itself.";
    IDEMPOTENCE_SILENTLY_DISABLED = "D105" "idempotence-silently-disabled" Warning Producer
        "idempotence, on by default, is switched off by another setting"
        "Java clients since Kafka 3.0 enable idempotence by default, but only when nothing conflicts with it: `acks` other than `all`, `retries=0`, or `max.in.flight.requests.per.connection` above 5 make the producer switch idempotence off, logging one line at startup and nothing else. Retries can then duplicate records and reorder them.\n\nFix the conflicting setting, and set `enable.idempotence=true` explicitly so that a future conflict stops the producer at startup instead of silently weakening it.";
    RETRIES_ZERO = "D106" "retries-zero" Warning Producer
        "retries=0: a transient error loses the record"
        "Leader elections, broker restarts and request timeouts are routine; each makes in-flight produce requests fail with an error that a retry would get past. With `retries=0` the record fails instead, and unless the application inspects every delivery result and resends, it is lost.\n\nLeave `retries` at its default (2147483647) and bound the time spent retrying with `delivery.timeout.ms` (Java) or `message.timeout.ms` (librdkafka) instead.";
    REORDERING_ON_RETRY = "D107" "reordering-on-retry" Warning Producer
        "several requests in flight without idempotence: a retry can reorder records"
        "With more than one produce request in flight per connection and retries enabled, a batch that fails and is retried can land after a later batch that succeeded the first time: records of one partition, and so of one key, are stored out of order. Only the idempotent producer keeps order across retries (the broker refuses a batch that skips a sequence number).\n\nlibrdkafka allows 1000000 requests in flight by default, so a librdkafka producer without idempotence reorders on retries unless told otherwise. Enable idempotence, or set `max.in.flight.requests.per.connection=1` at a cost in throughput.";
    DELIVERY_TIMEOUT_INCONSISTENT = "D108" "delivery-timeout-inconsistent" Error Producer
        "the delivery timeout is shorter than the time a send may take: the producer refuses to start"
        "The Java producer requires `delivery.timeout.ms` >= `linger.ms` + `request.timeout.ms`: a record may wait `linger.ms` for its batch and then `request.timeout.ms` for the answer, and a shorter delivery timeout would expire records before their first attempt completes. When `delivery.timeout.ms` is set explicitly and too short, the constructor throws a ConfigException. librdkafka likewise refuses a `message.timeout.ms` that is not greater than an explicitly set `linger.ms`.\n\nRaise the delivery timeout (the default is 120000 ms in Java, 300000 ms in librdkafka), or lower the others.";
    DELIVERY_TIMEOUT_SHORT = "D109" "delivery-timeout-short" Warning Producer
        "a delivery timeout shorter than a leader election or broker restart"
        "`delivery.timeout.ms` (Java) and `message.timeout.ms` (librdkafka) bound the whole life of a record in the producer: waiting in the buffer, sending and every retry. When it expires the record fails. A leader election, a rolling restart or a broker recovering its log commonly takes tens of seconds; a timeout below 30 seconds turns those routine events into failed records, lost unless the application resends them.\n\nKeep the timeout at 30000 ms or more; the defaults are 120000 ms (Java) and 300000 ms (librdkafka).";
    MESSAGE_TIMEOUT_INFINITE = "D110" "message-timeout-infinite" Warning Producer
        "message.timeout.ms=0: librdkafka retries undeliverable records forever"
        "In librdkafka, `message.timeout.ms=0` (also spelled `delivery.timeout.ms`) means no timeout. A record that can never be delivered (its topic deleted, the broker refusing it, the cluster unreachable) stays in the queue forever: `flush()` never returns, the queue fills up, and every later produce call fails with a full queue. Records then pile up in memory, all lost together when the process is finally killed.\n\nSet a finite timeout (the default is 300000 ms) and handle the failures in the delivery report.";
    BUFFER_SMALL = "D111" "buffer-small" Warning Producer
        "a producer buffer that a burst fills: sends block, then fail"
        "Records wait in the producer's buffer until they are sent: `buffer.memory` bytes in Java (32 MiB by default), `queue.buffering.max.kbytes` kilobytes and `queue.buffering.max.messages` records in librdkafka (1 GiB and 100000 by default). When it is full, the Java `send()` blocks for up to `max.block.ms` and then throws; librdkafka's produce call fails at once with a full queue. Records the application does not resend are lost. A buffer below 1 MiB, or below the largest request the producer may send, fills on the first burst or broker hiccup.\n\nRaise the buffer (the defaults are sound), and handle the failures of the send call.";
    BUFFER_HUGE = "D112" "buffer-huge" Note Producer
        "a very large or unbounded producer buffer: more records lost with the process"
        "Records in the producer's buffer live only in the process's memory until the broker acknowledges them. A buffer of more than 1 GiB, or librdkafka's `queue.buffering.max.messages=0` (no limit on the count), lets a slow or unreachable broker accumulate a backlog that a crash, an out-of-memory kill or a deploy then loses whole.\n\nSize the buffer for a few seconds of peak traffic, and let back-pressure reach the application instead.";
    MAX_BLOCK_ZERO = "D113" "max-block-zero" Warning Producer
        "max.block.ms=0: send() fails whenever metadata or buffer space is not ready at once"
        "The Java producer's `send()` waits up to `max.block.ms` for the topic's metadata (always needed for the first record to a topic, and after every leader change) and for buffer space. With `max.block.ms=0` it throws instead, so the very first record to every topic fails, and so does every record during a burst. Records the application does not resend are lost.\n\nKeep a bound of a few seconds (the default is 60000 ms).";
    REQUEST_OVER_BROKER_LIMIT = "D114" "request-over-broker-limit" Warning Producer
        "the producer accepts records larger than the broker or topic does"
        "The producer checks record sizes against its own limit, `max.request.size` (Java, 1 MiB by default) or `message.max.bytes` (librdkafka, 1000000 by default). The broker checks batches against its `message.max.bytes` and each topic's `max.message.bytes`. When the producer's limit is larger, a record between the two is accepted by `send()` and then refused by the broker with MESSAGE_TOO_LARGE: it fails in the delivery callback, and is lost unless the application checks every result.\n\nThe limits are read from a running broker with `--broker HOST:PORT` (and `--topic NAME` for topic overrides). Set the producer's limit to at most the smallest of them.";
    PARTITIONER_MISMATCH = "D115" "partitioner-mismatch" Warning Producer
        "librdkafka's partitioner differs from Java's: the same key lands on different partitions"
        "librdkafka's default partitioner, `consistent_random`, hashes keys with CRC32; the Java producer, Kafka Streams and `veltrix produce` use murmur2. When producers of both kinds write keyed records to one topic, the same key goes to two different partitions: per-key order is lost, and consumers that rely on one partition per key (state stores, joins, compacted topics) see half of a key's records.\n\nSet `partitioner=murmur2_random`, which is the Java producer's behaviour (keys by murmur2, records without a key spread), in every librdkafka producer of a topic that Java clients also write.";
    PARTITIONER_IGNORES_KEYS = "D116" "partitioner-ignores-keys" Warning Producer
        "the partitioner ignores record keys: records of one key spread over partitions"
        "Kafka keeps order per partition only. A producer that partitions by key sends all records of a key to one partition, where they stay in order. `partitioner.ignore.keys=true` (Java) and `partitioner=random` (librdkafka) spread keyed records over all partitions, so consumers see a key's records out of order, and per-key processing (state, deduplication, compaction) breaks.\n\nRemove the setting unless the keys carry no meaning.";
    TRANSACTIONAL_REBOOTSTRAP = "D118" "transactional-rebootstrap" Warning Producer
        "a librdkafka transactional producer that re-bootstraps: a restart of the only broker can hang it"
        "When every broker a librdkafka client knows is down at once, which is what a restart of a single broker is, librdkafka (2.10 and later, with its default `metadata.recovery.strategy=rebootstrap`) decommissions the brokers it knew and starts over from `bootstrap.servers`. Its coordinator cache keeps the decommissioned broker as the consumer group's coordinator, and a transactional producer's `send_offsets_to_transaction` then waits for that broker handle to come back, which it never does (librdkafka issue 5511): the consume-transform-produce loop hangs, well past the call's own timeout.\n\nA Veltrix broker in its local storage mode is one broker, so every restart is such an event. Set `metadata.recovery.strategy=none` on transactional producers: the broker handle then survives the restart and reconnects. (Rule D117, which refused `transactional.id` before Veltrix served transactions, is retired.)";

    AUTO_OFFSET_STORE = "D201" "auto-offset-store-before-processing" Warning Consumer
        "librdkafka auto-commits offsets of records the application has not processed yet"
        "With librdkafka's defaults (`enable.auto.commit=true`, `enable.auto.offset.store=true`), the offset of every message is stored the moment it is handed to the application, and a background thread commits the stored offsets every `auto.commit.interval.ms`. If the application crashes while processing a message whose offset was already committed, the next consumer of the partition starts after it: the message is never processed (at-most-once).\n\nSet `enable.auto.offset.store=false` and call `store_offsets()` (`rd_kafka_offsets_store()`) after each message is processed; keep `enable.auto.commit=true` to commit the stored offsets in the background.";
    AUTO_COMMIT_IN_POLL = "D202" "auto-commit-in-poll" Note Consumer
        "Java auto-commit is safe only if records are processed before the next poll()"
        "The Java consumer's auto-commit runs inside `poll()`: it commits the offsets of the records returned by the previous `poll()`. That is at-least-once as long as every record is fully processed before `poll()` is called again. If the application hands records to other threads, or to an asynchronous pipeline, the next `poll()` commits records that are still being processed, and a crash loses them.\n\nIf processing leaves the poll loop, set `enable.auto.commit=false` and commit (`commitSync`) after processing.";
    OFFSET_RESET_LATEST = "D203" "offset-reset-latest" Warning Consumer
        "auto.offset.reset=latest: a new group, or one whose offsets expired, skips records"
        "`auto.offset.reset` decides where a consumer starts when its group has no committed offset for a partition (a new group, a partition added to the topic, or a committed offset that fell out of retention while the group was stopped). With `latest` (the default in both clients; librdkafka calls it `largest`) it starts at the end of the log, and every record already in the partition is skipped without an error.\n\nUse `earliest` (librdkafka also accepts `smallest`): a new group then reads the whole retained log, and duplicates are preferred to silent gaps. If the group is stopped for longer than the topic's retention, records are lost either way; the broker's retention is shown with `--broker`.";
    OFFSET_RESET_NONE = "D204" "offset-reset-none" Note Consumer
        "auto.offset.reset=none: the consumer fails when it has no committed offset"
        "With `none` (Java) or `error` (librdkafka), a consumer without a committed offset, or whose offset is out of range, gets an error instead of a position. Nothing is skipped or read twice, but every new group, new partition and expired offset needs an operator (for example `veltrix group reset-offsets`). Make sure the application reports the error rather than retrying in a loop.";
    READ_UNCOMMITTED = "D205" "read-uncommitted" Note Consumer
        "isolation.level=read_uncommitted: records of aborted transactions would be delivered"
        "With `read_uncommitted` (the Java default) a consumer returns records of transactions that were later aborted, so it can act on data that was never committed, and it also reads records of transactions still open, which may yet be aborted. Set `isolation.level=read_committed` (librdkafka's default): the consumer then stops at the partition's last stable offset and skips aborted records, as Veltrix serves them since it supports transactions. It stays a note: a topic no transactional producer writes reads the same either way.";
    HEARTBEAT_VS_SESSION = "D206" "heartbeat-vs-session" Warning Consumer
        "heartbeat.interval.ms too close to session.timeout.ms: members are expelled"
        "A group member that sends no heartbeat for `session.timeout.ms` is removed and its partitions are reassigned. `heartbeat.interval.ms` must be lower than the session timeout and should be at most a third of it, so that one or two late heartbeats (a GC pause, a slow network) do not expel a healthy member. Every needless rebalance stops consumption, and records processed but not yet committed when partitions move are processed again by their new owner (duplicates).\n\nA heartbeat interval at or above the session timeout is an error: the member is expelled in normal operation.";
    SESSION_TIMEOUT_RANGE = "D207" "session-timeout-out-of-range" Error Consumer
        "session.timeout.ms outside the broker's allowed range: joining the group fails"
        "With the classic group protocol, the broker refuses a JoinGroup whose session timeout is outside `group.min.session.timeout.ms` .. `group.max.session.timeout.ms` (Veltrix: `session_timeout_ms_min` .. `session_timeout_ms_max` of `[groups]`, 6000 .. 1800000 ms by default) with INVALID_SESSION_TIMEOUT, and the consumer never gets partitions. With `group.protocol=consumer` the session timeout is the broker's, and the client's setting is not used.";
    POLL_INTERVAL_BELOW_SESSION = "D208" "poll-interval-below-session" Error Consumer
        "max.poll.interval.ms below session.timeout.ms: librdkafka refuses to start"
        "librdkafka requires `max.poll.interval.ms` >= `session.timeout.ms` with the classic group protocol and fails to create the consumer otherwise (\"`max.poll.interval.ms` must be >= `session.timeout.ms`\"). Raise `max.poll.interval.ms` (default 300000 ms) or lower the session timeout (default 45000 ms).";
    POLL_INTERVAL_BELOW_PROCESSING = "D209" "poll-interval-below-processing" Error Consumer
        "processing one poll's records takes longer than max.poll.interval.ms: records are processed twice"
        "A consumer that does not call `poll()` again within `max.poll.interval.ms` is considered stuck: it leaves the group and its partitions go to another member, which starts from the last committed offset. The records the first member was processing are processed again, and its own commits fail. The Java consumer returns up to `max.poll.records` records per `poll()` (500 by default), all of which must be processed within the interval; librdkafka's `poll()` returns one message.\n\nGiven the longest processing time with `--processing-ms`, the rule compares it with the interval. Raise `max.poll.interval.ms`, or lower `max.poll.records` (Java).";
    GROUP_ID_MISSING = "D210" "group-id-missing" Warning Consumer
        "a consumer with group settings but no group.id: offsets are never committed"
        "Without `group.id` a consumer is not in a group: it cannot subscribe or commit offsets. The Java consumer turns auto-commit off, and refuses to start if `enable.auto.commit=true` is set explicitly; librdkafka fails `subscribe()`. A consumer that runs anyway (by assigning partitions itself) restarts from `auto.offset.reset` every time, skipping or repeating records.\n\nSet `group.id` to a name that is stable across restarts and deployments.";
    CHECK_CRCS_DISABLED = "D211" "check-crcs-disabled" Warning Consumer
        "check.crcs=false: corrupted records are delivered without an error"
        "Every record batch carries a CRC32C of its contents. With `check.crcs=true` the consumer verifies it and raises an error on a mismatch; with `false`, a batch damaged on the network or on a disk is handed to the application as if it were good. The Java consumer checks by default; librdkafka does not, for CPU.\n\nSet `check.crcs=true`: the check costs little next to deserializing the records.";
}

/// The rule with this id (`D101`) or name (`acks-zero`), case-insensitively.
pub fn find(wanted: &str) -> Option<&'static Rule> {
    veltrix_diagnostic::find(CATALOGUE, wanted)
}

/// The catalogue as a Markdown table: id, name, severity, scope and summary.
pub fn catalogue_markdown() -> String {
    let headers = ["Id", "Name", "Severity", "Reads", "Finds"];
    veltrix_diagnostic::catalogue_table(CATALOGUE, headers, |scope| scope.name())
}

/// Every rule's explanation, as Markdown sections.
pub fn explanations_markdown() -> String {
    CATALOGUE
        .iter()
        .map(|r| format!("### {} `{}`\n\n{}\n\n{}\n\n", r.id, r.name, r.summary, r.explanation))
        .collect()
}

/// What `--explain RULE` prints.
pub fn explain(rule: &Rule) -> String {
    format!(
        "{} {} ({}, {})\n\n{}\n\n{}\n",
        rule.id,
        rule.name,
        rule.severity.name(),
        rule.applies.name(),
        rule.summary,
        rule.explanation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_ordered_and_well_formed() {
        assert_eq!(
            veltrix_diagnostic::catalogue_problems(CATALOGUE, 'D'),
            Vec::<String>::new()
        );
        for r in CATALOGUE {
            let scope_digit = match r.applies {
                Scope::File => '0',
                Scope::Producer => '1',
                Scope::Consumer => '2',
            };
            assert_eq!(
                r.id.chars().nth(1),
                Some(scope_digit),
                "{} is numbered by its scope",
                r.id
            );
        }
        assert!(CATALOGUE.iter().filter(|r| r.applies != Scope::File).count() >= 20);
    }

    #[test]
    fn rules_are_found_by_id_or_name() {
        assert_eq!(find("d101").map(|r| r.name), Some("acks-zero"));
        assert_eq!(find("partitioner-mismatch").map(|r| r.id), Some("D115"));
        assert!(find("nope").is_none());
    }
}
