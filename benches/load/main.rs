//! Load with injected faults against the tiergate binary (its embedded default policy, or
//! `--policy`): a faulty `local` mock and a healthy OpenAI-shaped fallback on 127.0.0.1, the
//! gateway as a child process, clients in this process. Two runs (see benches/faults.sh and
//! benches/soak.sh):
//!
//! - `faults`: N requests at concurrency C, local failing with HTTP 500, hanging, resetting
//!   and truncating at the given rates; reports how many were answered within the client
//!   timeout and how many of the rescuable ones succeeded. Rescuable: all but the streams
//!   local broke off after their first event (the client had bytes of them).
//! - `soak`: a duration at concurrency C with client hang-ups and upstream faults, sampling
//!   the gateway's RSS, open descriptors and upstream connections; reports whether they
//!   stayed flat after warm-up and whether any error went beyond the injected ones.
//!
//! Run through the scripts: `cargo bench --bench load -- MODE [OPTIONS]`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod drive;
mod mock;
mod sample;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use drive::{Outcome, Tally};
use mock::{Fault, Mix, Pace};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Faults,
    Soak,
}

#[derive(Parser, Debug)]
struct Args {
    mode: Mode,
    /// The tiergate binary.
    #[arg(long, default_value = "target/release/tiergate")]
    bin: String,
    /// A policy file instead of the embedded default (its local and openai upstreams must
    /// read TIERGATE_LOCAL_BASE_URL and OPENAI_BASE_URL).
    #[arg(long)]
    policy: Option<String>,
    #[arg(long, default_value_t = 400)]
    requests: u64,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Fault rates at local: HTTP 500, hang, reset, truncate.
    #[arg(long, default_value_t = 0.20)]
    fail: f64,
    #[arg(long, default_value_t = 0.05)]
    hang: f64,
    #[arg(long, default_value_t = 0.05)]
    reset: f64,
    #[arg(long, default_value_t = 0.05)]
    truncate: f64,
    /// Soak: how long, how often to sample, what to leave out as warm-up.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    every: Duration,
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Share of requests whose client hangs up early.
    #[arg(long, default_value_t = 0.0)]
    hang_ups: f64,
    #[arg(long, default_value_t = 18)]
    seed: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The gateway child, killed when dropped.
struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_gateway(a: &Args, local: u16, fallback: u16, log: &str) -> Result<Gateway, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(log).map_err(|e| format!("{log}: {e}"))?;
    let mut cmd = Command::new(&a.bin);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    if let Some(p) = &a.policy {
        cmd.args(["--policy", p]);
    }
    let child = cmd
        .env(
            "TIERGATE_LOCAL_BASE_URL",
            format!("http://127.0.0.1:{local}/v1"),
        )
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{fallback}/v1"))
        .env("OPENAI_API_KEY", "sk-bench-upstream")
        .env_remove("ANTHROPIC_API_KEY")
        .env("TIERGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", a.bin))?;
    let gw = Gateway {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let c = drive::client();
    for _ in 0..100 {
        let req = http::Request::get(format!("{}/healthz", gw.url))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .map_err(|e| e.to_string())?;
        if c.request(req).await.is_ok_and(|r| r.status() == 200) {
            return Ok(gw);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the gateway did not answer /healthz within 10 s".into())
}

/// Sums of `name`'s samples on the gateway's /metrics, by the value of `label`.
async fn metric_by(gw: &Gateway, name: &str, label: &str) -> Vec<(String, f64)> {
    let c = drive::client();
    let Ok(req) = http::Request::get(format!("{}/metrics", gw.url))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
    else {
        return Vec::new();
    };
    let Ok(resp) = c.request(req).await else {
        return Vec::new();
    };
    use http_body_util::BodyExt;
    let Ok(body) = resp.into_body().collect().await else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&body.to_bytes()).to_string();
    let mut out: Vec<(String, f64)> = Vec::new();
    let key = format!("{label}=\"");
    for line in text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
    {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = series
            .split(&key)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let v: f64 = v.parse().unwrap_or(0.0);
        match out.iter_mut().find(|(k, _)| *k == value) {
            Some((_, s)) => *s += v,
            None => out.push((value, v)),
        }
    }
    out
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// Ids whose stream local broke off after its first event: not rescuable.
fn unrescuable(local: &mock::Mock) -> HashSet<String> {
    local
        .met
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(_, met)| met.stream && met.faults.contains(&Fault::Truncate))
                .map(|(id, _)| id.clone())
                .collect()
        })
        .unwrap_or_default()
}

