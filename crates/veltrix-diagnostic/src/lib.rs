//! What the two linters share, `veltrix check` (the broker's configuration
//! file, `veltrix-config`) and `veltrix doctor` (Kafka clients'
//! configurations, `veltrix-doctor`): the shape of a rule catalogue, the
//! severities, byte offsets turned into lines and columns, and the frame of a
//! rendered finding (rustc's layout, its help and note lines).
//!
//! Each linter keeps its own rules, findings and snippets; a catalogue is
//! declared with [`catalogue!`] and checked by its tests with
//! [`catalogue_problems`]. No I/O.

mod catalogue;
mod line_index;
mod render;

pub use catalogue::{
    REFERENCE_END, REFERENCE_START, Rule, Severity, catalogue_problems, catalogue_table, find, with_reference,
};
pub use line_index::LineIndex;
pub use render::{help_and_note, renderer};
