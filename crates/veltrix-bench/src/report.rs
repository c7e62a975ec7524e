//! What a run prints: a few lines for people, or one JSON object for scripts.
//! The JSON keys are the ones `bench/compare` reads for every system it runs.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{Map, Value, json};
use veltrix_client::Acks;

use crate::consume::ConsumeResult;
use crate::produce::{StreamResult, StreamSpec};
use crate::share::{ShareResult, ShareSpec};
use crate::stats::{Latency, summary_json};

/// Who ran and against what.
#[derive(Debug, Clone)]
pub struct Context {
    /// The system's name in reports (`veltrix`, `tansu`).
    pub system: String,
    pub target: String,
    pub duration: Duration,
}

pub fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

fn per_s(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// A latency line under a result, `label` padded to line the figures up;
/// nothing when nothing was measured.
fn latency_line(out: &mut String, label: &str, latency: &Latency) {
    if let Some(l) = latency.summary() {
        let _ = writeln!(out, "  {label}{}", l.human());
    }
}

/// How many of what `failed` names failed and the first error, under a
/// result; nothing when none did.
fn errors_line(out: &mut String, failed: &str, errors: u64, first_error: Option<&str>) {
    if errors > 0 {
        let _ = writeln!(out, "  {errors} {failed}; first: {}", first_error.unwrap_or("?"));
    }
}

fn stream_json(spec: &StreamSpec, r: &StreamResult, duration: Duration) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("stream".into(), json!(spec.name));
    m.insert("topic".into(), json!(spec.topic));
    m.insert("record_bytes".into(), json!(spec.record_bytes));
    m.insert("producers".into(), json!(spec.producers));
    m.insert("partitions".into(), json!(r.partitions));
    m.insert("acks".into(), json!(acks_name(spec.acks)));
    m.insert("batch_bytes".into(), json!(spec.batch_bytes));
    m.insert("linger_ms".into(), json!(spec.linger.as_millis() as u64));
    m.insert("in_flight".into(), json!(spec.in_flight));
    m.insert("window".into(), json!(spec.in_flight));
    m.insert("rate".into(), json!(spec.rate.per_s));
    m.insert("message_ids".into(), json!(spec.message_ids));
    m.insert("event".into(), json!(spec.event));
    let configs: Map<String, Value> = spec.topic_configs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    m.insert("topic_configs".into(), Value::Object(configs));
    m.insert("consumers".into(), json!(spec.consumers));
    m.insert("consumer_group".into(), json!(r.consumer_group));
    m.insert("records".into(), json!(r.records));
    m.insert("bytes".into(), json!(r.bytes));
    m.insert("records_per_s".into(), json!(per_s(r.records, duration)));
    m.insert("mb_per_s".into(), json!(per_s(r.bytes, duration) / 1e6));
    m.insert("produce_latency_us".into(), summary_json(&r.produce));
    m.insert("e2e_latency_us".into(), summary_json(&r.e2e));
    m.insert("consumed".into(), json!(r.consumed));
    m.insert("errors".into(), json!(r.errors));
    m.insert("first_error".into(), json!(r.first_error));
    m
}

fn head(ctx: &Context, workload: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tool".into(), json!("veltrix bench"));
    m.insert("system".into(), json!(ctx.system));
    m.insert("workload".into(), json!(workload));
    m.insert("target".into(), json!(ctx.target));
    m.insert("duration_s".into(), json!(ctx.duration.as_secs_f64()));
    m
}

/// One stream's run (`veltrix bench produce`).
pub fn produce_json(ctx: &Context, spec: &StreamSpec, r: &StreamResult) -> Value {
    let mut m = head(ctx, "produce");
    m.extend(stream_json(spec, r, ctx.duration));
    Value::Object(m)
}

/// A profile of several streams, with totals.
pub fn profile_json(ctx: &Context, workload: &str, specs: &[StreamSpec], results: &[StreamResult]) -> Value {
    let mut m = head(ctx, workload);
    let records: u64 = results.iter().map(|r| r.records).sum();
    let bytes: u64 = results.iter().map(|r| r.bytes).sum();
    m.insert("records".into(), json!(records));
    m.insert("bytes".into(), json!(bytes));
    m.insert("records_per_s".into(), json!(per_s(records, ctx.duration)));
    m.insert("mb_per_s".into(), json!(per_s(bytes, ctx.duration) / 1e6));
    m.insert("errors".into(), json!(results.iter().map(|r| r.errors).sum::<u64>()));
    let streams: Vec<Value> = specs
        .iter()
        .zip(results)
        .map(|(s, r)| Value::Object(stream_json(s, r, ctx.duration)))
        .collect();
    m.insert("streams".into(), Value::Array(streams));
    Value::Object(m)
}

