//! The corpus under `tests/corpus/`: client `.properties` files as they are
//! written in services. Each file of `bad/` says in its header what the
//! doctor must report, and exactly that is reported: the errors and warnings
//! found, as (rule, line), are the ones the header lists. Each file of `good/`
//! is valid, however unusually written, and must come out without an error or
//! a warning (notes are allowed). `tests/corpus/README.md` describes the
//! header.

#[path = "../../../veltrix-diagnostic/tests/support/corpus.rs"]
mod frame;

use std::path::Path;

use veltrix_doctor::{BrokerLimits, Dialect, LintOptions, Report, Role, Severity, lint};

/// The corpus may grow, never shrink below this.
const BAD_FILES_MIN: usize = 25;
const GOOD_FILES_MIN: usize = 7;

/// Where a finding is: a 1-based line, or `None` for a default in force or
/// the file as a whole.
type Place = Option<usize>;

/// What a file's header says.
#[derive(Debug)]
struct Header {
    /// `# expect:` findings, as (rule id, place); `None` without the line.
    expect: Option<Vec<(String, Place)>>,
    /// `# known-bug:` findings the checker reports although it should not.
    /// They are accepted, and the test fails once they are gone, so that the
    /// mark goes with the bug.
    known_bug: Vec<(String, Place)>,
    options: LintOptions,
}

/// Reads the header lines at the start of `source` (after a byte-order
/// mark): `# expect: ...`, `# client: ... role: ...` and `# known-bug: ...`,
/// in any order. They are comments, so the file is linted as it is.
fn header(source: &str) -> Result<Header, String> {
    let mut h = Header {
        expect: None,
        known_bug: Vec::new(),
        options: LintOptions::default(),
    };
    for line in source.trim_start_matches('\u{feff}').lines() {
        let text = line.trim_end();
        if let Some(list) = text.strip_prefix("# expect:") {
            h.expect = Some(parse_expect(list)?);
        } else if let Some(list) = text.strip_prefix("# known-bug:") {
            h.known_bug = parse_expect(list)?;
        } else if text.starts_with("# client:") || text.starts_with("# role:") {
            parse_options(&mut h.options, &text[1..])?;
        } else {
            break;
        }
    }
    Ok(h)
}

/// `D004 line 3, D203 default, D007 file`.
fn parse_expect(list: &str) -> Result<Vec<(String, Place)>, String> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        let place = match words.as_slice() {
            [_, "line", n] => Some(n.parse().map_err(|_| format!("bad line number in {item:?}"))?),
            [_, "default" | "file"] => None,
            _ => return Err(format!("cannot read expectation {item:?}")),
        };
        let id = words[0];
        if veltrix_doctor::rules::find(id).is_none_or(|r| r.id != id) {
            return Err(format!("{id} is not a rule id"));
        }
        out.push((id.to_owned(), place));
    }
    out.sort();
    Ok(out)
}

/// `client: librdkafka  role: consumer  processing-ms: 60000
/// message-max-bytes: 1048588`.
fn parse_options(options: &mut LintOptions, text: &str) -> Result<(), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for pair in words.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("`name: value` pairs expected in {text:?}"));
        };
        match *name {
            "client:" => options.client = Some(Dialect::from_name(value).ok_or(format!("unknown client {value}"))?),
            "role:" => options.role = Some(Role::from_name(value).ok_or(format!("unknown role {value}"))?),
            "processing-ms:" => options.processing_ms = Some(value.parse().map_err(|_| format!("bad {name} {value}"))?),
            "message-max-bytes:" => {
                options.broker = Some(BrokerLimits {
                    source: "127.0.0.1:9092".to_owned(),
                    message_max_bytes: Some(value.parse().map_err(|_| format!("bad {name} {value}"))?),
                    topics: Vec::new(),
                    listeners: Vec::new(),
                });
            }
            _ => return Err(format!("unknown option {name}")),
        }
    }
    Ok(())
}

/// The errors and warnings of `report`, as (rule id, line), sorted.
fn found(report: &Report) -> Vec<(String, Place)> {
    let mut out: Vec<(String, Place)> = report
        .findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Error | Severity::Warning))
        .map(|f| (f.id().to_owned(), f.line()))
        .collect();
    out.sort();
    out
}

/// Lints one file; `Err` says what is wrong with the outcome.
fn check(dir: &str, path: &Path, bad: bool) -> Result<(), String> {
    let name = format!("{dir}/{}", path.file_name().unwrap_or_default().to_string_lossy());
    let source = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let h = header(&source).map_err(|e| format!("{name}: header: {e}"))?;
    let report = lint(&name, &source, &h.options);
    let json = serde_json::to_string(&report.to_json()).map_err(|e| format!("{name}: to JSON: {e}"))?;
    serde_json::from_str::<serde_json::Value>(&json).map_err(|e| format!("{name}: JSON does not parse back: {e}"))?;
    let outcome = frame::Outcome {
        expect: h.expect,
        known_bug: h.known_bug,
        got: found(&report),
        rendered: report.render(false),
    };
    frame::verdict(&name, bad, outcome, |(id, place)| match place {
        Some(n) => format!("{id} line {n}"),
        None => format!("{id} default"),
    })
}

fn run(dir: &str, bad: bool, min: usize) {
    let files = frame::files(env!("CARGO_MANIFEST_DIR"), dir, "properties");
    frame::run(dir, &files, min, |p| check(dir, p, bad));
}

#[test]
fn corpus_bad_files_report_exactly_what_their_header_expects() {
    run("bad", true, BAD_FILES_MIN);
}

#[test]
fn corpus_good_files_have_no_error_and_no_warning() {
    run("good", false, GOOD_FILES_MIN);
}

#[test]
fn corpus_header_is_read_after_a_byte_order_mark() {
    let h = header("\u{feff}# expect: D007 file\r\n# client: java  role: consumer\r\n# acks=1\n").unwrap();
    assert_eq!(h.expect, Some(vec![("D007".to_owned(), None)]));
    assert_eq!(
        (h.options.client, h.options.role),
        (Some(Dialect::Java), Some(Role::Consumer))
    );
}
