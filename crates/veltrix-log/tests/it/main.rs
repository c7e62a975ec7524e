//! Integration tests of the log engine, one binary: behaviour through the public
//! API, fault injection, model-based property tests and kill -9 crash tests.

mod basics;
mod support;
