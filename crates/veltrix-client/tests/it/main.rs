//! Tests of the client through its public API: the batch builder and decoder
//! against the codec and the broker's own batch validation (`batch`), and
//! connection handling against scripted fake brokers (`connection`, on
//! `fake`), and a share-group member's whole flow against one (`share`). The CLI's
//! tests (crates/veltrix/tests/cli/) run every helper against the real broker.

mod batch;
mod connection;
mod fake;
mod share;
