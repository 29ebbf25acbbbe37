//! What a simulated model answers: read the ask and the offered tools, write the text.

use serde_json::{Value, json};

use super::*;

pub(super) fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
    })
}

/// Text of a message's content (a string or a list of blocks).
pub(super) fn content_text(c: Option<&Value>) -> String {
    match c {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(super) fn last_user_text(req: &Value, shape: Shape) -> String {
    if shape == Shape::Legacy {
        return req
            .get("prompt")
            .map(|p| content_text(Some(p)))
            .unwrap_or_default();
    }
    req.get("messages")
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        })
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default()
}

/// The first offered tool: its name and parameter schema.
pub(super) fn offered_tool(req: &Value, shape: Shape) -> Option<(String, Value)> {
    let t = req.get("tools")?.as_array()?.first()?;
    let (name, schema) = match shape {
        Shape::Messages => (t.get("name")?, t.get("input_schema")),
        _ => {
            let f = t.get("function")?;
            (f.get("name")?, f.get("parameters"))
        }
    };
    Some((
        name.as_str()?.to_string(),
        schema.cloned().unwrap_or(json!({})),
    ))
}

/// An agent's first turn is answered with a tool call; after a tool result, with text.
pub(super) fn wants_tool(req: &Value, shape: Shape) -> bool {
    let Some(last) = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
    else {
        return false;
    };
    match shape {
        Shape::Messages => !last
            .get("content")
            .and_then(Value::as_array)
            .is_some_and(|b| {
                b.iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            }),
        _ => last.get("role").and_then(Value::as_str) == Some("user"),
    }
}

/// Arguments that satisfy the schema's required string properties.
pub(super) fn arguments_for(schema: &Value, ask: &str) -> Value {
    let mut args = serde_json::Map::new();
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for name in required.iter().filter_map(Value::as_str) {
        let value = match name {
            "path" | "file_path" => {
                if ask.to_lowercase().contains("migration") {
                    "db/migrations"
                } else {
                    "src/services/billing/mod.rs"
                }
            }
            "command" => "git ls-files | head -50",
            "regex" | "pattern" | "query" => "BillingService",
            _ => "",
        };
        args.insert(name.to_string(), Value::String(value.to_string()));
    }
    Value::Object(args)
}

/// The tool call as Qwen writes it in text, or the answer's text.
pub(super) fn render(a: &Answer, tool_calls_as_text: bool) -> String {
    match a {
        Answer::Text(t) => t.clone(),
        Answer::Tool { name, arguments } => {
            let call = json!({"name": name, "arguments": arguments}).to_string();
            if tool_calls_as_text {
                format!("<tool_call>\n{call}\n</tool_call>")
            } else {
                arguments.to_string()
            }
        }
    }
}

/// A plausible answer for the ask, about as long as such answers are.
pub(super) fn compose(ask: &str, completion: bool, max_tokens: u64) -> String {
    let a = ask.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| a.contains(w));
    let (body, tokens) = if completion {
        (FIM_ANSWER, 24 + fastrand::u64(..40))
    } else if has(&[
        "service",
        "migrat",
        "architect",
        "monolith",
        "schema",
        "design",
        "multi-tenant",
        "event",
        "repository",
        "across",
        "modules",
        "kafka",
        "grpc",
    ]) {
        (ARCHITECTURE_ANSWER, 550 + fastrand::u64(..450))
    } else if has(&["canvas", "animation", "html"]) {
        (CANVAS_ANSWER, 260 + fastrand::u64(..180))
    } else if has(&["regex", "regular expression", "pattern"]) {
        (REGEX_ANSWER, 90 + fastrand::u64(..90))
    } else {
        (FUNCTION_ANSWER, 140 + fastrand::u64(..160))
    };
    let target = (tokens.min(max_tokens) * 4) as usize;
    let mut out = String::with_capacity(target + 64);
    let mut part = 1;
    while out.len() < target {
        if part > 1 {
            out.push_str(&format!("\n\n// part {part}\n"));
        }
        out.push_str(body);
        part += 1;
    }
    let mut end = target.min(out.len());
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

