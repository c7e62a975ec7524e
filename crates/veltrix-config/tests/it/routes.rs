//! `[[route]]` tables: a sound file resolves to the engine's route specs
//! with no diagnostic; each rule of routes reports at its place, expression
//! errors at their line and column in the file.

use veltrix_config::{Diagnostic, FixedProbe, Location, Report, RouteSpec, RuleSpec, check_source};

fn disk() -> FixedProbe {
    FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    }
}

fn check(source: &str) -> Report {
    check_source("veltrix.toml", source, &[], &disk())
}

/// The diagnostics of `rule`, as (line, column, the text they underline).
fn places(report: &Report, rule: &str) -> Vec<(usize, usize, String)> {
    report
        .diagnostics
        .iter()
        .filter(|d| d.id() == rule)
        .filter_map(|d| match &d.location {
            Some(Location::File { span, line, column }) => {
                Some((*line, *column, report.source[span.clone()].to_owned()))
            }
            _ => None,
        })
        .collect()
}

fn ids(report: &Report) -> Vec<&'static str> {
    report.diagnostics.iter().map(Diagnostic::id).collect()
}

const TOPICS: &str = r#"[[topic]]
name = "events"
tier = "critical"

[[topic]]
name = "events.critical"
critical = true

[[topic]]
name = "events.other"

[[topic]]
name = "events.route-errors"

[[topic]]
name = "audit"
tier = "bulk"

[[topic]]
name = "audit.dead-letters"
tier = "bulk"
"#;

#[test]
fn a_sound_file_with_routes_has_no_diagnostics_and_resolves_to_route_specs() {
    let src = format!(
        r#"{TOPICS}
[[topic]]
name = "incoming"

[[route]]
name = "by-type"
source = "incoming"
default = ["events.other"]
dead_letter = "events.route-errors"

  [[route.rule]]
  when = 'value.type == "reward" || value.type == "purchase"'
  to = ["events.critical"]
  headers = {{ "x-lane" = "critical" }}

  [[route.rule]]
  when = """
    has(value.amount)
      && value.amount > 100"""
  to = "events.critical"

  [[route.rule]]
  when = 'headers["source"].startsWith("audit") && value.items.all(i, i.price > 0)'
  to = ["events.other", "events.route-errors"]

# Only a default: every record copied, under the default dead-letter topic.
[[route]]
name = "audit"
source = "audit"
default = "audit.dead-letters"
"#
    );
    let report = check(&src);
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    let routes = report.config.expect("no errors").routes;
    assert_eq!(routes.len(), 2);
    assert_eq!(
        routes[0].rules[0],
        RuleSpec {
            when: r#"value.type == "reward" || value.type == "purchase""#.to_owned(),
            to: vec!["events.critical".to_owned()],
            headers: vec![("x-lane".to_owned(), "critical".to_owned())],
        }
    );
    assert_eq!(
        routes[0].rules[1].when,
        "    has(value.amount)\n      && value.amount > 100"
    );
    assert_eq!(routes[0].rules[1].to, ["events.critical"]);
    assert_eq!(routes[0].rules[2].to, ["events.other", "events.route-errors"]);
    assert_eq!(routes[0].default, ["events.other"]);
    assert_eq!(routes[0].dead_letter, "events.route-errors");
    assert_eq!(
        routes[1],
        RouteSpec {
            name: "audit".to_owned(),
            source: "audit".to_owned(),
            rules: Vec::new(),
            default: vec!["audit.dead-letters".to_owned()],
            dead_letter: "audit.dead-letters".to_owned(),
        }
    );
}

#[test]
fn a_file_without_routes_resolves_to_none_so_that_old_ones_are_forgotten() {
    let report = check(TOPICS);
    assert_eq!(report.config.unwrap().routes, Vec::<RouteSpec>::new());
}

#[test]
fn expression_errors_are_placed_at_their_line_and_column_in_the_file() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "by-type"
source = "events"
dead_letter = "events.route-errors"

  [[route.rule]]
  when = 'value.type == "reward"'
  to = "events.critical"

  [[route.rule]]
  when = "value.type == \"a\u00e9\" || startswith(key, \"b\")"
  to = "events.other"

  [[route.rule]]
  when = '''
value.kind == "x"
  || recrod.kind == "y"'''
  to = "events.other"
