//! `tiergate demo`: the whole product on one machine with nothing installed. Simulated
//! upstreams on 127.0.0.1 (`simulator`), the real gateway in front of them with the default
//! policy pointed at them, a built-in workload (`workload`) and a summary read from the
//! gateway's own metrics (`report`).

pub mod report;
pub mod simulator;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::app::{App, Runtime};
use crate::config;
use crate::http::{HEADER_TIER, HEADER_UPSTREAM};
use simulator::{Profile, Simulator};

#[derive(Debug, Clone)]
pub struct Options {
    /// Send this many requests, print the summary and exit; None: keep serving.
    pub requests: Option<usize>,
    /// The gateway's address (default: a free port with --requests, else 127.0.0.1:8080).
    pub listen: Option<String>,
    /// Requests in flight at once during a --requests run.
    pub concurrency: usize,
    /// While serving: keep a light background workload running so the live page moves.
    pub background: bool,
}

/// The three simulated upstreams.
pub struct Upstreams {
    pub local: Simulator,
    pub openai: Simulator,
    pub anthropic: Simulator,
}

impl Upstreams {
    pub async fn start() -> std::io::Result<Upstreams> {
        Ok(Upstreams {
            local: Simulator::start(Profile::local_qwen()).await?,
            openai: Simulator::start(Profile::openai()).await?,
            anthropic: Simulator::start(Profile::anthropic()).await?,
        })
    }

    /// The environment the default policy reads, pointed at the simulators with dummy keys.
    /// Nothing comes from the process environment: a real key is never used by the demo.
    pub fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |name| match name {
            "TIERGATE_LOCAL_BASE_URL" => Some(self.local.base_url()),
            "TIERGATE_LOCAL_MODEL" => Some(self.local.profile.model.to_string()),
            "OPENAI_BASE_URL" => Some(self.openai.base_url()),
            "OPENAI_API_KEY" => Some("sk-demo-not-a-key".into()),
            "TIERGATE_OPENAI_MODEL" => Some(self.openai.profile.model.to_string()),
            "ANTHROPIC_BASE_URL" => Some(self.anthropic.base_url()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-demo-not-a-key".into()),
            "TIERGATE_ANTHROPIC_MODEL" => Some(self.anthropic.profile.model.to_string()),
            _ => None,
        }
    }

    /// The default policy, compiled against `env`.
    pub fn runtime(&self) -> Result<Runtime, String> {
        let policy = config::parse(
            config::DEFAULT_POLICY_NAME,
            config::DEFAULT_POLICY,
            self.env(),
        )
        .map_err(|e| e.to_string())?;
        Runtime::new(policy)
    }
}

/// What the workload saw of one answer (for the progress line; the summary reads metrics).
struct Seen {
    status: u16,
    tier: String,
    upstream: String,
    elapsed: Duration,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn send(client: &HttpClient, base: &str, r: &workload::Request) -> Result<Seen, String> {
    let started = Instant::now();
    let mut b = http::Request::post(format!("{base}{}", r.path));
    for (k, v) in &r.headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::from(r.body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string()
    };
    let (tier, upstream) = (header(HEADER_TIER), header(HEADER_UPSTREAM));
    let status = resp.status().as_u16();
    // Read it all, streams included, as a client does.
    resp.into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Seen {
        status,
        tier,
        upstream,
        elapsed: started.elapsed(),
    })
}

/// Progress of a run, shared by the workers.
#[derive(Default)]
struct Progress {
    done: AtomicUsize,
    failed: AtomicUsize,
    agreed: AtomicUsize,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(line.as_bytes());
    let _ = o.flush();
}

fn progress_line(
    n: usize,
    total: Option<usize>,
    p: &Progress,
    r: &workload::Request,
    s: &Seen,
) -> String {
    let of = total.map_or(String::new(), |t| format!("/{t}"));
    format!(
        "[{n:>3}{of}] {:<12} -> {:<12} {:<9} {:>4} {:>6.2} s   (failed so far: {})",
        r.client.label(),
        s.tier,
        s.upstream,
        s.status,
        s.elapsed.as_secs_f64(),
        p.failed.load(Ordering::Relaxed)
    )
}

