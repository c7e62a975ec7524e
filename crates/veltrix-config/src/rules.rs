//! The rule catalogue: every problem `veltrix check` can report, with its id,
//! a one-line summary and the explanation `veltrix explain RULE` prints.
//!
//! Ids are stable: `V0xx` are schema errors (the file does not say something
//! the broker can use), `V1xx` relate settings to each other, or flag a valid
//! setting that is most likely a slip, and apply under every profile, `V2xx`
//! are production lints, active with `profile = "production"` only.

pub use veltrix_diagnostic::Severity;

/// When a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleProfile {
    /// Under every profile.
    Always,
    /// Only with `profile = "production"`.
    Production,
}

/// One rule of the catalogue; it applies under a [`RuleProfile`].
pub type Rule = veltrix_diagnostic::Rule<RuleProfile>;

veltrix_diagnostic::catalogue! { RuleProfile;
    TOML_SYNTAX = "V001" "toml-syntax" Error Always
        "the file is not valid TOML"
        "The file could not be parsed as TOML, so nothing in it was checked.\n\nThe diagnostic points at the first place where the parser gave up. Common causes: an unquoted string (`data_dir = /var/lib/veltrix` must be `data_dir = \"/var/lib/veltrix\"`), a key set twice in the same table, a missing `]`.";
    UNKNOWN_KEY = "V002" "unknown-key" Error Always
        "a key, table or environment variable the schema does not have"
        "Every key of `veltrix.toml` is known to the broker; a key it does not know is an error, not silently ignored, because a misspelt key (`retention_sm`) would otherwise leave the default in force while the file seems to say otherwise.\n\nThe diagnostic suggests the nearest known key. The same applies to `VELTRIX_<TABLE>__<KEY>` environment variables. `docs/configuration.md` lists every key.";
    WRONG_TYPE = "V003" "wrong-type" Error Always
        "a value of the wrong type"
        "Each key has one type: an integer, a boolean or a string (see `docs/configuration.md`). Durations are integers of milliseconds and sizes integers of bytes, with the unit in the key's name (`retention_ms`, `segment_bytes_max`); strings such as \"7d\" or \"1GiB\" are not accepted, and the diagnostic shows the number to write instead.\n\nTables must be tables: `[broker]` once, `[[topic]]`, `[[share_group]]` and `[[alert]]` once per entry.";
    OUT_OF_RANGE = "V004" "out-of-range" Error Always
        "a value outside its allowed range"
        "Every number has a range the engine accepts, shown with its unit in the diagnostic. Some limits come from the on-disk format (a segment is at most 2 GiB because index positions are 32-bit), others from the Kafka protocol (partition counts and session timeouts are 32-bit). Limits that accept -1 treat it as \"no limit\".";
    UNKNOWN_VALUE = "V005" "unknown-value" Error Always
        "a string that is not one of the allowed words"
        "Keys such as `profile`, `durability` and `tier` take one of a few words; anything else is an error, with the nearest allowed word suggested. Words are lower case.";
    MISSING_KEY = "V006" "missing-key" Error Always
        "a required key is missing"
        "A `[[topic]]` and a `[[share_group]]` need a `name`; an `[[alert]]` needs a `group` and a `topic`; a `[[route]]` a `name` and a `source`, and each of its `[[route.rule]]`s a `when` and a `to`; `[storage]` with `mode = \"shared\"` a `broker_id`, a `bucket` and a `postgres_url`. Without them the entry cannot be applied or evaluated, or the broker cannot store anything.";
    INVALID_TOPIC_NAME = "V007" "invalid-topic-name" Error Always
        "a topic name Kafka does not allow"
        "Kafka topic names are 1 to 249 characters of ASCII letters, digits, `.`, `_` and `-`, and neither `.` nor `..`. The broker refuses anything else, and so does every Kafka client, so the name is checked before the broker starts.";
    DUPLICATE_TOPIC = "V008" "duplicate-topic" Error Always
        "two `[[topic]]` entries with the same name"
        "Each topic is declared once. Two declarations with the same name would leave it undecided which settings apply; merge them into one entry.";
    INVALID_ADDRESS = "V009" "invalid-address" Error Always
        "a listener address that is not IP:PORT"
        "Listeners bind to an IP address and a port, such as `127.0.0.1:9092` or `[::1]:9092`. Host names are not resolved: write `127.0.0.1` rather than `localhost`, so the broker listens where the file says whatever the resolver returns.";
    INVALID_URL = "V010" "invalid-url" Error Always
        "a URL that is not of the kind its key takes"
        "The alert webhook is POSTed to over HTTP or HTTPS, and `[storage] endpoint` is an S3-compatible server's `http://` or `https://` URL; anything else could never be reached, and alerts would go unheard exactly when they fire. `[storage] postgres_url` is a PostgreSQL connection string as libpq takes it: a `postgresql://` (or `postgres://`) URL such as `postgresql://veltrix@db.internal:5432/veltrix`, or `key=value` pairs (`host=db.internal dbname=veltrix user=veltrix`). Write the whole URL with its scheme and host.";
    INVALID_GROUP_NAME = "V011" "invalid-group-name" Error Always
        "a share group name no consumer could use"
        "A `[[share_group]]`'s name is the group id its consumers give (`group.id`). The broker takes share group ids of at most 255 bytes (`GROUP_ID_BYTES_MAX`: the id is written in every stored change of the group's state) and refuses a longer one, from the file or from a consumer. A control character (a newline, a tab) or a space at either end is almost always a slip of quoting: the settings would land on a group no consumer joins, while the one they do join keeps the defaults. An empty name is reported as V004.";
    DUPLICATE_SHARE_GROUP = "V012" "duplicate-share-group" Error Always
        "two `[[share_group]]` entries with the same name"
        "Each share group is declared once. Two declarations with the same name would leave it undecided which settings apply; merge them into one entry.";
    INVALID_OFFSET_RESET = "V013" "invalid-offset-reset" Error Always
        "an `auto_offset_reset` that is not `latest`, `earliest` or `by_duration:<ISO 8601 duration>`"
        "`auto_offset_reset` says where a share group starts on a partition it has no state for, in Kafka's words: `latest` (records produced from then on), `earliest` (every record the partition still has), or `by_duration:` followed by an ISO 8601 duration (records produced at most that long ago), such as `by_duration:PT1H` (an hour), `by_duration:P1D` (a day) or `by_duration:P1DT12H`. The broker refuses anything else, as Kafka does.\n\nDurations are written `PnDTnHnMnS`: days, then `T` and hours, minutes and seconds, each optional, the seconds possibly with a fraction. Years, months and weeks are not accepted, since their length varies.";
    INVALID_ID_HEADER = "V014" "invalid-dedup-id-header" Error Always
        "a `dedup_id_header` that is empty or longer than 255 bytes"
        "`dedup_id_header` names the record header whose value is a record's message id, for the topic's duplicate window. An empty name is no header a producer can send: the window would never find an id and would catch no duplicate. A name longer than 255 bytes (`DEDUP_ID_HEADER_BYTES_MAX`) the broker refuses, here as over the Kafka protocol (`veltrix.dedup.id.header`), so the topic could not be applied at start. Write the header your producers put the id in, or leave the key out for the default, `message-id`.";
    INVALID_DEAD_LETTER_TOPIC = "V015" "invalid-dead-letter-topic" Error Always
        "a share group's `dead_letter_topic` that does not start with `dlq.` or is no valid topic name"
        "A share group copies the records it archives to its `dead_letter_topic`. The broker writes there on the group's behalf, so, as in Kafka (KIP-1191's `errors.deadletterqueue.topic.name.prefix`), the name must start with `dlq.`: a group cannot be made to write into a topic not meant for dead letters, and whoever reads the topic sees at once that its records were written there by the broker. The rest of the name follows the rules of topic names (ASCII letters, digits, `.`, `_` and `-`, at most 249 characters). The broker refuses any other name, here as over the Kafka protocol, so the group could not be applied at start.";
    NOT_UTF8 = "V016" "not-utf-eight" Error Always
        "the file is not UTF-8 text"
        "A TOML file is UTF-8 by definition. A file saved in another encoding (Latin-1, Windows-1252, UTF-16), or one with binary bytes in it, cannot be read; the diagnostic points at the line and column of the first byte that is not UTF-8. Save the file as UTF-8. A byte-order mark at the start of a UTF-8 file is accepted.";
    ENV_VALUE_QUOTED = "V017" "env-value-quoted" Error Always
        "an environment override's value is in quotes"
        "An environment variable has no quoting of its own: `VELTRIX_BROKER__DATA_DIR=\"/var/lib/veltrix\"` in a `.env` file, a container definition or a unit file that does not strip quotes hands the broker the quotes as characters. A number in quotes is not a number, and a path in quotes names a directory whose name starts with a quote, which `serve` would create. Write the value without quotes.";
    PATH_PLACEHOLDER = "V018" "path-placeholder" Error Always
        "a path with `~`, `$VAR`, `${VAR}`, `%VAR%` or `{{ }}` that nothing expands"
        "`veltrix.toml` is read as it is written: nothing expands `~`, `$HOME`, `${DATA}`, `%APPDATA%` or a template's `{{ data_dir }}` in it, and an environment override holds what the process was given, which a unit file or a container definition passes on unexpanded. The broker would create a directory literally named `~` or `${DATA}` under the directory it was started from, open an empty data directory there and serve no data, while the real data sits elsewhere; so such a path is an error, and `serve` refuses it, from the file, the environment or `--data-dir`, before it creates anything.\n\nWrite the absolute path. The diagnostic shows what the placeholder stands for on the machine that runs the check, when it can tell. To set the path per machine, set `VELTRIX_BROKER__DATA_DIR` to a value your deployment tool has already expanded.";
    PATH_STRAY_CHARACTERS = "V019" "path-stray-characters" Error Always
        "a path with white space or quotes at either end"
        "`data_dir = \" /var/lib/veltrix\"` or `data_dir = \"'/var/lib/veltrix'\"` names a directory whose name starts with a space or a quote. Such values come from copying a value with its quotes out of a shell script, a YAML file or a template. `serve` would create that directory beside the real one and start empty, so it refuses the path instead. Remove the characters; the diagnostic shows the path to write.";
    DATA_DIR_SYSTEM = "V020" "data-dir-system" Error Always
        "the data directory is the root, a directory that holds others, or inside a system directory"
        "The broker puts its `logs` directory, its catalogue and its lock file in the data directory. Pointed at `/`, `/var`, `/var/lib`, `/home`, `/opt` or `/srv` itself, or anywhere inside `/etc`, `/usr`, `/bin`, `/lib`, `/boot`, `/proc`, `/sys`, `/dev` or `/run`, they would mix with files the system owns, where package upgrades, backups and clean-up jobs do not expect them, usually on a small root file system. Give the broker a directory of its own, such as `/var/lib/veltrix`.";
    DATA_DIR_NESTED = "V021" "data-dir-nested" Error Always
        "the data directory is inside another broker's data directory"
        "A broker owns everything under its data directory: at start it removes the log directories its catalogue does not name, and a backup, a restore or a deletion of its directory takes whatever is inside with it. A second broker's data directory inside the first (`/var/lib/veltrix/logs/b`, `/var/lib/veltrix/b`) shares that fate. A data directory is recognised by its lock file and its `logs` directory. Give each broker a directory of its own, side by side (`/var/lib/veltrix`, `/var/lib/veltrix-2`).";
    QUOTA_WITHOUT_ENTITY = "V022" "quota-without-entity" Error Always
        "a `[[quota]]` for neither a user nor a client id"
        "A client quota is for a user (`user`, or `user_default = true` for every user without one of their own), a client id (`client_id`, or `client_id_default = true`), or both: a user's clients with that id. An entry with none of them could never apply to a client.";
    QUOTA_ENTITY_BOTH_WAYS = "V023" "quota-entity-both-ways" Error Always
        "a `[[quota]]` names a user or client id and also sets it as the default"
        "`user = \"alice\"` is alice's quota, `user_default = true` is the quota of every user without one of their own: two different quotas in Kafka's order of precedence (the most specific wins). One entry cannot be both; declare them as two entries.";
    DUPLICATE_QUOTA = "V024" "duplicate-quota" Error Always
        "two `[[quota]]` entries for the same user and client id"
        "Each quota entity is declared once. Two entries for the same one would leave it undecided which rates apply; merge them.";
    INVALID_ROUTE_NAME = "V025" "invalid-route-name" Error Always
        "a route name that is not 1 to 100 ASCII letters, digits, `.`, `_` and `-`"
        "A `[[route]]`'s name names it in the broker's logs and metrics and in the `veltrix.route.name` header of its dead letters, keys where its readers stand in the data directory, and makes its default dead-letter topic, `<name>.dead-letters`. So it is written as a topic name is, shorter: 1 to 100 ASCII letters, digits, `.`, `_` and `-`. A route renamed is another route to the broker: the progress kept under the old name is forgotten.";
    DUPLICATE_ROUTE = "V026" "duplicate-route" Error Always
        "two `[[route]]` entries with the same name"
        "Each route is declared once. Two routes with one name would share it in metrics and dead letters, and leave it undecided whose progress is whose; give each its own name, or merge their rules into one route.";
    ROUTE_EXPRESSION = "V027" "route-expression" Error Always
        "a route rule's `when` that does not compile"
        "A rule's `when` is a CEL expression over the record that gives a bool. It is compiled when the file is checked: its syntax, and every variable and function it names. A record has `key`, `value` (parsed as JSON when it is JSON, so that `value.type` is a field), `headers`, `timestamp`, `partition` and `offset`; the functions are CEL's standard ones (`size`, `contains`, `startsWith`, `endsWith`, `matches`, `has`, `exists`, `all` and the rest). The diagnostic points at the line and column in the file of what is wrong inside the string. A route whose expression does not compile cannot run, so `serve` refuses to start.\n\nIn a TOML literal string (`when = 'value.type == \"reward\"'`) CEL's double quotes need no escaping, and a multi-line literal string (`'''...'''`) holds a long condition over several lines. An expression that compiles can still fail on a record (a field the record lacks, a result that is not a bool): that record goes to the route's dead-letter topic with the reason in a header, and the route goes on.";
    ROUTE_ROUTES_NOTHING = "V028" "route-routes-nothing" Error Always
        "a route without rules and without a default target"
        "A route sends each record where the first rule that holds for it says, and the records no rule holds for to its `default` topics. With neither, it would read its source and write nothing; the broker refuses such a route. Add a `[[route.rule]]` under it, or a `default`.";
    RULE_WITHOUT_TARGET = "V029" "rule-without-target" Error Always
        "a route rule whose `to` names no topic"
        "`to = []` would send the records the rule holds for nowhere, and since the first rule that holds wins, they would reach neither a later rule nor the default. The broker refuses such a rule. Name at least one topic; to leave records out, leave them to no rule and give the route no `default` (they are dropped and counted).";
    ROUTE_OVER_LIMITS = "V030" "route-over-limits" Error Always
        "more routes, rules, targets or headers than the broker takes"
        "The broker runs at most 100 routes, each with at most 100 rules; a rule sends to at most 16 topics and adds at most 16 headers, and a `default` names at most 16 topics. Rules are tried in order for every record until one holds, and each target is a write of the record: the limits bound what one record costs. The broker refuses a route past them. Join conditions with `||` into one rule, or split the route.";
    DUPLICATE_LISTENER = "V031" "duplicate-listener" Error Always
        "two listeners with the same name or address"
        "Each `[[listener]]` has a name of its own (logs and metrics tell listeners apart by it) and an address of its own: two listeners cannot bind one port, and neither can a `[[listener]]` bind the address of `[listeners] kafka` or `http`. Give each its own.";
    LISTENER_TLS = "V032" "listener-tls" Error Always
        "a listener's TLS settings do not fit its protocol"
        "`SSL` and `SASL_SSL` listeners need `tls_cert_file` and `tls_key_file`; client certificates (`tls_client_auth = \"requested\"` or `\"required\"`) need `tls_client_ca_file`, the CA they must chain to. TLS files on a `PLAINTEXT` or `SASL_PLAINTEXT` listener would be ignored, which most often means the protocol is not the one meant: connections there are not encrypted.";
    TLS_FILE_UNUSABLE = "V033" "tls-file-unusable" Error Always
        "a TLS file cannot be read, holds no PEM certificate or key, or its certificate has expired"
        "The broker reads a listener's certificate chain, key and client CA file at start and refuses to start when they do not load, so this is checked first: the file must exist and be readable by the broker's user, and hold PEM blocks (`-----BEGIN CERTIFICATE-----`, `-----BEGIN PRIVATE KEY-----`). An expired certificate would make every client's handshake fail.";
    SASL_MECHANISMS = "V034" "sasl-mechanisms" Error Always
        "SASL mechanisms that do not fit the listener"
        "A `SASL_PLAINTEXT` or `SASL_SSL` listener offers some of `SCRAM-SHA-512`, `SCRAM-SHA-256` and `PLAIN` (both SCRAMs when `sasl_mechanisms` is left out). Other mechanisms (GSSAPI, OAUTHBEARER) are not served. Mechanisms on a listener without SASL would never be offered: the protocol is most likely not the one meant.";
    PRINCIPAL_MAPPING_RULE = "V035" "principal-mapping-rule" Error Always
        "a principal mapping rule that does not parse"
        "`principal_mapping_rules` are Kafka's `ssl.principal.mapping.rules`, one rule a string: `DEFAULT`, or `RULE:pattern/replacement/` followed by nothing, `L` or `U`. The pattern is a regular expression (Rust's `regex` syntax) matched against the whole subject, such as `RULE:^CN=([^,]+),.*$/$1/L`; a slash inside a part is written `\\/`.";
    INVALID_SUPER_USER = "V036" "invalid-super-user" Error Always
        "a super user that is not a principal"
        "Super users are principals as ACLs name them: a type, a colon and a name, such as `User:admin`. `admin` alone would match no connection, so nobody would have the powers it was meant to give.";
    PRIVILEGED_PLAINTEXT_LISTENER = "V037" "privileged-plaintext-listener" Error Always
        "the unauthenticated `kafka` listener is a super user and reachable from the network"
        "`[listeners] kafka_principal` gives every connection to the `kafka` listener, which neither encrypts nor authenticates, one principal. When that principal is a super user, whoever connects may do everything, whatever the ACLs say: acceptable on loopback, where only this host's users reach it, never on an address the network reaches. Keep `[listeners] kafka` on `127.0.0.1` (or `[::1]`), or take its principal out of `super_users`.";
    ANONYMOUS_SUPER_USER = "V038" "anonymous-super-user" Error Always
        "`User:ANONYMOUS` is a super user"
        "`User:ANONYMOUS` is the principal of every connection nothing authenticated: the `kafka` listener (unless `kafka_principal` names another), every `PLAINTEXT` listener, an `SSL` listener's clients without a certificate, and HTTP requests without credentials where none are required. As a super user it lets all of them do everything, whatever the ACLs say: the weakest password there is, none. Give local tools a principal of their own (`[listeners] kafka_principal = \"User:local-admin\"`, on a loopback listener) and make that the super user, and give people users with passwords (`veltrix user add`).";
    BATCH_LARGER_THAN_SEGMENT = "V101" "batch-larger-than-segment" Error Always
        "`batch_bytes_max` is larger than `segment_bytes_max`"
        "A batch is never split across segments, so the largest batch must fit in one segment. The log engine refuses such a topic at creation; the check reports it before the broker starts. Raise `segment_bytes_max` or lower `batch_bytes_max` (the maximum message size).";
    REQUEST_OVER_MEMORY_BUDGET = "V102" "request-over-memory-budget" Error Always
        "`request_bytes_max` is larger than the memory budget `in_flight_bytes_max`"
        "A request is read only once its bytes fit in the memory budget (`in_flight_bytes_max`). A request as large as `request_bytes_max` would then never fit, and its connection would wait forever; the broker refuses to start with such limits. Keep `request_bytes_max` at or below `in_flight_bytes_max`, ideally well below so that several large requests can be in flight.";
    PARTITIONS_OVER_TOPIC_MAX = "V103" "partitions-over-topic-max" Error Always
        "a partition count above `partitions_per_topic_max`"
        "The broker refuses to create a topic with more partitions than `broker.partitions_per_topic_max`, so a declared topic (or the default partition count) above it could never be applied. Lower the count or raise the limit.";
    PARTITIONS_OVER_TOTAL_MAX = "V104" "partitions-over-total-max" Error Always
        "the declared topics have more partitions than `partitions_total_max`"
        "Every partition is a directory, open files and memory; `broker.partitions_total_max` bounds them across topics. If the declared topics alone exceed it, some could not be created at start. Lower the partition counts or raise the limit.";
    TOPICS_OVER_MAX = "V105" "topics-over-max" Error Always
        "more declared topics than `topics_max`"
        "The broker refuses to create more than `broker.topics_max` topics, so the declared topics could not all be applied. Raise the limit or declare fewer topics.";
    ALERT_UNKNOWN_TOPIC = "V106" "alert-unknown-topic" Error Always
        "an alert names a topic that is not declared"
        "An `[[alert]]` watches the lag of a group on a declared topic. A topic that is not declared is usually a typo, and an alert on it would never fire. Declare the topic with `[[topic]]` or fix the name.";
    ALERT_THRESHOLD = "V107" "alert-threshold" Error Always
        "an alert without exactly one of `lag_records_max`, `lag_ms_max` and `dead_letters_per_minute_max`"
        "An alert fires when one measure passes its threshold: the lag as a number of records (`lag_records_max`) or an age (`lag_ms_max`), or a share group's dead letters in the last minute (`dead_letters_per_minute_max`). With none it could never fire; with two it would be unclear which one counts. Declare one alert per measure.";
    RETENTION_UNDER_ALERT_HORIZON = "V108" "retention-under-alert-horizon" Warning Always
        "a topic's retention is shorter than a lag alert on it can take to fire"
        "An alert with `lag_ms_max` fires once the oldest unconsumed record has been waiting `lag_ms_max` and the lag has stayed that high for `for_ms`. If the topic's `retention_ms` is not longer than `lag_ms_max + for_ms`, retention deletes the unconsumed records before anyone is told the consumer is behind: data is lost silently, which is what the alert exists to prevent. Make the retention comfortably longer than the alert horizon (hours to days of slack to react), or alert sooner.";
    FLUSH_INTERVAL_WITHOUT_INTERVAL = "V109" "flush-interval-without-interval-durability" Error Always
        "`flush_interval_ms` is set but durability is not `interval`"
        "`flush_interval_ms` only applies to `durability = \"interval\"`. With `fsync` durability every append is fsynced before it is acknowledged and the interval would do nothing; accepting it would suggest a setting is in force that is not. Remove it, or set `durability = \"interval\"` if acknowledged records may be lost on power loss.";
    INTERVAL_WITHOUT_FLUSH_INTERVAL = "V110" "interval-durability-without-flush-interval" Error Always
        "`durability = \"interval\"` without `flush_interval_ms`"
        "Interval durability acknowledges appends before they are fsynced and fsyncs them every `flush_interval_ms`. Without the interval there is no bound on how much acknowledged data a power loss can take; the file must say it.";
    FSYNC_UNDER_INTERVAL_DEFAULT = "V111" "fsync-under-interval-default" Error Always
        "a topic asks for `fsync` durability while `[defaults]` uses `interval`"
        "The topic catalogue stores, per topic, only a departure from the broker's default durability towards a flush interval; a topic cannot opt back into fsync-per-append when the default is `interval`. Keep `fsync` as the default (recommended) and give `durability = \"interval\"` to the topics that may lose acknowledged records.";
    SESSION_TIMEOUT_BOUNDS = "V112" "session-timeout-bounds" Error Always
        "`session_timeout_ms_min` is above `session_timeout_ms_max`"
        "Consumers ask for a session timeout within `[groups] session_timeout_ms_min..=session_timeout_ms_max`. With the minimum above the maximum no timeout is acceptable and every consumer group join fails with INVALID_SESSION_TIMEOUT.";
    LISTENER_CONFLICT = "V113" "listener-conflict" Error Always
        "the Kafka and HTTP listeners use the same port"
        "The Kafka and HTTP listeners are separate sockets; on the same port (on the same or a wildcard address) the second one cannot bind and the broker fails to start. Give each its own port.";
    MEMORY_BUDGET_OVER_RAM = "V114" "memory-budget-over-ram" Warning Always
        "the memory budget for requests is larger than the machine's memory"
        "`limits.in_flight_bytes_max` bounds the request bytes the broker holds at once. A budget larger than the machine's physical memory bounds nothing: under load the broker would be killed by the kernel's out-of-memory killer before the budget pushed back on producers. Set it to a fraction of the memory (a quarter is a common start).";
    CRITICAL_TIER_CONFLICT = "V115" "critical-tier-conflict" Warning Always
        "a topic marked `critical = true` with a tier other than `critical`"
        "`critical = true` and `tier` both label the topic; a critical topic in the `standard` or `bulk` tier says two different things, and tools that shed the lowest tier first under overload would shed records someone marked critical. Make them agree.";
    RETENTION_UNDER_SEGMENT_AGE = "V116" "retention-under-segment-age" Warning Always
        "`retention_ms` is shorter than `segment_age_ms_max`"
        "Retention deletes whole sealed segments. A segment is sealed when it is full or has received appends for `segment_age_ms_max`; until then its records stay, whatever `retention_ms` says. On a quiet topic records can therefore live up to `segment_age_ms_max + retention_ms`, which matters when retention is a promise (privacy, cost). Set `segment_age_ms_max` at or below `retention_ms`.";
    BATCH_OVER_REQUEST = "V117" "batch-over-request" Warning Always
        "a topic accepts batches larger than any request can carry"
        "A batch arrives inside a produce request, and a request larger than `limits.request_bytes_max` closes the connection. A `batch_bytes_max` above it promises a maximum message size that producers can never reach, and their large batches fail with a dropped connection instead of MESSAGE_TOO_LARGE. Keep `batch_bytes_max` below `request_bytes_max`.";
    RETENTION_BYTES_UNDER_SEGMENT = "V118" "retention-bytes-under-segment" Warning Always
        "`retention_bytes` is smaller than `segment_bytes_max`"
        "Size retention deletes whole sealed segments, never the active one, so a partition holds up to `segment_bytes_max` more than `retention_bytes`. With a limit smaller than one segment the disk use is mostly the active segment and the limit is not what it says. Lower `segment_bytes_max` below `retention_bytes` (a tenth of it keeps the overshoot small).";
    HEARTBEAT_OVER_SESSION = "V119" "heartbeat-over-session" Error Always
        "the consumer protocol's heartbeat interval is not below its session timeout"
        "Under the consumer protocol (KIP-848) the broker tells members how often to heartbeat and removes a member that has not for `consumer_session_timeout_ms`. With the interval at or above the timeout, healthy members would be removed between two heartbeats, over and over, and their partitions would keep moving. Keep the interval a small fraction of the timeout (Kafka's defaults: 5 s and 45 s).";
    SHARE_GROUPS_OVER_MAX = "V120" "share-groups-over-max" Error Always
        "more declared share groups than `[share] groups_max`"
        "The broker keeps at most `[share] groups_max` share groups and refuses to create one more. Declared share groups are created at start, so if they alone exceed the limit some could not be applied and the broker would refuse to start. Raise the limit or declare fewer groups; groups that consumers create by joining count too, so leave room for them.";
    SHARE_HEARTBEAT_OVER_SESSION = "V121" "share-heartbeat-over-session" Error Always
        "the share groups' heartbeat interval is not below their session timeout"
        "Share group members heartbeat every `[share] heartbeat_interval_ms` and are removed once they have not for `session_timeout_ms`, the records they hold released to others. With the interval at or above the timeout, healthy members would be removed between two heartbeats, over and over: their records delivered again and again, until records nobody failed to process reach the delivery limit and are archived unprocessed. Keep the interval a small fraction of the timeout (Kafka's defaults: 5 s and 45 s).";
    LOCK_OVER_SESSION_TIMEOUT = "V122" "lock-over-session-timeout" Warning Always
        "a share group's record lock outlasts the session timeout, which cuts it short"
        "Records handed to a member stay locked to it for `record_lock_duration_ms`, but only while its share session lives: a session that no ShareFetch or ShareAcknowledge uses for `[share] session_timeout_ms` is closed, and the records it holds are released to other members at once. A consumer that works on one batch for longer than the session timeout (it sends no request while it works) loses its records then, however long the lock: they are delivered again elsewhere, count a delivery, and its late acknowledgement fails. The part of the lock past the session timeout is never given. Keep `record_lock_duration_ms` at or below `session_timeout_ms`, or raise the session timeout if batches really take that long.";
    SESSIONS_UNDER_GROUP_MEMBERS = "V123" "sessions-under-group-members" Warning Always
        "fewer share sessions than members one share group may have"
        "Every member of a share group that fetches holds a share session, and the broker has `[share] sessions_max` of them for all groups together. With fewer sessions than `group_members_max`, one group at its member limit has members that join but can never fetch (SHARE_SESSION_LIMIT_REACHED), although the member limit lets them in. Make `sessions_max` at least `group_members_max`, and more if several share groups are busy at once.";
    DEDUP_WINDOW_OVER_RETENTION = "V124" "dedup-window-over-retention" Error Always
        "a topic's duplicate window is longer than its retention"
        "A topic with `dedup_window_ms` remembers the message id of every record it stores for that long, and drops a later record with the same id as a duplicate. If the window outlasts the retention (the topic's `retention_ms`, or `[defaults]`'), a record resent after retention has deleted its original would still be dropped: the one copy is gone, and so is the resend. The broker refuses such a topic, at creation and when its settings change, here as over the Kafka protocol.\n\nShorten the window to at most the retention, or lengthen the topic's retention. Shortening the retention to match would delete stored records, and is never the fix this rule suggests.";
    DEDUP_WINDOW_UNIT = "V125" "dedup-window-unit" Warning Always
        "a duplicate window under a second, which reads as the wrong unit"
        "`dedup_window_ms` is in milliseconds. The resends a duplicate window is there for come after a producer restarts or a broker outage ends: seconds to minutes after the original. A window of 1 to 999 ms catches almost none of them, and is most likely a number of seconds or minutes written where milliseconds are meant (`dedup_window_ms = 120` for two minutes). The diagnostic shows the value in milliseconds for each reading.";
    DEDUP_ID_WITHOUT_WINDOW = "V126" "dedup-id-without-window" Warning Always
        "`dedup_id_header` or `dedup_id_source` on a topic without a duplicate window"
        "`dedup_id_header` and `dedup_id_source` say where a topic's duplicate window finds a record's message id. Without `dedup_window_ms` (or with 0) the topic has no window: every record is stored whatever its id, and these settings do nothing, while the file seems to say duplicates are caught. Turn the window on, or remove them.";
    DEDUP_ID_SOURCE_CONFLICT = "V127" "dedup-id-source-conflict" Error Always
        "`dedup_id_source = \"key\"` together with a `dedup_id_header`"
        "With `dedup_id_source = \"key\"` the message id is the record's key, and `dedup_id_header` is never read; naming a header as well says the id is in two places. The difference matters: keys are often shared by many messages (a player, an account, an order's events), and a window on the key drops every record whose key was stored within it. If producers put a unique id in a header, taking the key instead loses records, so the contradiction is an error rather than a guess. Remove `dedup_id_header` to deduplicate on unique keys, or remove `dedup_id_source` to use the header.";
    DEDUP_ID_HEADER_WHITE_SPACE = "V128" "dedup-id-header-white-space" Warning Always
        "a `dedup_id_header` that begins or ends with white space"
        "Header names are compared byte for byte, and a name with a space or tab at either end is almost always a slip of quoting. Producers sending the header without it would not match: their records would be stored as records without an id, and no duplicate caught. Such a name is valid, so this is a warning; write the name exactly as producers send it.";
    DEDUP_WINDOW_OVER_IDS_MAX = "V129" "dedup-window-over-ids-max" Warning Always
        "at its peak rate a topic's duplicate window holds more ids than `[dedup] ids_max`"
        "A duplicate window remembers one id per record stored within it, across the topic's partitions: at the topic's `peak_records_per_second`, a window of `dedup_window_ms` holds that rate times the window's seconds. A topic remembers at most `[dedup] ids_max` ids; past it, the oldest are forgotten before their time, so the window effectively shrinks to `ids_max` divided by the rate, and a record resent after its id was forgotten is stored again. The diagnostic gives the `ids_max` that fits, with the memory it costs (each id is its bytes and about 128 more) and, when this window alone would not fit in `[dedup] memory_bytes_max` (which all windows share, and past which they shrink too), the `memory_bytes_max` it needs; or the window that fits the limit.";
    BACKOFF_MAX_BELOW_INITIAL = "V130" "backoff-max-below-initial" Warning Always
        "a share group's longest backoff is shorter than its first"
        "A record released, or whose lock ran out, waits `backoff_initial_ms` after its first delivery before it is delivered again, and `backoff_multiplier` times longer after each further one, up to `backoff_ms_max`. With `backoff_ms_max` below `backoff_initial_ms` the two disagree: the broker never waits less than the initial backoff, so the maximum has no effect and the waits never grow. Most likely one of them is in the wrong unit or a digit is missing. Raise `backoff_ms_max` to the longest wait you want (the fix never shortens the initial backoff to match, which would retry faster against whatever made the record fail).";
    DEAD_LETTER_TOPIC_WITHOUT_WINDOW = "V131" "dead-letter-topic-without-window" Warning Always
        "a declared dead-letter topic has no duplicate window on `veltrix.dlq.id`"
        "The broker writes a share group's dead letter, waits until it is durable, then marks the record archived. A crash between the two writes the letter again after the restart. Every letter carries a deterministic id in the header `veltrix.dlq.id`; a dead-letter topic with a duplicate window on that header (`dedup_window_ms`, `dedup_id_header = \"veltrix.dlq.id\"`) drops the second copy, so each archived record has exactly one letter. A dead-letter topic the broker creates has that window; a declared one without it gets at least one letter per record, and after a crash possibly two. Add the window, as long as the topic's retention.";
    DEAD_LETTER_TOPIC_MISSING = "V132" "dead-letter-topic-missing" Warning Always
        "a share group's dead-letter topic is not declared and the broker may not create it"
        "With `[share] dead_letter_topics_auto_create = false` the broker does not create a group's dead-letter topic. If it does not exist when the group archives a record, the record waits, archiving, and is tried again every second: nothing is lost, but the share-partition's start offset cannot pass it, and once `partition_record_locks_max` records are behind it the partition stops. Declare the topic with `[[topic]]` (with a duplicate window on `veltrix.dlq.id`), or let the broker create it.";
    DELAY_CAP_WITHOUT_DELAYS = "V133" "delay-cap-without-delays" Warning Always
        "a share group's `delay_ms_max` is set but its delays are off"
        "`delay_ms_max` caps the delays a share group honours from its records' `veltrix.deliver.at` and `veltrix.delay.ms` headers. Those headers are read only with `delay_enabled = true` (in the group's table or in `[share]`); without it the cap does nothing and delayed records are handed out at once, which is most likely not what whoever set the cap expected. Turn delays on, or remove the cap.";
    EMPTY_FILE = "V134" "empty-file" Warning Always
        "the file is empty"
        "A configuration file with nothing in it (or only white space) is valid: every setting takes its default. But an empty file is more often a mistake than a choice: a wrong path, a template never filled in, a copy or a deployment that wrote nothing. The broker would start with the development defaults, in a data directory under the working directory. Check the file; a file meant to be empty can say so in a comment.";
    ENV_SINGLE_UNDERSCORE = "V135" "env-single-underscore" Warning Always
        "a `VELTRIX_` variable with one underscore between the table and the key"
        "Environment overrides are named `VELTRIX_<TABLE>__<KEY>`, with two underscores between the table and the key (keys contain single underscores themselves). `VELTRIX_LIMITS_REQUEST_BYTES_MAX` is not an override: it is ignored and the file's value, or the default, stays in force. The diagnostic names the variable that was probably meant.";
    RETENTION_UNIT = "V136" "retention-unit" Warning Always
        "a retention of less than a minute"
        "`retention_ms` is in milliseconds. A retention under a minute deletes records before most consumers have read them, and is almost always a number of seconds, hours or days written where milliseconds are meant (`retention_ms = 7` for a week). The diagnostic gives the line to write for each reading. It never suggests shortening anything else to match: V116 (retention under the segment age) stays silent for such a retention, since its fix would lock the mistake in.";
    ALERT_UNDER_EVALUATION_INTERVAL = "V137" "alert-under-evaluation-interval" Warning Always
        "a lag alert's `lag_ms_max` is shorter than the interval at which alerts are evaluated"
        "The broker evaluates every alert once per `[observability] lag_evaluation_interval_ms` (5 s by default). A lag of `lag_ms_max` below that interval asks for a precision the evaluation does not have: lag is seen up to an interval late, and a consumer that is merely between two reads can be over the threshold at an evaluation. Such a value is most often a slip of unit or of a digit. Raise `lag_ms_max` to the interval or more; the check never suggests shortening the interval to match, which would only evaluate more often around the same mistake.";
    DURATION_UNIT = "V138" "duration-unit" Warning Always
        "a duration in milliseconds that reads as seconds, minutes or days"
        "Durations are integers of milliseconds, with `_ms` in the key's name. For some keys the allowed range reaches far below any value that makes sense: a segment rolled after 7 ms, an empty group's offsets forgotten after 30 ms, a lag alert at 60 ms, a webhook that gives up after 5 ms. Such a value is almost always a number of seconds, minutes or days written where milliseconds are meant. The diagnostic gives the line to write for each plausible reading. The keys and their shortest sensible values: `segment_age_ms_max`, `producer_id_expiration_ms` and `offsets_retention_ms` a minute; `lag_ms_max` and `for_ms` a second; `webhook_timeout_ms` and `shutdown_drain_ms_max` 100 ms. (`retention_ms` has V136.)";
    QUOTA_WITHOUT_RATE = "V139" "quota-without-rate" Warning Always
        "a `[[quota]]` sets no rate"
        "A quota limits what its clients produce (`producer_byte_rate`) or fetch (`consumer_byte_rate`), in bytes per second. An entry with neither limits nothing, and a less specific quota (a default) still applies to its clients, which is most likely not what whoever wrote it expected.";
    TIER_THRESHOLDS_REVERSED = "V140" "tier-thresholds-reversed" Error Always
        "bulk topics would be throttled (or refused on a full disk) after standard ones"
        "As the memory budget fills, requests for `bulk` topics are throttled from `[limits] tier_bulk_throttle_percent` of it, `standard` ones from `tier_standard_throttle_percent`, and `critical` ones never (they flow until the budget is full). A bulk threshold above the standard one reverses the order the tiers exist for: a flood of bulk records would slow standard traffic first. The fix lowers the bulk threshold; it never raises the standard one, which would let standard traffic fill more of the budget before anything slows.\n\nThe same holds for the disk: produce to bulk topics is refused below `[broker] disk_bulk_free_percent_min` free space, standard below `disk_standard_free_percent_min`; the bulk threshold must be the higher one, and the fix raises it.";
    ROUTE_UNKNOWN_TOPIC = "V141" "route-unknown-topic" Error Always
        "a route reads or writes a topic that is not declared"
        "A route's `source`, the topics of its rules' `to`, its `default` and its dead-letter topic must be declared `[[topic]]`s. Routes start with the broker, once the declared topics are applied, and the broker refuses a route whose topics do not exist: auto-creation answers a client's request, which a route does not make. A name that is not declared is most often a typo. Without `dead_letter` the dead-letter topic is `<name>.dead-letters`, which must be declared too; the diagnostic shows the entry to add.";
    ROUTE_CYCLE = "V142" "route-cycle" Error Always
        "routes that bring records back to a topic they read"
        "A route that writes, directly or through other routes, to a topic it reads would route its own records again, and again: every record would be written over and over until the disk is full. The broker refuses routes that make a cycle. The diagnostic names the topics round the cycle and points at each route's step in it; remove one. A dead-letter topic counts as a target.";
    ROUTE_LOWERS_TIER = "V143" "route-lowers-tier" Warning Always
        "a route sends records to a topic of a lower tier than its source"
        "Topics have a priority tier (`tier`, or `critical = true`): as the memory budget fills, produce and fetch of `bulk` topics are throttled first, then `standard` ones, while `critical` ones flow until it is really full. A route that sends records of a critical topic to a standard or bulk one, or of a standard topic to a bulk one, moves them to a lower tier: under load, the consumers of the target wait where those of the source would not, for the same records. Give the target the source's tier, or route to a topic that has it. Dead-letter topics are not compared: they hold failures to look at, not the flow.";
    CERTIFICATE_EXPIRING = "V144" "certificate-expiring" Warning Always
        "a listener's certificate expires within 30 days"
        "Once a server certificate expires, every client's TLS handshake fails and the broker is unreachable over that listener. Renew it: the broker loads a changed certificate file by itself (it looks every 10 seconds), no restart needed.";
    COMPACTION_LAG_REVERSED = "V145" "compaction-lag-reversed" Error Always
        "a topic's `compaction_lag_ms_min` is above its `compaction_lag_ms_max`"
        "On a compacted topic, `compaction_lag_ms_min` keeps records younger than it out of compaction, and `compaction_lag_ms_max` forces compaction of anything older than it. With the minimum above the maximum no segment can ever be compacted in time, and the broker refuses the topic's settings. One of the two is most likely in the wrong unit. Lower the minimum or raise the maximum (see docs/compaction.md).";
    COMPACTION_SETTINGS_WITHOUT_COMPACT = "V146" "compaction-settings-without-compact" Warning Always
        "compaction settings on a topic whose `cleanup_policy` does not compact"
        "`delete_retention_ms`, `compaction_lag_ms_min`, `compaction_lag_ms_max` and `cleanable_dirty_percent_min` tune log compaction, which runs only on a topic whose `cleanup_policy` is `compact` or `compact,delete`. On a `delete` topic (the default) they do nothing, which is most likely not what whoever set them expected. Set `cleanup_policy`, or remove them.";
    RETENTION_ON_COMPACT_ONLY = "V147" "retention-on-compact-only" Warning Always
        "a retention on a topic whose `cleanup_policy` is `compact` only"
        "With `cleanup_policy = \"compact\"` the broker keeps the latest record of each key forever and deletes nothing by age or size: `retention_ms` and `retention_bytes` are not applied. If old keys must go too, write `cleanup_policy = \"compact,delete\"`; if not, remove the retention so the file says what the broker does.";
    COMPACT_DEDUP_BY_KEY = "V148" "compact-dedup-by-key" Warning Always
        "a compacted topic deduplicates on the record key"
        "A compacted topic keeps each key's latest value; a duplicate window on the key (`dedup_id_source = \"key\"`) drops every record whose key was stored within the window. Together, a key updated twice within the window keeps its older value: the update is dropped as a duplicate and compaction then keeps the stale record. Deduplicate on a message-id header (`dedup_id_source = \"header\"`) instead.";
    STORAGE_HTTP_NOT_ALLOWED = "V149" "storage-http-not-allowed" Error Always
        "the bucket's `endpoint` is `http://` without `allow_http = true`"
        "The S3 client refuses plain HTTP unless `[storage] allow_http` allows it, so with an `http://` endpoint every PUT and GET would fail and no produce would ever be acknowledged. Write the endpoint with `https://`; only for a test server on this host (MinIO, moto on `127.0.0.1`) add `allow_http = true`.";
    STORAGE_HTTP_IN_CLEAR = "V150" "storage-http-in-clear" Warning Always
        "plain HTTP to a bucket endpoint that is not on loopback"
        "With `allow_http = true` and an `http://` endpoint on another host, every record batch crosses the network unencrypted, and so do the requests signed with the bucket's credentials: anyone on the path reads the records and sees the access key's id. `allow_http` is for a test server on this host (`127.0.0.1`, `[::1]`, `localhost`). Serve the bucket over HTTPS and remove `allow_http`.";
    STORAGE_SETTINGS_WHILE_LOCAL = "V151" "storage-settings-while-local" Warning Always
        "`[storage]` keys set while the storage is local"
        "Every key of `[storage]` but `mode` configures shared storage. With `mode = \"local\"` (the default) the broker keeps its partitions in `data_dir` and reads none of them: a file that names a bucket and a database while the broker writes to its own disk says something it does not do, and most often `mode = \"shared\"` was forgotten. Add it, or remove the other keys.";
    STORAGE_PASSWORD_IN_FILE = "V152" "storage-password-in-file" Warning Always
        "the PostgreSQL password is written in the configuration file"
        "A configuration file is copied to machines, committed to repositories and pasted into reviews and support tickets; a password in it spreads with it. Write `postgres_url` without the password (`postgresql://veltrix@db.internal:5432/veltrix`), or leave it out, and give the broker the whole URL, password included, in its environment as `VELTRIX_STORAGE__POSTGRES_URL`, from the deployment's secret store: the environment wins over the file. `veltrix check` never prints the password, neither from the file nor from the environment. The bucket's credentials are never in the file: the S3 client reads `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from the environment.";
    SHARED_STORAGE_UNSUPPORTED = "V153" "shared-storage-unsupported" Error Always
        "a declared feature that shared storage does not serve yet"
        "Shared storage (`[storage] mode = \"shared\"`) keeps record batches in a bucket and offsets in PostgreSQL. Some features of the local log are not built on it yet: compacted topics (`cleanup_policy` with `compact`), duplicate windows (`dedup_window_ms`), declared share groups (`[[share_group]]`; share groups themselves are served, their settings set with IncrementalAlterConfigs) and routes (`[[route]]`). A broker in shared mode would leave such a declaration unkept (keys never compacted, duplicates stored, a group's settings and routes not applied), so the file is refused instead. Remove the declaration, or serve it from a broker with local storage. docs/scale-out.md lists what is built and what is still to come.";
    STORAGE_BUFFER_UNDER_FLUSH = "V154" "storage-buffer-under-flush" Error Always
        "`[storage] buffered_bytes_max` is below `flush_bytes_max`"
        "`buffered_bytes_max` bounds the produced bytes a broker holds before they are acknowledged: the object being written and the next one filling. An object is written once its batches reach `flush_bytes_max`, so a buffer smaller than that could never fill one, and the shared storage refuses it at start. Make `buffered_bytes_max` at least `flush_bytes_max` (twice it lets the next object fill while one is written).";
    RELAXED_FSYNC_CRITICAL = "V201" "relaxed-fsync-critical" Warning Production
        "a critical topic acknowledges records before they are fsynced"
        "A topic marked critical (`critical = true` or `tier = \"critical\"`) with `durability = \"interval\"` acknowledges appends once they are in the page cache. A power loss or kernel crash within `flush_interval_ms` loses records that producers were told are stored. Use `durability = \"fsync\"` on critical topics; group commit keeps the cost of fsync low under load.";
    AUTO_CREATE_TOPICS = "V202" "auto-create-topics" Warning Production
        "topic auto-creation is on"
        "With `auto_create_topics = true` a produce or metadata request for a misspelt topic creates it, with default settings, and records go there instead of failing loudly. In production declare every topic with `[[topic]]` and leave auto-creation off.";
    SINGLE_PARTITION_KEYED = "V203" "single-partition-keyed" Warning Production
        "a keyed, high-volume topic has a single partition"
        "A topic with `keyed = true` and `peak_records_per_second` of 1000 or more, on one partition, can be consumed by one consumer of a group at a time: throughput cannot grow by adding consumers. Adding partitions later moves keys to other partitions (the partition is chosen by the key's hash), which breaks per-key order exactly when load is high. Choose the partition count up front.";
    NON_LOOPBACK_LISTENER = "V204" "non-loopback-listener" Warning Production
        "a listener on a non-loopback address, without TLS"
        "A `PLAINTEXT` or `SASL_PLAINTEXT` listener (and `[listeners] kafka`, which is plaintext) sends records, and on `SASL_PLAINTEXT` the SCRAM exchange, unencrypted; without SASL anyone who can reach it can produce, consume, reset offsets and delete topics. The HTTP listener without `http_tls_cert_file` serves plain HTTP (and without `http_authentication = \"required\"` anyone may use it; V220). Listening on `0.0.0.0` or another non-loopback address exposes that to the network. Keep plaintext listeners on loopback and declare a `[[listener]]` with `protocol = \"SASL_SSL\"` (or `\"SSL\"` with client certificates) for the network.";
    NO_MEMORY_BUDGET = "V205" "no-memory-budget" Warning Production
        "no memory budget is declared"
        "`limits.in_flight_bytes_max` is the broker's memory budget for requests: past it, producers are pushed back through TCP instead of the broker growing. The default (512 MiB) was not chosen for this machine. Declare a budget that fits the memory you give the broker, so overload turns into back-pressure and not into the out-of-memory killer.";
    DATA_DIR_ON_TMPFS = "V206" "data-dir-on-tmpfs" Warning Production
        "the data directory is on tmpfs"
        "tmpfs lives in memory: everything in it, every acknowledged record and the topic catalogue, is gone after a reboot, and fsync does nothing. Put `broker.data_dir` on a disk-backed file system.";
    RELAXED_DURABILITY_DEFAULT = "V207" "relaxed-durability-default" Warning Production
        "every topic defaults to interval durability"
        "`[defaults] durability = \"interval\"` is a development setting: it makes every topic, including ones auto-created or created through the admin API, acknowledge records before they are durable. Keep `fsync` as the default and relax durability per topic where losing acknowledged records is acceptable.";
    RELATIVE_DATA_DIR = "V208" "relative-data-dir" Warning Production
        "the data directory is a relative path"
        "A relative `data_dir` is resolved against the directory the broker is started from. Started from another directory (a different service manager setting, a shell in the wrong place) it opens an empty data directory and serves no data, while the real data sits elsewhere. Use an absolute path.";
    UNBOUNDED_RETENTION = "V209" "unbounded-retention" Warning Production
        "a topic keeps records forever without a size limit"
        "With `retention_ms = -1` and no `retention_bytes`, a topic grows until the disk is full; then every partition on that disk refuses appends. Give it a size limit (`retention_bytes`), or a time limit, or monitor its disk use with an alert.";
    SINGLE_DEFAULT_PARTITION = "V210" "single-default-partition" Warning Production
        "topics created without a count get a single partition"
        "`[defaults] partitions = 1` gives one partition to every auto-created topic, every CreateTopics request without a count and every `[[topic]]` without `partitions`: one consumer per group at a time, and growing later reorders keyed records. Set a default that allows parallel consumers (3 or 6 are common).";
    SESSION_TIMEOUT_MIN_LOW = "V211" "session-timeout-min-low" Warning Production
        "consumers may ask for session timeouts shorter than 6 seconds"
        "A member is removed from its group when it misses heartbeats for its session timeout. Below about 6 seconds (Kafka's default minimum), a garbage-collection pause or a brief network hiccup removes healthy members, and each removal stops the whole group for a rebalance. Keep `session_timeout_ms_min` at 6000 or more.";
    SESSION_TIMEOUT_MAX_HIGH = "V212" "session-timeout-max-high" Warning Production
        "consumers may ask for session timeouts longer than 30 minutes"
        "A member that stops heartbeating keeps its partitions until its session times out; nothing consumes them meanwhile. Allowing timeouts beyond 30 minutes (Kafka's default maximum) lets one hung consumer stall partitions for that long. Keep `session_timeout_ms_max` at 1800000 or less.";
    OFFSETS_RETENTION_UNDER_TOPIC = "V213" "offsets-retention-under-topic" Warning Production
        "committed offsets are forgotten before the records they point into"
        "A group that has been empty for `groups.offsets_retention_ms` loses its committed offsets. If a topic keeps records longer, a consumer that comes back after a long outage finds its records still there but its position gone, and restarts from its `auto.offset.reset` policy: from the beginning (duplicates) or from the end (records skipped). Keep `offsets_retention_ms` at least as long as the longest topic retention.";
    CRITICAL_WITHOUT_ALERT = "V214" "critical-without-alert" Warning Production
        "a critical topic has no lag alert"
        "A critical topic whose consumers fall behind should page someone before the backlog becomes an outage. Declare an `[[alert]]` with a `lag_ms_max` or `lag_records_max` for each group consuming it.";
    POISON_RECORD_STALL = "V215" "poison-record-stall" Warning Production
        "a record that hangs its consumer can stop a share-partition for over an hour"
        "A poison record that crashes its consumer comes back at once (the connection closes and its records are released) and soon reaches `deliveries_max`, to be archived. One that hangs its consumer instead is held, on each of its `deliveries_max` deliveries, until its lock runs out or the member's session times out, whichever comes first. All that time the share-partition's start cannot move past it: the records after it are delivered only until `partition_record_locks_max` of them are in flight, and then the partition stops. With `deliveries_max` × the smaller of `record_lock_duration_ms` and `session_timeout_ms`, plus the backoff waits between the deliveries, above an hour, one bad record can stop a partition for that long. Lower the delivery limit or the lock duration; Kafka's defaults (5 deliveries, 30 s locks) hold a poison record for 2.5 minutes.";
    NO_RETRY_BACKOFF = "V216" "no-retry-backoff" Warning Production
        "a share group delivers released records again at once"
        "With `backoff_initial_ms = 0` a record that a consumer releases, or whose lock runs out, is delivered again at once. When records fail because something they need is down or overloaded (a database, a payment service), every consumer then retries at full speed, which keeps the dependency down, and each record burns through `deliveries_max` in moments and is archived although it would have succeeded a minute later. A backoff that grows with each delivery (the default: 1 s, doubling, at most 60 s) spaces the retries out while the records behind are delivered meanwhile. Set a backoff, or leave the key out for the default.";
    DATA_DIR_TEMPORARY = "V217" "data-dir-temporary" Warning Production
        "the data directory is in a temporary directory"
        "`/tmp`, `/var/tmp`, `/dev/shm`, `/run/user` and `$TMPDIR` are for files nobody needs tomorrow: many systems empty `/tmp` at boot, and `systemd-tmpfiles` deletes files in `/tmp` and `/var/tmp` that have not changed for 10 and 30 days, which includes the segments of a quiet partition. This holds whether or not the directory is tmpfs today (when it is, V206 says so instead). Give the broker a directory of its own, such as `/var/lib/veltrix`.";
    SASL_PLAIN_WITHOUT_TLS = "V218" "sasl-plain-without-tls" Warning Production
        "SASL PLAIN offered without TLS"
        "PLAIN sends the password itself. On a `SASL_PLAINTEXT` listener anyone on the path reads it and can log in as that user. Offer PLAIN only on `SASL_SSL` listeners, or offer SCRAM only, which never sends the password.";
    AUTHORIZATION_OFF = "V219" "authorization-off" Warning Production
        "authentication without authorization, or a network listener with neither"
        "With `[security] authorization = false`, every client that can connect (authenticated or not) may do everything: produce and read any topic, reset any group, delete topics. Authentication then only tells who did it. Turn authorization on, grant each principal what it needs with `veltrix acl add`, and name the administrators in `super_users`.";
    HTTP_AUTHENTICATION_OFF = "V220" "http-authentication-off" Warning Production
        "the HTTP API is reachable from the network without authentication"
        "With `[listeners] http_authentication = \"none\"` a request without credentials is `http_principal` (`User:ANONYMOUS` unless set). On an address the network reaches, anyone there may then do what that principal may: with authorization off, everything the API offers, including reading dead letters (records' keys and values) and redriving them. Require the broker's users (`http_authentication = \"required\"`: basic credentials or bearer tokens), and serve HTTPS (`http_tls_cert_file`, `http_tls_key_file`) so that the credentials are not sent in clear.";
    PARTITIONS_DECREASE = "V301" "partitions-decrease" Error Always
        "the file declares fewer partitions than a live topic has"
        "Partitions are never removed: the records in them would be lost, and keyed records would move to other partitions, out of order. When a declared topic's `partitions` is below the count the topic already has in the data directory, `serve --config` refuses to start, pointing at the line, before it opens the data directory; `--allow-data-loss` does not change that. Declare the live count or more. (`veltrix check` alone cannot see this: it depends on the data directory.)";
    DATA_LOSS_REFUSED = "V302" "data-loss-refused" Error Always
        "a change to a live topic that deletes records, without `--allow-data-loss`"
        "Two changes from the file delete records that are stored: a shorter `retention_ms` or `retention_bytes` on a live topic (the next housekeeping deletes what is now too old or too much), and the removal of a `[[topic]]` that an earlier start applied (the topic is deleted with its records). `serve --config` refuses them, pointing at the line (or, for a removed topic, naming it), before it opens the data directory. If the loss is intended, start once with `--allow-data-loss`; otherwise restore the value or the declaration.";
    CATALOG_REACHABLE = "V401" "catalog-reachable" Note Always
        "`--online`: PostgreSQL answered, and the catalog's schema version"
        "`veltrix check --online`, in shared mode, connects to `[storage] postgres_url` as the broker will (without TLS, within the connection timeout and `postgres_statement_timeout_ms`), in a read-only session, and says which server answered and which version of the catalog's tables it holds. A database without them is fine: the broker creates them at its first start. `check` itself never creates or changes anything.";
    CATALOG_UNREACHABLE = "V402" "catalog-unreachable" Error Always
        "`--online`: PostgreSQL could not be reached or refused the connection"
        "The broker in shared mode cannot acknowledge a single produce without its catalog, and refuses to start without it. The diagnostic says what failed: no server at the address (a wrong host or port, a firewall), no answer within the timeout, the login refused (a wrong user or password: give the password in `VELTRIX_STORAGE__POSTGRES_URL`), or a database that does not exist (create it: `createdb veltrix`).";
    CATALOG_SCHEMA_TOO_NEW = "V403" "catalog-schema-too-new" Error Always
        "`--online`: the catalog's tables were made by a newer Veltrix"
        "The catalog records the version of its tables. A newer build migrated them, and this one does not know their rules: it refuses to start rather than write with old ones. Run the newer build, or point `postgres_url` at another database.";
    BUCKET_REACHABLE = "V404" "bucket-reachable" Note Always
        "`--online`: the bucket answered a listing under the key prefix"
        "`veltrix check --online`, in shared mode, lists the bucket under `<key_prefix>/` with the credentials of the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), within `get_timeout_ms`, and says how many objects it saw in the first page. It reads nothing else and writes nothing; whether the credentials may write is only known at the first produce.";
    BUCKET_UNREACHABLE = "V405" "bucket-unreachable" Error Always
        "`--online`: the bucket could not be listed"
        "The broker in shared mode writes every produce to the bucket and cannot start without it. The diagnostic says what failed: the bucket does not exist (create it, or correct `bucket` and `region`), the credentials were refused or lack the right to list (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` in the environment, and the bucket's policy), or the endpoint did not answer within `get_timeout_ms` (a wrong `endpoint`, a firewall, a server down).";
}