"#
    );
    let report = check(&src);
    let line = |text: &str| src.lines().position(|l| l.contains(text)).unwrap() + 1;
    // Columns as the file has them: after `\"` and `\u00e9`, each written
    // with more characters than it stands for.
    let column = |text: &str| src.lines().find_map(|l| l.find(text)).unwrap() + 1;
    assert_eq!(column("startswith"), 40);
    assert_eq!(
        places(&report, "V027"),
        vec![
            (line("startswith"), 40, "startswith".to_owned()),
            (line("|| recrod"), 6, "recrod".to_owned()),
        ],
        "{}",
        report.render(false)
    );
    let rendered = report.render(false);
    assert!(
        rendered.contains(&format!("veltrix.toml:{}:40", line("startswith"))),
        "{rendered}"
    );
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.message.contains("recrod"))
        .unwrap();
    assert!(d.message.contains("rule 3"), "{}", d.message);
    assert!(
        d.help
            .contains("`key`, `value`, `headers`, `timestamp`, `partition`, `offset`"),
        "{}",
        d.help
    );
    assert!(report.config.is_none());
}

#[test]
fn a_syntax_error_is_placed_on_its_line_of_a_multi_line_string() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "by-type"
source = "events"
default = "events.other"
dead_letter = "events.route-errors"

  [[route.rule]]
  when = """
value.type == "a"
  && && true"""
  to = "events.critical"
"#
    );
    let report = check(&src);
    let found = places(&report, "V027");
    assert_eq!(found.len(), 1, "{}", report.render(false));
    let (line, column, text) = &found[0];
    assert_eq!(*line, src.lines().position(|l| l.contains("&& &&")).unwrap() + 1);
    // The second `&&`, at column 6 of that line (the parser's own column may
    // be off by one character).
    assert!((6..=7).contains(column), "{column}");
    assert_eq!(text, "&");
    let d = report.diagnostics.iter().find(|d| d.id() == "V027").unwrap();
    assert!(d.message.contains("Syntax error"), "{}", d.message);
}

#[test]
fn every_topic_a_route_names_must_be_declared_the_default_dead_letter_topic_included() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "r"
source = "event"
default = ["events.other", "nowhere"]

  [[route.rule]]
  when = 'true'
  to = ["events.critical", "events.critcal"]
"#
    );
    let report = check(&src);
    let found: Vec<String> = places(&report, "V141").into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(found, ["\"r\"", "\"event\"", "\"nowhere\"", "\"events.critcal\""]);
    let help: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.id() == "V141")
        .map(|d| d.help.as_str())
        .collect();
    assert!(
        help[0].contains("`[[topic]]` with `name = \"r.dead-letters\"`"),
        "{}",
        help[0]
    );
    assert!(help[1].starts_with("did you mean `\"events\"`?"), "{}", help[1]);
    assert!(
        help[3].starts_with("did you mean `\"events.critical\"`?"),
        "{}",
        help[3]
    );
    assert!(report.config.is_none());
}

#[test]
fn auto_created_topics_do_not_count_as_declared() {
    let src = "[broker]\nauto_create_topics = true\n\n[[route]]\nname = \"r\"\nsource = \"a\"\ndefault = \"b\"\ndead_letter = \"c\"\n";
    assert_eq!(ids(&check(src)), ["V141", "V141", "V141"]);
}

#[test]
fn a_cycle_through_several_routes_points_at_each_step() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "forth"
source = "events.other"
default = "events.route-errors"
dead_letter = "audit.dead-letters"

[[route]]
name = "back"
source = "events.route-errors"
dead_letter = "audit.dead-letters"

  [[route.rule]]
  when = 'true'
  to = "events.other"
"#
    );
    let report = check(&src);
    assert_eq!(ids(&report), ["V142"], "{}", report.render(false));
    let d = &report.diagnostics[0];
    assert_eq!(
        d.message,
        "routes make a cycle: events.other -> events.route-errors -> events.other"
    );
    let Some(Location::File { span, .. }) = &d.location else {
        panic!("{:?}", d.location);
    };
    assert_eq!(&src[span.clone()], "\"events.route-errors\"");
    assert!(d.label.contains("route `forth`"), "{}", d.label);
    assert_eq!(d.related.len(), 1);
    assert_eq!(&src[d.related[0].0.clone()], "\"events.other\"");
    assert!(d.related[0].1.contains("route `back`"), "{}", d.related[0].1);
}

#[test]
fn a_route_writing_to_its_own_source_is_a_cycle() {
    let src = format!(
        "{TOPICS}\n[[route]]\nname = \"r\"\nsource = \"events.other\"\ndead_letter = \"events.other\"\ndefault = \"audit\"\n"
    );
    let report = check(&src);
    let d = report.diagnostics.iter().find(|d| d.id() == "V142").expect("a cycle");
    assert_eq!(d.message, "route `r` writes to `events.other`, the topic it reads");
}

#[test]
fn a_lower_tier_is_a_warning_once_per_target_and_dead_letters_are_not_compared() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "r"
source = "events"
default = "audit"
dead_letter = "audit.dead-letters"

  [[route.rule]]
  when = 'key == "a"'
  to = ["events.critical", "events.other"]

  [[route.rule]]
  when = 'key == "b"'
  to = "events.other"
