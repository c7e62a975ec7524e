//! Routes: records of a source topic sorted into target topics by rules,
//! inside the broker, each source record in its targets exactly once.
//!
//! A route has an ordered list of rules, each a CEL expression (`when`,
//! see [`expr`]) and the topics a record it holds for goes to; the first
//! rule that holds wins; a record no rule holds for goes to the route's
//! default targets, or nowhere (counted as unmatched). A record on which an
//! expression fails (a missing field, a result that is not a bool) goes to
//! the route's dead-letter topic with the reason in a header; the route
//! goes on.
//!
//! Each source partition is read in order by a reader of the route with its
//! own idempotent producer id. A reader works in steps: it picks the next
//! run of source records, `[from, to]`, stores that intention (the range
//! and the sequences its producer has reached in each target partition)
//! durably, then appends one batch per target partition, stamped with the
//! producer id and the next sequence there, and waits for the fsync. The
//! next step's intention says the previous one is done. After a crash the
//! last intention is taken again: the same records, the same batches, the
//! same sequences, which the target partitions' producer state recognises
//! as batches they have. So each source record is in its targets exactly
//! once; per-key order follows the source (a target partition is chosen by
//! the record's key, or by its source partition when it has none).
//!
//! The progress is behind [`RouteStore`] (a change log on local disk here).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use crate::changelog::ChangeLog;
use crate::error::Result;

pub mod expr;
mod run;
#[cfg(test)]
mod tests;

pub use expr::{Expr, ExprError};
pub use run::{RoutePartitionView, RouteView};

/// The longest route name, in bytes (of `[a-zA-Z0-9._-]`).
pub const ROUTE_NAME_BYTES_MAX: usize = 100;
/// Routes a broker runs at most.
pub const ROUTES_MAX: usize = 100;
/// Rules per route at most.
pub const RULES_MAX: usize = 100;
/// Targets of one rule (and default targets) at most.
pub const TARGETS_MAX: usize = 16;
/// Headers a rule adds at most.
pub const HEADERS_MAX: usize = 16;
/// Source records one step takes at most.
pub const STEP_RECORDS_MAX: usize = 8_000;
/// Source bytes one step reads at most (a target partition's batch, at most
/// its `batch_bytes_max`, may end a step sooner).
pub const STEP_BYTES_MAX: usize = 4 << 20;
/// The header a dead letter's reason is in.
pub const ERROR_HEADER: &str = "veltrix.route.error";
/// The header naming a dead letter's route.
pub const ROUTE_HEADER: &str = "veltrix.route.name";
/// The header a dead letter's source (`topic/partition/offset`) is in.
pub const SOURCE_HEADER: &str = "veltrix.route.source";

/// One rule: where the records it holds for go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// A CEL expression giving a bool.
    pub when: String,
    /// Target topics (at least one).
    pub to: Vec<String>,
    /// Headers added to each record it sends.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// A route as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub name: String,
    pub source: String,
    pub rules: Vec<RuleSpec>,
    /// Where records no rule holds for go; empty: nowhere.
    #[serde(default)]
    pub default: Vec<String>,
    /// Where records an expression fails on go.
    pub dead_letter: String,
}

impl RouteSpec {
    /// Every topic it writes to, the dead-letter topic included, once each.
    pub fn targets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .rules
            .iter()
            .flat_map(|r| r.to.iter())
            .chain(self.default.iter())
            .map(String::as_str)
            .chain([self.dead_letter.as_str()])
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// A route compiled: its spec and its rules' expressions.
#[derive(Debug)]
pub struct CompiledRoute {
    pub spec: RouteSpec,
    pub rules: Vec<Expr>,
    pub reads_value: bool,
}

/// What is wrong with a route, said before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub route: String,
    /// The rule (from 0), when it is one rule's.
    pub rule: Option<usize>,
    pub message: String,
    /// Errors inside the rule's expression.
    pub expr: Vec<ExprError>,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "route `{}`", self.route)?;
        if let Some(r) = self.rule {
            write!(f, ", rule {}", r + 1)?;
        }
        write!(f, ": {}", self.message)?;
        for e in &self.expr {
            write!(f, "; at {e}")?;
        }
        Ok(())
    }
}

