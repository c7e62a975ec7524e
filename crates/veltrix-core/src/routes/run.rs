//! Routes applied and run: the broker's side.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use veltrix_log::batch;

use super::expr::{RecordVars, root_context};
use super::{
    CompiledRoute, ERROR_HEADER, ROUTE_HEADER, ReaderState, RouteChange, RouteCounts, RouteSpec, SOURCE_HEADER,
    STEP_BYTES_MAX, STEP_RECORDS_MAX, check_routes, lock,
};
use crate::broker::Broker;
use crate::error::{CoreError, Result};
use crate::records::{OwnedRecord, ProducerStamp, encode_batch_as, records_of};
use crate::share::topic_hex;
use crate::topic::{Partition, Topic};

/// Steps one call of [`Broker::run_routes`] takes at most, over all readers
/// (then it returns, so that the host can stop or tick in between).
const STEPS_PER_RUN_MAX: usize = 64;
/// Target partitions whose fsyncs one step waits for at once.
const COMMITS_AT_ONCE_MAX: usize = 8;
/// The longest reason a dead letter carries, in bytes.
const REASON_BYTES_MAX: usize = 1_024;
/// How long a reader whose step failed waits before it tries again.
const RETRY_MS: u64 = 1_000;
/// A failing reader's failures are logged at most this often.
const FAILURE_LOG_MS: u64 = 60_000;

/// A reader whose last step failed.
#[derive(Debug)]
pub(crate) struct Failing {
    retry_at_ms: u64,
    logged_at_ms: Option<u64>,
    left_out: u64,
}

/// One source partition of a route, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutePartitionView {
    pub partition: i32,
    /// The next source offset to sort.
    pub next: i64,
    /// The source's high watermark (durable records end there).
    pub end: i64,
    pub lag_records: i64,
    /// Age of the record at `next`, when behind.
    pub lag_seconds: f64,
}

/// A route, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteView {
    pub spec: RouteSpec,
    pub partitions: Vec<RoutePartitionView>,
    pub lag_records: i64,
    pub lag_seconds: f64,
    pub counts: RouteCounts,
}

/// A step planned: the source offsets it covers and the batches it makes.
struct Plan {
    to: i64,
    /// Per target partition, in the order of their first record.
    batches: Vec<(Arc<Topic>, i32, Vec<OwnedRecord>)>,
    /// Per batch, a checksum of its records' source offsets.
    sums: Vec<u32>,
    records_in: u64,
    errors: u64,
    unmatched: u64,
}

/// Where a record goes: its targets and the headers added, or the reason it
/// is a dead letter.
enum Verdict<'a> {
    To(&'a [String], &'a [(String, String)]),
    Nowhere,
    Failed(String),
}

fn verdict<'a>(route: &'a CompiledRoute, root: &cel::Context<'_, '_>, vars: RecordVars) -> Verdict<'a> {
    let scope = vars.scope(root);
    for (rule, expr) in route.spec.rules.iter().zip(&route.rules) {
        match expr.matches(&scope) {
            Ok(true) => return Verdict::To(&rule.to, &rule.headers),
            Ok(false) => {}
            Err(e) => return Verdict::Failed(e),
        }
    }
    if route.spec.default.is_empty() {
        Verdict::Nowhere
    } else {
        Verdict::To(&route.spec.default, &[])
    }
}

/// The target partition of a record: by its key, else by its source
/// partition, so that per-key order follows the source.
fn target_partition(record: &OwnedRecord, source_partition: i32, partitions: usize) -> i32 {
    let n = partitions.max(1) as u64;
    let slot = match &record.key {
        Some(k) => u64::from(crc32c::crc32c(k)) % n,
        None => u64::try_from(source_partition).unwrap_or(0) % n,
    };
    i32::try_from(slot).unwrap_or(0)
}

