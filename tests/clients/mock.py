#!/usr/bin/env python3
"""A scripted model upstream for the client end-to-end tests.

Speaks OpenAI chat completions (`/v1/chat/completions`), the Responses API
(`/v1/responses`) and Anthropic Messages (`/v1/messages`, `/v1/messages/count_tokens`),
streamed or whole, and plays a short tool-using exchange from a script (JSON):

    {"tool": "editor", "arguments": {"command": "create", "path": "/abs/hello.txt", ...},
     "final": "Done.", "text": "reply for requests that offer no such tool"}

The turn is read off the request itself, so the mock keeps no state: a request that
already carries a tool result gets the final text; one that offers the script's tool gets a
call to it; anything else (side calls, aider's tool-less prompt) gets `text`.
Without a script every answer is text ("OK."): that is the recording mode.

Every request is appended to `--log` as one JSON line (path, user agent, body), secrets
stripped (no auth headers are kept at all).
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCRIPT = {}
LOG = None
LOCK = threading.Lock()
USAGE = {"prompt_tokens": 321, "completion_tokens": 12}


def sse(event, data):
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


def has_tool(names, tool):
    return bool(tool) and tool in names


# ---- deciding the turn ----

def plan_chat(body):
    msgs = body.get("messages") or []
    if any(m.get("role") == "tool" for m in msgs):
        return ("text", SCRIPT.get("final", "Done."))
    names = [(t.get("function") or {}).get("name") for t in body.get("tools") or []]
    if has_tool(names, SCRIPT.get("tool")):
        return ("tool", SCRIPT["tool"], SCRIPT.get("arguments", {}))
    return ("text", SCRIPT.get("text", "OK."))


def plan_responses(body):
    items = body.get("input")
    items = items if isinstance(items, list) else []
    if any(i.get("type") in ("function_call_output", "custom_tool_call_output") for i in items):
        return ("text", SCRIPT.get("final", "Done."))
    names = [t.get("name") for t in body.get("tools") or []]
    if has_tool(names, SCRIPT.get("tool")):
        return ("tool", SCRIPT["tool"], SCRIPT.get("arguments", {}))
    return ("text", SCRIPT.get("text", "OK."))


def plan_messages(body):
    for m in body.get("messages") or []:
        c = m.get("content")
        if isinstance(c, list) and any(b.get("type") == "tool_result" for b in c):
            return ("text", SCRIPT.get("final", "Done."))
    names = [t.get("name") for t in body.get("tools") or []]
    if has_tool(names, SCRIPT.get("tool")):
        return ("tool", SCRIPT["tool"], SCRIPT.get("arguments", {}))
    return ("text", SCRIPT.get("text", "OK."))


# ---- answers ----

def chat_answer(body, plan):
    model = body.get("model", "mock")
    usage = dict(USAGE, total_tokens=sum(USAGE.values()))
    if plan[0] == "tool":
        call = {"id": "call_mock_1", "type": "function",
                "function": {"name": plan[1], "arguments": json.dumps(plan[2])}}
        msg, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    else:
        msg, finish = {"role": "assistant", "content": plan[1]}, "stop"
    if not body.get("stream"):
        return "application/json", json.dumps({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": usage}).encode()
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}
    out = [sse(None, dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]))]
    if plan[0] == "tool":
        args = json.dumps(plan[2])
        mid = len(args) // 2
        first = {"index": 0, "id": "call_mock_1", "type": "function",
                 "function": {"name": plan[1], "arguments": args[:mid]}}
        out.append(sse(None, dict(base, choices=[{"index": 0, "delta": {"tool_calls": [first]}}])))
        rest = {"index": 0, "function": {"arguments": args[mid:]}}
        out.append(sse(None, dict(base, choices=[{"index": 0, "delta": {"tool_calls": [rest]}}])))
    else:
        for piece in split(plan[1]):
            out.append(sse(None, dict(base, choices=[{"index": 0, "delta": {"content": piece}}])))
    out.append(sse(None, dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}])))
    if (body.get("stream_options") or {}).get("include_usage"):
        out.append(sse(None, dict(base, choices=[], usage=usage)))
    out.append(b"data: [DONE]\n\n")
    return "text/event-stream", b"".join(out)


def split(text, n=3):
    step = max(1, len(text) // n)
    return [text[i:i + step] for i in range(0, len(text), step)] or [""]


def responses_answer(body, plan):
    rid = "resp_mock"
    usage = {"input_tokens": USAGE["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": USAGE["completion_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": sum(USAGE.values())}
    if plan[0] == "tool":
        item = {"type": "function_call", "id": "fc_mock_1", "call_id": "call_mock_1",
                "name": plan[1], "arguments": json.dumps(plan[2]), "status": "completed"}
    else:
        item = {"type": "message", "id": "msg_mock_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": plan[1], "annotations": []}]}

    def resp(status, output, u):
        return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
                "model": body.get("model", "mock"), "output": output, "usage": u, "error": None,
                "incomplete_details": None}
    if not body.get("stream"):
        return "application/json", json.dumps(resp("completed", [item], usage)).encode()
    seq = iter(range(10_000))
    ev = []

    def emit(kind, data):
        data = dict(data, type=kind, sequence_number=next(seq))
        ev.append(sse(kind, data))
    emit("response.created", {"response": resp("in_progress", [], None)})
    emit("response.in_progress", {"response": resp("in_progress", [], None)})
    if plan[0] == "tool":
        emit("response.output_item.added", {"output_index": 0, "item": dict(item, arguments="", status="in_progress")})
        emit("response.function_call_arguments.delta", {"item_id": item["id"], "output_index": 0, "delta": item["arguments"]})
        emit("response.function_call_arguments.done", {"item_id": item["id"], "output_index": 0, "arguments": item["arguments"]})
    else:
        emit("response.output_item.added", {"output_index": 0, "item": dict(item, content=[], status="in_progress")})
        part = {"type": "output_text", "text": "", "annotations": []}
        emit("response.content_part.added", {"item_id": item["id"], "output_index": 0, "content_index": 0, "part": part})
        for piece in split(plan[1]):
            emit("response.output_text.delta", {"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": piece})
        emit("response.output_text.done", {"item_id": item["id"], "output_index": 0, "content_index": 0, "text": plan[1]})
        emit("response.content_part.done", {"item_id": item["id"], "output_index": 0, "content_index": 0,
                                            "part": dict(part, text=plan[1])})
    emit("response.output_item.done", {"output_index": 0, "item": item})
    emit("response.completed", {"response": resp("completed", [item], usage)})
    return "text/event-stream", b"".join(ev)


def messages_answer(body, plan):
    usage = {"input_tokens": USAGE["prompt_tokens"], "output_tokens": USAGE["completion_tokens"],
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if plan[0] == "tool":
        block = {"type": "tool_use", "id": "toolu_mock_1", "name": plan[1], "input": plan[2]}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": plan[1]}
        stop = "end_turn"
    msg = {"id": "msg_mock", "type": "message", "role": "assistant", "model": body.get("model", "mock"),
           "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        return "application/json", json.dumps(msg).encode()
    ev = [sse("message_start", {"type": "message_start", "message": dict(
        msg, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))})]
    if plan[0] == "tool":
        ev.append(sse("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": dict(block, input={})}))
        ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "input_json_delta", "partial_json": json.dumps(plan[2])}}))
    else:
        ev.append(sse("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}))
        for piece in split(plan[1]):
            ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": piece}}))
    ev.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    ev.append(sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                    "usage": {"output_tokens": USAGE["completion_tokens"]}}))
    ev.append(sse("message_stop", {"type": "message_stop"}))
    return "text/event-stream", b"".join(ev)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def record(self, body):
        if not LOG:
            return
        line = {"method": self.command, "path": self.path,
                "user_agent": self.headers.get("user-agent"),
                "headers": {k.lower(): v for k, v in self.headers.items()
                            if k.lower() not in ("authorization", "x-api-key", "cookie")},
                "body": body}
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps(line) + "\n")

    def send(self, status, ctype, data):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.record(None)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.record(None)
        if self.path.rstrip("/").endswith("/models"):
            return self.send(200, "application/json", json.dumps(
                {"object": "list", "data": [{"id": "mock", "object": "model", "owned_by": "mock"}]}).encode())
        self.send(404, "application/json", b'{"error":{"message":"not found"}}')

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.send(400, "application/json", b'{"error":{"message":"bad json"}}')
        self.record(body)
        p = self.path.split("?")[0]
        if p.endswith("/chat/completions"):
            ctype, data = chat_answer(body, plan_chat(body))
        elif p.endswith("/responses"):
            ctype, data = responses_answer(body, plan_responses(body))
        elif p.endswith("/messages/count_tokens"):
            ctype, data = "application/json", b'{"input_tokens": 100}'
        elif p.endswith("/messages"):
            ctype, data = messages_answer(body, plan_messages(body))
        else:
            return self.send(404, "application/json", b'{"error":{"message":"not found"}}')
        self.send(200, ctype, data)


def main():
    global SCRIPT, LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--script")
    ap.add_argument("--log")
    ap.add_argument("--port-file", help="where to write the port once listening")
    a = ap.parse_args()
    if a.script:
        with open(a.script) as f:
            SCRIPT = json.load(f)
    LOG = a.log
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"mock listening on {port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
