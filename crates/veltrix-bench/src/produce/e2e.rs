//! The stream's consumers: they read the topic while it is written and time
//! every record from when it was due to when it was read (end to end).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use veltrix_client::{Client, FetchOptions, FetchedPartition};

use super::{Clock, DRAIN, STAMP_BYTES, Window};
use crate::encode::walk;
use crate::group::Member;
use crate::stats::Latency;

/// What one consumer measured.
pub(super) struct ConsumerResult {
    pub(super) consumed: u64,
    pub(super) e2e: Latency,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
}

impl ConsumerResult {
    /// Counts an error, keeping the first one's words.
    fn error(&mut self, what: impl FnOnce() -> String) {
        self.errors += 1;
        self.first_error.get_or_insert_with(what);
    }
}

/// A partition a consumer reads, and the next offset it reads there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Position {
    pub(super) partition: i32,
    pub(super) offset: i64,
}

/// One consumer of a stream.
pub(super) struct Consumer {
    pub(super) client: Client,
    /// Its membership, when it reads in a consumer group.
    pub(super) member: Option<Member>,
    pub(super) topic: String,
    pub(super) positions: Vec<Position>,
}

/// Reads the consumer's partitions until the producers are done and it has
/// caught up (or [`DRAIN`] has passed), timing every stamped value.
pub(super) async fn consume_e2e(
    mut c: Consumer,
    clock: Clock,
    window: Arc<Window>,
    producers_done: Arc<AtomicBool>,
) -> ConsumerResult {
    let mut out = ConsumerResult {
        consumed: 0,
        e2e: Latency::new(),
        errors: 0,
        first_error: None,
    };
    let options = FetchOptions {
        max_wait: Duration::from_millis(100),
        bytes_max: 16 << 20,
        partition_bytes_max: 4 << 20,
    };
    // The fetch's partitions and offsets, rebuilt from `positions` each time.
    let mut asked: Vec<(i32, i64)> = Vec::new();
    let mut done_at: Option<Instant> = None;
    loop {
        let done = producers_done.load(Ordering::Acquire);
        if done && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if done_at.is_some_and(|t| t.elapsed() > DRAIN) {
            break;
        }
        if let Err(why) = heartbeat(&mut c).await {
            out.error(|| why);
            break;
        }
        if c.positions.is_empty() {
            // A member the group gave nothing (more consumers than partitions).
            if done {
                break;
            }
            tokio::time::sleep(options.max_wait).await;
            continue;
        }
        asked.clear();
        asked.extend(c.positions.iter().map(|p| (p.partition, p.offset)));
        let fetched = match c.client.fetch(&c.topic, &asked, &options).await {
            Ok(f) => f,
            Err(e) => {
                out.error(|| format!("consumer: {e}"));
                break;
            }
        };
        let caught_up = read_fetched(&mut out, &mut c.positions, fetched, clock.now_us(), &window);
        if done && caught_up {
            break;
        }
    }
    if let Some(m) = &mut c.member
        && let Err(e) = m.leave(&mut c.client).await
    {
        out.first_error
            .get_or_insert_with(|| format!("consumer: leaving the group: {e}"));
    }
    out
}

/// A group member's heartbeat, when due. The assignment settled before the
/// clock started; a change now (another member gone) is an error of the run,
/// not a rebalance to time through.
async fn heartbeat(c: &mut Consumer) -> Result<(), String> {
    let Some(m) = &mut c.member else {
        return Ok(());
    };
    match m.beat_if_due(&mut c.client).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!(
            "consumer: the group's assignment changed during the run, to {:?}",
            m.assigned()
        )),
        Err(e) => Err(format!("consumer: {e}")),
    }
}

/// Counts and times the records of one fetch read at `now`, and moves each
/// partition's position past them; true when every partition has caught up
/// with its high watermark.
fn read_fetched(
    out: &mut ConsumerResult,
    positions: &mut [Position],
    fetched: Vec<FetchedPartition>,
    now: u64,
    window: &Window,
) -> bool {
    let mut caught_up = true;
    for f in fetched {
        let Some(position) = positions.iter_mut().find(|p| p.partition == f.partition) else {
            continue;
        };
        if let Some(e) = f.error {
            out.error(|| format!("consumer: partition {}: {e}", f.partition));
            continue;
        }
        let e2e = &mut out.e2e;
        let walked = walk(&f.records, |v| {
            if let Some(stamp) = v.get(..STAMP_BYTES) {
                let at = u64::from_be_bytes(stamp.try_into().unwrap_or([0; 8]));
                if window.measured(at) {
                    e2e.record(now.saturating_sub(at));
                }
            }
        });
        match walked {
            Some(w) => {
                out.consumed += w.records;
                if let Some(next) = w.next_offset {
                    position.offset = next;
                }
            }
            None => out.error(|| format!("consumer: partition {}: undecodable batches", f.partition)),
        }
        if position.offset < f.high_watermark {
            caught_up = false;
        }
    }
    caught_up
}
