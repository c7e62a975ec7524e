//! The `veltrix` binary as users and operators run it: `serve` and every
//! command-line tool, each test starting a real broker process (`common`)
//! and driving it over 127.0.0.1 with ephemeral ports.
//!
//! One test binary, one module a subject. Tests that measure the broker's
//! memory, CPU time or limits, or that load it, take the machine for
//! themselves ([`common::exclusive`]); the others share it
//! ([`common::shared`]).

mod common;

mod bench;
mod check;
mod check_online;
mod dlq;
mod doctor;
mod fetch_memory;
mod files;
mod groups;
mod limits;
mod security;
mod serve;
mod topics;
mod wire_attack;