impl Broker {
    /// Makes the routes that run exactly `specs`: each compiled and its
    /// topics checked first (nothing changes on an error); routes no longer
    /// among them are stopped and their progress forgotten.
    pub fn apply_routes(&self, specs: Vec<RouteSpec>) -> Result<()> {
        let errors = check_routes(&specs, &|t| self.topic(t).is_some());
        if let Some(e) = errors.first() {
            return Err(CoreError::InvalidConfig(e.to_string()));
        }
        let mut compiled = Vec::with_capacity(specs.len());
        for spec in specs {
            compiled.push(Arc::new(
                CompiledRoute::compile(spec).map_err(|e| CoreError::InvalidConfig(e.to_string()))?,
            ));
        }
        let _running = lock(&self.router().running);
        let now = self.env().clock.now_ms();
        let mut known: Vec<String> = lock(&self.router().readers).keys().map(|(r, _)| r.clone()).collect();
        known.dedup();
        for gone in known {
            if !compiled.iter().any(|c| c.spec.name == gone) {
                tracing::info!(route = %gone, "route no longer declared: its progress is forgotten");
                lock(&self.router().failing).retain(|(r, _), _| *r != gone);
                lock(&self.router().counts).remove(&gone);
                self.router().write(RouteChange::Forget { route: gone }, now)?;
            }
        }
        for c in &compiled {
            tracing::info!(route = %c.spec.name, source = %c.spec.source, rules = c.rules.len(), "route applied");
        }
        *lock(&self.router().routes) = compiled;
        Ok(())
    }

    /// Every route, as it stands.
    pub fn routes(&self) -> Vec<RouteView> {
        let routes = lock(&self.router().routes).clone();
        routes.iter().map(|r| self.route_view(r)).collect()
    }

    pub fn route(&self, name: &str) -> Option<RouteView> {
        let route = lock(&self.router().routes)
            .iter()
            .find(|r| r.spec.name == name)
            .cloned()?;
        Some(self.route_view(&route))
    }

    fn route_view(&self, route: &CompiledRoute) -> RouteView {
        let now = self.env().clock.now_ms();
        let mut partitions = Vec::new();
        if let Some(source) = self.topic(&route.spec.source) {
            // Positions copied out first: no lock is held while the logs are read.
            let positions: Vec<Option<i64>> = {
                let readers = lock(&self.router().readers);
                source
                    .partitions
                    .iter()
                    .map(|p| {
                        readers
                            .get(&(route.spec.name.clone(), p.index))
                            .filter(|r| r.topic_id == topic_hex(&source.id))
                            .map(|r| r.from)
                    })
                    .collect()
            };
            for (p, position) in source.partitions.iter().zip(positions) {
                let next = position.map_or(p.log().log_start(), |from| from.max(p.log().log_start()));
                let end = p.log().high_watermark();
                let lag_records = (end - next).max(0);
                let lag_seconds = if lag_records > 0 {
                    oldest_timestamp(p, next).map_or(0.0, |ts| ((now - ts).max(0) as f64) / 1000.0)
                } else {
                    0.0
                };
                partitions.push(RoutePartitionView {
                    partition: p.index,
                    next,
                    end,
                    lag_records,
                    lag_seconds,
                });
            }
        }
        let counts = lock(&self.router().counts)
            .get(&route.spec.name)
            .cloned()
            .unwrap_or_default();
        RouteView {
            spec: route.spec.clone(),
            lag_records: partitions.iter().map(|p| p.lag_records).sum(),
            lag_seconds: partitions.iter().map(|p| p.lag_seconds).fold(0.0, f64::max),
            partitions,
            counts,
        }
    }

