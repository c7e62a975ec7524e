//! The crate's integration tests: shared storage against a real PostgreSQL
//! and S3 server (moto) that `support` starts.

mod cloud;
mod cluster;
mod housekeeping;
mod mem;
mod probe;
mod support;
