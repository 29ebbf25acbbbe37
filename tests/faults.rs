//! Fault injection: a local upstream that fails (500), rate-limits (429), hangs, resets
//! connections, truncates streams and stalls mid-stream at set rates, with a healthy
//! frontier fallback; a few hundred concurrent requests, streaming and not. Every request
//! must end in a complete answer or a well-formed error (an OpenAI JSON error, or a stream
//! whose last event is an error event), none lost or malformed, and at least 99% answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::spec::{MockSpec, chat_body, metric_sum, sse_data, upstream_yaml};
use common::{Gateway, MockUpstream, Reply};
use http_body_util::BodyExt;
use serde_json::Value;

const REQUESTS: usize = 400;
const CONCURRENCY: usize = 100;

/// What the faulty upstream does with its attempt number `n`: a fixed pseudo-random draw
/// per `n`, so the rates hold and runs are comparable: 15% 500, 10% 429, 5% hang, 10%
/// reset, and for streams 2% truncated before the first event, 0.5% truncated and 0.5%
/// stalled after it. Faults after the first event cannot be undone (the client has bytes):
/// they must end in an error event, and are why the bar is 99% and not 100% (with these
/// seeds, 4 of the first 500 attempts are such faults: 78, 196, 375 and 411, and 14 are
/// truncations before the first event, which must all fall back).
fn fault(n: usize, spec: &MockSpec, r: &common::Received) -> Reply {
    let error = |status: u16| {
        Reply::Json(
            status,
            serde_json::json!({"error": {"message": "mock fault", "type": "server_error", "param": null, "code": null}}),
        )
    };
    let good = || spec.reply(r);
    let events = || match spec.reply(r) {
        Reply::Sse(ev) => ev.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        _ => vec!["data: {\"choices\":[]}\n\n".to_string()],
    };
    let stream = serde_json::from_slice::<Value>(&r.body).is_ok_and(|b| b["stream"] == true);
    match fastrand::Rng::with_seed(n as u64).usize(0..1000) {
        // Stream faults hit streams; a whole answer is not cut here.
        400..430 if !stream => good(),
        0..150 => error(500),
        150..250 => error(429),
        250..300 => Reply::Delay(Duration::from_secs(10), Box::new(good())),
        300..400 => Reply::Reset,
        // Truncated before the first event (half an event, then the connection breaks).
        400..420 => Reply::Truncated(vec!["data: {\"id\":\"x\",\"choi".into()]),
        // Truncated after two events and half of a third.
        420..425 => {
            let mut ev = events();
            ev.truncate(2);
            ev.push("data: {\"choices\":[{\"delta\":{\"con".into());
            Reply::Truncated(ev)
        }
        // Stalls after two events, longer than the idle timeout.
        425..430 => Reply::Sse(
            events()
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    let wait = if i == 2 {
                        Duration::from_secs(3)
                    } else {
                        Duration::ZERO
                    };
                    (wait, e)
                })
                .collect(),
        ),
        _ => good(),
    }
}

#[derive(Debug, Default)]
struct Counts {
    answered: usize,
    json_errors: usize,
    stream_errors: usize,
    malformed: Vec<String>,
    lost: Vec<String>,
}

fn is_openai_error(v: &Value) -> bool {
    v["error"]["message"].is_string() && v["error"]["type"].is_string()
}

