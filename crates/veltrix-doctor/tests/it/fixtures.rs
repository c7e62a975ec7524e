//! The example configurations under `tests/fixtures/`: the good ones of each
//! client and role come out clean (no finding at all, notes included), and
//! the bad ones find what their comments promise.

use veltrix_doctor::{Dialect, LintOptions, Role, Severity, lint};

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// Lints a fixture with nothing but its text to go on: client and role are
/// told from the keys, as a user running `veltrix doctor FILE` would get.
fn check(name: &str, client: Dialect, role: Role) -> veltrix_doctor::Report {
    let report = lint(name, &fixture(name), &LintOptions::default());
    assert_eq!(
        (report.dialect, report.role),
        (client, role),
        "{name} is read as its client and role"
    );
    report
}

#[test]
fn good_configurations_of_each_client_and_role_are_clean() {
    for (name, client, role) in [
        ("java-producer-good.properties", Dialect::Java, Role::Producer),
        ("java-consumer-good.properties", Dialect::Java, Role::Consumer),
        (
            "librdkafka-producer-good.properties",
            Dialect::Librdkafka,
            Role::Producer,
        ),
        ("librdkafka-consumer-good.json", Dialect::Librdkafka, Role::Consumer),
    ] {
        let report = check(name, client, role);
        assert!(report.findings.is_empty(), "{name}:\n{}", report.render(false));
        assert_eq!(report.exit_code(true), 0);
        assert!(report.summary().ends_with(": ok (".to_owned().as_str()) || report.summary().contains(": ok ("));
    }
}

fn ids(report: &veltrix_doctor::Report) -> Vec<&'static str> {
    let mut ids: Vec<&str> = report.findings.iter().map(|f| f.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[test]
fn bad_configurations_find_what_they_hold() {
    let r = check("java-producer-bad.properties", Dialect::Java, Role::Producer);
    assert_eq!(ids(&r), ["D002", "D003", "D102", "D105", "D106", "D109", "D113"]);
    assert_eq!(r.exit_code(false), 1);

    let r = check("librdkafka-producer-bad.json", Dialect::Librdkafka, Role::Producer);
    assert_eq!(ids(&r), ["D004", "D104", "D110", "D111", "D115", "D118"]);

    let r = check(
        "librdkafka-consumer-bad.properties",
        Dialect::Librdkafka,
        Role::Consumer,
    );
    assert_eq!(ids(&r), ["D201", "D203", "D206", "D207", "D208", "D211"]);

    let r = check("java-consumer-bad.properties", Dialect::Java, Role::Consumer);
    assert_eq!(ids(&r), ["D003", "D204", "D205", "D207", "D210"]);
    assert!(
        r.findings
            .iter()
            .any(|f| f.id() == "D210" && f.severity == Severity::Error)
    );
}
