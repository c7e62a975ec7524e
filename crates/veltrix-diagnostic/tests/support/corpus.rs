//! The frame both linters' corpus tests share (`veltrix-config` and
//! `veltrix-doctor` include this file): the files of `tests/corpus/<dir>`,
//! and the verdict on one file, comparing the findings its header expects
//! (and those it marks as known bugs) with the ones reported. Each test keeps
//! its own header format and its own notion of where a finding is.

use std::path::{Path, PathBuf};

/// One file's expectations and findings, as `(rule id, place)`.
pub struct Outcome<P> {
    /// `None`: the header expects nothing.
    pub expect: Option<Vec<(String, P)>>,
    /// Findings the checker reports wrongly, accepted until they go.
    pub known_bug: Vec<(String, P)>,
    /// What was reported (errors and warnings), sorted.
    pub got: Vec<(String, P)>,
    /// The report, for the failure message.
    pub rendered: String,
}

/// The files of `<crate>/tests/corpus/<dir>` ending in `.<ext>`, sorted.
pub fn files(manifest_dir: &str, dir: &str, ext: &str) -> Vec<PathBuf> {
    let root = Path::new(manifest_dir).join("tests/corpus").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Whether `outcome` is what file `name` (bad or good) must give; `Err`
/// says how it is not.
pub fn verdict<P: Ord>(
    name: &str,
    bad: bool,
    outcome: Outcome<P>,
    show: impl Fn(&(String, P)) -> String,
) -> Result<(), String> {
    let mut expected = match (bad, outcome.expect) {
        (true, Some(expected)) if !expected.is_empty() => expected,
        (true, _) => return Err(format!("{name}: a bad file needs `# expect:` on its first line")),
        (false, Some(_)) => return Err(format!("{name}: a good file expects nothing")),
        (false, None) => Vec::new(),
    };
    expected.extend(outcome.known_bug);
    expected.sort();
    if outcome.got == expected {
        return Ok(());
    }
    let list = |items: &[(String, P)]| {
        if items.is_empty() {
            "nothing".to_owned()
        } else {
            items.iter().map(&show).collect::<Vec<_>>().join(", ")
        }
    };
    Err(format!(
        "{name}: expected {}\n  found {}\n{}",
        list(&expected),
        list(&outcome.got),
        outcome.rendered
    ))
}

/// Checks every file of `files` with `check`, which must hold for each; at
/// least `min` of them, so that the corpus cannot shrink unseen.
pub fn run(dir: &str, files: &[PathBuf], min: usize, check: impl Fn(&Path) -> Result<(), String>) {
    assert!(
        files.len() >= min,
        "tests/corpus/{dir} has {} files, fewer than {min}",
        files.len()
    );
    let failures: Vec<String> = files.iter().filter_map(|p| check(p).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} files in tests/corpus/{dir}:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