"#
    );
    let report = check(&src);
    let warned: Vec<String> = places(&report, "V143").into_iter().map(|(_, _, t)| t).collect();
    // `events.other` once (standard), `audit` (bulk); not the critical
    // target, not the bulk dead-letter topic.
    assert_eq!(warned, ["\"audit\"", "\"events.other\""], "{}", report.render(false));
    assert_eq!(ids(&report), ["V143", "V143"]);
    assert_eq!(report.exit_code(false), 0);
    assert_eq!(report.exit_code(true), 1);
    assert!(report.config.is_some(), "warnings do not withhold the configuration");
}

#[test]
fn names_duplicates_shapes_and_limits() {
    let many_rules: String = (0..101)
        .map(|i| format!("\n  [[route.rule]]\n  when = 'offset == {i}'\n  to = \"events.route-errors\"\n"))
        .collect();
    let targets: Vec<String> = (0..17).map(|_| "\"events.other\"".to_owned()).collect();
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "ünïcode"
source = "audit"
dead_letter = "events.route-errors"
default = [{targets}]

[[route]]
name = "empty"
source = "events"
dead_letter = "events.route-errors"

  [[route.rule]]
  when = 'true'
  to = []

[[route]]
name = "empty"
source = "events.other"
dead_letter = "events.route-errors"
{many_rules}"#,
        targets = targets.join(", ")
    );
    let report = check(&src);
    let mut found = ids(&report);
    found.sort_unstable();
    assert_eq!(
        found,
        ["V025", "V026", "V029", "V030", "V030"],
        "{}",
        report.render(false)
    );
    let limits: Vec<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.id() == "V030")
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        limits,
        [
            "`default` names 17 topics; at most 16",
            "route `empty` has 101 rules; at most 100"
        ]
    );
}

#[test]
fn a_route_with_neither_rules_nor_default_routes_nothing() {
    let src = format!("{TOPICS}\n[[route]]\nname = \"r\"\nsource = \"events\"\ndead_letter = \"events.other\"\n");
    assert_eq!(ids(&check(&src)), ["V028"]);
    // An empty `default` is no default.
    let src = format!(
        "{TOPICS}\n[[route]]\nname = \"r\"\nsource = \"events\"\ndefault = []\ndead_letter = \"events.other\"\n"
    );
    assert_eq!(ids(&check(&src)), ["V028"]);
}

#[test]
fn unknown_keys_missing_keys_and_wrong_types_inside_routes_and_rules() {
    let src = format!(
        r#"{TOPICS}
[[route]]
name = "r"
source = "events"
dead_letters = "events.other"
default = 3

  [[route.rule]]
  whn = 'true'
  to = "events.critical"
  header = {{ a = "b" }}

  [[route.rule]]
  when = 'true'
  headers = {{ a = 1 }}
"#
    );
    let report = check(&src);
    let found: Vec<(&str, String)> = report.diagnostics.iter().map(|d| (d.id(), d.help.clone())).collect();
    let expected = [
        ("V141", "declare it: `[[topic]]` with `name = \"r.dead-letters\"`"),
        ("V002", "did you mean `dead_letter`?"),
        ("V003", "write `default = \"TOPIC\"` or `default = [\"TOPIC\", ...]`"),
        ("V006", "add `when = ...` to the entry"),
        ("V002", "did you mean `when`?"),
        ("V002", "did you mean `headers`?"),
        ("V006", "add `to = ...` to the entry"),
        ("V003", "quote it: `\"1\"`"),
    ];
    assert_eq!(found.len(), expected.len(), "{}", report.render(false));
    for ((id, help), (want_id, want_help)) in found.iter().zip(expected) {
        assert_eq!(*id, want_id, "{}", report.render(false));
        assert!(help.contains(want_help), "{id}: {help:?} lacks {want_help:?}");
    }
    let missing = report.diagnostics.iter().find(|d| d.id() == "V006").unwrap();
    assert_eq!(missing.message, "`[[route.rule]]` without `when`");
}

#[test]
fn a_single_rule_table_must_be_an_array_of_tables() {
    let src = format!(
        "{TOPICS}\n[[route]]\nname = \"r\"\nsource = \"events\"\ndead_letter = \"events.other\"\n\n[route.rule]\nwhen = 'true'\nto = \"events.critical\"\n"
    );
    let report = check(&src);
    assert_eq!(ids(&report), ["V003"], "{}", report.render(false));
    assert!(report.diagnostics[0].help.contains("`[[route.rule]]` (two brackets)"));
}

#[test]
fn routes_are_declared_in_the_file_only() {
    let env = vec![("VELTRIX_ROUTE__NAME".to_owned(), "r".to_owned())];
    let report = check_source("veltrix.toml", "[broker]\n", &env, &disk());
    assert_eq!(ids(&report), ["V002"]);
}