    /// Takes the steps the routes' readers have work for, at most
    /// [`STEPS_PER_RUN_MAX`]; whether work is left. Called by the host in a
    /// loop on a thread that may block (appends and fsyncs). A reader whose
    /// step fails (a target deleted, a partition poisoned) logs it and is
    /// tried again on the next call: it falls behind, it drops nothing.
    pub fn run_routes(&self) -> bool {
        let Ok(_running) = self.router().running.try_lock() else {
            return false;
        };
        let routes = lock(&self.router().routes).clone();
        if routes.is_empty() {
            return false;
        }
        let root = root_context();
        // Every reader with work takes one step per pass, so that a busy
        // partition cannot keep the others waiting.
        let mut readers: Vec<(&Arc<CompiledRoute>, Arc<Topic>, usize)> = Vec::new();
        for route in &routes {
            if let Some(source) = self.topic(&route.spec.source) {
                readers.extend((0..source.partitions.len()).map(|i| (route, Arc::clone(&source), i)));
            }
        }
        let mut steps = 0usize;
        let mut active = vec![true; readers.len()];
        while steps < STEPS_PER_RUN_MAX && active.contains(&true) {
            for (i, (route, source, index)) in readers.iter().enumerate() {
                if !active[i] || steps >= STEPS_PER_RUN_MAX {
                    continue;
                }
                let p = &source.partitions[*index];
                let key = (route.spec.name.clone(), p.index);
                let now = self.env().clock.monotonic_ms();
                if lock(&self.router().failing)
                    .get(&key)
                    .is_some_and(|f| now < f.retry_at_ms)
                {
                    active[i] = false;
                    continue;
                }
                match self.route_step(route, &root, source, p) {
                    Ok(true) => steps += 1,
                    Ok(false) => active[i] = false,
                    Err(e) => {
                        self.route_step_failed(&key, &e, now);
                        active[i] = false;
                    }
                }
            }
        }
        let more = active.contains(&true);
        let now = self.env().clock.now_ms();
        if let Err(e) = self.router().compact_if_due(now) {
            tracing::error!(error = %e, "compacting the route store");
        }
        more
    }

    /// A reader's step failed: it is tried again after [`RETRY_MS`], and
    /// the failure logged at most once per [`FAILURE_LOG_MS`] per reader
    /// (the lines left out counted in the next one). Cleared by a step that
    /// succeeds.
    fn route_step_failed(&self, key: &(String, i32), e: &CoreError, now: u64) {
        let mut failing = lock(&self.router().failing);
        let f = failing.entry(key.clone()).or_insert(Failing {
            retry_at_ms: 0,
            logged_at_ms: None,
            left_out: 0,
        });
        f.retry_at_ms = now + RETRY_MS;
        if f.logged_at_ms.is_some_and(|at| now < at + FAILURE_LOG_MS) {
            f.left_out += 1;
            return;
        }
        tracing::warn!(
            route = %key.0, partition = key.1, error = %e, failures_not_logged = f.left_out,
            "route step failed; the route falls behind and tries again"
        );
        f.logged_at_ms = Some(now);
        f.left_out = 0;
    }

    /// One step of `route`'s reader of source partition `p`: the step a
    /// crash interrupted, taken again, or the next one. Whether it did
    /// anything.
    fn route_step(
        &self,
        route: &CompiledRoute,
        root: &cel::Context<'_, '_>,
        source: &Topic,
        p: &Partition,
    ) -> Result<bool> {
        let topic_id = topic_hex(&source.id);
        let key = (route.spec.name.clone(), p.index);
        let stored = lock(&self.router().readers).get(&key).cloned();
        let stored_reader = stored.as_ref().is_some_and(|s| s.topic_id == topic_id);
        let mut state = match stored {
            Some(s) if s.topic_id == topic_id => s,
            _ => ReaderState {
                route: route.spec.name.clone(),
                topic_id,
                partition: p.index,
                producer_id: self.init_producer_id()?,
                from: p.log().log_start(),
                to: p.log().log_start() - 1,
                sequences: Vec::new(),
                placed: Vec::new(),
            },
        };
        if !stored_reader {
            // Kept at once, so that a reader whose first plan fails keeps its
            // producer id for the next try.
            lock(&self.router().readers).insert(key.clone(), state.clone());
        }
        let pending = state.to >= state.from;
        let end = p.log().high_watermark();
        let plan = if pending {
            // The step a crash (or an error) interrupted: the same records
            // again, which the targets recognise as batches they have.
            let plan = self.plan_route_step(route, root, p, state.from, Some(state.to))?;
            if plan.placed() != state.placed {
                self.take_step_anew(route, &mut state, &plan)?;
            }
            plan
        } else {
            let from = state.from.max(p.log().log_start());
            if from > state.from && stored_reader {
                let skipped = from - state.from;
                tracing::warn!(
                    route = %route.spec.name, partition = p.index, skipped,
                    "retention removed source records before the route sorted them"
                );
                self.metrics()
                    .routes
                    .skipped
                    .with_label_values(&[route.spec.name.as_str()])
                    .inc_by(u64::try_from(skipped).unwrap_or(0));
            }
            if from >= end {
                return Ok(false);
            }
            state.from = from;
            let plan = self.plan_route_step(route, root, p, from, None)?;
            if plan.to < from {
                return Ok(false);
            }
            state.to = plan.to;
            state.placed = plan.placed();
            self.router()
                .write(RouteChange::Step(state.clone()), self.env().clock.now_ms())?;
            plan
        };
        self.take_route_step(&mut state, &plan)?;
        self.count_route_step(route, &plan);
        // Done: the next step starts after it (kept in memory; the stored
        // intention is taken again after a crash, to the same effect).
        state.from = state.to + 1;
        state.placed.clear();
        if lock(&self.router().failing).remove(&key).is_some() {
            tracing::info!(route = %key.0, partition = key.1, "route steps succeed again");
        }
        lock(&self.router().readers).insert(key, state);
        Ok(true)
    }

