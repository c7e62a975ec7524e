//! A client's standing against its byte-rate quota: a token bucket that
//! fills at the quota's rate up to `burst_ms` worth of it. What a client sends
//! or is sent takes tokens, possibly below zero; below zero, it waits until
//! the bucket is back at zero. Over any long enough time a client gets its
//! quota and no more, and its bursts are bounded by `burst_ms` of it (Kafka's
//! sliding windows, with their 11 s of credit that comes back all at once
//! when the oldest window expires, let a client burst ten times its quota
//! every few seconds; a bucket does not).

/// How quotas are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindows {
    /// How much of its quota a client may send at once, in ms of its rate
    /// (`[quotas] burst_ms`, 1 s).
    pub burst_ms: u64,
    /// The longest wait one response asks for (`[quotas] throttle_ms_max`);
    /// a client further behind is throttled again on its next request.
    pub throttle_ms_max: u64,
}

impl Default for RateWindows {
    fn default() -> RateWindows {
        RateWindows {
            burst_ms: 1_000,
            throttle_ms_max: 10_000,
        }
    }
}

/// One sensor: a client, or the clients sharing one quota.
#[derive(Debug, Clone)]
pub(crate) struct Rate {
    /// Bytes it may still send now; negative: what it owes.
    tokens: f64,
    /// When `tokens` was last brought up to date, and when it was last used
    /// (to forget idle sensors first).
    pub last_ms: u64,
    /// The quota the bucket was last filled at.
    quota: f64,
}

impl Rate {
    pub(crate) fn new(now_ms: u64) -> Rate {
        Rate {
            tokens: f64::NAN,
            last_ms: now_ms,
            quota: 0.0,
        }
    }

    fn capacity(w: RateWindows, quota: f64) -> f64 {
        quota * w.burst_ms as f64 / 1000.0
    }

    /// Fills the bucket for the time since it was last used.
    fn refill(&mut self, w: RateWindows, now_ms: u64, quota: f64) {
        let cap = Rate::capacity(w, quota);
        if self.tokens.is_nan() {
            self.tokens = cap;
        } else {
            let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
            self.tokens = (self.tokens + elapsed * quota).min(cap);
        }
        self.quota = quota;
        self.last_ms = now_ms;
    }

    /// The wait before the bucket is back at zero.
    fn debt_ms(&self, w: RateWindows) -> u64 {
        if self.tokens >= 0.0 || self.quota <= 0.0 {
            return 0;
        }
        let ms = (-self.tokens / self.quota * 1000.0).ceil() as u64;
        ms.min(w.throttle_ms_max)
    }

    /// Takes `value` bytes at `now_ms` against `quota` bytes per second; the
    /// wait the client owes afterwards.
    pub(crate) fn record(&mut self, w: RateWindows, now_ms: u64, quota: f64, value: f64) -> u64 {
        self.refill(w, now_ms, quota);
        self.tokens -= value;
        self.debt_ms(w)
    }

    /// As [`Rate::record`], unless the client already owes a wait: then
    /// nothing is taken (the response is withheld) and the wait is returned
    /// with `true`.
    pub(crate) fn record_unless_owing(&mut self, w: RateWindows, now_ms: u64, quota: f64, value: f64) -> (u64, bool) {
        self.refill(w, now_ms, quota);
        let owed = self.debt_ms(w);
        if owed > 0 {
            return (owed, true);
        }
        self.tokens -= value;
        (self.debt_ms(w), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: RateWindows = RateWindows {
        burst_ms: 1_000,
        throttle_ms_max: 10_000,
    };

    #[test]
    fn a_steady_rate_under_the_quota_is_never_throttled() {
        let mut r = Rate::new(0);
        // 900 B/s in 90 B every 100 ms, against 1 kB/s.
        for tick in 0..300u64 {
            assert_eq!(r.record(W, tick * 100, 1_000.0, 90.0), 0, "at {} ms", tick * 100);
        }
    }

    #[test]
    fn a_client_that_honours_its_waits_gets_its_quota_and_no_more() {
        let mut r = Rate::new(0);
        let (mut now, mut sent) = (0u64, 0u64);
        // Sends 64 kB at a time against 100 kB/s, waiting as told.
        while now < 60_000 {
            let wait = r.record(W, now, 100_000.0, 65_536.0);
            sent += 65_536;
            now += wait.max(1);
        }
        let rate = sent as f64 / 60.0;
        assert!((rate - 100_000.0).abs() < 100_000.0 * 0.05, "{rate}");
    }

    #[test]
    fn a_burst_owes_its_excess_and_waits_are_bounded_per_response() {
        let mut r = Rate::new(0);
        // 1 kB/s, 1 s of burst: 3 kB at once owes 2 s.
        assert_eq!(r.record(W, 0, 1_000.0, 3_000.0), 2_000);
        // 100 kB more: owes 102 s, told 10 s at a time.
        assert_eq!(r.record(W, 0, 1_000.0, 100_000.0), 10_000);
        assert_eq!(r.record(W, 10_000, 1_000.0, 0.0), 10_000);
    }

    #[test]
    fn a_response_is_withheld_while_the_client_owes() {
        let mut r = Rate::new(0);
        assert_eq!(r.record_unless_owing(W, 0, 1_000.0, 3_000.0), (2_000, false));
        // Still owing: nothing taken, told to wait what is left.
        assert_eq!(r.record_unless_owing(W, 500, 1_000.0, 3_000.0), (1_500, true));
        assert_eq!(r.record_unless_owing(W, 2_000, 1_000.0, 500.0), (500, false));
    }
}
