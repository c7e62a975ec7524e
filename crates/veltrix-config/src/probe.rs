//! What some rules need to know about the machine: the file system under the
//! data directory and the amount of memory. Behind a trait, so tests can say
//! "this is tmpfs" without mounting one.

use std::path::{Component, Path, PathBuf};

/// Questions about the machine the broker would run on.
pub trait Probe {
    /// The type of the file system holding `path` (`ext4`, `tmpfs`, ...), even
    /// if `path` does not exist yet; `None` when it cannot be told.
    fn filesystem_type(&self, path: &Path) -> Option<String>;
    /// Physical memory, in bytes; `None` when it cannot be told.
    fn memory_bytes_total(&self) -> Option<u64>;
    /// The nearest directory above `path` (not `path` itself) that is a
    /// broker's data directory: it holds the data directory lock file and a
    /// `logs` directory.
    fn enclosing_data_dir(&self, path: &Path) -> Option<PathBuf>;
    /// An environment variable of the machine (`HOME`, `TMPDIR`), to show
    /// what a placeholder the file did not expand would have stood for.
    fn variable(&self, name: &str) -> Option<String>;
    /// A file's bytes (TLS certificates and keys the listeners will load).
    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    /// The time now, for certificates' expiry.
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

/// The real machine, read from `/proc/self/mounts` and `/proc/meminfo`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn filesystem_type(&self, path: &Path) -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let absolute = absolute(path)?;
        mount_type(&mounts, &absolute)
    }

    fn memory_bytes_total(&self) -> Option<u64> {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        mem_total(&meminfo)
    }

    fn enclosing_data_dir(&self, path: &Path) -> Option<PathBuf> {
        let absolute = absolute(path)?;
        absolute
            .ancestors()
            .skip(1)
            .find(|dir| is_data_dir(dir))
            .map(Path::to_path_buf)
    }

    fn variable(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Whether `dir` looks like a broker's data directory.
pub(crate) fn is_data_dir(dir: &Path) -> bool {
    dir.join(veltrix_core::DIR_LOCK_FILE).is_file() && dir.join(veltrix_core::LOGS_DIR).is_dir()
}

/// A probe with fixed answers, for tests and for checking a file meant for
/// another machine.
#[derive(Debug, Clone, Default)]
pub struct FixedProbe {
    /// The file system type of every path.
    pub filesystem_type: Option<String>,
    pub memory_bytes_total: Option<u64>,
    /// The data directory every path is inside of.
    pub enclosing_data_dir: Option<PathBuf>,
    /// The machine's environment variables.
    pub variables: Vec<(String, String)>,
    /// Files and their bytes; any other is not found.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// The time now; the real time when `None`.
    pub now: Option<std::time::SystemTime>,
}

impl Probe for FixedProbe {
    fn filesystem_type(&self, _path: &Path) -> Option<String> {
        self.filesystem_type.clone()
    }

    fn memory_bytes_total(&self) -> Option<u64> {
        self.memory_bytes_total
    }

    fn enclosing_data_dir(&self, _path: &Path) -> Option<PathBuf> {
        self.enclosing_data_dir.clone()
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.variables.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn read_file(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn now(&self) -> std::time::SystemTime {
        self.now.unwrap_or_else(std::time::SystemTime::now)
    }
}

/// `path` made absolute and cleaned of `.` and `..`, through the deepest
/// ancestor that exists (so symbolic links there are followed).
fn absolute(path: &Path) -> Option<PathBuf> {
    let joined = std::env::current_dir().ok()?.join(path);
    let mut clean = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    }
    let mut out = existing.canonicalize().ok()?;
    out.extend(rest.iter().rev());
    Some(out)
}

/// The type of the mount with the longest mount point that is a prefix of
/// `path`, from the text of `/proc/self/mounts`.
fn mount_type(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = unescape(fields.next()?);
            let fstype = fields.next()?;
            path.starts_with(&point).then(|| (point.len(), fstype.to_owned()))
        })
        // Later mounts over the same point hide earlier ones: keep the last.
        .fold(None, |best: Option<(usize, String)>, m| match best {
            Some(b) if b.0 > m.0 => Some(b),
            _ => Some(m),
        })
        .map(|(_, t)| t)
}

/// Mount points escape space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
/dev/sda1 / ext4 rw,relatime 0 0
tmpfs /tmp tmpfs rw,nosuid 0 0
/dev/sdb1 /tmp/disk\\040backed xfs rw 0 0
tmpfs /var tmpfs rw 0 0
/dev/sdc1 /var ext4 rw 0 0
";

    #[test]
    fn the_longest_matching_mount_point_wins() {
        assert_eq!(mount_type(MOUNTS, Path::new("/tmp/veltrix")).as_deref(), Some("tmpfs"));
        assert_eq!(
            mount_type(MOUNTS, Path::new("/tmp/disk backed/x")).as_deref(),
            Some("xfs")
        );
        assert_eq!(mount_type(MOUNTS, Path::new("/srv/data")).as_deref(), Some("ext4"));
        // `/tmpfoo` is not under `/tmp`: components, not string prefixes.
        assert_eq!(mount_type(MOUNTS, Path::new("/tmpfoo")).as_deref(), Some("ext4"));
    }

    #[test]
    fn a_later_mount_over_the_same_point_hides_the_earlier_one() {
        assert_eq!(mount_type(MOUNTS, Path::new("/var/lib")).as_deref(), Some("ext4"));
    }

    #[test]
    fn memory_is_read_in_kib() {
        assert_eq!(
            mem_total("MemTotal:       16318464 kB\nMemFree: 1 kB\n"),
            Some(16_318_464 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn paths_that_do_not_exist_yet_are_resolved_through_their_ancestors() {
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let p = absolute(&dir.join("veltrix-not-there/a/../b")).unwrap();
        assert_eq!(p, dir.join("veltrix-not-there/b"));
    }
}