    /// A step taken again does not make the batches it made before (the
    /// rules, a target's partitions or batch limit changed across a crash,
    /// or retention removed some of its source records): the targets could
    /// not tell which of its records they have. It is taken under a new
    /// producer id instead, whose batches no target has seen: every record
    /// of the step is written, some perhaps a second time. Logged and
    /// counted; at most one step's records per reader.
    fn take_step_anew(&self, route: &CompiledRoute, state: &mut ReaderState, plan: &Plan) -> Result<()> {
        tracing::error!(
            route = %route.spec.name, partition = state.partition, from = state.from, to = state.to,
            "a step interrupted by a crash cannot be taken again as it was (the route's or its targets' settings changed, \
             or retention removed its records); it is written again under a new producer id, and its records may be in \
             their targets twice"
        );
        self.metrics()
            .routes
            .steps_retaken_anew
            .with_label_values(&[route.spec.name.as_str()])
            .inc();
        state.producer_id = self.init_producer_id()?;
        state.sequences.clear();
        state.placed = plan.placed();
        self.router()
            .write(RouteChange::Step(state.clone()), self.env().clock.now_ms())
    }

    /// Appends a planned step's batches, each stamped with the reader's
    /// producer and the next sequence of its target partition, then waits
    /// until they are all durable (the target partitions' fsyncs at once, a
    /// thread each, at most [`COMMITS_AT_ONCE_MAX`] at a time); advances the
    /// sequences.
    fn take_route_step(&self, state: &mut ReaderState, plan: &Plan) -> Result<()> {
        // The disk watermarks hold for routes as for producers: a target of a
        // tier the disk no longer takes makes the step wait (the route falls
        // behind), it is not written past them.
        for (t, _, _) in &plan.batches {
            let tier = t.config.tier.unwrap_or_default();
            if let Err(level) = self.disk_admits(tier) {
                return Err(CoreError::LimitReached(format!(
                    "the disk is at its {} watermark: topic `{}` ({}) takes no records until space comes back",
                    level.name(),
                    t.name,
                    tier.name()
                )));
            }
        }
        let mut appended: Vec<(&Arc<Partition>, i64)> = Vec::with_capacity(plan.batches.len());
        for (t, tp, records) in &plan.batches {
            let target = t.partition(*tp).ok_or(CoreError::UnknownPartition {
                topic: t.name.clone(),
                partition: *tp,
            })?;
            let stamp = ProducerStamp {
                producer_id: state.producer_id,
                epoch: 0,
                base_sequence: sequence(state, &t.name, *tp),
            };
            #[cfg(test)]
            if let Some(left) = lock(&self.router().appends_left).as_mut() {
                if *left == 0 {
                    return Err(CoreError::Io {
                        op: "append",
                        path: std::path::PathBuf::from(&t.name),
                        source: std::io::Error::other("a crash injected by the test"),
                    });
                }
                *left -= 1;
            }
            let a = target.append_batches(&encode_batch_as(records, Some(stamp)))?;
            appended.push((target, a.next_offset));
        }
        for group in appended.chunks(COMMITS_AT_ONCE_MAX) {
            let outcomes: Vec<Result<()>> = std::thread::scope(|s| {
                let waits: Vec<_> = group
                    .iter()
                    .map(|(target, next)| s.spawn(move || target.commit(*next)))
                    .collect();
                waits
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                    .collect()
            });
            outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        }
        for (t, tp, records) in &plan.batches {
            let n = i32::try_from(records.len()).unwrap_or(i32::MAX);
            match state
                .sequences
                .iter_mut()
                .find(|(name, p, _)| *name == t.name && p == tp)
            {
                Some((_, _, s)) => *s = next_sequence(*s, n),
                None => state.sequences.push((t.name.clone(), *tp, n)),
            }
        }
        Ok(())
    }

