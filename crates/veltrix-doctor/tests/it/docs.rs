//! `docs/doctor.md` carries the rule catalogue and explanations generated
//! from the code, so that the two cannot drift apart.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference in `docs/doctor.md` is generated; run with `VELTRIX_BLESS=1`
/// to rewrite it after changing the catalogue.
#[test]
fn the_docs_carry_the_generated_reference() {
    let path = repo().join("docs/doctor.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let updated = veltrix_diagnostic::with_reference(&doc, &veltrix_doctor::docs_reference()).unwrap();
    if std::env::var_os("VELTRIX_BLESS").is_some() {
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc == updated,
        "docs/doctor.md is out of date: run `VELTRIX_BLESS=1 cargo test -p veltrix-doctor --test it docs`"
    );
}

/// Every rule has a test that feeds it a bad configuration (`rules.rs`
/// names its tests after the rules' ids).
#[test]
fn every_rule_has_a_test() {
    let tests = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/rules.rs")).unwrap();
    for rule in veltrix_doctor::CATALOGUE {
        let name = format!("fn {}_", rule.id.to_ascii_lowercase());
        assert!(
            tests.contains(&name),
            "no test `{name}...` for {} in tests/it/rules.rs",
            rule.id
        );
    }
}

/// The session timeout range the lint assumes is the broker's default.
#[test]
fn session_timeout_range_is_the_brokers_default() {
    let groups = veltrix_core::groups::GroupConfig::default();
    assert_eq!(
        veltrix_doctor::SESSION_TIMEOUT_MS_MIN,
        groups.session_timeout_ms_min as i64
    );
    assert_eq!(
        veltrix_doctor::SESSION_TIMEOUT_MS_MAX,
        groups.session_timeout_ms_max as i64
    );
}
