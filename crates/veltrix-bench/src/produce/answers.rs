//! A producer's answers: read in request order on the connection's read
//! half, each partition's records counted as acknowledged (with their latency
//! from when they were due) or as errors.

use std::sync::atomic::Ordering;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use veltrix_client::kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use veltrix_client::{ConnectionReader, error_name};

use super::generator::{Due, PartitionDue, records};
use super::{ProducerContext, StreamResult, Window};

/// A request sent and not yet answered.
pub(super) struct InFlight {
    pub(super) correlation_id: i32,
    pub(super) parts: Vec<PartitionDue>,
    /// A place in the window of requests in flight, given back once answered.
    pub(super) _permit: OwnedSemaphorePermit,
}

/// Reads the answer to every request `rx` hands over, until the writer is
/// done. After a failed read the connection is out of step, so the records of
/// every later request count as errors without waiting.
pub(super) async fn read_answers(
    mut reader: ConnectionReader,
    mut rx: mpsc::UnboundedReceiver<InFlight>,
    version: i16,
    cx: ProducerContext,
) -> StreamResult {
    let mut r = StreamResult::default();
    let mut failed: Option<String> = None;
    while let Some(flight) = rx.recv().await {
        let n = records(&flight.parts);
        if let Some(why) = &failed {
            cx.errors(&mut r, n, why.clone());
            continue;
        }
        let answer = tokio::time::timeout(
            cx.timeout,
            reader.receive::<ProduceRequest>(version, flight.correlation_id),
        )
        .await;
        match answer {
            Ok(Ok(response)) => count_answer(&mut r, &cx, &flight.parts, &response),
            Ok(Err(e)) => {
                failed = Some(e.to_string());
                cx.errors(&mut r, n, e.to_string());
            }
            Err(_) => {
                let why = format!("no answer to a produce within {} ms", cx.timeout.as_millis());
                failed = Some(why.clone());
                cx.errors(&mut r, n, why);
            }
        }
    }
    r
}

/// Counts one answer's partitions: acknowledged, refused, or missing.
fn count_answer(r: &mut StreamResult, cx: &ProducerContext, parts: &[PartitionDue], response: &ProduceResponse) {
    let acked_us = cx.clock.now_us();
    for part in parts {
        let code = response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == part.partition)
            .map(|p| p.error_code);
        let partition = part.partition;
        match code {
            Some(0) => {
                let n = count_acked(r, &part.due, acked_us, &cx.window, cx.spec.record_bytes);
                cx.progress.acked.fetch_add(n, Ordering::Relaxed);
            }
            Some(code) => cx.errors(
                r,
                part.due.count(),
                format!("partition {partition}: {}", error_name(code)),
            ),
            None => cx.errors(
                r,
                part.due.count(),
                format!("partition {partition} missing from a produce answer"),
            ),
        }
    }
}

/// Counts the acknowledged records of one batch due in the measured part and
/// records their latency; returns how many were acknowledged in all.
pub(super) fn count_acked(r: &mut StreamResult, due: &Due, acked_us: u64, window: &Window, record_bytes: usize) -> u64 {
    match due {
        Due::Each(times) => {
            for &t in times {
                if window.measured(t) {
                    r.records += 1;
                    r.bytes += record_bytes as u64;
                    r.produce.record(acked_us.saturating_sub(t));
                }
            }
            times.len() as u64
        }
        Due::All { at, count } => {
            if window.measured(*at) {
                r.records += count;
                r.bytes += count * record_bytes as u64;
                r.produce.record_n(acked_us.saturating_sub(*at), *count);
            }
            *count
        }
    }
}
