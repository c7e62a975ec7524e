//! Diagnostics: what is wrong, where, how to fix it and why it matters, and
//! their rendering in the style of rustc's (`error[V101]: ...`, `--> file:line:col`,
//! the offending line with a caret label, `= help:` and `= note:`), or as JSON.

use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Origin, Snippet};
use serde_json::{Value, json};

use crate::rules::{Rule, Severity};

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A byte range of the configuration file, with its 1-based line and
    /// column (in characters) of the start.
    File {
        span: Range<usize>,
        line: usize,
        column: usize,
    },
    /// An environment variable that overrides a key; `name` when the problem
    /// is the variable's name rather than its value.
    Env { var: String, value: String, name: bool },
}

/// One problem found by `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The catalogue rule that found it.
    pub rule: &'static Rule,
    /// The rule's severity.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// Where; `None` when the problem is the absence of something in a file
    /// that has no better place to point at.
    pub location: Option<Location>,
    /// The label under the offending text.
    pub label: String,
    /// Further places that explain the problem (the first declaration of a
    /// duplicate, the setting a limit comes from), with their labels. Only
    /// places in the file.
    pub related: Vec<(Range<usize>, String)>,
    /// How to fix it.
    pub help: String,
    /// Why it matters.
    pub note: String,
}

impl Diagnostic {
    /// The 1-based line, for a problem located in the file.
    pub fn line(&self) -> Option<usize> {
        match &self.location {
            Some(Location::File { line, .. }) => Some(*line),
            _ => None,
        }
    }

    /// The rule id, such as `V101`.
    pub fn id(&self) -> &'static str {
        self.rule.id
    }

    /// The rendered diagnostic, with `path` naming the file and `source` its
    /// text. `styled` adds terminal colours.
    pub fn render(&self, path: &str, source: &str, styled: bool) -> String {
        let renderer = veltrix_diagnostic::renderer(styled);
        let level = self.severity.level();
        let title = level.primary_title(self.message.as_str()).id(self.rule.id);
        let env_source;
        let group: Group<'_> = match &self.location {
            Some(Location::File { span, .. }) => {
                let mut spans: Vec<&Range<usize>> = vec![span];
                spans.extend(self.related.iter().map(|(s, _)| s));
                let (start, end) = line_bounds(source, &spans);
                let first_line = source[..start].bytes().filter(|&b| b == b'\n').count() + 1;
                let shift = |r: &Range<usize>| (r.start - start)..(r.end - start);
                let mut snippet = Snippet::source(&source[start..end])
                    .line_start(first_line)
                    .path(path)
                    .fold(true)
                    .annotation(AnnotationKind::Primary.span(shift(span)).label(self.label.as_str()));
                for (s, label) in &self.related {
                    snippet = snippet.annotation(AnnotationKind::Context.span(shift(s)).label(label.as_str()));
                }
                title.element(snippet)
            }
            Some(Location::Env { var, value, name }) => {
                env_source = format!("{var}={value}");
                let span = if *name {
                    0..var.len()
                } else {
                    var.len() + 1..env_source.len()
                };
                title.element(
                    Snippet::source(env_source.as_str())
                        .path("environment")
                        .annotation(AnnotationKind::Primary.span(span).label(self.label.as_str())),
                )
            }
            None => title.element(Origin::path(path)),
        };
        let group = veltrix_diagnostic::help_and_note(group, &self.help, &self.note);
        renderer.render(&[group])
    }

    /// The diagnostic as a JSON object.
    pub fn to_json(&self, path: &str) -> Value {
        let mut v = json!({
            "rule": self.rule.id,
            "name": self.rule.name,
            "severity": self.severity.name(),
            "message": self.message,
            "label": self.label,
            "help": self.help,
            "note": self.note,
        });
        match &self.location {
            Some(Location::File { line, column, .. }) => {
                v["file"] = json!(path);
                v["line"] = json!(line);
                v["column"] = json!(column);
            }
            Some(Location::Env { var, .. }) => v["env"] = json!(var),
            None => v["file"] = json!(path),
        }
        v
    }
}

/// The start of the first line and the end of the last line touched by `spans`.
fn line_bounds(source: &str, spans: &[&Range<usize>]) -> (usize, usize) {
    let lo = spans.iter().map(|s| s.start).min().unwrap_or(0).min(source.len());
    let hi = spans.iter().map(|s| s.end).max().unwrap_or(0).min(source.len());
    let start = source[..lo].rfind('\n').map_or(0, |i| i + 1);
    let end = source[hi..].find('\n').map_or(source.len(), |i| hi + i);
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_bounds_cover_whole_lines() {
        let src = "one\ntwo three\nfour";
        assert_eq!(line_bounds(src, &[&(8..13)]), (4, 13));
        assert_eq!(line_bounds(src, &[&(0..1), &(15..16)]), (0, src.len()));
    }
}
