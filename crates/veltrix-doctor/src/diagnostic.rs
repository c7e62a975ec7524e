//! Findings: what is wrong, where, what it leads to, how to fix it, and the
//! concrete edit that fixes it; rendered like rustc's diagnostics
//! (`warning[D102]: ...`, `--> file:line:col`, the offending line with a
//! label, `= help:`, `= note:`, and the fix as a suggested edit) or as JSON.

use std::ops::Range;

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Patch, Snippet};
use serde_json::{Value, json};

use crate::client::Settings;
use crate::parse::{Entry, ParsedFile};
use crate::rules::{Rule, Severity};

/// What a fix does to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixKind {
    /// Replaces an existing entry.
    Replace,
    /// Adds an entry the file does not have.
    Insert,
    /// Deletes an entry.
    Delete,
}

/// A concrete edit that fixes a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// Replace, insert or delete.
    pub kind: FixKind,
    /// The entry to write, in the file's syntax (`acks=all`,
    /// `"acks": "all"`); empty for a deletion.
    pub line: String,
    /// The bytes of the file the edit replaces (empty for an insertion).
    pub span: Range<usize>,
    /// The text that replaces them: `line`, with the separators an insertion
    /// needs.
    pub text: String,
}

impl Fix {
    /// Sets `key` to `value`: replaces the entry that sets it (under any of
    /// its names, keeping the name the file uses), or adds one.
    pub fn set(settings: &Settings<'_>, key: &str, value: &str) -> Fix {
        match settings.entry(key) {
            Some(entry) => Fix::replace(settings.file, entry, &entry.key, value),
            None => Fix::insert(settings.file, key, value),
        }
    }

    /// Replaces `entry` with `key=value`.
    pub fn replace(file: &ParsedFile, entry: &Entry, key: &str, value: &str) -> Fix {
        let line = file.entry_text(key, value);
        Fix {
            kind: FixKind::Replace,
            span: entry.span.clone(),
            text: line.clone(),
            line,
        }
    }

    /// Adds `key=value` where new entries go.
    pub fn insert(file: &ParsedFile, key: &str, value: &str) -> Fix {
        let line = file.entry_text(key, value);
        Fix {
            kind: FixKind::Insert,
            span: file.insert_at..file.insert_at,
            text: format!("{}{line}{}", file.insert_prefix, file.insert_suffix),
            line,
        }
    }

    /// Deletes `entry`.
    pub fn delete(entry: &Entry) -> Fix {
        Fix {
            kind: FixKind::Delete,
            line: String::new(),
            span: entry.delete_span.clone(),
            text: String::new(),
        }
    }

    /// What the fix does, in a few words: ``set `acks=all` ``.
    pub fn describe(&self, source: &str) -> String {
        match self.kind {
            FixKind::Replace => format!("write `{}`", self.line),
            FixKind::Insert => format!("add `{}`", self.line),
            FixKind::Delete => format!(
                "delete `{}`",
                source.get(self.span.clone()).unwrap_or("").trim().trim_end_matches(',')
            ),
        }
    }
}

/// Where a finding is: a byte range and its 1-based line and column (in
/// characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The byte range of the offending text.
    pub span: Range<usize>,
    /// Its first line, from 1.
    pub line: usize,
    /// Its first column, in characters, from 1.
    pub column: usize,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The catalogue rule that found it.
    pub rule: &'static Rule,
    /// How bad this instance is; usually the rule's severity.
    pub severity: Severity,
    /// What is wrong, in one line.
    pub message: String,
    /// Where, when the file sets what is wrong; `None` when the problem is a
    /// default the file leaves in force.
    pub location: Option<Location>,
    /// The label under the offending text.
    pub label: String,
    /// Other entries that explain the finding, with their labels.
    pub related: Vec<(Range<usize>, String)>,
    /// What goes wrong, in plain words: why it matters.
    pub consequence: String,
    /// How to fix it.
    pub help: String,
    /// The edit that fixes it, when one line does.
    pub fix: Option<Fix>,
}