/// Sorts one response into answered, well-formed error, or malformed.
fn judge(stream: bool, status: u16, body: &[u8], c: &mut Counts) {
    let text = String::from_utf8_lossy(body).into_owned();
    if status != 200 {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if is_openai_error(&v) => c.json_errors += 1,
            _ => c.malformed.push(format!("{status}: {text}")),
        }
        return;
    }
    if !stream {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) if v["choices"][0]["message"]["content"] == "Hello, world" => c.answered += 1,
            _ => c.malformed.push(format!("200: {text}")),
        }
        return;
    }
    // Every event whole and well-formed; the last one [DONE] or an error.
    if !text.ends_with("\n\n") {
        c.malformed
            .push(format!("stream not ended on an event boundary: {text}"));
        return;
    }
    let data = sse_data(body);
    let Some((last, rest)) = data.split_last() else {
        c.malformed.push(format!("empty stream: {text}"));
        return;
    };
    let mut content = String::new();
    for d in rest {
        match serde_json::from_str::<Value>(d) {
            Ok(v) if v["choices"].is_array() => {
                content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
            }
            _ => {
                c.malformed.push(format!("bad event {d:?} in {text}"));
                return;
            }
        }
    }
    if last == "[DONE]" && content == "Hello, world" {
        c.answered += 1;
    } else if serde_json::from_str::<Value>(last).is_ok_and(|v| is_openai_error(&v)) {
        c.stream_errors += 1;
    } else {
        c.malformed.push(format!("stream ended badly: {text}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_an_answer_or_a_well_formed_error_under_faults() {
    let spec = MockSpec::new();
    let n = Arc::new(AtomicUsize::new(0));
    let local = {
        let (spec, n) = (spec.clone(), n.clone());
        MockUpstream::start(move |r| fault(n.fetch_add(1, Ordering::Relaxed), &spec, r)).await
    };
    let frontier = spec.clone().start().await;
    let local_yaml = upstream_yaml("local", &local, "{}").replace(
        "timeouts: { connect: 1s, first_byte: 5s, total: 30s }",
        "timeouts: { connect: 1s, first_byte: 300ms, idle: 300ms, total: 5s }\n    retry: { attempts: 1, backoff: 10ms }\n    breaker: { consecutive_failures: 3, error_rate: 0.6, min_requests: 20, window: 10s, cool_down: 100ms }",
    );
    let frontier_yaml = upstream_yaml("frontier", &frontier, "{}").replace(
        "total: 30s }",
        "total: 30s }\n    retry: { attempts: 2, backoff: 10ms }",
    );
    let policy = format!(
        "upstreams:\n{local_yaml}{frontier_yaml}tiers:\n  - name: primitive\n    upstreams: [local, frontier]\n  - name: architecture\n    upstreams: [frontier]\n"
    );
    let gw = Gateway::start(&policy).await;
    let url = gw.url("/v1/chat/completions");
    let client = common::client();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let run = async {
        let mut tasks = Vec::new();
        for i in 0..REQUESTS {
            let (client, url, gate) = (client.clone(), url.clone(), gate.clone());
            let stream = i % 2 == 0;
            tasks.push(tokio::spawn(async move {
                let _slot = gate.acquire().await.unwrap();
                let body = chat_body("primitive", "write a function", stream).to_string();
                let resp = client
                    .request(common::request(&url, body, &[]))
                    .await
                    .map_err(|e| format!("request {i}: {e}"))?;
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("request {i} body: {e}"))?
                    .to_bytes();
                Ok::<_, String>((stream, status, body))
            }));
        }
        let mut c = Counts::default();
        for t in tasks {
            match t.await.unwrap() {
                Ok((stream, status, body)) => judge(stream, status, &body, &mut c),
                Err(e) => c.lost.push(e),
            }
        }
        c
    };
    let c = tokio::time::timeout(Duration::from_secs(25), run)
        .await
        .expect("the fault run took longer than 25 s");
    let m = |name: &str, labels: &[(&str, &str)]| {
        let gw = &gw;
        let name = name.to_string();
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        async move {
            let l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            metric_sum(gw, &name, &l).await.unwrap_or(0.0)
        }
    };
    let faults_sent = n.load(Ordering::Relaxed);
    let fallbacks = m("tiergate_fallbacks_total", &[]).await;
    let retries = m("tiergate_retries_total", &[]).await;
    let opened = m("tiergate_circuit_transitions_total", &[("to", "open")]).await;
    let stream_errors = m("tiergate_stream_errors_total", &[]).await;
    let upstream_errors = m("tiergate_upstream_errors_total", &[("upstream", "local")]).await;
    println!(
        "faults: {REQUESTS} requests ({CONCURRENCY} at once, half streamed): answered {}, \
         JSON errors {}, stream error events {}, malformed {}, lost {}; local saw {faults_sent} \
         attempts ({upstream_errors} failed), fallbacks {fallbacks}, retries {retries}, \
         circuit opened {opened} times, stream errors counted {stream_errors}",
        c.answered,
        c.json_errors,
        c.stream_errors,
        c.malformed.len(),
        c.lost.len()
    );
    assert!(c.lost.is_empty(), "lost: {:?}", c.lost);
    assert!(c.malformed.is_empty(), "malformed: {:?}", c.malformed);
    assert_eq!(
        c.answered + c.json_errors + c.stream_errors,
        REQUESTS,
        "{c:?}"
    );
    assert!(
        c.answered * 100 >= REQUESTS * 99,
        "only {} of {REQUESTS} answered: {c:?}",
        c.answered
    );
    // The faults happened and were handled the ways this test is about.
    assert!(
        upstream_errors >= 20.0 && fallbacks >= 20.0,
        "{upstream_errors} {fallbacks}"
    );
    assert!(retries >= 1.0 && opened >= 1.0, "{retries} {opened}");
    assert_eq!(stream_errors as usize, c.stream_errors);
}
