//! How a path in the configuration can be written wrong: placeholders that
//! nothing expands, stray white space or quotes, system and temporary
//! directories. Pure functions of the text, used by the path rules of
//! `veltrix check` and by `serve` for a `--data-dir` given on the command line.

use std::path::{Component, Path, PathBuf};

/// A placeholder a shell or a template engine would have expanded, and that
/// the broker takes literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    /// As written: `~`, `$HOME`, `${DATA}`, `%APPDATA%`, `{{ data_dir }}`.
    pub text: String,
    /// The environment variable it stands for, when it stands for one.
    pub var: Option<String>,
}

/// Every placeholder in `path`, in order.
pub fn placeholders(path: &str) -> Vec<Placeholder> {
    let mut found = Vec::new();
    if let Some(rest) = path.strip_prefix('~') {
        let user: String = rest.chars().take_while(|c| *c != '/').collect();
        found.push(Placeholder {
            text: format!("~{user}"),
            var: user.is_empty().then(|| "HOME".to_owned()),
        });
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &path[i..];
        if let Some(inner) = rest.strip_prefix("${") {
            let end = inner.find('}').map_or(inner.len(), |e| e + 1);
            let name = inner[..end].trim_end_matches('}');
            let name = name.split([':', '-']).next().unwrap_or(name);
            found.push(Placeholder {
                text: format!("${{{}", &inner[..end]),
                var: is_var_name(name).then(|| name.to_owned()),
            });
            i += 2 + end;
        } else if let Some(inner) = rest.strip_prefix('$') {
            let name: String = inner
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if is_var_name(&name) {
                i += 1 + name.len();
                found.push(Placeholder {
                    text: format!("${name}"),
                    var: Some(name),
                });
            } else {
                i += 1;
            }
        } else if let Some(inner) = rest.strip_prefix("{{") {
            let end = inner.find("}}").map_or(inner.len(), |e| e + 2);
            found.push(Placeholder {
                text: format!("{{{{{}", &inner[..end]),
                var: None,
            });
            i += 2 + end;
        } else if let Some(inner) = rest.strip_prefix('%') {
            let name: String = inner
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if is_var_name(&name) && inner[name.len()..].starts_with('%') {
                i += name.len() + 2;
                found.push(Placeholder {
                    text: format!("%{name}%"),
                    var: Some(name),
                });
            } else {
                i += 1;
            }
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `path` with every placeholder replaced by what `lookup` says its variable
/// holds; `None` when one of them cannot be expanded.
pub fn expand(path: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = path.to_owned();
    for p in placeholders(path) {
        let value = lookup(p.var.as_deref()?)?;
        if value.is_empty() {
            return None;
        }
        out = out.replacen(&p.text, value.trim_end_matches('/'), 1);
    }
    Some(out)
}

/// The path without the white space and quotes around it, when it has some.
pub fn stray_ends(path: &str) -> Option<String> {
    let strip = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
    let clean = path.trim_matches(strip);
    (clean != path && !clean.is_empty()).then(|| clean.to_owned())
}

/// Directories a data directory must not be, and must not be inside.
const SYSTEM_TREES: [&str; 12] = [
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/run",
];

/// Directories that hold other directories: a data directory goes inside one
/// of them, not in place of it.
const SYSTEM_PARENTS: [&str; 12] = [
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/srv",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/usr/local",
];

/// The directories under which files are removed at boot or when old.
pub const TEMPORARY_DIRS: [&str; 4] = ["/tmp", "/var/tmp", "/dev/shm", "/run/user"];

/// Why `path` is no place for a data directory, when it is the root, a
/// directory that holds the system's or users' directories, or inside a
/// directory of the system's own. `/dev/shm` and `/run/user` are left to
/// [`temporary_dir`].
pub fn system_dir(path: &Path) -> Option<String> {
    let path = normal(path)?;
    if TEMPORARY_DIRS.iter().any(|t| path.starts_with(t)) {
        return None;
    }
    if let Some(parent) = SYSTEM_PARENTS.iter().find(|p| path == Path::new(p)) {
        return Some(if *parent == "/" {
            "the root directory".to_owned()
        } else {
            "a directory meant to hold others, not to be one".to_owned()
        });
    }
    SYSTEM_TREES
        .iter()
        .find(|t| path.starts_with(t))
        .map(|t| format!("inside `{t}`, which belongs to the system"))
}

/// The temporary directory `path` is in: one of [`TEMPORARY_DIRS`] or `tmpdir`
/// (the machine's `$TMPDIR`).
pub fn temporary_dir(path: &Path, tmpdir: Option<&str>) -> Option<String> {
    let path = normal(path)?;
    let tmpdir = tmpdir
        .and_then(|t| normal(Path::new(t)))
        .filter(|t| t != Path::new("/"));
    TEMPORARY_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(tmpdir)
        .find(|t| path.starts_with(t))
        .map(|t| t.display().to_string())
}

/// An absolute path without `.`, `..` and repeated or trailing separators;
/// `None` for a relative one.
fn normal(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(path: &str) -> Vec<(String, Option<String>)> {
        placeholders(path).into_iter().map(|p| (p.text, p.var)).collect()
    }

    #[test]
    fn placeholders_of_shells_and_templates_are_found() {
        assert_eq!(texts("~/veltrix"), [("~".into(), Some("HOME".into()))]);
        assert_eq!(texts("~kafka/data"), [("~kafka".into(), None)]);
        assert_eq!(texts("$HOME/veltrix"), [("$HOME".into(), Some("HOME".into()))]);
        assert_eq!(
            texts("/srv/${DATA_ROOT}/veltrix"),
            [("${DATA_ROOT}".into(), Some("DATA_ROOT".into()))]
        );
        assert_eq!(
            texts("${DATA:-/srv}/v"),
            [("${DATA:-/srv}".into(), Some("DATA".into()))]
        );
        assert_eq!(texts("{{ data_dir }}/v"), [("{{ data_dir }}".into(), None)]);
        assert_eq!(
            texts("%APPDATA%\\veltrix"),
            [("%APPDATA%".into(), Some("APPDATA".into()))]
        );
        assert_eq!(texts("/var/lib/veltrix"), []);
        // A dollar or a percent sign that starts no variable is a character.
        assert_eq!(texts("/srv/cost$/50%/a~b"), []);
        assert_eq!(
            texts("/srv/${unclosed"),
            [("${unclosed".into(), Some("unclosed".into()))]
        );
    }

    #[test]
    fn placeholders_expand_through_the_environment() {
        let env = |name: &str| (name == "HOME").then(|| "/home/ops/".to_owned());
        assert_eq!(expand("~/veltrix", env).as_deref(), Some("/home/ops/veltrix"));
        assert_eq!(expand("$HOME/v", env).as_deref(), Some("/home/ops/v"));
        assert_eq!(expand("$DATA/v", env), None);
        assert_eq!(expand("{{ x }}/v", env), None);
    }

    #[test]
    fn white_space_and_quotes_at_either_end_are_stray() {
        assert_eq!(stray_ends(" /var/lib/veltrix").as_deref(), Some("/var/lib/veltrix"));
        assert_eq!(stray_ends("'/var/lib/veltrix'").as_deref(), Some("/var/lib/veltrix"));
        assert_eq!(stray_ends("\"/srv/v\"\n").as_deref(), Some("/srv/v"));
        assert_eq!(stray_ends("/var/lib/veltrix"), None);
        assert_eq!(stray_ends("/srv/with space/v"), None);
        assert_eq!(stray_ends("  "), None);
    }

    #[test]
    fn system_directories_and_their_insides_are_refused() {
        let sys = |p: &str| system_dir(Path::new(p));
        assert_eq!(sys("/").as_deref(), Some("the root directory"));
        assert!(sys("/var/").unwrap().contains("meant to hold others"));
        assert!(sys("/var/lib").is_some());
        assert!(sys("/etc/veltrix").unwrap().contains("`/etc`"));
        assert!(sys("/usr/../etc").is_some());
        assert!(sys("/proc/self").is_some());
        assert_eq!(sys("/var/lib/veltrix"), None);
        assert_eq!(sys("/srv/veltrix"), None);
        assert_eq!(sys("/home/ops/veltrix"), None);
        assert_eq!(sys("/etcetera/veltrix"), None);
        assert_eq!(sys("/dev/shm/veltrix"), None);
        assert_eq!(sys("data"), None);
    }

    #[test]
    fn temporary_directories_are_found_with_tmpdir() {
        let tmp = |p: &str, t: Option<&str>| temporary_dir(Path::new(p), t);
        assert_eq!(tmp("/tmp/veltrix", None).as_deref(), Some("/tmp"));
        assert_eq!(tmp("/var/tmp/v", None).as_deref(), Some("/var/tmp"));
        assert_eq!(tmp("/dev/shm/v", None).as_deref(), Some("/dev/shm"));
        assert_eq!(tmp("/scratch/x/v", Some("/scratch/x/")).as_deref(), Some("/scratch/x"));
        assert_eq!(tmp("/tmpdata/v", None), None);
        assert_eq!(tmp("/var/lib/veltrix", Some("/")), None);
    }
}
