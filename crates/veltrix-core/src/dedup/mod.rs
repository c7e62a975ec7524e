//! Duplicate detection on an application message id (issue 17): a topic with
//! a window drops, on produce, each record whose id was already stored in the
//! window, and stores the rest of its batch.
//!
//! `filter` is the pure part, on one batch's bytes: the ids of its records,
//! and the batch re-encoded without some of them. Nothing here is wired to
//! produce yet.

pub mod filter;