pub fn consume_json(ctx: &Context, topic: &str, consumers: usize, r: &ConsumeResult) -> Value {
    let mut m = head(ctx, "consume");
    m.insert("duration_s".into(), json!(r.elapsed.as_secs_f64()));
    m.insert("topic".into(), json!(topic));
    m.insert("partitions".into(), json!(r.partitions));
    m.insert("consumers".into(), json!(consumers));
    m.insert("records".into(), json!(r.records));
    m.insert("bytes".into(), json!(r.bytes));
    m.insert("batch_bytes".into(), json!(r.batch_bytes));
    m.insert("fetches".into(), json!(r.fetches));
    m.insert("records_per_s".into(), json!(per_s(r.records, r.elapsed)));
    m.insert("mb_per_s".into(), json!(per_s(r.bytes, r.elapsed) / 1e6));
    m.insert("produce_latency_us".into(), Value::Null);
    m.insert("e2e_latency_us".into(), Value::Null);
    m.insert("errors".into(), json!(0));
    Value::Object(m)
}

/// A share-consume run: records acknowledged per second of the window.
pub fn share_json(ctx: &Context, spec: &ShareSpec, r: &ShareResult) -> Value {
    let mut m = head(ctx, "share-consume");
    m.insert("duration_s".into(), json!(r.window.as_secs_f64()));
    m.insert("topic".into(), json!(spec.topic));
    m.insert("group".into(), json!(spec.group));
    m.insert("partitions".into(), json!(r.partitions));
    m.insert("consumers".into(), json!(spec.consumers));
    m.insert("record_bytes".into(), json!(spec.record_bytes));
    m.insert("max_records".into(), json!(spec.fetch.records_max));
    m.insert("fill".into(), json!(spec.fill));
    m.insert("drained".into(), json!(r.drained));
    m.insert("records".into(), json!(r.records));
    m.insert("acked_total".into(), json!(r.acked_total));
    m.insert("redelivered".into(), json!(r.redelivered));
    m.insert("fetches".into(), json!(r.fetches));
    let bytes = r.records * spec.record_bytes as u64;
    m.insert("bytes".into(), json!(bytes));
    m.insert("records_per_s".into(), json!(per_s(r.records, r.window)));
    m.insert("mb_per_s".into(), json!(per_s(bytes, r.window) / 1e6));
    m.insert("fetch_latency_us".into(), summary_json(&r.fetch_latency));
    m.insert("produce_latency_us".into(), Value::Null);
    m.insert("e2e_latency_us".into(), Value::Null);
    m.insert("errors".into(), json!(r.errors));
    m.insert("first_error".into(), json!(r.first_error));
    Value::Object(m)
}

pub fn share_human(spec: &ShareSpec, r: &ShareResult) -> String {
    let mut out = format!(
        "share group `{}` ({} consumers) on `{}` ({} partitions, {} B records): {:.0} records acknowledged/s, {:.1} MB/s over {:.2} s{}\n",
        spec.group,
        spec.consumers,
        spec.topic,
        r.partitions,
        spec.record_bytes,
        per_s(r.records, r.window),
        per_s(r.records * spec.record_bytes as u64, r.window) / 1e6,
        r.window.as_secs_f64(),
        if r.drained { " (drained)" } else { "" }
    );
    latency_line(&mut out, "share fetch  ", &r.fetch_latency);
    if r.redelivered > 0 {
        let _ = writeln!(out, "  {} records delivered more than once", r.redelivered);
    }
    errors_line(&mut out, "failed", r.errors, r.first_error.as_deref());
    out
}

/// Lines for people: one block per stream.
pub fn streams_human(specs: &[StreamSpec], results: &[StreamResult], duration: Duration) -> String {
    let mut out = String::new();
    for (s, r) in specs.iter().zip(results) {
        let _ = writeln!(
            out,
            "{} → {} ({} partitions, {} B records, acks={}): {:.0} records/s, {:.1} MB/s over {:.1} s",
            s.name,
            s.topic,
            r.partitions,
            s.record_bytes,
            acks_name(s.acks),
            per_s(r.records, duration),
            per_s(r.bytes, duration) / 1e6,
            duration.as_secs_f64()
        );
        latency_line(&mut out, "produce ack  ", &r.produce);
        latency_line(&mut out, "end to end   ", &r.e2e);
        errors_line(&mut out, "records failed", r.errors, r.first_error.as_deref());
    }
    out
}

pub fn consume_human(topic: &str, r: &ConsumeResult) -> String {
    format!(
        "consumed {} records ({:.1} MB of values, {:.1} MB of batches) from `{topic}` ({} partitions) in {:.2} s: {:.0} records/s, {:.1} MB/s, {} fetches\n",
        r.records,
        r.bytes as f64 / 1e6,
        r.batch_bytes as f64 / 1e6,
        r.partitions,
        r.elapsed.as_secs_f64(),
        per_s(r.records, r.elapsed),
        per_s(r.bytes, r.elapsed) / 1e6,
        r.fetches
    )
}