pub(super) const FIM_ANSWER: &str = "if (items.length === 0) {\n    return null;\n  }\n  const sorted = [...items].sort((a, b) => a.score - b.score);\n  return sorted[Math.floor(sorted.length / 2)];\n";

pub(super) const FUNCTION_ANSWER: &str = "Here is a small, tested implementation:\n\n```python\nfrom collections import OrderedDict\n\n\nclass LRUCache:\n    \"\"\"A fixed-size cache that evicts the least recently used key.\"\"\"\n\n    def __init__(self, capacity: int) -> None:\n        if capacity <= 0:\n            raise ValueError(\"capacity must be positive\")\n        self.capacity = capacity\n        self._data: OrderedDict = OrderedDict()\n\n    def get(self, key):\n        if key not in self._data:\n            return None\n        self._data.move_to_end(key)\n        return self._data[key]\n\n    def put(self, key, value) -> None:\n        self._data[key] = value\n        self._data.move_to_end(key)\n        if len(self._data) > self.capacity:\n            self._data.popitem(last=False)\n```\n\nBoth operations are O(1); `move_to_end` keeps the order of use.";

pub(super) const REGEX_ANSWER: &str = "Use this pattern:\n\n```\n^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?(?:\\+([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$\n```\n\nThe three numeric groups reject leading zeros; group 4 is the pre-release, group 5 the build metadata.";

pub(super) const CANVAS_ANSWER: &str = "```html\n<!doctype html>\n<html>\n<body style=\"margin:0;background:#111\">\n<canvas id=\"c\"></canvas>\n<script>\nconst c = document.getElementById('c');\nconst ctx = c.getContext('2d');\nfunction resize() { c.width = innerWidth; c.height = innerHeight; }\naddEventListener('resize', resize); resize();\nconst balls = Array.from({ length: 40 }, () => ({\n  x: Math.random() * c.width, y: Math.random() * c.height,\n  vx: (Math.random() - 0.5) * 6, vy: (Math.random() - 0.5) * 6,\n  r: 6 + Math.random() * 14, hue: Math.random() * 360,\n}));\nfunction frame() {\n  ctx.fillStyle = 'rgba(17,17,17,0.25)';\n  ctx.fillRect(0, 0, c.width, c.height);\n  for (const b of balls) {\n    b.x += b.vx; b.y += b.vy;\n    if (b.x < b.r || b.x > c.width - b.r) b.vx *= -1;\n    if (b.y < b.r || b.y > c.height - b.r) b.vy *= -1;\n    ctx.beginPath();\n    ctx.arc(b.x, b.y, b.r, 0, Math.PI * 2);\n    ctx.fillStyle = `hsl(${b.hue}, 80%, 60%)`;\n    ctx.fill();\n  }\n  requestAnimationFrame(frame);\n}\nframe();\n</script>\n</body>\n</html>\n```";

pub(super) const ARCHITECTURE_ANSWER: &str = "## Plan\n\n1. **Draw the boundary.** List every table the billing code reads and writes; anything shared with orders becomes an API call or an event, never a join.\n2. **Strangle, do not rewrite.** Put a `BillingClient` interface in front of the current module; the monolith calls the interface, first in process, then over gRPC.\n3. **Move the data.** Create the new schema, dual-write from the monolith behind a flag, backfill in batches of 10k rows, and compare checksums nightly until they match for a week.\n4. **Switch reads, then writes.** Reads go to the service first; writes follow once the outbox shows no lag over 5 s at peak.\n5. **Events.** Publish `InvoiceIssued` and `PaymentSettled` through a transactional outbox; consumers must be idempotent on the event id.\n\n## Risks\n\n- Distributed transactions: replace them with sagas and compensating actions.\n- Latency: the extra hop adds 2-5 ms; cache customer plans for 60 s.\n- Rollback: keep the in-process path until the new service has run a full billing cycle.\n\n## Files to change\n\n- `billing/service.py`, `billing/models.py`, `orders/checkout.py`\n- `deploy/billing.yaml`, `migrations/0042_billing_split.sql`";
