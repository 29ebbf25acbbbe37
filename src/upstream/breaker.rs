//! The circuit breaker of one upstream, as a pure state machine: the caller passes the
//! time, so tests drive it with paused tokio time.
//!
//! closed --(N failures in a row, or error rate over the window)--> open
//! open --(cool-down over; the next request is a probe)--> half-open
//! half-open --(`probes` successes)--> closed;  half-open --(a probe fails)--> open
//!
//! Results of requests let through before the circuit opened are ignored once it is open
//! or half-open: only probes decide there. A probe that never reports (its client hung up)
//! frees its slot after one more cool-down.

use tokio::time::Instant;

use crate::config::resilience::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn label(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The value of `tiergate_circuit_state`.
    pub fn gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

/// Whether a request may go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Yes, as one of the half-open probes: report its result with `probe: true`.
    Probe,
    No,
}

#[derive(Debug)]
enum Inner {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        probes: u32,
        successes: u32,
        last_probe: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    inner: Inner,
    consecutive: u32,
    window_start: Instant,
    requests: u32,
    failures: u32,
}

impl Breaker {
    pub fn new(now: Instant) -> Self {
        Breaker {
            inner: Inner::Closed,
            consecutive: 0,
            window_start: now,
            requests: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> State {
        match self.inner {
            Inner::Closed => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Asks to send one request; may move open to half-open.
    pub fn admit(&mut self, cfg: &BreakerConfig, now: Instant) -> Admit {
        if !cfg.enabled {
            return Admit::Yes;
        }
        match &mut self.inner {
            Inner::Closed => Admit::Yes,
            Inner::Open { until } if now >= *until => {
                self.inner = Inner::HalfOpen {
                    probes: 1,
                    successes: 0,
                    last_probe: now,
                };
                Admit::Probe
            }
            Inner::Open { .. } => Admit::No,
            Inner::HalfOpen {
                probes, last_probe, ..
            } => {
                let stuck = now.duration_since(*last_probe) >= cfg.cool_down;
                if *probes < cfg.probes || stuck {
                    *probes = if stuck { 1 } else { *probes + 1 };
                    *last_probe = now;
                    Admit::Probe
                } else {
                    Admit::No
                }
            }
        }
    }

    /// Reports the result of an admitted request.
    pub fn record(&mut self, cfg: &BreakerConfig, now: Instant, ok: bool, probe: bool) {
        if !cfg.enabled {
            return;
        }
        match &mut self.inner {
            Inner::Closed => {
                if now.duration_since(self.window_start) >= cfg.window {
                    self.window_start = now;
                    self.requests = 0;
                    self.failures = 0;
                }
                self.requests += 1;
                if ok {
                    self.consecutive = 0;
                } else {
                    self.consecutive += 1;
                    self.failures += 1;
                }
                let rate_tripped = self.requests >= cfg.min_requests.max(1)
                    && f64::from(self.failures) >= cfg.error_rate * f64::from(self.requests);
                if self.consecutive >= cfg.consecutive_failures || rate_tripped {
                    self.open(cfg, now);
                }
            }
            Inner::HalfOpen {
                probes, successes, ..
            } if probe => {
                *probes = probes.saturating_sub(1);
                if !ok {
                    self.open(cfg, now);
                } else {
                    *successes += 1;
                    if *successes >= cfg.probes {
                        self.inner = Inner::Closed;
                        self.reset(now);
                    }
                }
            }
            _ => {}
        }
    }

    fn open(&mut self, cfg: &BreakerConfig, now: Instant) {
        self.inner = Inner::Open {
            until: now + cfg.cool_down,
        };
        self.reset(now);
    }

    fn reset(&mut self, now: Instant) {
        self.consecutive = 0;
        self.window_start = now;
        self.requests = 0;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::advance;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            consecutive_failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(5),
            probes: 2,
        }
    }

    fn run(b: &mut Breaker, c: &BreakerConfig, ok: bool) -> Admit {
        let a = b.admit(c, Instant::now());
        if a != Admit::No {
            b.record(c, Instant::now(), ok, a == Admit::Probe);
        }
        a
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_then_probes_close() {
        let c = cfg();
        let mut b = Breaker::new(Instant::now());
        run(&mut b, &c, false);
        run(&mut b, &c, false);
        run(&mut b, &c, true); // a success resets the run
        run(&mut b, &c, false);
        run(&mut b, &c, false);
        assert_eq!(b.state(), State::Closed);
        run(&mut b, &c, false);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.admit(&c, Instant::now()), Admit::No);
        advance(Duration::from_millis(4999)).await;
        assert_eq!(b.admit(&c, Instant::now()), Admit::No);
        advance(Duration::from_millis(1)).await;
        // Two probes at once, no third.
        assert_eq!(b.admit(&c, Instant::now()), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(&c, Instant::now()), Admit::Probe);
        assert_eq!(b.admit(&c, Instant::now()), Admit::No);
        // A late result of a request from before does not count.
        b.record(&c, Instant::now(), true, false);
        b.record(&c, Instant::now(), true, true);
        assert_eq!(b.state(), State::HalfOpen);
        b.record(&c, Instant::now(), true, true);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(&c, Instant::now()), Admit::Yes);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_another_cool_down() {
        let c = cfg();
        let mut b = Breaker::new(Instant::now());
        for _ in 0..3 {
            run(&mut b, &c, false);
        }
        advance(Duration::from_secs(5)).await;
        assert_eq!(run(&mut b, &c, false), Admit::Probe);
        assert_eq!(b.state(), State::Open);
        advance(Duration::from_secs(4)).await;
        assert_eq!(b.admit(&c, Instant::now()), Admit::No);
        advance(Duration::from_secs(1)).await;
        assert_eq!(b.admit(&c, Instant::now()), Admit::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn error_rate_over_the_window_opens() {
        let c = cfg();
        let mut b = Breaker::new(Instant::now());
        // Alternate: never 3 failures in a row, but half of them fail.
        for i in 0..9 {
            run(&mut b, &c, i % 2 == 0);
        }
        assert_eq!(b.state(), State::Closed, "under min_requests");
        run(&mut b, &c, false);
        assert_eq!(b.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_forgets_old_failures() {
        let c = cfg();
        let mut b = Breaker::new(Instant::now());
        for i in 0..8 {
            run(&mut b, &c, i % 2 == 0);
        }
        advance(Duration::from_secs(10)).await;
        for _ in 0..8 {
            run(&mut b, &c, true);
        }
        run(&mut b, &c, false);
        run(&mut b, &c, false);
        assert_eq!(b.state(), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_probe_frees_its_slot_after_a_cool_down() {
        let c = BreakerConfig { probes: 1, ..cfg() };
        let mut b = Breaker::new(Instant::now());
        for _ in 0..3 {
            run(&mut b, &c, false);
        }
        advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(&c, Instant::now()), Admit::Probe); // never reports
        assert_eq!(b.admit(&c, Instant::now()), Admit::No);
        advance(Duration::from_secs(5)).await;
        assert_eq!(b.admit(&c, Instant::now()), Admit::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_breaker_always_admits() {
        let c = BreakerConfig {
            enabled: false,
            ..cfg()
        };
        let mut b = Breaker::new(Instant::now());
        for _ in 0..50 {
            assert_eq!(run(&mut b, &c, false), Admit::Yes);
        }
        assert_eq!(b.state(), State::Closed);
    }
}
