//! Integration tests of `veltrix-doctor`: one binary, one module per concern.

mod corpus;
mod docs;
mod fixtures;
mod parse;
mod rules;
mod security;
mod snapshots;

use veltrix_doctor::{Dialect, Finding, LintOptions, Report, Role, lint};

/// Options for a file of `client` in `role`.
pub fn opts(client: Dialect, role: Role) -> LintOptions {
    LintOptions {
        client: Some(client),
        role: Some(role),
        ..LintOptions::default()
    }
}

/// Lints `source` as `client.properties` read by `client` in `role`.
pub fn props(source: &str, client: Dialect, role: Role) -> Report {
    lint("client.properties", source, &opts(client, role))
}

/// The one finding of rule `id`, checked to be at `line` with `fix` as its
/// replacement line (`None`: no place in the file, or no fix), and rendered
/// with its id, its place and its consequence.
pub fn expect<'r>(report: &'r Report, id: &str, line: Option<usize>, fix: Option<&str>) -> &'r Finding {
    let found: Vec<&Finding> = report.findings.iter().filter(|f| f.id() == id).collect();
    assert_eq!(found.len(), 1, "expected one {id} in:\n{}", report.render(false));
    let f = found[0];
    assert_eq!(f.line(), line, "{id} line in:\n{}", report.render(false));
    assert_eq!(
        f.fix.as_ref().map(|x| x.line.as_str()),
        fix,
        "{id} fix in:\n{}",
        report.render(false)
    );
    assert!(!f.consequence.is_empty() && !f.help.is_empty(), "{id} says why and how");
    let rendered = f.render(&report.path, &report.source, false);
    assert!(rendered.contains(&format!("[{id}]: ")), "{rendered}");
    if let Some(loc) = &f.location {
        assert!(
            rendered.contains(&format!("--> {}:{}:{}", report.path, loc.line, loc.column)),
            "{rendered}"
        );
    } else {
        assert!(rendered.contains(&format!("--> {}", report.path)), "{rendered}");
    }
    f
}

/// Asserts `report` has no finding of rule `id`.
pub fn absent(report: &Report, id: &str) {
    assert!(
        report.findings.iter().all(|f| f.id() != id),
        "unexpected {id} in:\n{}",
        report.render(false)
    );
}
