//! Integration tests of `veltrix-config`: one binary, one module per concern.

mod apply;
mod apply_share;
mod corpus;
mod examples;
mod resolve;
mod routes;
mod rules;
mod snapshots;
