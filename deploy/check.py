#!/usr/bin/env python3
"""Checks that what deploy/ says about tiergate is what the binary does.

Facts come from the code or the binary, never retyped here: the drain deadline is the
default of `tiergate serve --drain` (from --help), the listen port is the embedded default
policy's server.listen, probe and metrics paths are asked of a running binary, and metric and
label names are scraped from it after real traffic (a mock upstream on 127.0.0.1 and a dead
one, so that fallbacks and upstream errors exist too). Then every rendering is held against
them: the kustomize overlays, the Helm chart (default and values-ha.yaml), the compose stack
and the Dockerfile (whose HEALTHCHECK command is run against the binary).

Usage: deploy/check.py --bin target/release/tiergate --kubectl K --helm H
Prints one line per check and `check: N passed, M failed`; exits 1 on any failure.
`deploy/check.py --sync` rewrites the two copies kustomize needs inside its directory
(base/policy.yaml from policies/default.yaml, base/prometheusrule.yaml from alerts.yml).
"""

import argparse
import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ["single", "ha"]
HELM_VALUES = {"default": [], "ha": ["-f", str(DEPLOY / "helm/tiergate/values-ha.yaml")]}

results = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    results["passed" if ok else "failed"] += 1
    print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else f": {detail}"))
    return ok


