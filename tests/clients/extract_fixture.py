#!/usr/bin/env python3
"""Stores the first requests a client sent (recorded by mock.py) as test fixtures.

    extract_fixture.py REQUESTS.jsonl OUT_DIR NAME

NAME.json: the first main request (the first POST that offers tools; for a client that
offers none, the first POST). NAME-side.json: a POST sent before it (a side call such as
opencode's title request), if any. Each file holds the path, the user agent, the headers
(the mock keeps no auth header) and the whole body.
"""
import json
import os
import sys

src, out, name = sys.argv[1:4]
posts = []
with open(src) as f:
    for line in f:
        r = json.loads(line)
        if r["method"] == "POST" and isinstance(r.get("body"), dict) and not r["path"].endswith("count_tokens"):
            posts.append(r)
if not posts:
    sys.exit(f"{name}: no POST recorded")
main = next((i for i, r in enumerate(posts) if r["body"].get("tools")), 0)
os.makedirs(out, exist_ok=True)


def save(r, path):
    keep = {k: r[k] for k in ("method", "path", "user_agent", "headers", "body")}
    with open(path, "w") as f:
        json.dump(keep, f, indent=1, ensure_ascii=False)
        f.write("\n")


save(posts[main], os.path.join(out, name + ".json"))
if main > 0:
    save(posts[0], os.path.join(out, name + "-side.json"))
print(f"{name}: main request {posts[main]['path']} ({len(json.dumps(posts[main]['body']))} bytes)"
      + (", side call before it" if main > 0 else ""))