    fn count_route_step(&self, route: &CompiledRoute, plan: &Plan) {
        let name = route.spec.name.as_str();
        let m = &self.metrics().routes;
        m.records_in.with_label_values(&[name]).inc_by(plan.records_in);
        m.errors.with_label_values(&[name]).inc_by(plan.errors);
        m.unmatched.with_label_values(&[name]).inc_by(plan.unmatched);
        let mut counts = lock(&self.router().counts);
        let c = counts.entry(name.to_owned()).or_default();
        c.records_in += plan.records_in;
        c.errors += plan.errors;
        c.unmatched += plan.unmatched;
        for (t, _, records) in &plan.batches {
            m.records_out
                .with_label_values(&[name, &t.name])
                .inc_by(records.len() as u64);
            *c.out.entry(t.name.clone()).or_default() += records.len() as u64;
        }
    }

    /// The step from source offset `from`: up to `to` when given (a step
    /// taken again), else as far as the step's limits and the targets'
    /// batch sizes allow, at most to the high watermark. Nothing here
    /// depends on time or on what was written, so a step planned again is
    /// the same step.
    fn plan_route_step(
        &self,
        route: &CompiledRoute,
        root: &cel::Context<'_, '_>,
        p: &Partition,
        from: i64,
        to: Option<i64>,
    ) -> Result<Plan> {
        let end = to.map_or(p.log().high_watermark(), |t| t + 1);
        let mut plan = Plan {
            to: from - 1,
            batches: Vec::new(),
            sums: Vec::new(),
            records_in: 0,
            errors: 0,
            unmatched: 0,
        };
        let mut sizes: Vec<usize> = Vec::new();
        let mut targets: BTreeMap<&str, Arc<Topic>> = BTreeMap::new();
        for t in route.spec.targets() {
            let topic = self.topic(t).ok_or_else(|| CoreError::UnknownTopic(t.to_owned()))?;
            targets.insert(t, topic);
        }
        // Records retention removed since (a step taken again) are not read.
        let mut at = from.max(p.log().log_start());
        let mut read_bytes = 0usize;
        'read: while at < end {
            let read = match p.log().read(at, STEP_BYTES_MAX) {
                Ok(r) => r,
                Err(veltrix_log::LogError::OffsetOutOfRange { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            if read.records.is_empty() {
                break;
            }
            let mut rest = &read.records[..];
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                let one = &rest[..size];
                rest = &rest[size..];
                // At most what the step can still take (a step taken again
                // takes its records whatever their number).
                let step_room = if to.is_some() {
                    usize::MAX
                } else {
                    STEP_RECORDS_MAX.saturating_sub(plan.records_in as usize) + 1
                };
                let room = step_room.min(usize::try_from(end - at).unwrap_or(0));
                let records =
                    records_of(one, at, room).map_err(|source| CoreError::InvalidBatch { batch: 0, source })?;
                for (offset, record) in records {
                    if offset < at {
                        continue;
                    }
                    if offset >= end {
                        break 'read;
                    }
                    let full = plan.records_in as usize >= STEP_RECORDS_MAX || read_bytes >= STEP_BYTES_MAX;
                    if to.is_none() && full {
                        break 'read;
                    }
                    let bytes = record.encoded_bytes_max();
                    let (placed, counted) = place(route, root, &targets, &record, p.index, offset);
                    // The record fits every batch it joins, or the step ends
                    // before it (a step taken again goes to its end anyway).
                    if to.is_none() && plan.records_in > 0 && !fits(&plan, &sizes, &placed, p.index) {
                        break 'read;
                    }
                    match counted {
                        Placed::Routed => {}
                        Placed::Unmatched => plan.unmatched += 1,
                        Placed::Failed => plan.errors += 1,
                    }
                    add(&mut plan, &mut sizes, placed, p.index, offset);
                    plan.records_in += 1;
                    read_bytes += bytes;
                    plan.to = offset;
                }
                // A batch gone through whole: offsets without records in it
                // (a control batch's, compacted ones) are passed too.
                if let Ok(h) = batch::parse_fixed(one) {
                    plan.to = plan.to.max(h.last_offset().min(end - 1));
                }
            }
            at = read.next_offset.max(at + 1);
        }
        if let Some(t) = to {
            // Records retention removed since: the step still ends there.
            plan.to = t;
        }
        Ok(plan)
    }
}

/// What a source record counted as.
enum Placed {
    Routed,
    Unmatched,
    Failed,
}

/// Where one source record goes: (target, record) pairs, the rule's
/// headers added, or the route's dead-letter topic with the reason.
fn place<'t>(
    route: &CompiledRoute,
    root: &cel::Context<'_, '_>,
    targets: &'t BTreeMap<&str, Arc<Topic>>,
    record: &OwnedRecord,
    source_partition: i32,
    offset: i64,
) -> (Vec<(&'t Arc<Topic>, OwnedRecord)>, Placed) {
    let vars = RecordVars::new(record, source_partition, offset, route.reads_value);
    let placed = match verdict(route, root, vars) {
        Verdict::To(names, headers) => {
            let out: Vec<_> = names
                .iter()
                .map(|n| {
                    let mut r = record.clone();
                    r.headers.extend(
                        headers
                            .iter()
                            .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))),
                    );
                    (&targets[n.as_str()], r)
                })
                .collect();
            (out, Placed::Routed)
        }
        Verdict::Nowhere => (Vec::new(), Placed::Unmatched),
        Verdict::Failed(reason) => (
            dead_letter(route, targets, record, source_partition, offset, reason),
            Placed::Failed,
        ),
    };
    // A record no batch of its target can hold (a target with a smaller
    // batch limit than the source's, or the rule's headers on top) is a
    // dead letter too: the route must not stop on it.
    if let Some((topic, limit)) = placed.0.iter().find_map(|(t, r)| too_large(t, r, source_partition)) {
        let reason = format!(
            "the record ({} bytes) does not fit a batch of topic `{}` (batch_bytes_max {limit})",
            record.encoded_bytes_max(),
            topic.name
        );
        let mut letter = dead_letter(route, targets, record, source_partition, offset, reason);
        if letter.iter().any(|(t, r)| too_large(t, r, source_partition).is_some()) {
            // Too large for the dead-letter topic too: the letter keeps the
            // key, the headers and where the record is, without its value.
            for (_, r) in &mut letter {
                r.value = None;
            }
        }
        if letter.iter().any(|(t, r)| too_large(t, r, source_partition).is_some()) {
            tracing::error!(
                route = %route.spec.name, partition = source_partition, offset,
                "a record fits neither its target's batches nor, even without its value, the dead-letter topic's; \
                 it is left in the source only"
            );
            return (Vec::new(), Placed::Failed);
        }
        return (letter, Placed::Failed);
    }
    placed
}

