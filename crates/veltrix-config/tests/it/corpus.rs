//! The corpus under `tests/corpus/`: configuration files as operators write
//! them. Each file of `bad/` says in its header what `check` must report, and
//! exactly that is reported: the errors and warnings found, as (rule, place),
//! are the ones the header lists. Each file of `good/` is valid, however
//! unusually written, and must come out without an error or a warning. Every
//! report must also serialize to JSON that parses back. `tests/corpus/README.md`
//! describes the header.

#[path = "../../../veltrix-diagnostic/tests/support/corpus.rs"]
mod frame;

use std::path::{Path, PathBuf};

use veltrix_config::{FixedProbe, Location, Report, Severity, check_bytes};

/// The corpus may grow, never shrink below this.
const BAD_FILES_MIN: usize = 35;
const GOOD_FILES_MIN: usize = 8;

/// Where a diagnostic is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// A 1-based line of the file.
    Line(usize),
    /// An environment variable, by name.
    Env(String),
    /// The file as a whole (no line).
    File,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Env(var) => write!(f, "env {var}"),
            Place::File => write!(f, "file"),
        }
    }
}

/// What a file's header says.
#[derive(Debug)]
struct Header {
    /// `# expect:` findings, as (rule id, place); `None` without the line.
    expect: Option<Vec<(String, Place)>>,
    /// `# known-bug:` findings the checker reports although it should not.
    /// They are accepted, and the test fails once they are gone, so that the
    /// mark goes with the bug.
    known_bug: Vec<(String, Place)>,
    /// `# env:` variables.
    env: Vec<(String, String)>,
    probe: FixedProbe,
    /// The file's bytes with the header lines blanked (line breaks kept, so
    /// lines keep their numbers): what is checked.
    checked: Vec<u8>,
}

/// A machine with a disk-backed file system and 64 GiB of memory, as in the
/// rule tests.
fn disk() -> FixedProbe {
    FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    }
}

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Reads the header lines at the start of `bytes` (after a byte-order mark):
/// `# expect: ...`, `# known-bug: ...`, `# env: ...` and `# probe: ...`, in any order.
fn header(bytes: &[u8]) -> Result<Header, String> {
    let mut h = Header {
        expect: None,
        known_bug: Vec::new(),
        env: Vec::new(),
        probe: disk(),
        checked: Vec::with_capacity(bytes.len()),
    };
    let mut rest = bytes;
    if let Some(after) = rest.strip_prefix(BOM) {
        h.checked.extend_from_slice(BOM);
        rest = after;
    }
    loop {
        let line_len = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, after) = rest.split_at(line_len);
        let content_len = line.len() - line.iter().rev().take_while(|&&b| b == b'\n' || b == b'\r').count();
        let Ok(text) = std::str::from_utf8(&line[..content_len]) else {
            break;
        };
        if let Some(list) = text.strip_prefix("# expect:") {
            h.expect = Some(parse_expect(list)?);
        } else if let Some(list) = text.strip_prefix("# known-bug:") {
            h.known_bug = parse_expect(list)?;
        } else if let Some(var) = text.strip_prefix("# env:") {
            let (name, value) = var
                .trim_start()
                .split_once('=')
                .ok_or_else(|| format!("`# env:` needs NAME=value: {text:?}"))?;
            h.env.push((name.to_owned(), value.to_owned()));
        } else if let Some(facts) = text.strip_prefix("# probe:") {
            parse_probe(&mut h.probe, facts)?;
        } else {
            break;
        }
        // The header line is blanked; its line break stays.
        h.checked.extend_from_slice(&line[content_len..]);
        rest = after;
        if rest.is_empty() {
            break;
        }
    }
    h.checked.extend_from_slice(rest);
    Ok(h)
}