/// The rule with this id (`V101`) or name (`batch-larger-than-segment`),
/// case-insensitively.
pub fn find(id_or_name: &str) -> Option<&'static Rule> {
    veltrix_diagnostic::find(CATALOGUE, id_or_name)
}

/// The catalogue as a Markdown table, for `docs/configuration.md`.
pub fn catalogue_markdown() -> String {
    let headers = ["id", "name", "severity", "profile", "summary"];
    veltrix_diagnostic::catalogue_table(CATALOGUE, headers, |profile| match profile {
        RuleProfile::Always => "always",
        RuleProfile::Production => "production",
    })
}

/// The explanations of every rule, as Markdown sections.
pub fn explanations_markdown() -> String {
    let mut out = String::new();
    for r in CATALOGUE {
        out.push_str(&format!("### {} `{}`\n\n{}\n\n", r.id, r.name, r.explanation));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/configuration.md` lists the rules in catalogue order, so the
    /// catalogue is kept in id order, among the rest.
    #[test]
    fn ids_and_names_are_unique_ordered_and_well_formed() {
        assert_eq!(
            veltrix_diagnostic::catalogue_problems(CATALOGUE, 'V'),
            Vec::<String>::new()
        );
        for r in CATALOGUE {
            let production = r.id.starts_with("V2");
            assert_eq!(production, r.applies == RuleProfile::Production, "{}", r.id);
        }
    }

    #[test]
    fn rules_are_found_by_id_or_name() {
        assert_eq!(find("v101").map(|r| r.id), Some("V101"));
        assert_eq!(find("auto-create-topics").map(|r| r.id), Some("V202"));
        assert!(find("V999").is_none());
    }
}