/// `record` as a dead letter of `route`, with the reason and its source.
fn dead_letter<'t>(
    route: &CompiledRoute,
    targets: &'t BTreeMap<&str, Arc<Topic>>,
    record: &OwnedRecord,
    source_partition: i32,
    offset: i64,
    reason: String,
) -> Vec<(&'t Arc<Topic>, OwnedRecord)> {
    let mut r = record.clone();
    let src = format!("{}/{source_partition}/{offset}", route.spec.source);
    // An error may quote a field of the record: at most REASON_BYTES_MAX.
    let mut reason = reason.into_bytes();
    if reason.len() > REASON_BYTES_MAX {
        reason.truncate(REASON_BYTES_MAX);
        reason.extend_from_slice("…".as_bytes());
    }
    r.headers.push((ERROR_HEADER.as_bytes().to_vec(), Some(reason)));
    r.headers.push((
        ROUTE_HEADER.as_bytes().to_vec(),
        Some(route.spec.name.as_bytes().to_vec()),
    ));
    r.headers
        .push((SOURCE_HEADER.as_bytes().to_vec(), Some(src.into_bytes())));
    vec![(&targets[route.spec.dead_letter.as_str()], r)]
}

/// The topic and its batch limit, when `record` alone overflows a batch of
/// its target partition.
fn too_large<'t>(
    topic: &'t Arc<Topic>,
    record: &OwnedRecord,
    source_partition: i32,
) -> Option<(&'t Arc<Topic>, usize)> {
    let tp = target_partition(record, source_partition, topic.partitions.len());
    let limit = topic
        .partition(tp)
        .map_or(usize::MAX, |p| p.log().config().batch_bytes_max as usize);
    (batch::HEADER_BYTES + record.encoded_bytes_max() > limit).then_some((topic, limit))
}

