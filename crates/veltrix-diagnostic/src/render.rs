//! What both linters' renderings have in common: rustc's layout in ASCII, and
//! the `= help:` and `= note:` lines under a finding.

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{Group, Level, Renderer};

/// The renderer both linters print with: rustc's layout, ASCII decorations,
/// and terminal colours when `styled`.
pub fn renderer(styled: bool) -> Renderer {
    let renderer = if styled { Renderer::styled() } else { Renderer::plain() };
    renderer.decor_style(DecorStyle::Ascii)
}

/// `group` followed by a `= help:` line (how to fix it) and a `= note:` line
/// (why it matters), each left out when empty.
pub fn help_and_note<'a>(mut group: Group<'a>, help: &'a str, note: &'a str) -> Group<'a> {
    if !help.is_empty() {
        group = group.element(Level::HELP.message(help));
    }
    if !note.is_empty() {
        group = group.element(Level::NOTE.message(note));
    }
    group
}
