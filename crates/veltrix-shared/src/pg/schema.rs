//! The catalog's tables, created and migrated by the crate itself.
//!
//! `veltrix_schema` holds the version; each migration runs in one
//! transaction under an advisory lock, so brokers starting together migrate
//! once. A database migrated by a newer build is refused
//! ([`crate::Error::SchemaTooNew`]), never written with old rules.

/// Migrations, in order; the version after `MIGRATIONS[i]` is `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: partitions and their next offset; objects (committed, or claimed by
    // the orphan collector: the primary key decides which came first);
    // batches, where each lies; producers' last batches per partition.
    r"
    CREATE TABLE veltrix_partitions (
        topic text NOT NULL,
        partition integer NOT NULL,
        next_offset bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (topic, partition)
    );
    CREATE TABLE veltrix_objects (
        key text PRIMARY KEY,
        state text NOT NULL CHECK (state IN ('committed', 'orphan')),
        size_bytes bigint NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE veltrix_batches (
        topic text NOT NULL,
        partition integer NOT NULL,
        base_offset bigint NOT NULL,
        last_offset bigint NOT NULL,
        max_timestamp bigint NOT NULL,
        object_key text NOT NULL REFERENCES veltrix_objects (key),
        byte_start bigint NOT NULL,
        byte_len integer NOT NULL,
        crc32c bigint NOT NULL,
        PRIMARY KEY (topic, partition, base_offset),
        FOREIGN KEY (topic, partition) REFERENCES veltrix_partitions (topic, partition)
    );
    CREATE UNIQUE INDEX veltrix_batches_last ON veltrix_batches (topic, partition, last_offset);
    CREATE INDEX veltrix_batches_object ON veltrix_batches (object_key);
    CREATE TABLE veltrix_producers (
        topic text NOT NULL,
        partition integer NOT NULL,
        producer_id bigint NOT NULL,
        epoch smallint NOT NULL,
        recent bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition, producer_id)
    );
    ",
    // 2: the cluster's state beside the log (crate::Cluster): brokers'
    // leases (times are the server's clock), topics, the producer id
    // counter (one row, so a block is reserved by one UPDATE and never
    // handed out twice), groups' committed offsets.
    r"
    CREATE TABLE veltrix_brokers (
        broker_id integer PRIMARY KEY,
        incarnation bigint NOT NULL,
        host text NOT NULL,
        port integer NOT NULL,
        lease_until timestamptz NOT NULL
    );
    CREATE TABLE veltrix_topics (
        name text PRIMARY KEY,
        id bytea NOT NULL UNIQUE CHECK (length(id) = 16),
        partitions integer NOT NULL CHECK (partitions > 0),
        config text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE veltrix_producer_ids (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        next_id bigint NOT NULL CHECK (next_id >= 0)
    );
    INSERT INTO veltrix_producer_ids (next_id) VALUES (0);
    CREATE TABLE veltrix_group_offsets (
        group_id text NOT NULL,
        topic text NOT NULL,
        partition integer NOT NULL,
        committed_offset bigint NOT NULL,
        leader_epoch integer NOT NULL,
        metadata text NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (group_id, topic, partition)
    );
    CREATE INDEX veltrix_group_offsets_topic ON veltrix_group_offsets (topic);
    ",
    // 3: each broker's listeners by name (`name=host:port`, one a line), so
    // a client is told the other brokers' addresses on its own listener.
    r"
    ALTER TABLE veltrix_brokers ADD COLUMN listeners text NOT NULL DEFAULT '';
    ",
    // 4: housekeeping. Each partition's start offset (retention moves it);
    // objects whose batches retention or a deleted topic removed, released
    // for the collector (one row per release, so concurrent releases of one
    // object never hide each other); objects dropped once no batch refers to
    // them, deleted from the bucket, then forgotten; committed objects by
    // size, for the merger's look for small ones.
    r"
    ALTER TABLE veltrix_partitions ADD COLUMN start_offset bigint NOT NULL DEFAULT 0;
    CREATE TABLE veltrix_released_objects (
        id bigserial PRIMARY KEY,
        object_key text NOT NULL,
        released_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE veltrix_objects DROP CONSTRAINT veltrix_objects_state_check;
    ALTER TABLE veltrix_objects ADD CONSTRAINT veltrix_objects_state_check
        CHECK (state IN ('committed', 'orphan', 'dropped'));
    CREATE INDEX veltrix_objects_small ON veltrix_objects (size_bytes) WHERE state = 'committed';
    ",
    // 5: share groups' state, one row per share-partition (group, topic id,
    // partition): its start offset and the engine's ranges, and the claim of
    // the broker serving it (a broker taking it over raises the claim, so a
    // store under an older claim is refused); share groups' own settings.
    r"
    CREATE TABLE veltrix_share_states (
        group_id text NOT NULL,
        topic_id bytea NOT NULL CHECK (length(topic_id) = 16),
        partition integer NOT NULL,
        claim bigint NOT NULL,
        broker_id integer NOT NULL,
        start_offset bigint,
        ranges bytea,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (group_id, topic_id, partition)
    );
    CREATE INDEX veltrix_share_states_topic ON veltrix_share_states (topic_id);
    CREATE TABLE veltrix_share_settings (
        group_id text PRIMARY KEY,
        settings text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    ",
];

/// The version this build writes.
pub(crate) fn current_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Arbitrary key of the advisory lock migrations take.
pub(crate) const MIGRATION_LOCK: i64 = 0x7665_6c74_7269_7801;