async fn faults(a: &Args, gw: &Gateway, local: &mock::Mock, fallback: &mock::Mock) -> bool {
    let tally = Arc::new(Tally::default());
    let url: Arc<str> = format!("{}/v1/chat/completions", gw.url).into();
    let t0 = Instant::now();
    let records = drive::run(
        url,
        Some(a.requests),
        None,
        a.concurrency,
        a.timeout,
        0.0,
        tally.clone(),
        true,
    )
    .await;
    let wall = t0.elapsed();
    let lost = unrescuable(local);
    let n = records.len() as u64;
    let answered = records
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Timeout | Outcome::Transport))
        .count() as u64;
    let rescuable: Vec<_> = records.iter().filter(|r| !lost.contains(&r.id)).collect();
    let rescued = rescuable
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count() as u64;
    let malformed = tally.get(Outcome::Malformed);
    let mut took: Vec<u128> = records.iter().map(|r| r.took.as_millis()).collect();
    took.sort_unstable();
    let q = |p: f64| {
        took.get(((took.len() as f64 * p) as usize).min(took.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mut met = [0u64; 4];
    if let Ok(m) = local.met.lock() {
        for f in m.values().flat_map(|m| &m.faults) {
            met[*f as usize] += 1;
        }
    }
    println!(
        "faults: {n} requests at c={} ({} streamed), client timeout {:?}, {:.1} s",
        a.concurrency,
        records.iter().filter(|r| r.stream).count(),
        a.timeout,
        wall.as_secs_f64()
    );
    println!(
        "  local: {} attempts; injected 500 {}, hang {}, reset {}, truncate {}; fallback: {} attempts",
        local.attempts.load(std::sync::atomic::Ordering::Relaxed),
        met[0],
        met[1],
        met[2],
        met[3],
        fallback.attempts.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("  answered within {:?}: {answered} of {n}", a.timeout);
    for r in records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Timeout | Outcome::Transport))
    {
        println!(
            "    no answer: {} ({:?}, stream {})",
            r.id, r.outcome, r.stream
        );
    }
    println!(
        "  success: {} of {n}; rescuable {}: {rescued} succeeded ({:.2}%); not rescuable (stream cut after its first event): {}",
        tally.get(Outcome::Success),
        rescuable.len(),
        pct(rescued, rescuable.len() as u64),
        n - rescuable.len() as u64
    );
    for r in rescuable.iter().filter(|r| r.outcome != Outcome::Success) {
        println!(
            "    rescuable, not rescued: {} ({:?}, stream {}, {} ms)",
            r.id,
            r.outcome,
            r.stream,
            r.took.as_millis()
        );
    }
    println!(
        "  errors {}, malformed {malformed}; latency p50 {} ms, p99 {} ms, max {} ms",
        tally.get(Outcome::Error),
        q(0.5),
        q(0.99),
        took.last().copied().unwrap_or(0)
    );
    println!(
        "  hedges {:?}; fallbacks {:?}",
        metric_by(gw, "tiergate_hedges_total", "outcome").await,
        metric_by(gw, "tiergate_fallbacks_total", "reason").await
    );
    let ok = answered == n && malformed == 0 && pct(rescued, rescuable.len() as u64) >= 99.5;
    println!(
        "{{\"bench\":\"faults\",\"requests\":{n},\"answered\":{answered},\"rescuable\":{},\"rescued\":{rescued},\"malformed\":{malformed},\"p99_ms\":{},\"max_ms\":{},\"pass\":{ok}}}",
        rescuable.len(),
        q(0.99),
        took.last().copied().unwrap_or(0)
    );
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}

async fn soak(a: &Args, gw: &Gateway, local: &mock::Mock, fallback: &mock::Mock) -> bool {
    let pid = gw.child.id();
    let ports = [local.addr.port(), fallback.addr.port()];
    let tally = Arc::new(Tally::default());
    let url: Arc<str> = format!("{}/v1/chat/completions", gw.url).into();
    let start = Instant::now();
    let until = start + a.duration;
    let load = tokio::spawn(drive::run(
        url,
        None,
        Some(until),
        a.concurrency,
        a.timeout,
        a.hang_ups,
        tally.clone(),
        false,
    ));
    let before = sample::take(pid, &ports);
    println!(
        "soak: {:?} at c={} (half streamed), hang-ups {:.1}%, local faults {:.2}%; idle: RSS {:.1} MiB, {} fds",
        a.duration,
        a.concurrency,
        a.hang_ups * 100.0,
        (a.fail + a.hang + a.reset + a.truncate) * 100.0,
        before.rss_kib as f64 / 1024.0,
        before.fds
    );
    println!(
        "  {:>5} {:>9} {:>8} {:>8} {:>5} {:>6} {:>7}",
        "t s", "requests", "req/s", "RSS MiB", "fds", "up conn", "failed"
    );
    let mut samples = Vec::new();
    let mut last = (0u64, Instant::now());
    while Instant::now() + a.every / 2 < until {
        tokio::time::sleep(a.every.min(until.saturating_duration_since(Instant::now()))).await;
        let s = sample::take(pid, &ports);
        let done = tally.total();
        let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
        last = (done, Instant::now());
        let failed = done - tally.get(Outcome::Success) - tally.get(Outcome::HungUp);
        let t = start.elapsed();
        println!(
            "  {:>5} {done:>9} {rate:>8.0} {:>8.2} {:>5} {:>6} {failed:>7}",
            t.as_secs(),
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.upstream_conns
        );
        samples.push((t, s));
    }
    let records = load.await.unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = sample::take(pid, &ports);
    let steady: Vec<_> = samples
        .iter()
        .filter(|(t, _)| *t >= a.warmup)
        .map(|(_, s)| *s)
        .collect();
    let range = |f: fn(&sample::Sample) -> u64| {
        let v = steady.iter().map(f);
        v.clone().max().unwrap_or(0) - v.min().unwrap_or(0)
    };
    let rss_range = range(|s| s.rss_kib);
    let lost = unrescuable(local);
    let unexplained: Vec<_> = records
        .iter()
        .filter(|r| !(r.outcome == Outcome::Error && lost.contains(&r.id)))
        .collect();
    let total = tally.total();
    println!(
        "  {total} requests in {:.0} s ({:.0}/s): success {}, hung up {}, errors {}, malformed {}, timeouts {}, transport {}",
        start.elapsed().as_secs_f64(),
        total as f64 / start.elapsed().as_secs_f64(),
        tally.get(Outcome::Success),
        tally.get(Outcome::HungUp),
        tally.get(Outcome::Error),
        tally.get(Outcome::Malformed),
        tally.get(Outcome::Timeout),
        tally.get(Outcome::Transport)
    );
    println!(
        "  local attempts {}, faults met by {} requests ({} streams cut after their first event); fallback attempts {}",
        local.attempts.load(std::sync::atomic::Ordering::Relaxed),
        local.met.lock().map(|m| m.len()).unwrap_or(0),
        lost.len(),
        fallback.attempts.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "  after warm-up ({:?}, {} samples): RSS range {:.2} MiB, fds range {}, upstream connections range {}; 3 s after the load: RSS {:.1} MiB, {} fds, {} upstream connections",
        a.warmup,
        steady.len(),
        rss_range as f64 / 1024.0,
        range(|s| s.fds),
        range(|s| s.upstream_conns),
        after.rss_kib as f64 / 1024.0,
        after.fds,
        after.upstream_conns
    );
    for r in unexplained.iter().take(10) {
        println!(
            "    beyond the injected: {} ({:?}, stream {})",
            r.id, r.outcome, r.stream
        );
    }
    println!("  errors beyond the injected faults: {}", unexplained.len());
    println!(
        "  hedges {:?}; stream errors {:?}",
        metric_by(gw, "tiergate_hedges_total", "outcome").await,
        metric_by(gw, "tiergate_stream_errors_total", "reason").await
    );
    let ok = rss_range <= 2048 && unexplained.is_empty() && !steady.is_empty();
    println!(
        "{{\"bench\":\"soak\",\"requests\":{total},\"rss_range_kib\":{rss_range},\"fds_range\":{},\"conns_range\":{},\"beyond_injected\":{},\"pass\":{ok}}}",
        range(|s| s.fds),
        range(|s| s.upstream_conns),
        unexplained.len()
    );
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}

#[tokio::main]
async fn main() {
    let a = Args::parse();
    let mix = Mix {
        status500: a.fail,
        hang: a.hang,
        reset: a.reset,
        truncate: a.truncate,
    };
    // A local model answers sooner than a frontier API; both stream in small chunks.
    let local_pace = Pace {
        first_byte: Duration::from_millis(30),
        between_chunks: Duration::from_millis(5),
    };
    let fallback_pace = Pace {
        first_byte: Duration::from_millis(80),
        between_chunks: Duration::from_millis(3),
    };
    let keep_all = a.mode == Mode::Faults;
    let (Ok(local), Ok(fallback)) = (
        mock::start(mix, local_pace, a.seed, keep_all).await,
        mock::start(Mix::default(), fallback_pace, a.seed, false).await,
    ) else {
        eprintln!("cannot start the mock upstreams");
        std::process::exit(2);
    };
    let log = std::env::temp_dir().join(format!("tiergate-load-{}.log", std::process::id()));
    let log = log.to_string_lossy().to_string();
    let gw = match start_gateway(&a, local.addr.port(), fallback.addr.port(), &log).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let ok = match a.mode {
        Mode::Faults => faults(&a, &gw, &local, &fallback).await,
        Mode::Soak => soak(&a, &gw, &local, &fallback).await,
    };
    drop(gw);
    let _ = std::fs::remove_file(&log);
    std::process::exit(if ok { 0 } else { 1 });
}
