"""A strict mock of the Anthropic Messages API for the SDK tests, on 127.0.0.1:0.

Like the real API it refuses a request without x-api-key, anthropic-version or max_tokens, and
a role other than user/assistant inside messages (400 invalid_request_error). A request that
offers tools gets a tool_use of the first tool; otherwise "Hello from <model>". Streams follow
the documented event sequence (message_start ... message_stop, with ping and usage).
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN = []


def _args(tool):
    props = (tool.get("input_schema") or {}).get("properties") or {}
    return {name: ("Paris" if spec.get("type") == "string" else 1) for name, spec in props.items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, kind, message):
        self.send_json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        SEEN.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        if self.headers.get("x-api-key") != "sk-ant-mock":
            return self.error(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        if not self.path.endswith("/v1/messages"):
            return self.error(404, "not_found_error", "no such route")
        if not isinstance(body.get("max_tokens"), int):
            return self.error(400, "invalid_request_error", "max_tokens: Field required")
        for m in body.get("messages", []):
            if m.get("role") not in ("user", "assistant"):
                return self.error(400, "invalid_request_error", f"messages: Unexpected role {m.get('role')!r}")
        model, tools = body["model"], body.get("tools") or []
        if tools:
            block = {"type": "tool_use", "id": "toolu_mock1", "name": tools[0]["name"], "input": _args(tools[0])}
            stop = "tool_use"
        else:
            block = {"type": "text", "text": f"Hello from {model}"}
            stop = "end_turn"
        usage = {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}
        if not body.get("stream"):
            return self.send_json(200, {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                                        "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def ev(name, data):
            raw = f"event: {name}\ndata: {json.dumps(dict(type=name, **data))}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()

        start_usage = dict(usage, output_tokens=1)
        ev("message_start", {"message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                                         "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        ev("ping", {})
        if block["type"] == "tool_use":
            ev("content_block_start", {"index": 0, "content_block": dict(block, input={})})
            args = json.dumps(block["input"])
            for i in range(0, len(args), 4):
                ev("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": args[i:i + 4]}})
        else:
            ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            for word in block["text"].split(" "):
                ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word + " "}})
        ev("content_block_stop", {"index": 0})
        ev("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 7}})
        ev("message_stop", {})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def start():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
