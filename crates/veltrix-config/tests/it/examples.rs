//! Every shipped example in `config/` passes `check` with no diagnostic at
//! all, the production one under its production profile, and
//! `docs/configuration.md` carries the reference generated from the schema
//! and the rule catalogue.

use std::path::{Path, PathBuf};

use veltrix_config::{FixedProbe, Profile, check_source};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check_example(name: &str) -> veltrix_config::Report {
    let path = repo().join("config").join(name);
    let source = std::fs::read_to_string(&path).unwrap();
    let probe = FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(16 << 30),
        ..FixedProbe::default()
    };
    check_source(&format!("config/{name}"), &source, &[], &probe)
}

#[test]
fn every_example_config_is_clean() {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 2, "{names:?}");
    for name in names {
        let report = check_example(&name);
        assert!(report.diagnostics.is_empty(), "{}", report.render(false));
        assert_eq!(report.exit_code(true), 0);
    }
}

#[test]
fn the_production_example_uses_the_production_profile() {
    let c = check_example("production.toml").config.unwrap();
    assert_eq!(c.profile, Profile::Production);
    assert!(c.topics.iter().any(|t| t.critical));
    let c = check_example("development.toml").config.unwrap();
    assert_eq!(c.profile, Profile::Development);
}

/// The reference in `docs/configuration.md` is generated; run with
/// `VELTRIX_BLESS=1` to rewrite it after changing the schema or the rules.
#[test]
fn the_docs_carry_the_generated_reference() {
    let path = repo().join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let updated = veltrix_diagnostic::with_reference(&doc, &veltrix_config::docs_reference()).unwrap();
    if std::env::var_os("VELTRIX_BLESS").is_some() {
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc == updated,
        "docs/configuration.md is out of date: run `VELTRIX_BLESS=1 cargo test -p veltrix-config --test it docs`"
    );
}

/// Every key of the schema says what it does, in a sentence, and its unit
/// matches its name (`_ms` milliseconds, `_bytes` bytes); its row in
/// `docs/configuration.md` gives its type, range and default. A key added
/// without them fails here.
#[test]
fn every_key_has_a_documented_range_and_explanation() {
    use veltrix_config::schema::{Kind, NESTED_TABLES, TABLES, Unit};
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md")).unwrap();
    let mut problems = Vec::new();
    for table in TABLES.iter().chain(NESTED_TABLES) {
        if table.doc.trim().is_empty() {
            problems.push(format!("[{}] has no description", table.name));
        }
        for key in table.keys {
            let at = format!("{}.{}", table.name, key.name);
            let text = key.doc.trim();
            if text.len() < 20 || !(text.ends_with('.') || text.ends_with(')') || text.ends_with('`')) {
                problems.push(format!("{at}: the description is not a sentence: {text:?}"));
            }
            if !key
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                problems.push(format!("{at}: not snake_case"));
            }
            if let Kind::Int { min, max, unit, .. } = key.kind {
                if min > max {
                    problems.push(format!("{at}: empty range {min}..={max}"));
                }
                let words: Vec<&str> = key.name.split('_').collect();
                if words.contains(&"ms") && unit != Unit::Milliseconds {
                    problems.push(format!("{at}: `ms` in the name, not in milliseconds"));
                }
                if words.contains(&"bytes") && unit != Unit::Bytes {
                    problems.push(format!("{at}: `bytes` in the name, not in bytes"));
                }
            }
            let row = format!("| `{}` | ", key.name);
            let range = key.kind.range();
            if !doc.lines().any(|l| l.starts_with(&row) && l.contains(&range)) {
                problems.push(format!(
                    "{at}: no row with its range `{range}` in docs/configuration.md"
                ));
            }
        }
    }
    assert_eq!(problems, Vec::<String>::new());
}