impl Finding {
    /// A finding of `rule` at its usual severity, not yet located.
    pub(crate) fn new(rule: &'static Rule, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            severity: rule.severity,
            message: message.into(),
            location: None,
            label: String::new(),
            related: Vec::new(),
            consequence: String::new(),
            help: String::new(),
            fix: None,
        }
    }

    /// Points at `span` with `label`; the line and column are filled in by the
    /// lint once every finding is made.
    pub(crate) fn at(mut self, span: Range<usize>, label: impl Into<String>) -> Finding {
        self.location = Some(Location {
            span,
            line: 0,
            column: 0,
        });
        self.label = label.into();
        self
    }

    /// Points at `entry`'s value when there is an entry.
    pub(crate) fn at_value(self, entry: Option<&Entry>, label: impl Into<String>) -> Finding {
        match entry {
            Some(e) => self.at(e.value_span.clone(), label),
            None => self,
        }
    }

    pub(crate) fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    pub(crate) fn related(mut self, entry: Option<&Entry>, label: impl Into<String>) -> Finding {
        if let Some(e) = entry {
            self.related.push((e.span.clone(), label.into()));
        }
        self
    }

    pub(crate) fn why(mut self, consequence: impl Into<String>) -> Finding {
        self.consequence = consequence.into();
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Finding {
        self.help = help.into();
        self
    }

    pub(crate) fn fix(mut self, fix: Fix) -> Finding {
        self.fix = Some(fix);
        self
    }

    /// The rule id, such as `D102`.
    pub fn id(&self) -> &'static str {
        self.rule.id
    }

    /// The line, for a located finding.
    pub fn line(&self) -> Option<usize> {
        self.location.as_ref().map(|l| l.line)
    }

    /// The rendered finding, with `path` naming the file and `source` its
    /// text. `styled` adds terminal colours.
    pub fn render(&self, path: &str, source: &str, styled: bool) -> String {
        let renderer = veltrix_diagnostic::renderer(styled);
        let level = self.severity.level();
        let title = level.primary_title(self.message.as_str()).id(self.rule.id);
        let group: Group<'_> = match &self.location {
            Some(loc) => {
                let mut snippet = Snippet::source(source).path(path).fold(true).annotation(
                    AnnotationKind::Primary
                        .span(loc.span.clone())
                        .label(self.label.as_str()),
                );
                for (span, label) in &self.related {
                    snippet = snippet.annotation(AnnotationKind::Context.span(span.clone()).label(label.as_str()));
                }
                title.element(snippet)
            }
            None => title.element(Origin::path(path)),
        };
        let group = veltrix_diagnostic::help_and_note(group, &self.help, &self.consequence);
        let mut groups = vec![group];
        let description;
        if let Some(fix) = &self.fix {
            description = fix.describe(source);
            groups.push(
                Level::HELP.secondary_title(description.as_str()).element(
                    Snippet::source(source)
                        .path(path)
                        .fold(true)
                        .patch(Patch::new(fix.span.clone(), fix.text.as_str())),
                ),
            );
        }
        renderer.render(&groups)
    }

    /// The finding as a JSON object.
    pub fn to_json(&self, path: &str) -> Value {
        let mut v = json!({
            "rule": self.rule.id,
            "name": self.rule.name,
            "severity": self.severity.name(),
            "message": self.message,
            "file": path,
            "line": Value::Null,
            "column": Value::Null,
            "label": self.label,
            "consequence": self.consequence,
            "help": self.help,
            "fix": Value::Null,
        });
        if let Some(loc) = &self.location {
            v["line"] = json!(loc.line);
            v["column"] = json!(loc.column);
        }
        if let Some(fix) = &self.fix {
            let kind = match fix.kind {
                FixKind::Replace => "replace",
                FixKind::Insert => "insert",
                FixKind::Delete => "delete",
            };
            v["fix"] = json!({ "kind": kind, "line": fix.line });
        }
        v
    }
}
