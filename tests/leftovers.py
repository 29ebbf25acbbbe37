#!/usr/bin/env python3
"""Finds (and with --kill ends) the processes a test run left behind.

A suite exports TIERGATE_TEST_RUN=<a token of its own>; every process it starts inherits the
variable, also daemons that leave their process group or session (cline's hub daemon does).
A process counts as left behind when its environment holds the suite's token, or its working
directory or command line is under one of the DIRs given, and it is neither this script, one
of its children, nor one of its ancestors (the suite itself).

usage: tests/leftovers.py [--kill] [--quiet] [DIR...]
Prints one line per process found ("PID CMDLINE"). Exit 0 when none was found, 1 otherwise
(also with --kill: finding one is the defect, ending it is the cleanup).
"""
import os
import signal
import sys
import time


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def ppid(pid):
    for line in read(f"/proc/{pid}/status").decode(errors="replace").splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def lineage(pid):
    seen = []
    while pid > 0 and pid not in seen:
        seen.append(pid)
        pid = ppid(pid)
    return seen


def cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def found(token, dirs):
    me = os.getpid()
    ancestors = set(lineage(me))
    mark = f"TIERGATE_TEST_RUN={token}".encode() if token else None
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in ancestors or me in lineage(pid):
            continue
        env = read(f"/proc/{pid}/environ").split(b"\0")
        cmd = read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        if not cmd:
            continue  # a kernel thread or a zombie: nothing to end
        where = cwd(pid)
        hit = (mark is not None and mark in env) or any(
            where == d or where.startswith(d + "/") or d + "/" in cmd for d in dirs
        )
        if hit:
            out.append((pid, cmd))
    return out


def main():
    args = sys.argv[1:]
    kill = "--kill" in args
    quiet = "--quiet" in args
    dirs = [os.path.realpath(a) for a in args if not a.startswith("--")]
    token = os.environ.get("TIERGATE_TEST_RUN", "")
    if not token and not dirs:
        print("leftovers.py: neither TIERGATE_TEST_RUN nor a DIR to look for", file=sys.stderr)
        return 2
    left = found(token, dirs)
    if not quiet:
        for pid, cmd in left:
            print(f"{pid} {cmd[:200]}")
    if kill and left:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid, _ in left:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and found(token, dirs):
                time.sleep(0.1)
            if not found(token, dirs):
                break
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
