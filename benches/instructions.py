#!/usr/bin/env python3
"""Helpers of benches/instructions.sh: a fixed-count keep-alive load driver, a readiness wait,
and the per-request, per-stage report of a callgrind dump."""

import argparse
import http.client
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request

# Stages of a request, by the functions that do them (Rust symbol names, before and after the
# pipeline refactor), first match wins. A function no stage names is shared among the stages of
# its callers in proportion to what their calls into it cost (as gprof does); what is left is
# `http`: hyper's server side, tokio, and the glue inlined into the request's future.
STAGES = [
    ("govern", [r"tiergate::govern::", r"tiergate::secrets::", r"^aho_corasick::",
                r"^<aho_corasick::", r"^sha2::", r"^<sha2::", r"^subtle::"]),
    ("log", [r"^tracing_core::", r"^tracing_subscriber::", r"^<tracing_subscriber::",
             r"^<tracing_core::", r"tiergate::logging::", r"tiergate::logfields::"]),
    ("parse", [r"tiergate::proxy::parse::", r"RequestHead::parse", r"tiergate::proxy::read_body",
               r"ClientHeaders::of", r"tiergate::clients::kind", r"tiergate::http::request_id",
               r"record::Origin::new", r"client_betas", r"header_tier"]),
    ("classify", [r"tiergate::routing::", r"tiergate::ui::recent::Note::of"]),
    ("repair", [r"tiergate::proxy::local::", r"tiergate::local::"]),
    ("forward", [r"tiergate::proxy::forward::", r"tiergate::proxy::plan::", r"tiergate::provider::",
                 r"tiergate::proxy::outgoing", r"rewrite_body", r"tiergate::proxy::deadline::",
                 r"hyper_util::client::", r"hyper::client::", r"role::Client",
                 r"tiergate::proxy::anthropic::chat_translation"]),
    ("account", [r"tiergate::proxy::record::", r"tiergate::proxy::stream::",
                 r"tiergate::proxy::respond::", r"tiergate::proxy::translated::",
                 r"tiergate::protocol::scan::", r"usage_of", r"tiergate::protocol::sse::",
                 r"tiergate::metrics::", r"prometheus::", r"tiergate::ui::recent::Recent"]),
]
ROOT = "http"


def drive(args):
    body = json.load(open(args.body))
    body["model"] = args.model
    payload = json.dumps(body).encode()
    u = urllib.parse.urlsplit(args.url)
    left = [args.n]
    lock = threading.Lock()
    errors = []

    def take():
        with lock:
            if left[0] == 0:
                return False
            left[0] -= 1
            return True

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
        while take():
            conn.request("POST", u.path, payload, {
                "content-type": "application/json", "authorization": f"Bearer {args.key}"})
            r = conn.getresponse()
            data = r.read()
            ok = r.status == 200 and (
                data.rstrip().endswith(b"data: [DONE]") if args.stream
                else b'"chat.completion"' in data)
            if not ok:
                with lock:
                    errors.append((r.status, data[:200]))
        conn.close()

    start = time.time()
    threads = [threading.Thread(target=worker) for _ in range(args.c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"drive: {len(errors)} bad answers, first: {errors[0]}")
    print(f"drive: {args.n} {'streamed' if args.stream else 'whole'} requests in "
          f"{time.time() - start:.1f} s", file=sys.stderr)


def wait(args):
    deadline = time.time() + args.seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(args.url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"wait: {args.url} not ready within {args.seconds} s")


def parse_callgrind(path):
    """Exclusive cost per function and inclusive cost per call edge (first event: Ir)."""
    names = {"fn": {}}
    excl, edges = {}, {}
    fn = cfn = None
    in_call = False
    total = None

    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?", rest)
        if not m:
            return rest
        table = names.setdefault(kind, {})
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), m.group(1))

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    edges[(fn, cfn)] = edges.get((fn, cfn), 0) + ir
                    in_call = False
                else:
                    excl[fn] = excl.get(fn, 0) + ir
            elif line.startswith("fn="):
                fn = name("fn", line[3:])
            elif line.startswith("cfn="):
                cfn = name("fn", line[4:])
            elif line.startswith("calls="):
                in_call = True
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        total = sum(excl.values())
    return total, excl, edges


def stage_of(fn, compiled):
    for stage, pats in compiled:
        if any(p.search(fn) for p in pats):
            return stage
    return None


def attribute(excl, edges):
    """Exclusive cost per stage: named functions to their stage, the others shared among
    their callers' stages by call cost, iterated to a fixed point."""
    compiled = [(s, [re.compile(p) for p in pats]) for s, pats in STAGES]
    names = [s for s, _ in STAGES] + [ROOT]
    fns = set(excl) | {f for e in edges for f in e}
    own = {f: stage_of(f, compiled) for f in fns}
    callers = {}
    for (caller, callee), ir in edges.items():
        if caller != callee and own[callee] is None:
            callers.setdefault(callee, []).append((caller, ir))
    share = {f: {own[f] or ROOT: 1.0} for f in fns}
    for _ in range(60):
        new = {}
        for f in fns:
            if own[f] is not None or f not in callers:
                new[f] = share[f]
                continue
            acc, weight = {}, 0
            for c, ir in callers[f]:
                for s, w in share[c].items():
                    acc[s] = acc.get(s, 0) + w * ir
                weight += ir
            new[f] = {s: v / weight for s, v in acc.items()} if weight else {ROOT: 1.0}
        share = new
    cost = {s: 0.0 for s in names}
    for f, ir in excl.items():
        for s, w in share[f].items():
            cost[s] += w * ir
    return cost, share


def report(args):
    total, excl, edges = parse_callgrind(args.file)
    cost, share = attribute(excl, edges)
    n = args.n
    row = {"name": args.name, "mode": args.mode, "requests": n, "total": round(total / n)}
    row.update({s: round(v / n) for s, v in cost.items()})
    print(json.dumps(row))
    if args.top:
        top = sorted(excl.items(), key=lambda kv: -kv[1])[: args.top]
        for f, ir in top:
            main = max(share[f].items(), key=lambda kv: kv[1])[0]
            print(f"  {ir / n:10.0f}  {main:8}  {f[:150]}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--url", required=True)
    d.add_argument("--body", required=True)
    d.add_argument("--model", default="local")
    d.add_argument("-n", type=int, default=2000)
    d.add_argument("-c", type=int, default=8)
    d.add_argument("--stream", action="store_true")
    d.add_argument("--key", default="sk-bench-1234")
    w = sub.add_parser("wait")
    w.add_argument("--url", required=True)
    w.add_argument("--seconds", type=float, default=60)
    r = sub.add_parser("report")
    r.add_argument("--file", required=True)
    r.add_argument("-n", type=int, required=True)
    r.add_argument("--name", default="tiergate")
    r.add_argument("--mode", default="")
    r.add_argument("--top", type=int, default=0)
    a = p.parse_args()
    {"drive": drive, "wait": wait, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
