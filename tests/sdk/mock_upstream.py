"""A scripted OpenAI-compatible upstream for the SDK tests, on 127.0.0.1:0.

Run as a script it prints its port on the first line of stdout and serves until killed; imported,
`start()` runs it in a thread. It answers POST /v1/chat/completions:
  - a request that offers tools gets a call of the first tool (streamed or not);
  - otherwise "Hello from <model>" (streamed word by word, with a usage chunk when asked).
Every request body is kept in `SEEN` (and logged to stderr as JSON when run as a script).
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN = []


def _chunk(model, delta, finish=None, usage=None, choices=True):
    body = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
    if usage is not None:
        body["usage"] = usage
    return ("data: " + json.dumps(body) + "\n\n").encode()


def _usage(prompt=11, completion=4):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_args(tool):
    props = (tool.get("function", {}).get("parameters") or {}).get("properties") or {}
    return {name: ("Paris" if spec.get("type") == "string" else 1) for name, spec in props.items()}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        SEEN.append({"path": self.path, "body": body, "authorization": self.headers.get("authorization")})
        if self.path.endswith("/chat/completions"):
            self.chat(body)
        else:
            self.send_json(404, {"error": {"message": "no such route", "type": "invalid_request_error"}})

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def chat(self, body):
        model = body.get("model", "?")
        tools = body.get("tools") or []
        if not body.get("stream"):
            if tools:
                call = {"id": "call_1", "type": "function",
                        "function": {"name": tools[0]["function"]["name"], "arguments": json.dumps(_tool_args(tools[0]))}}
                msg, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
            else:
                msg, finish = {"role": "assistant", "content": f"Hello from {model}"}, "stop"
            self.send_json(200, {"id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                                 "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": _usage()})
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

        def send(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        send(_chunk(model, {"role": "assistant", "content": ""}))
        if tools:
            args = json.dumps(_tool_args(tools[0]))
            name = tools[0]["function"]["name"]
            send(_chunk(model, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                "function": {"name": name, "arguments": ""}}]}))
            for i in range(0, len(args), 5):
                send(_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 5]}}]}))
            send(_chunk(model, {}, "tool_calls"))
        else:
            for word in ["Hello", " from", " " + model]:
                send(_chunk(model, {"content": word}))
            send(_chunk(model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            send(_chunk(model, None, usage=_usage(), choices=False))
        send(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def start():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
