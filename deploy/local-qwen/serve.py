"""Runs llama.cpp's HTTP server (embedded in the xllamacpp wheel) until SIGTERM/SIGINT.

usage: serve.py MODEL PORT ALIAS N_CTX THREADS N_PARALLEL
The server thread lives inside this process, so this process's PID is the server's PID.
"""
import signal
import sys
import threading

import xllamacpp as xlc


def main() -> None:
    model, port, alias = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n_ctx, threads, n_parallel = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    p = xlc.CommonParams()
    p.model.path = model
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.model_alias = {alias}
    p.n_ctx = n_ctx
    p.n_parallel = n_parallel
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.use_jinja = True  # the GGUF's own chat template: needed for tools
    p.endpoint_metrics = True
    server = xlc.Server(p)  # raises if the port cannot be bound
    print("listening", server.listening_address, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    del server


if __name__ == "__main__":
    main()
