//! The process's file limit, at start-up: raised from the soft limit to the hard
//! one, and checked against what the broker may hold open at once.
//!
//! The broker's descriptors are bounded by configuration, not by its partition
//! count: the two handle caches of the log (`open_files_max`,
//! `active_files_max`), one per connection (`connections_max`), and a reserve
//! for everything else, which bounds the runtime's blocking pool to stay finite.
//! The caches are only caches, so when the limit cannot hold them they are
//! shrunk, with a warning (a smaller cache costs reopens, not correctness).
//! Connections are a promise to clients, so they are never shrunk: when even
//! the smallest caches do not fit beside them, the broker says which numbers
//! to change and runs with the smallest caches. Running out of descriptors
//! then degrades service (accepts back off, a reopen fails one request)
//! without poisoning a partition.

use veltrix_config::VeltrixConfig;

/// Descriptors kept aside for what neither cache nor connection holds: the
/// listeners, the runtime (epoll, eventfds), stdio, and files opened for a
/// moment (catalogue, checkpoints, producer snapshots, directory fsyncs).
pub const FILES_FIXED: u64 = 48;
/// Files one thread may hold outside the caches at once: a handle its cache
/// evicted while a write, fsync or read through it was in progress, or a
/// segment and its index during recovery.
pub const FILES_PER_THREAD_MAX: u64 = 2;
/// Threads of the runtime's blocking pool, where partitions' fsyncs, large
/// appends and housekeeping run. Bounded because each may hold files outside
/// the caches (tokio's default is 512).
pub const BLOCKING_THREADS_MAX: usize = 64;

/// Descriptors kept aside beside the caches and connections, with
/// `worker_threads` async worker threads.
pub fn files_reserve(worker_threads: usize) -> u64 {
    FILES_FIXED + FILES_PER_THREAD_MAX * (BLOCKING_THREADS_MAX + worker_threads) as u64
}

/// Smallest size a handle cache is shrunk to.
pub const CACHE_FILES_MIN: usize = 16;

/// The soft and hard limits on open files before and after start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft_before: Option<u64>,
    /// The soft limit in force; `None` is unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft limit on open files to the hard limit and logs both.
pub fn raise_limit() -> FileLimit {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let mut soft = before.current;
    if before.current != before.maximum {
        let raised = rustix::process::Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = before.maximum,
            Err(e) => tracing::warn!(error = %e, "could not raise the soft limit on open files to the hard limit"),
        }
    }
    let limit = FileLimit {
        soft_before: before.current,
        soft,
        hard: before.maximum,
    };
    let show = |v: Option<u64>| v.map_or("unlimited".to_owned(), |v| v.to_string());
    tracing::info!(
        soft_before = %show(limit.soft_before),
        soft = %show(limit.soft),
        hard = %show(limit.hard),
        "open files limit"
    );
    limit
}

/// Fits the handle caches of `config` into `soft` open files beside its
/// connections and `reserve` (see [`files_reserve`]), shrinking them if
/// needed; a warning (with the numbers and the fix) and the smallest caches if
/// even those do not fit.
pub fn fit_caches(config: &mut VeltrixConfig, soft: Option<u64>, reserve: u64) {
    let Some(soft) = soft else { return };
    let b = &mut config.broker;
    let connections = config.limits.connections_max as u64;
    let caches = (b.open_files_max + b.active_files_max) as u64;
    if caches + connections + reserve <= soft {
        return;
    }
    let room = soft.saturating_sub(connections + reserve);
    if room < 2 * CACHE_FILES_MIN as u64 {
        // Not a refusal: the broker works, for fewer connections than
        // configured. An accept that finds no descriptor left is backed off
        // and counted, a segment that cannot be reopened fails that request
        // without poisoning, so running short degrades instead of failing.
        tracing::warn!(
            soft,
            connections_max = connections,
            reserve,
            "the open files limit cannot hold connections_max beside the broker's own files; connections past about {} will find no descriptor left; raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE=) to at least {} or lower connections_max",
            soft.saturating_sub(reserve + 2 * CACHE_FILES_MIN as u64),
            connections + reserve + caches,
        );
        b.open_files_max = CACHE_FILES_MIN;
        b.active_files_max = CACHE_FILES_MIN;
        return;
    }
    // Shared in proportion to the configured sizes.
    let active = ((room * b.active_files_max as u64 / caches) as usize).max(CACHE_FILES_MIN);
    let sealed = (room as usize - active).max(CACHE_FILES_MIN);
    tracing::warn!(
        soft,
        connections_max = connections,
        reserve,
        open_files_max = b.open_files_max,
        active_files_max = b.active_files_max,
        shrunk_open_files_max = sealed,
        shrunk_active_files_max = active,
        "the open files limit cannot hold the configured handle caches beside the connections; shrinking the caches (partitions reopen files more often); raise the hard limit to keep them"
    );
    b.open_files_max = sealed;
    b.active_files_max = active;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(open: usize, active: usize, connections: usize) -> VeltrixConfig {
        let mut c = VeltrixConfig::default();
        c.broker.open_files_max = open;
        c.broker.active_files_max = active;
        c.limits.connections_max = connections;
        c
    }

    #[test]
    fn caches_that_fit_the_limit_are_kept() {
        let mut c = config(1024, 512, 1000);
        fit_caches(&mut c, Some(1024 + 512 + 1000 + 100), 100);
        assert_eq!((c.broker.open_files_max, c.broker.active_files_max), (1024, 512));
        fit_caches(&mut c, None, 100);
        assert_eq!((c.broker.open_files_max, c.broker.active_files_max), (1024, 512));
    }

    #[test]
    fn caches_too_large_for_the_limit_shrink_to_fit_beside_the_connections() {
        let mut c = config(1024, 512, 64);
        fit_caches(&mut c, Some(256), 100);
        let (open, active) = (c.broker.open_files_max, c.broker.active_files_max);
        assert!(open >= CACHE_FILES_MIN && active >= CACHE_FILES_MIN);
        assert!(open + active + 64 + 100 <= 256, "{open} + {active}");
        assert_eq!(c.limits.connections_max, 64, "connections are never shrunk");
    }

    #[test]
    fn connections_that_leave_no_room_for_the_caches_keep_the_smallest_caches() {
        let mut c = config(1024, 512, 1000);
        fit_caches(&mut c, Some(1024), 100);
        let (open, active) = (c.broker.open_files_max, c.broker.active_files_max);
        assert_eq!((open, active), (CACHE_FILES_MIN, CACHE_FILES_MIN));
        assert_eq!(c.limits.connections_max, 1000, "connections are never shrunk");
    }
}