def seconds(text):
    """'30s', '1m', '500ms', '1m 30s' (humantime, as clap parses --drain) -> seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)", text)
    if not parts:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the binary's own facts


class MockUpstream(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that answers every chat completion."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


class Gateway:
    """`tiergate serve` on a free port, primitive tier = [dead, ok], in front of the mock."""

    def __init__(self, binary):
        self.mock = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MockUpstream)
        threading.Thread(target=self.mock.serve_forever, daemon=True).start()
        ok_port, dead_port = self.mock.server_address[1], free_port()
        up = ("  - name: {n}\n    kind: openai\n    base_url: \"http://127.0.0.1:{p}/v1\"\n"
              "    key_required: false\n    model: m\n"
              "    timeouts: {{ connect: 1s, first_byte: 5s, total: 10s }}\n    price: {price}\n")
        policy = ("upstreams:\n"
                  + up.format(n="dead", p=dead_port, price="{}")
                  + up.format(n="ok", p=ok_port, price="{ input_per_mtok: 3, output_per_mtok: 15 }")
                  + "tiers:\n  - name: primitive\n    upstreams: [dead, ok]\n"
                  + "  - name: architecture\n    upstreams: [ok]\n")
        self.dir = tempfile.TemporaryDirectory(prefix="tiergate-deploy-check-")
        path = Path(self.dir.name) / "policy.yaml"
        path.write_text(policy)
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--policy", str(path)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env=dict(os.environ, TIERGATE_LOG="info"))
        self.addr = None
        deadline = time.time() + 20
        for line in self.proc.stderr:
            m = re.search(r"listening on http://([0-9.]+:\d+)", line)
            if m:
                self.addr = m.group(1)
                break
            if time.time() > deadline:
                break
        if not self.addr:
            raise SystemExit("tiergate did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.port = int(self.addr.rsplit(":", 1)[1])

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://{self.addr}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def chat(self, tier):
        body = json.dumps({"model": tier, "messages": [{"role": "user", "content": "hi"}]})
        req = urllib.request.Request(f"http://{self.addr}/v1/chat/completions", body.encode(),
                                     {"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.headers.get("x-tiergate-upstream")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.mock.shutdown()
        self.dir.cleanup()


def scrape_names(text):
    """Metric name -> label names seen, from Prometheus text."""
    names = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.setdefault(m.group(1), set())
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m and not line.startswith("#"):
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            names.setdefault(m.group(1), set()).update(labels)
    return names


def binary_facts(binary):
    facts = {}
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True,
                               check=True).stdout
    m = re.search(r"--drain <DRAIN>.*?\[default: ([^\]]+)\]", help_text, re.S)
    check(m is not None, "`tiergate serve --help` shows the --drain default")
    facts["drain"] = seconds(m.group(1)) if m else 30.0
    listen = yaml.safe_load((ROOT / "policies/default.yaml").read_text())["server"]["listen"]
    facts["port"] = int(listen.rsplit(":", 1)[1])
    print(f"     drain deadline {facts['drain']:g} s (binary), port {facts['port']} "
          f"(policies/default.yaml server.listen {listen})")
    gw = Gateway(binary)
    facts["gateway"] = gw
    for _ in range(3):
        status, upstream = gw.chat("primitive")
        check(status == 200 and upstream == "ok", "traffic through the binary falls back dead -> ok",
              f"{status} {upstream}")
    gw.chat("architecture")
    status, text = gw.get("/metrics")
    facts["metrics"] = scrape_names(text) if status == 200 else {}
    check(status == 200 and facts["metrics"], "the binary serves /metrics")
    return facts


# ---------------------------------------------------------------- renderings


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def renderings(kubectl, helm):
    out = {}
    for o in OVERLAYS:
        r = subprocess.run([kubectl, "kustomize", str(DEPLOY / "kubernetes/overlays" / o)],
                           capture_output=True, text=True, check=True)
        out[f"kustomize {o}"] = docs_of(r.stdout)
    for name, extra in HELM_VALUES.items():
        r = subprocess.run([helm, "template", "tiergate", str(DEPLOY / "helm/tiergate"),
                            "--namespace", "tiergate", *extra],
                           capture_output=True, text=True, check=True)
        out[f"helm {name}"] = docs_of(r.stdout)
    return out


def find(docs, kind, pred=lambda d: True):
    return [d for d in docs if d.get("kind") == kind and pred(d)]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def alert_job():
    """The job name the alert rules expect (`up{job="..."}`)."""
    text = (DEPLOY / "prometheus/alerts.yml").read_text()
    m = re.search(r'up\{job="([^"]+)"\}', text)
    return m.group(1) if m else None


def check_kubernetes(name, docs, facts):
    gw, port, drain = facts["gateway"], facts["port"], facts["drain"]
    deps = find(docs, "Deployment", lambda d: any(
        c["name"] == "tiergate" for c in d["spec"]["template"]["spec"]["containers"]))
    if not check(len(deps) == 1, f"{name}: one tiergate Deployment"):
        return
    dep = deps[0]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = next(c for c in spec["containers"] if c["name"] == "tiergate")
    named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(named.get("http") == port, f"{name}: containerPort http is {port}", str(named))
    args = c.get("args", [])
    listen = args[args.index("--listen") + 1] if "--listen" in args else ""
    check(listen.endswith(f":{port}") and not listen.startswith("127."),
          f"{name}: --listen {listen} is the port, on every interface")
    own_drain = seconds(args[args.index("--drain") + 1]) if "--drain" in args else drain

    for probe, want in (("readinessProbe", "ready"), ("livenessProbe", None),
                        ("startupProbe", None)):
        p = c.get(probe, {}).get("httpGet")
        if not check(p is not None, f"{name}: {probe} is an HTTP GET"):
            continue
        status, body = gw.get(p["path"])
        ok = status == 200 and (want is None or json.loads(body).get(want) is True)
        check(ok and p["port"] in ("http", port),
              f"{name}: {probe} GET {p['path']} on port {p['port']} answers 200 from the binary"
              + (" with readiness detail" if want else ""), f"{status} {body[:80]}")
    live = c["livenessProbe"]["httpGet"]["path"]
    check(c["readinessProbe"]["httpGet"]["path"] != live and facts.setdefault("liveness", live) == live,
          f"{name}: readiness and liveness are different endpoints, liveness the same everywhere")

    pre = c.get("lifecycle", {}).get("preStop", {})
    cmd = pre.get("exec", {}).get("command", [])
    sleep = pre.get("sleep", {}).get("seconds")
    if sleep is None and len(cmd) == 2 and cmd[0] == "sleep":
        sleep = float(cmd[1])
    check(sleep is not None, f"{name}: preStop sleeps before SIGTERM", str(pre))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    need = (sleep or 0) + own_drain
    check(need < grace <= need + 15,
          f"{name}: terminationGracePeriodSeconds {grace} covers preStop {sleep} s + drain "
          f"{own_drain:g} s with a margin under 15 s")

    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
          and sc.get("allowPrivilegeEscalation") is False
          and "ALL" in sc.get("capabilities", {}).get("drop", []),
          f"{name}: non-root, read-only root, no privilege escalation, no capabilities")

    # The policy file and the client keys file come from the projected volume.
    policy_path = args[args.index("--policy") + 1] if "--policy" in args else ""
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    files = {}
    for v in spec.get("volumes", []):
        for src in v.get("projected", {}).get("sources", []):
            for kind in ("configMap", "secret"):
                if kind in src:
                    for item in src[kind].get("items", []):
                        files[f"{mounts.get(v['name'])}/{item['path']}"] = (kind, src[kind]["name"], item["key"])
    check(policy_path in files and files[policy_path][0] == "configMap",
          f"{name}: --policy {policy_path} is a ConfigMap item of a mounted projected volume")
    if policy_path in files:
        cm = find(docs, "ConfigMap", lambda d: d["metadata"]["name"] == files[policy_path][1])
        text = cm[0]["data"][files[policy_path][2]] if cm else ""
        check(text == (ROOT / "policies/default.yaml").read_text(),
              f"{name}: the policy ConfigMap holds policies/default.yaml as it is",
              "kustomize cannot read outside its directory: run deploy/check.py --sync")

    env = {}
    for ref in c.get("envFrom", []):
        if "configMapRef" in ref:
            for cm in find(docs, "ConfigMap", lambda d: d["metadata"]["name"] == ref["configMapRef"]["name"]):
                env.update(cm.get("data", {}))
        if "secretRef" in ref:
            check(bool(find(docs, "Secret", lambda d: d["metadata"]["name"] == ref["secretRef"]["name"])),
                  f"{name}: Secret {ref['secretRef']['name']} of the upstream keys exists")
    keys = env.get("TIERGATE_KEYS_FILE", "")
    check(files.get(keys, ("",))[0] == "secret",
          f"{name}: TIERGATE_KEYS_FILE {keys} is a Secret item beside the policy")
    redis_svcs = find(docs, "Service", lambda d: d["spec"].get("ports", [{}])[0].get("port") == 6379)
    url = env.get("TIERGATE_REDIS_URL")
    if redis_svcs:
        host = redis_svcs[0]["metadata"]["name"]
        check(bool(url) and re.match(rf"redis://{re.escape(host)}(\.[a-z0-9.-]+)?:6379/\d+$", url),
              f"{name}: TIERGATE_REDIS_URL {url} names the Redis Service {host}")
        check(bool(find(docs, "HorizontalPodAutoscaler")) and bool(find(docs, "PodDisruptionBudget")),
              f"{name}: several replicas with Redis come with an HPA and a PDB")
    else:
        check(url is None and not find(docs, "HorizontalPodAutoscaler")
              and dep["spec"].get("replicas", 1) == 1,
              f"{name}: without Redis, one replica and no autoscaling (state is in memory)")

    labels = pod["metadata"].get("labels", {})
    check(matches(dep["spec"]["selector"]["matchLabels"], labels),
          f"{name}: the Deployment selects its own pods")
    svcs = find(docs, "Service", lambda d: matches(d["spec"].get("selector"), labels))
    if check(len(svcs) == 1, f"{name}: one Service selects the tiergate pods"):
        svc = svcs[0]
        sport = svc["spec"]["ports"][0]
        check(sport["targetPort"] in ("http", port) and named.get("http") == port,
              f"{name}: Service port {sport['port']} -> container port {port}")
        for sm in find(docs, "ServiceMonitor"):
            sl = svc["metadata"].get("labels", {})
            check(matches(sm["spec"]["selector"]["matchLabels"], sl),
                  f"{name}: the ServiceMonitor selects the tiergate Service")
            ep = sm["spec"]["endpoints"][0]
            status, body = gw.get(ep.get("path", "/metrics"))
            check(ep["port"] in [p.get("name") for p in svc["spec"]["ports"]]
                  and status == 200 and "tiergate_" in body,
                  f"{name}: ServiceMonitor scrapes {ep['port']}{ep.get('path')} where the binary serves metrics")
            job = sl.get(sm["spec"].get("jobLabel", ""), svc["metadata"]["name"])
            check(job == alert_job(), f"{name}: the scrape job is `{job}`, as the alerts expect")
    for np in find(docs, "NetworkPolicy", lambda d: matches(d["spec"]["podSelector"].get("matchLabels"), labels)):
        for rule in np["spec"].get("ingress", []):
            check(all(p["port"] in ("http", port) for p in rule.get("ports", [])),
                  f"{name}: NetworkPolicy {np['metadata']['name']} admits the HTTP port")
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
              and hpa["spec"]["minReplicas"] >= 2,
              f"{name}: the HPA scales the tiergate Deployment, at least 2 replicas")
    for pdb in find(docs, "PodDisruptionBudget", lambda d: matches(d["spec"]["selector"]["matchLabels"], labels)):
        check(pdb["spec"].get("maxUnavailable") == 1, f"{name}: the PDB lets one pod go at a time")

    rules = find(docs, "PrometheusRule")
    alerts = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    if check(len(rules) == 1, f"{name}: one PrometheusRule"):
        check(rules[0]["spec"]["groups"] == alerts["groups"],
              f"{name}: the PrometheusRule is deploy/prometheus/alerts.yml",
              "run deploy/check.py --sync")
        promtool_rules(name, rules[0]["spec"])
    validate_crds(name, [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")])


def promtool_rules(name, spec):
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        yaml.safe_dump(spec, f)
        f.flush()
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: promtool accepts the PrometheusRule's rules", r.stdout + r.stderr)


def validate_crds(name, docs):
    r = subprocess.run(["node", str(DEPLOY / "tools/validate-crds.mjs")], input=json.dumps(docs),
                       capture_output=True, text=True, cwd=DEPLOY / "tools")
    check(r.returncode == 0 and len(docs) == 2,
          f"{name}: ServiceMonitor and PrometheusRule match the Prometheus Operator's CRD schemas",
          r.stderr)


# ---------------------------------------------------------------- alerts, compose, image


def check_metric_names(facts):
    scraped = facts["metrics"]
    text = (DEPLOY / "prometheus/alerts.yml").read_text()
    exprs = [r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    used = {}
    for e in exprs:
        for m in re.finditer(r"\b(tiergate_[a-z0-9_]+)(\{([^}]*)\})?", e):
            used.setdefault(m.group(1), set()).update(
                re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(3) or ""))
        for by in re.findall(r"by \(([^)]*)\)", e):
            for metric in re.findall(r"\b(tiergate_[a-z0-9_]+)", e):
                used[metric].update(x.strip() for x in by.split(",") if x.strip() != "le")
    check(len(used) >= 5, f"alerts.yml uses {len(used)} tiergate metrics")
    for metric, labels in sorted(used.items()):
        have = scraped.get(metric)
        check(have is not None, f"alerts.yml: metric {metric} is served by the binary")
        if have is not None:
            missing = labels - have
            check(not missing, f"alerts.yml: {metric} has labels {sorted(labels)}",
                  f"missing {sorted(missing)}")


def check_compose(facts):
    port, drain = facts["port"], facts["drain"]
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    tg = compose["services"]["tiergate"]
    check(f"{port}:{port}" in tg.get("ports", []), f"compose: tiergate publishes {port}")
    cmd = tg.get("command", [])
    check("--listen" in cmd and cmd[cmd.index("--listen") + 1] == f"0.0.0.0:{port}",
          f"compose: tiergate listens on 0.0.0.0:{port}")
    check(seconds(tg.get("stop_grace_period", "10s")) > drain,
          f"compose: stop_grace_period {tg.get('stop_grace_period')} exceeds the drain deadline")
    policy = cmd[cmd.index("--policy") + 1]
    mounted = [v.split(":") for v in tg.get("volumes", [])]
    src = next(((s, d) for s, d, *_ in mounted if policy.startswith(d + "/")), None)
    check(src is not None and (DEPLOY / "compose" / src[0] / policy[len(src[1]) + 1:]).is_file(),
          f"compose: --policy {policy} is a file of a mounted directory")
    env = tg.get("environment", {})
    check("TIERGATE_REDIS_URL" in env and "redis" in compose["services"]
          and f"//redis:6379" in env["TIERGATE_REDIS_URL"],
          "compose: TIERGATE_REDIS_URL names the redis service")
    check("TIERGATE_KEYS_FILE" in env, "compose: TIERGATE_KEYS_FILE is passed through")
    for svc in ("vllm", "llamacpp"):
        s = compose["services"][svc]
        aliases = s.get("networks", {}).get("default", {}).get("aliases", [])
        host = re.match(r"http://([^:/]+):(\d+)/v1$", env["TIERGATE_LOCAL_BASE_URL"])
        check(host and host.group(1) in aliases and any(f"--port={host.group(2)}" == a for a in s["command"]),
              f"compose: {svc} (profile {s['profiles'][0]}) answers at TIERGATE_LOCAL_BASE_URL")
    check(compose["services"]["vllm"]["profiles"] == ["gpu"]
          and compose["services"]["llamacpp"]["profiles"] == ["cpu"], "compose: profiles gpu and cpu")

    prom = yaml.safe_load((DEPLOY / "compose/prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    check(job["job_name"] == alert_job() and job["static_configs"][0]["targets"] == [f"tiergate:{port}"],
          f"compose: Prometheus scrapes job {alert_job()} at tiergate:{port}")
    pvol = compose["services"]["prometheus"]["volumes"]
    check(any(v.startswith("../prometheus/alerts.yml:/etc/prometheus/alerts.yml") for v in pvol)
          and prom["rule_files"] == ["alerts.yml"], "compose: Prometheus loads deploy/prometheus/alerts.yml")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "prometheus.yml").write_text((DEPLOY / "compose/prometheus.yml").read_text())
        (Path(d) / "alerts.yml").write_text((DEPLOY / "prometheus/alerts.yml").read_text())
        r = subprocess.run(["promtool", "check", "config", f"{d}/prometheus.yml"],
                           capture_output=True, text=True)
    check(r.returncode == 0, "compose: promtool accepts the scrape config with its rules", r.stdout + r.stderr)

    g = compose["services"]["grafana"]
    genv = g["environment"]
    check(genv.get("GF_AUTH_ANONYMOUS_ENABLED") == "true" and genv.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer",
          "compose: Grafana can be viewed without logging in")
    gvol = {d: s for s, d, *_ in (v.split(":") for v in g["volumes"])}
    provider = yaml.safe_load((DEPLOY / "compose" / gvol["/etc/grafana/provisioning/dashboards/tiergate.yaml"]).read_text())
    dash_dir = provider["providers"][0]["options"]["path"]
    check((DEPLOY / "compose" / gvol.get(dash_dir, "/nonexistent") / "tiergate.json").is_file()
          and genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH") == f"{dash_dir}/tiergate.json",
          "compose: Grafana provisions dashboards/tiergate.json, also as its home page")
    ds = yaml.safe_load((DEPLOY / "compose" / gvol["/etc/grafana/provisioning/datasources/tiergate.yaml"]).read_text())
    check(ds["datasources"][0]["url"] == "http://prometheus:9090", "compose: Grafana's datasource is the prometheus service")


def dockerfile_instructions():
    lines, cur = [], ""
    for raw in (DEPLOY / "docker/Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not cur:
            continue
        cur += raw.rstrip("\\").strip() + " " if raw.endswith("\\") else raw.strip()
        if not raw.endswith("\\"):
            if cur:
                lines.append(cur)
            cur = ""
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]


def check_dockerfile(facts):
    port, gw = facts["port"], facts["gateway"]
    ins = dockerfile_instructions()
    get = lambda k: [v for i, v in ins if i == k]
    check(get("EXPOSE") == [str(port)], f"Dockerfile: EXPOSE {port}")
    check(get("STOPSIGNAL") == ["SIGTERM"], "Dockerfile: STOPSIGNAL SIGTERM")
    cmd = json.loads(get("CMD")[-1])
    check(cmd[cmd.index("--listen") + 1] == f"0.0.0.0:{port}", f"Dockerfile: CMD listens on 0.0.0.0:{port}")
    users = get("USER")
    check(bool(users) and not users[-1].startswith(("0", "root")), f"Dockerfile: runs as {users[-1:]}")
    hc = get("HEALTHCHECK")[0]
    probe = json.loads(hc[hc.index("CMD") + 3:].strip())
    script = probe[-1]
    check(f"/dev/tcp/127.0.0.1/{port}" in script, f"Dockerfile: HEALTHCHECK probes port {port}")
    path = re.search(r"GET (\S+) HTTP", script)
    path = path.group(1) if path else None
    check(path is not None and path == facts.get("liveness") and gw.get(path)[0] == 200,
          f"Dockerfile: HEALTHCHECK asks {path}, the Deployment's liveness endpoint, which the binary serves")
    live = subprocess.run(probe[:-1] + [script.replace(f"127.0.0.1/{port}", f"127.0.0.1/{gw.port}")],
                          capture_output=True, timeout=10)
    dead = subprocess.run(probe[:-1] + [script.replace(f"127.0.0.1/{port}", f"127.0.0.1/{free_port()}")],
                          capture_output=True, timeout=10)
    check(live.returncode == 0 and dead.returncode != 0,
          "Dockerfile: the HEALTHCHECK command passes against the binary and fails with nothing listening")
    builds = [re.search(r"cargo build[^&;]*", v).group(0).strip() for v in get("RUN") if "cargo build" in v]
    ci = (ROOT / ".ci/run").read_text()
    check(len(builds) == 1 and re.search(rf"^\s*{re.escape(builds[0])}\s*$", ci, re.M) is not None,
          f"Dockerfile: `{builds[0] if builds else '?'}` is the build .ci/run runs")
    check(shlex.split(builds[0])[:3] == ["cargo", "build", "--locked"] if builds else False,
          "Dockerfile: the build is locked")


def check_readme():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Operating tiergate", 1)[-1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| (Tiergate\w+) \|", section, re.M))
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    check(rows == alerts, "README: the troubleshooting table has a row for each alert, and no other",
          f"missing {sorted(alerts - rows)}, extra {sorted(rows - alerts)}")


RULE_HEADER = """\
# deploy/prometheus/alerts.yml for the Prometheus Operator: the same groups, recording
# rules and alerts (deploy/check.py fails when the two differ; --sync rewrites this file).
# Add the label your Prometheus's ruleSelector wants (e.g. `release: kube-prometheus-stack`)
# in an overlay.
"""


def sync():
    base = DEPLOY / "kubernetes/base"
    (base / "policy.yaml").write_text((ROOT / "policies/default.yaml").read_text())

    class Dumper(yaml.SafeDumper):
        pass

    def text(d, v):
        return d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None)

    Dumper.add_representer(str, text)
    groups = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "tiergate"}, "spec": {"groups": groups}}
    (base / "prometheusrule.yaml").write_text(
        RULE_HEADER + yaml.dump(rule, Dumper=Dumper, sort_keys=False, width=100))
    print(f"wrote {base / 'policy.yaml'} and {base / 'prometheusrule.yaml'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sync", action="store_true", help="rewrite the kustomize copies and exit")
    ap.add_argument("--bin")
    ap.add_argument("--kubectl", default="kubectl")
    ap.add_argument("--helm", default="helm")
    a = ap.parse_args()
    if a.sync:
        sync()
        return 0
    if not a.bin:
        ap.error("--bin is required")
    facts = binary_facts(a.bin)
    try:
        check_metric_names(facts)
        for name, docs in renderings(a.kubectl, a.helm).items():
            check_kubernetes(name, docs, facts)
        check_compose(facts)
        check_dockerfile(facts)
        check_readme()
    finally:
        facts["gateway"].close()
    print(f"check: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
