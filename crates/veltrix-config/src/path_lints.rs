//! The rules of paths (V018 to V021, V217): a data directory written so that
//! the broker would create one nobody meant, or put its records where the
//! system, a clean-up job or another broker will remove them.

use std::path::Path;

use crate::check::Ctx;
use crate::paths;
use crate::probe::Probe;
use crate::raw::{Origin, Raw};
use crate::rules;

/// V018 to V021 and V217 on `broker.data_dir`, from the file or the
/// environment; at most one of them, the first that applies.
pub(crate) fn run(ctx: &mut Ctx<'_>, raw: &Raw, probe: &dyn Probe) {
    let b = raw.table("broker");
    let (Some(text), Some(at)) = (b.str("data_dir"), b.set_at("data_dir")) else {
        return;
    };
    let fix = |path: &str| match &at {
        Origin::Env { var, .. } => format!("set `{var}={path}`"),
        Origin::File(_) => format!("write `data_dir = {path:?}`"),
    };
    if let Some(clean) = paths::stray_ends(text) {
        ctx.emit(
            &rules::PATH_STRAY_CHARACTERS,
            Some(&at),
            format!("the data directory {text:?} has white space or quotes at an end"),
        )
        .label("part of the directory's name")
        .help(fix(&clean))
        .note("`serve` would create a directory whose name starts or ends with them, beside the real one, and start empty");
        return;
    }
    let found = paths::placeholders(text);
    if let Some(first) = found.first() {
        let expanded = paths::expand(text, |v| probe.variable(v));
        let help = match &expanded {
            Some(path) => format!("{} (what {} stands for here)", fix(path), first.text),
            None => "write the absolute path; set it per machine with `VELTRIX_BROKER__DATA_DIR`, expanded by your deployment tool".to_owned(),
        };
        let all: Vec<String> = found.iter().map(|p| format!("`{}`", p.text)).collect();
        ctx.emit(
            &rules::PATH_PLACEHOLDER,
            Some(&at),
            format!("the data directory `{text}` has {} that nothing expands", all.join(", ")),
        )
        .label("taken literally")
        .help(help)
        .note(format!(
            "neither the configuration file nor the environment overrides expand placeholders: `serve` would create a directory named `{}`",
            literal_dir(text)
        ));
        return;
    }
    let path = Path::new(text);
    if let Some(why) = paths::system_dir(path) {
        ctx.emit(
            &rules::DATA_DIR_SYSTEM,
            Some(&at),
            format!("the data directory `{text}` is {why}"),
        )
        .label("a system directory")
        .help(fix("/var/lib/veltrix"))
        .note("the broker's logs and lock file would mix with the system's files, where upgrades, backups and clean-up jobs do not expect them");
        return;
    }
    if let Some(other) = probe.enclosing_data_dir(path) {
        ctx.emit(
            &rules::DATA_DIR_NESTED,
            Some(&at),
            format!(
                "the data directory `{text}` is inside the data directory of another broker, `{}`",
                other.display()
            ),
        )
        .label("inside another broker's data directory")
        .help(format!(
            "give each broker a directory of its own, side by side: {}",
            fix(&sibling(&other))
        ))
        .note("a broker removes log directories its catalogue does not name, and a backup, restore or deletion of one directory takes the other with it");
        return;
    }
    let tmpfs = probe
        .filesystem_type(path)
        .is_some_and(|fs| fs == "tmpfs" || fs == "ramfs");
    let tmpdir = probe.variable("TMPDIR");
    if let Some(tmp) = paths::temporary_dir(path, tmpdir.as_deref()).filter(|_| !tmpfs) {
        ctx.emit(
            &rules::DATA_DIR_TEMPORARY,
            Some(&at),
            format!("the data directory `{text}` is in the temporary directory `{tmp}`"),
        )
        .label("a temporary directory")
        .help(fix("/var/lib/veltrix"))
        .note("temporary directories are emptied at boot on many systems, and `systemd-tmpfiles` deletes files there that have not changed for days, such as a quiet partition's segments");
    }
}

/// The directory `serve` would create for a path with placeholders: its first
/// component, relative to where it starts.
fn literal_dir(text: &str) -> &str {
    text.split('/').find(|part| !part.is_empty()).unwrap_or(text)
}

/// A directory beside `other`, for a second broker.
fn sibling(other: &Path) -> String {
    let name = other
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    other.with_file_name(format!("{name}-2")).display().to_string()
}

/// Why `serve` refuses a data directory given on its command line, before it
/// opens or creates anything: what V018 to V021 would say of it in a file.
pub fn data_dir_refusal(path: &Path, probe: &dyn Probe) -> Option<String> {
    let text = path.to_str()?;
    if let Some(clean) = paths::stray_ends(text) {
        return Some(format!(
            "the data directory {text:?} has white space or quotes at an end; did you mean `{clean}`?"
        ));
    }
    if let Some(first) = paths::placeholders(text).first() {
        let meant = paths::expand(text, |v| probe.variable(v))
            .map(|p| format!("; did you mean `{p}`?"))
            .unwrap_or_default();
        return Some(format!(
            "the data directory `{text}` has `{}`, which nothing expanded{meant}",
            first.text
        ));
    }
    if let Some(why) = paths::system_dir(path) {
        return Some(format!("the data directory `{text}` is {why}"));
    }
    probe.enclosing_data_dir(path).map(|other| {
        format!(
            "the data directory `{text}` is inside the data directory of another broker, `{}`",
            other.display()
        )
    })
}
