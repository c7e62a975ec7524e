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
];

/// The version this build writes.
pub(crate) fn current_version() -> i32 {
    MIGRATIONS.len() as i32
}

/// Arbitrary key of the advisory lock migrations take.
pub(crate) const MIGRATION_LOCK: i64 = 0x7665_6c74_7269_7801;