/// Adds `placed` records to the batches of their target partitions.
fn add(
    plan: &mut Plan,
    sizes: &mut Vec<usize>,
    placed: Vec<(&Arc<Topic>, OwnedRecord)>,
    source_partition: i32,
    offset: i64,
) {
    for (topic, r) in placed {
        let tp = target_partition(&r, source_partition, topic.partitions.len());
        let size = r.encoded_bytes_max();
        let i = match plan
            .batches
            .iter()
            .position(|(bt, bp, _)| bt.id == topic.id && *bp == tp)
        {
            Some(i) => i,
            None => {
                plan.batches.push((Arc::clone(topic), tp, Vec::new()));
                plan.sums.push(0);
                sizes.push(batch::HEADER_BYTES);
                plan.batches.len() - 1
            }
        };
        plan.batches[i].2.push(r);
        plan.sums[i] = crc32c::crc32c_append(plan.sums[i], &offset.to_le_bytes());
        sizes[i] += size;
    }
}

impl Plan {
    /// What the step writes, per target partition (see `ReaderState::placed`).
    fn placed(&self) -> Vec<(String, i32, u32, u32)> {
        self.batches
            .iter()
            .zip(&self.sums)
            .map(|((t, tp, records), sum)| {
                (
                    t.name.clone(),
                    *tp,
                    u32::try_from(records.len()).unwrap_or(u32::MAX),
                    *sum,
                )
            })
            .collect()
    }
}

/// `s` advanced by `n`, wrapping to 0 after `i32::MAX` as Kafka's
/// producers' sequences do.
pub(super) fn next_sequence(s: i32, n: i32) -> i32 {
    let wrapped = (i64::from(s) + i64::from(n)) % (i64::from(i32::MAX) + 1);
    i32::try_from(wrapped).unwrap_or(0)
}

/// Whether `placed` records fit the batches they would join.
fn fits(plan: &Plan, sizes: &[usize], placed: &[(&Arc<Topic>, OwnedRecord)], source_partition: i32) -> bool {
    placed.iter().all(|(topic, r)| {
        let tp = target_partition(r, source_partition, topic.partitions.len());
        let limit = topic
            .partition(tp)
            .map_or(usize::MAX, |p| p.log().config().batch_bytes_max as usize);
        let used = plan
            .batches
            .iter()
            .position(|(bt, bp, _)| bt.id == topic.id && *bp == tp)
            .map_or(batch::HEADER_BYTES, |i| sizes[i]);
        used + r.encoded_bytes_max() <= limit
    })
}

fn sequence(state: &ReaderState, topic: &str, partition: i32) -> i32 {
    state
        .sequences
        .iter()
        .find(|(t, p, _)| t == topic && *p == partition)
        .map_or(0, |(_, _, s)| *s)
}

/// The timestamp of the first batch at or after `offset`.
fn oldest_timestamp(p: &Partition, offset: i64) -> Option<i64> {
    let read = p.log().read(offset, 1).ok()?;
    let h = batch::parse_fixed(&read.records).ok()?;
    Some(h.base_timestamp)
}
