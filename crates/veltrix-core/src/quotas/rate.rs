//! A rate over sliding sample windows, as Kafka measures quotas: `samples`
//! windows of `window_ms` each; the rate is what the live windows hold over
//! the time they span (at least all but one whole window, so a first burst is
//! not divided by a few milliseconds).

/// One sensor: what a client (or a group of clients sharing a quota) did.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    /// (start of the window in ms, value recorded in it), oldest first.
    windows: std::collections::VecDeque<(u64, f64)>,
    /// When it was last recorded, to forget idle sensors.
    pub last_ms: u64,
}

/// How quotas are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindows {
    /// One sample window, in ms (Kafka's `quota.window.size.seconds`, 1 s).
    pub window_ms: u64,
    /// Sample windows kept (Kafka's `quota.window.num`, 11).
    pub samples: u32,
}

impl RateWindows {
    /// The longest throttle: the whole measured span.
    pub fn span_ms(&self) -> u64 {
        self.window_ms.saturating_mul(u64::from(self.samples))
    }
}

impl Default for RateWindows {
    fn default() -> RateWindows {
        RateWindows {
            window_ms: 1_000,
            samples: 11,
        }
    }
}

impl Rate {
    pub(crate) fn new(now_ms: u64) -> Rate {
        Rate {
            windows: std::collections::VecDeque::new(),
            last_ms: now_ms,
        }
    }

    /// Adds `value` at `now_ms`.
    pub(crate) fn record(&mut self, w: RateWindows, now_ms: u64, value: f64) {
        self.expire(w, now_ms);
        let start = now_ms - now_ms % w.window_ms.max(1);
        match self.windows.back_mut() {
            Some((s, v)) if *s == start => *v += value,
            _ => self.windows.push_back((start, value)),
        }
        self.last_ms = now_ms;
    }

    /// Takes `value` back (a response that was not sent after all).
    pub(crate) fn unrecord(&mut self, value: f64) {
        if let Some((_, v)) = self.windows.back_mut() {
            *v = (*v - value).max(0.0);
        }
    }

    fn expire(&mut self, w: RateWindows, now_ms: u64) {
        let oldest = now_ms.saturating_sub(w.span_ms());
        while self.windows.front().is_some_and(|(s, _)| *s + w.window_ms <= oldest) {
            self.windows.pop_front();
        }
    }

    /// Per second, at `now_ms`, and the span in ms it is measured over.
    pub(crate) fn measure(&mut self, w: RateWindows, now_ms: u64) -> (f64, u64) {
        self.expire(w, now_ms);
        let total: f64 = self.windows.iter().map(|(_, v)| v).sum();
        let oldest = self.windows.front().map_or(now_ms, |(s, _)| *s);
        let floor = w.window_ms.saturating_mul(u64::from(w.samples.saturating_sub(1)));
        let span = now_ms.saturating_sub(oldest).max(floor).max(1);
        (total * 1000.0 / span as f64, span)
    }

    /// How long the client must wait for its rate to come back to `quota`
    /// (per second): `(rate - quota) / quota × span`, at most the whole span of
    /// the windows; 0 within the quota.
    pub(crate) fn throttle_ms(&mut self, w: RateWindows, now_ms: u64, quota: f64) -> u64 {
        let (rate, span) = self.measure(w, now_ms);
        if quota <= 0.0 || rate <= quota {
            return 0;
        }
        let ms = (rate - quota) / quota * span as f64;
        (ms.ceil() as u64).min(w.span_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: RateWindows = RateWindows {
        window_ms: 1_000,
        samples: 11,
    };

    #[test]
    fn a_steady_rate_under_the_quota_is_never_throttled() {
        let mut r = Rate::new(0);
        // 900 B/s in 90 B every 100 ms, against 1 kB/s.
        for tick in 0..300u64 {
            let now = tick * 100;
            r.record(W, now, 90.0);
            assert_eq!(r.throttle_ms(W, now, 1_000.0), 0, "at {now} ms");
        }
        let (rate, _) = r.measure(W, 30_000);
        assert!((rate - 900.0).abs() < 90.0, "{rate}");
    }

    #[test]
    fn a_burst_is_measured_over_all_but_one_window_and_throttled_back_to_the_quota() {
        let mut r = Rate::new(0);
        // 20 kB at once against 1 kB/s: measured over 10 s it is 2 kB/s, so
        // the client waits as long again (10 s) for the rate to halve.
        r.record(W, 0, 20_000.0);
        assert_eq!(r.throttle_ms(W, 0, 1_000.0), 10_000);
        // Throttles are bounded by the measured span (11 s).
        r.record(W, 0, 1_000_000.0);
        assert_eq!(r.throttle_ms(W, 0, 1_000.0), 11_000);
    }

    #[test]
    fn old_windows_are_forgotten() {
        let mut r = Rate::new(0);
        r.record(W, 0, 100_000.0);
        assert!(r.throttle_ms(W, 5_000, 1_000.0) > 0);
        assert_eq!(r.throttle_ms(W, 12_000, 1_000.0), 0);
        assert_eq!(r.measure(W, 12_000).0, 0.0);
    }

    #[test]
    fn unrecording_takes_a_value_back() {
        let mut r = Rate::new(0);
        r.record(W, 0, 20_000.0);
        r.unrecord(20_000.0);
        assert_eq!(r.throttle_ms(W, 0, 1_000.0), 0);
    }
}