/// `V004 line 3, V017 env VELTRIX_BROKER__DATA_DIR, V134 file`.
fn parse_expect(list: &str) -> Result<Vec<(String, Place)>, String> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let words: Vec<&str> = item.split_whitespace().collect();
        let place = match words.as_slice() {
            [_, "line", n] => Place::Line(n.parse().map_err(|_| format!("bad line number in {item:?}"))?),
            [_, "env", var] => Place::Env((*var).to_owned()),
            [_, "file"] => Place::File,
            _ => return Err(format!("cannot read expectation {item:?}")),
        };
        let id = words[0];
        if veltrix_config::rules::find(id).is_none_or(|r| r.id != id) {
            return Err(format!("{id} is not a rule id"));
        }
        out.push((id.to_owned(), place));
    }
    out.sort();
    Ok(out)
}

/// `tmpfs`, `fs=xfs`, `memory=268435456`, `inside=/var/lib/veltrix` (the
/// data directory every path is inside of), `var:HOME=/home/ops`.
fn parse_probe(probe: &mut FixedProbe, facts: &str) -> Result<(), String> {
    for fact in facts.split_whitespace() {
        if fact == "tmpfs" {
            probe.filesystem_type = Some("tmpfs".to_owned());
        } else if let Some(fs) = fact.strip_prefix("fs=") {
            probe.filesystem_type = Some(fs.to_owned());
        } else if let Some(bytes) = fact.strip_prefix("memory=") {
            probe.memory_bytes_total = Some(bytes.parse().map_err(|_| format!("bad memory in {fact:?}"))?);
        } else if let Some(dir) = fact.strip_prefix("inside=") {
            probe.enclosing_data_dir = Some(PathBuf::from(dir));
        } else if let Some((name, value)) = fact.strip_prefix("var:").and_then(|v| v.split_once('=')) {
            probe.variables.push((name.to_owned(), value.to_owned()));
        } else {
            return Err(format!("unknown probe fact {fact:?}"));
        }
    }
    Ok(())
}

/// The errors and warnings of `report`, as (rule id, place), sorted.
fn found(report: &Report) -> Vec<(String, Place)> {
    let mut out: Vec<(String, Place)> = report
        .diagnostics
        .iter()
        .filter(|d| matches!(d.severity, Severity::Error | Severity::Warning))
        .map(|d| {
            let place = match &d.location {
                Some(Location::File { line, .. }) => Place::Line(*line),
                Some(Location::Env { var, .. }) => Place::Env(var.clone()),
                None => Place::File,
            };
            (d.id().to_owned(), place)
        })
        .collect();
    out.sort();
    out
}

/// Checks one file; `Err` says what is wrong with the outcome.
fn check(dir: &str, path: &Path, bad: bool) -> Result<(), String> {
    let name = format!("{dir}/{}", path.file_name().unwrap_or_default().to_string_lossy());
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let h = header(&bytes).map_err(|e| format!("{name}: header: {e}"))?;
    let report = check_bytes(&name, &h.checked, &h.env, &h.probe);
    let json = serde_json::to_string(&report.to_json()).map_err(|e| format!("{name}: to JSON: {e}"))?;
    serde_json::from_str::<serde_json::Value>(&json).map_err(|e| format!("{name}: JSON does not parse back: {e}"))?;
    let outcome = frame::Outcome {
        expect: h.expect,
        known_bug: h.known_bug,
        got: found(&report),
        rendered: report.render(false),
    };
    frame::verdict(&name, bad, outcome, |(id, place)| format!("{id} {place}"))
}

fn run(dir: &str, bad: bool, min: usize) {
    let files = frame::files(env!("CARGO_MANIFEST_DIR"), dir, "toml");
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
fn corpus_header_blanks_its_lines_and_keeps_their_breaks() {
    let h = header(b"\xef\xbb\xbf# expect: V134 file\r\n# env: VELTRIX_A__B=\"x\"\r\n[broker]\n").unwrap();
    assert_eq!(h.checked, b"\xef\xbb\xbf\r\n\r\n[broker]\n");
    assert_eq!(h.expect, Some(vec![("V134".to_owned(), Place::File)]));
    assert_eq!(h.env, [("VELTRIX_A__B".to_owned(), "\"x\"".to_owned())]);
}