impl CompiledRoute {
    /// Compiles `spec`'s expressions and checks its limits (not its topics:
    /// see [`check_routes`]).
    pub fn compile(spec: RouteSpec) -> std::result::Result<CompiledRoute, RouteError> {
        let err = |rule: Option<usize>, message: String| RouteError {
            route: spec.name.clone(),
            rule,
            message,
            expr: Vec::new(),
        };
        let name_ok = |n: &str| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && n.len() <= ROUTE_NAME_BYTES_MAX
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if !name_ok(&spec.name) {
            return Err(err(
                None,
                format!(
                    "a route's name is 1 to {ROUTE_NAME_BYTES_MAX} characters of a-z, A-Z, 0-9, `.`, `_`, `-` (not `.` or `..`)"
                ),
            ));
        }
        if spec.rules.is_empty() && spec.default.is_empty() {
            return Err(err(
                None,
                "no rules and no default target: it would route nothing".into(),
            ));
        }
        if spec.rules.len() > RULES_MAX {
            return Err(err(None, format!("{} rules; at most {RULES_MAX}", spec.rules.len())));
        }
        if spec.default.len() > TARGETS_MAX {
            return Err(err(
                None,
                format!("{} default targets; at most {TARGETS_MAX}", spec.default.len()),
            ));
        }
        if let Some(t) = spec
            .default
            .iter()
            .enumerate()
            .find_map(|(i, t)| spec.default[..i].contains(t).then_some(t))
        {
            return Err(err(
                None,
                format!("`{t}` is named twice in `default`: each record would be written twice"),
            ));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, r) in spec.rules.iter().enumerate() {
            if r.to.is_empty() || r.to.len() > TARGETS_MAX {
                return Err(err(Some(i), format!("{} targets; from 1 to {TARGETS_MAX}", r.to.len())));
            }
            if let Some(t) =
                r.to.iter()
                    .enumerate()
                    .find_map(|(i, t)| r.to[..i].contains(t).then_some(t))
            {
                return Err(err(
                    Some(i),
                    format!("`{t}` is named twice in `to`: each record would be written twice"),
                ));
            }
            if r.headers.len() > HEADERS_MAX {
                return Err(err(
                    Some(i),
                    format!("{} headers; at most {HEADERS_MAX}", r.headers.len()),
                ));
            }
            match Expr::compile(&r.when) {
                Ok(e) => rules.push(e),
                Err(expr) => {
                    return Err(RouteError {
                        expr,
                        ..err(Some(i), format!("`when` does not compile: {}", r.when))
                    });
                }
            }
        }
        let reads_value = rules.iter().any(Expr::reads_value);
        Ok(CompiledRoute {
            spec,
            rules,
            reads_value,
        })
    }
}

/// Checks a set of routes against the topics they name: `exists` says
/// whether a topic exists (or is declared). Unknown topics, a route reading
/// a topic it writes to, cycles between routes, and names used twice are
/// errors.
pub fn check_routes(specs: &[RouteSpec], exists: &dyn Fn(&str) -> bool) -> Vec<RouteError> {
    let mut errors = Vec::new();
    let err = |route: &str, message: String| RouteError {
        route: route.to_owned(),
        rule: None,
        message,
        expr: Vec::new(),
    };
    if specs.len() > ROUTES_MAX {
        errors.push(err("*", format!("{} routes; at most {ROUTES_MAX}", specs.len())));
    }
    let mut names = std::collections::BTreeSet::new();
    for s in specs {
        if !names.insert(s.name.as_str()) {
            errors.push(err(&s.name, "declared twice".into()));
        }
        if !exists(&s.source) {
            errors.push(err(&s.name, format!("source topic `{}` does not exist", s.source)));
        }
        for t in s.targets() {
            if !exists(t) {
                errors.push(err(&s.name, format!("target topic `{t}` does not exist")));
            }
        }
    }
    if let Some(cycle) = find_cycle(specs) {
        errors.push(err(&cycle[0], format!("routes make a cycle: {}", cycle.join(" -> "))));
    }
    errors
}

/// A cycle of topics through routes (source → target), as topic names, if
/// there is one.
pub fn find_cycle(specs: &[RouteSpec]) -> Option<Vec<String>> {
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in specs {
        edges.entry(s.source.as_str()).or_default().extend(s.targets());
    }
    // Depth-first, colouring topics: 1 on the path, 2 done.
    let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in edges.keys() {
        if colour.contains_key(start) {
            continue;
        }
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        colour.insert(start, 1);
        while let Some((node, i)) = path.last_mut() {
            let next = edges.get(node).and_then(|e| e.get(*i)).copied();
            *i += 1;
            match next {
                None => {
                    colour.insert(node, 2);
                    path.pop();
                }
                Some(n) => match colour.get(n) {
                    Some(1) => {
                        let at = path.iter().position(|(p, _)| *p == n).unwrap_or(0);
                        let mut cycle: Vec<String> = path[at..].iter().map(|(p, _)| (*p).to_owned()).collect();
                        cycle.push(n.to_owned());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        colour.insert(n, 1);
                        path.push((n, 0));
                    }
                },
            }
        }
    }
    None
}

/// One source partition's reader: where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderState {
    pub route: String,
    /// The source topic's id (hex): a topic deleted and made again is
    /// another topic, read from its start.
    pub topic_id: String,
    pub partition: i32,
    pub producer_id: i64,
    /// The step taken last (or being taken): source offsets `from..=to`;
    /// `to < from` before the first.
    pub from: i64,
    pub to: i64,
    /// The producer's next sequence per target partition before that step.
    pub sequences: Vec<(String, i32, i32)>,
    /// What the step being taken writes, per target partition: topic,
    /// partition, records, and a checksum of their source offsets. A step
    /// taken again must make exactly these batches for the targets to
    /// recognise them; empty once the step is done.
    #[serde(default)]
    pub placed: Vec<(String, i32, u32, u32)>,
}

/// One durable change of route state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteChange {
    /// A reader's next step, about to be taken (whole).
    Step(ReaderState),
    /// A route no longer declared: its readers forgotten.
    Forget { route: String },
}