/// Runs the demo; returns when the requests are done (or, when serving, on Ctrl-C).
pub async fn run(opts: Options) -> Result<(), String> {
    let ups = Upstreams::start()
        .await
        .map_err(|e| format!("cannot start the simulated upstreams: {e}"))?;
    let app = App::new(ups.runtime()?);
    let listener = bind(&opts).await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(crate::server::serve(
        app.clone(),
        listener,
        async move {
            let _ = stop_rx.changed().await;
        },
        Duration::from_secs(5),
    ));
    out(&format!(
        "tiergate demo: the gateway with the default policy at {base}/v1, in front of simulated upstreams:\n  \
         local     -> {} at {}  (free, slower as load grows)\n  \
         openai    -> {} at {}\n  \
         anthropic -> {} at {}\n  \
         live page: {base}/   (token rates are sped up about 4x; prices are the policy's)\n\n",
        ups.local.profile.name,
        ups.local.base_url(),
        ups.openai.profile.name,
        ups.openai.base_url(),
        ups.anthropic.profile.name,
        ups.anthropic.base_url(),
    ));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    match opts.requests {
        Some(n) => {
            run_batch(&client, &base, n, opts.concurrency.max(1), &progress).await;
            // Streams are accounted when they end; let the last ledger entries land.
            wait_for_count(&app, n as u64).await;
            out(&format!(
                "\n{} requests in {:.1} s; the gateway's choice matched the workload's label for {} of them.\n\n",
                n,
                started.elapsed().as_secs_f64(),
                progress.agreed.load(Ordering::Relaxed)
            ));
        }
        None => {
            out(&format!(
                "Serving until Ctrl-C. Point an IDE or the OpenAI SDK at {base}/v1 (model \"auto\", any key), or try:\n  \
                 curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\\n    \
                 -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Write a regex for ISO dates\"}}]}}'\n{}\n",
                if opts.background {
                    "A light background workload keeps the live page moving (--no-background to stop it).\n"
                } else {
                    ""
                }
            ));
            let background = opts.background.then(|| {
                let (client, base, progress) = (client.clone(), base.clone(), progress.clone());
                tokio::spawn(async move { trickle(&client, &base, &progress).await })
            });
            let _ = tokio::signal::ctrl_c().await;
            if let Some(b) = background {
                b.abort();
            }
            out("\n\n");
        }
    }
    out(
        "Summary, from the gateway's metrics (tiergate_requests_total, tiergate_cost_usd_total,\n\
         tiergate_reference_cost_usd_total, tiergate_request_duration_seconds; p50/p95 estimated from buckets):\n\n",
    );
    out(&report::render(&crate::ui::snapshot(
        &app.runtime.load(),
        &app.metrics,
        &app.recent,
    )));
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

async fn bind(opts: &Options) -> Result<tokio::net::TcpListener, String> {
    let wanted = match (&opts.listen, opts.requests) {
        (Some(l), _) => l.clone(),
        (None, Some(_)) => "127.0.0.1:0".into(),
        (None, None) => "127.0.0.1:8080".into(),
    };
    match tokio::net::TcpListener::bind(&wanted).await {
        Ok(l) => Ok(l),
        // The usual port is taken and the user did not ask for it: any free port will do.
        Err(_) if opts.listen.is_none() => tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1: {e}")),
        Err(e) => Err(format!("cannot listen on {wanted}: {e}")),
    }
}

async fn run_batch(
    client: &HttpClient,
    base: &str,
    n: usize,
    concurrency: usize,
    p: &Arc<Progress>,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let tty = std::io::stdout().is_terminal();
    let workers: Vec<_> = (0..concurrency.min(n))
        .map(|_| {
            let (client, base, p, next) =
                (client.clone(), base.to_string(), p.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = workload::request(i);
                    let line = one(&client, &base, &r, &p, Some(n));
                    let line = line.await;
                    if tty {
                        out(&format!("\r\x1b[2K{line}"));
                    } else {
                        out(&format!("{line}\n"));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    if tty {
        out("\n");
    }
}

/// Sends one request and returns its progress line.
async fn one(
    client: &HttpClient,
    base: &str,
    r: &workload::Request,
    p: &Progress,
    total: Option<usize>,
) -> String {
    let seen = send(client, base, r).await;
    let n = p.done.fetch_add(1, Ordering::Relaxed) + 1;
    match seen {
        Ok(s) => {
            if !(200..300).contains(&s.status) {
                p.failed.fetch_add(1, Ordering::Relaxed);
            }
            if s.tier == r.expect.tier() {
                p.agreed.fetch_add(1, Ordering::Relaxed);
            }
            progress_line(n, total, p, r, &s)
        }
        Err(e) => {
            p.failed.fetch_add(1, Ordering::Relaxed);
            format!("[{n:>3}] {:<12} failed: {e}", r.client.label())
        }
    }
}

/// The background workload while serving: one request every second or two, overlapping.
async fn trickle(client: &HttpClient, base: &str, p: &Arc<Progress>) {
    let tty = std::io::stdout().is_terminal();
    for i in 0.. {
        let (client, base, p2) = (client.clone(), base.to_string(), p.clone());
        tokio::spawn(async move {
            let r = workload::request(i);
            let line = one(&client, &base, &r, &p2, None).await;
            if tty {
                out(&format!("\r\x1b[2Kbackground {line}"));
            }
        });
        let pause = 800 + fastrand::u64(..1400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Waits (briefly) until the gateway has accounted `n` requests.
async fn wait_for_count(app: &App, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while crate::ui::snapshot(&app.runtime.load(), &app.metrics, &app.recent)
        .totals
        .requests
        < n
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_default_policy_points_at_the_simulators_with_every_upstream_enabled() {
        let ups = Upstreams::start().await.unwrap();
        let rt = ups.runtime().unwrap();
        let p = &rt.policy;
        assert!(
            p.upstreams.iter().all(|u| u.is_enabled()),
            "{:?}",
            p.warnings()
        );
        let local = &p.upstreams[p.upstream_index("local").unwrap()];
        assert_eq!(local.base_url, ups.local.base_url());
        let anthropic = &p.upstreams[p.upstream_index("anthropic").unwrap()];
        assert_eq!(anthropic.base_url, ups.anthropic.base_url());
        assert_eq!(p.reference_upstream, p.upstream_index("anthropic"));
    }
}
