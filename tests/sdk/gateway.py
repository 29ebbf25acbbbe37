"""Starts the real tiergate binary on 127.0.0.1:0 with a policy pointing at given upstreams."""
import os
import re
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TIERGATE_BIN", os.path.join(ROOT, "target", "debug", "tiergate"))

POLICY = """
upstreams:
  - name: local
    kind: openai
    base_url: {local}
    key_required: false
    model: qwen-mock
  - name: frontier
    kind: openai
    base_url: {frontier}
    api_key: sk-upstream-frontier
    model: frontier-mock
    price: {{ input_per_mtok: 3, output_per_mtok: 15 }}
tiers:
  - name: primitive
    upstreams: [local, frontier]
  - name: architecture
    upstreams: [frontier]
reference_upstream: frontier
"""


class Gateway:
    def __init__(self, local, frontier, policy_text=POLICY):
        self.dir = tempfile.mkdtemp(prefix="tiergate-sdk-")
        policy = os.path.join(self.dir, "policy.yaml")
        with open(policy, "w") as f:
            f.write(policy_text.format(local=local, frontier=frontier))
        self.log = open(os.path.join(self.dir, "gateway.log"), "w+")
        self.proc = subprocess.Popen([BIN, "serve", "--policy", policy, "--listen", "127.0.0.1:0"],
                                     stdout=self.log, stderr=self.log)
        self.base = None
        deadline = time.time() + 20
        while time.time() < deadline and self.base is None:
            self.log.seek(0)
            m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read())
            if m:
                self.base = m.group(1)
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.05)
        if self.base is None:
            self.proc.kill()
            self.proc.wait(10)
            self.log.seek(0)
            raise RuntimeError("tiergate did not start:\n" + self.log.read())

    def metrics(self):
        return urllib.request.urlopen(self.base + "/metrics").read().decode()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