/// Durable route progress behind a narrow interface.
pub trait RouteStore: Send + Sync + std::fmt::Debug {
    /// Every change to replay, oldest first; called once, at open.
    fn replay(&self) -> Result<Vec<RouteChange>>;
    /// Stores `change` durably.
    fn write(&self, change: &RouteChange, now_ms: i64) -> Result<()>;
    fn compaction_due(&self) -> bool;
    /// Replaces everything stored by `state`, durably.
    fn replace_with(&self, state: Vec<RouteChange>, now_ms: i64) -> Result<()>;
    fn close(&self);
}

/// The route store on local disk: a [`ChangeLog`] under `routes/`.
#[derive(Debug)]
pub struct LogRouteStore {
    log: ChangeLog,
    replayed: Mutex<Option<Vec<RouteChange>>>,
}

impl LogRouteStore {
    pub fn open(env: Arc<Env>, dir: &Path) -> Result<LogRouteStore> {
        let (log, changes) = ChangeLog::open_snapshotted(env, dir, "routes")?;
        Ok(LogRouteStore {
            log,
            replayed: Mutex::new(Some(changes)),
        })
    }
}

impl RouteStore for LogRouteStore {
    fn replay(&self) -> Result<Vec<RouteChange>> {
        Ok(lock(&self.replayed).take().unwrap_or_default())
    }

    fn write(&self, change: &RouteChange, now_ms: i64) -> Result<()> {
        let (_, next) = self.log.append_change(change, now_ms)?;
        self.log.wait_durable(next)
    }

    fn compaction_due(&self) -> bool {
        self.log.compaction_due()
    }

    fn replace_with(&self, state: Vec<RouteChange>, now_ms: i64) -> Result<()> {
        self.log.replace_with_snapshot(state, |_| 512, now_ms)
    }

    fn close(&self) {
        self.log.close();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters of one route since the broker started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteCounts {
    pub records_in: u64,
    pub unmatched: u64,
    pub errors: u64,
    /// Records written, per target topic (dead letters included).
    pub out: BTreeMap<String, u64>,
}

/// The routes of a broker: what runs, where each reader stands, the store.
#[derive(Debug)]
pub struct Router {
    store: Box<dyn RouteStore>,
    /// Readers by (route, source partition).
    pub(crate) readers: Mutex<BTreeMap<(String, i32), ReaderState>>,
    /// The routes applied, compiled.
    pub(crate) routes: Mutex<Vec<Arc<CompiledRoute>>>,
    pub(crate) counts: Mutex<BTreeMap<String, RouteCounts>>,
    /// Readers whose last step failed: when to try again, and how their
    /// failures are logged.
    pub(crate) failing: Mutex<BTreeMap<(String, i32), run::Failing>>,
    /// Serialises readers' steps: one runner at a time.
    pub(crate) running: Mutex<()>,
    /// Tests: target appends left before a step fails as a crash would
    /// interrupt it.
    #[cfg(test)]
    pub(crate) appends_left: Mutex<Option<usize>>,
}

impl Router {
    pub fn open(store: Box<dyn RouteStore>) -> Result<Router> {
        let mut readers = BTreeMap::new();
        for change in store.replay()? {
            apply(&mut readers, change);
        }
        Ok(Router {
            store,
            readers: Mutex::new(readers),
            routes: Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            failing: Mutex::new(BTreeMap::new()),
            running: Mutex::new(()),
            #[cfg(test)]
            appends_left: Mutex::new(None),
        })
    }

    /// The routes applied.
    pub fn specs(&self) -> Vec<RouteSpec> {
        lock(&self.routes).iter().map(|r| r.spec.clone()).collect()
    }

    pub(crate) fn write(&self, change: RouteChange, now_ms: i64) -> Result<()> {
        self.store.write(&change, now_ms)?;
        apply(&mut lock(&self.readers), change);
        Ok(())
    }

    pub(crate) fn compact_if_due(&self, now_ms: i64) -> Result<()> {
        if !self.store.compaction_due() {
            return Ok(());
        }
        let snapshot: Vec<RouteChange> = lock(&self.readers).values().cloned().map(RouteChange::Step).collect();
        self.store.replace_with(snapshot, now_ms)
    }

    /// Stores where every reader stands (its last step done), so that a
    /// clean restart takes no step again; then closes the store.
    pub fn close(&self, now_ms: i64) {
        let _running = lock(&self.running);
        let snapshot: Vec<RouteChange> = lock(&self.readers).values().cloned().map(RouteChange::Step).collect();
        if let Err(e) = self.store.replace_with(snapshot, now_ms) {
            tracing::error!(error = %e, "storing the routes' progress at close; the last steps are taken again at start");
        }
        self.store.close();
    }
}

fn apply(readers: &mut BTreeMap<(String, i32), ReaderState>, change: RouteChange) {
    match change {
        RouteChange::Step(s) => {
            readers.insert((s.route.clone(), s.partition), s);
        }
        RouteChange::Forget { route } => readers.retain(|(r, _), _| *r != route),
    }
}
