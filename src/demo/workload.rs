//! The demo's workload: real-looking coding requests, sent the way clients send them.
//! Primitives (single-file canvas animations, functions, regexes, tab completion) and
//! architecture tasks (service splits, migrations, cross-module refactors), bare or wrapped
//! in an editor's long system prompt, an agent's system prompt with tools, or Claude Code's
//! Messages request; some streamed, some not.

use serde_json::{Value, json};

/// The tier a task belongs in (what the workload expects the gateway to choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Primitive,
    Architecture,
}

impl Expect {
    pub fn tier(self) -> &'static str {
        match self {
            Expect::Primitive => "primitive",
            Expect::Architecture => "architecture",
        }
    }
}

pub struct Task {
    pub expect: Expect,
    pub text: &'static str,
}

const fn p(text: &'static str) -> Task {
    Task {
        expect: Expect::Primitive,
        text,
    }
}

const fn a(text: &'static str) -> Task {
    Task {
        expect: Expect::Architecture,
        text,
    }
}

pub const TASKS: &[Task] = &[
    p(
        "Write a single-file HTML page with a canvas animation of bouncing balls that leave fading trails. No libraries.",
    ),
    a(
        "Split the billing module of our Django monolith into a separate service: define the API between orders and billing, move the invoices tables, and plan the cutover without downtime.",
    ),
    p(
        "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring and a doctest.",
    ),
    a(
        "Plan the migration of our user data from MySQL 5.7 to PostgreSQL 16 across the five services that share the database, with dual writes, a backfill and a rollback plan.",
    ),
    p(
        "Give me a regular expression that matches semantic version strings like 1.2.3-beta.1+build.5, and explain each group.",
    ),
    a(
        "Design an event-driven architecture for order processing: which services publish and consume which events on Kafka, how to keep the outbox consistent with the database, and how to replay.",
    ),
    p(
        "Write a debounce function in JavaScript that delays calls until 300 ms have passed without a new call.",
    ),
    a(
        "Refactor authentication across our repository: replace the session cookies used in the web app, the mobile API and the admin service with OAuth2 and short-lived JWTs, module by module.",
    ),
    p(
        "Create a starfield animation on an HTML canvas in one file: stars fly towards the viewer and speed up when the mouse moves.",
    ),
    a(
        "Our microservices call each other over REST; propose how to migrate the internal calls to gRPC, including the shared protobuf repository, versioning and the service mesh changes.",
    ),
    p(
        "Write a regex to validate IPv4 addresses (0-255 in each octet) and a few test cases in JavaScript.",
    ),
    a(
        "Design multi-tenant isolation for our SaaS: schema per tenant or row-level security in Postgres, how the services route a tenant, and how to migrate existing customers.",
    ),
    p("Write a function in Rust that does binary search on a sorted slice of integers."),
    a(
        "Debug this across the repository: orders are sometimes charged twice. The checkout service, the payment worker and the retry queue all touch the payment state; find where idempotency breaks and redesign it.",
    ),
    p(
        "Write a SQL query that returns the top 5 customers by total order value in the last 30 days.",
    ),
    p("Explain what this Python one-liner does: `max(words, key=len)`"),
    p(
        "Draw Conway's Game of Life on a canvas in a single HTML file, with a button to pause and randomise.",
    ),
    a(
        "Break our monolithic Node.js backend into services for catalog, cart and payments: the data ownership, the API gateway, the deployment on Kubernetes and the order of the migration.",
    ),
];

/// How a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// curl with a bare chat request.
    Curl,
    /// The OpenAI Python SDK.
    Sdk,
    /// An editor (Continue-style edit mode): long system prompt, few-shot turns, the file.
    Editor,
    /// An agent (Cline-style): system prompt, tools, the task in `<task>`.
    Agent,
    /// Claude Code on `/v1/messages`.
    ClaudeCode,
    /// Tab completion: fill-in-the-middle on `/v1/completions`.
    Autocomplete,
}

/// The order in which clients take turns.
pub const CLIENTS: &[Client] = &[
    Client::Sdk,
    Client::Agent,
    Client::Curl,
    Client::ClaudeCode,
    Client::Editor,
    Client::Autocomplete,
];

impl Client {
    pub fn label(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Sdk => "openai-sdk",
            Client::Editor => "editor",
            Client::Agent => "agent",
            Client::ClaudeCode => "claude-code",
            Client::Autocomplete => "autocomplete",
        }
    }
}

/// One request of the workload.
pub struct Request {
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Value,
    pub client: Client,
    pub expect: Expect,
}

/// The `n`-th request of the workload: clients take turns, tasks cycle at another pace so
/// that every client sends every kind of task.
pub fn request(n: usize) -> Request {
    let client = CLIENTS[n % CLIENTS.len()];
    let task = &TASKS[(n * 5 + n / CLIENTS.len()) % TASKS.len()];
    build(client, task, n)
}

pub fn build(client: Client, task: &Task, n: usize) -> Request {
    let stream = n % 3 != 2;
    let json_headers =
        |ua: &'static str| vec![("content-type", "application/json"), ("user-agent", ua)];
    match client {
        Client::Curl => Request {
            path: "/v1/chat/completions",
            headers: json_headers("curl/8.5.0"),
            body: json!({"model": "auto", "messages": [{"role": "user", "content": task.text}]}),
            client,
            expect: task.expect,
        },
        Client::Sdk => Request {
            path: "/v1/chat/completions",
            headers: json_headers("OpenAI/Python 1.54.3"),
            body: json!({"model": "auto", "stream": stream, "temperature": 0.2,
                         "messages": [{"role": "system", "content": "You are a helpful coding assistant."},
                                      {"role": "user", "content": task.text}]}),
            client,
            expect: task.expect,
        },
        Client::Editor => Request {
            path: "/v1/chat/completions",
            headers: json_headers("ls/JS 5.23.2"),
            body: json!({"model": "auto", "stream": stream, "messages": editor_messages(task.text)}),
            client,
            expect: task.expect,
        },
        Client::Agent => {
            let mut messages = vec![
                json!({"role": "system", "content": AGENT_SYSTEM}),
                json!({"role": "user", "content": format!("<task>\n{}\n</task>\n\n<environment_details>\n# Current Working Directory (/home/user/project) Files\nREADME.md\nsrc/\ntests/\n</environment_details>", task.text)}),
            ];
            // Every other agent request is further along: its first tool call has run.
            if n % 2 == 1 {
                messages.push(
                    json!({"role": "assistant", "content": null, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "list_files", "arguments": "{\"path\":\".\"}"}}]}),
                );
                messages.push(json!({"role": "tool", "tool_call_id": "call_1",
                    "content": "README.md\nsrc/app.py\nsrc/billing.py\nsrc/db.py\ntests/test_app.py"}));
            }
            Request {
                path: "/v1/chat/completions",
                headers: json_headers("Cline/3.17.9"),
                body: json!({"model": "auto", "stream": stream, "messages": messages, "tools": agent_tools()}),
                client,
                expect: task.expect,
            }
        }
        Client::ClaudeCode => {
            let mut headers = json_headers("claude-cli/2.0.14 (external, cli)");
            headers.push(("anthropic-version", "2023-06-01"));
            headers.push(("x-api-key", "demo"));
            let reminder = "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# important-instruction-reminders\nDo what has been asked; nothing more, nothing less.\n</system-reminder>";
            Request {
                path: "/v1/messages",
                headers,
                body: json!({
                    "model": "auto", "max_tokens": 4096, "stream": stream,
                    "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude. You are an interactive agent that helps users with software engineering tasks."}],
                    "messages": [{"role": "user", "content": [
                        {"type": "text", "text": reminder},
                        {"type": "text", "text": task.text}]}],
                    "tools": [
                        {"name": "Read", "description": "Reads a file from the local filesystem.",
                         "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}},
                        {"name": "Bash", "description": "Executes a bash command.",
                         "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
                    ]
                }),
                client,
                expect: task.expect,
            }
        }
        Client::Autocomplete => {
            let (prefix, suffix) = FIM[n % FIM.len()];
            Request {
                path: "/v1/completions",
                headers: json_headers("ls/JS 5.23.2"),
                body: json!({"model": "auto", "stream": stream, "max_tokens": 64, "temperature": 0.01,
                             "prompt": prefix, "suffix": suffix, "stop": ["\n\n"]}),
                client,
                expect: Expect::Primitive,
            }
        }
    }
}

const FIM: &[(&str, &str)] = &[
    (
        "// src/stats.ts\nexport function median(items: { score: number }[]) {\n  ",
        "\n}\n",
    ),
    (
        "def slugify(title: str) -> str:\n    ",
        "\n\n\ndef test_slugify():\n    assert slugify('Hello World') == 'hello-world'\n",
    ),
    (
        "fn parse_port(s: &str) -> Result<u16, String> {\n    ",
        "\n}\n",
    ),
];

const EDITOR_SYSTEM: &str = "Act as an expert software developer.\nAlways use best practices when coding.\nRespect and use existing conventions, libraries, etc that are already present in the code base.\nTake requests for changes to the supplied code.\nIf the request is ambiguous, ask questions.\nOnce you understand the request you MUST:\n1. Determine if any code changes are needed.\n2. Explain any needed changes.\n3. If changes are needed, output a copy of each file that needs changes.\nTo suggest changes to a file you MUST return the entire content of the updated file.\nYou MUST use this *file listing* format:\npath/to/filename.js\n```\n// entire file content ...\n```\n*NEVER* skip, omit or elide content from a *file listing* using \"...\" or by adding comments like \"... rest of code...\"!\nCreate a new file you MUST return a *file listing* which includes an appropriate filename, including any appropriate path.\nReply in English.";

fn editor_messages(task: &str) -> Value {
    json!([
        {"role": "system", "content": EDITOR_SYSTEM},
        {"role": "user", "content": "Change get_factorial() to use math.factorial"},
        {"role": "assistant", "content": "To make this change we need to modify `mathweb/flask/app.py`:\n\nmathweb/flask/app.py\n```\nimport math\n```"},
        {"role": "user", "content": "I switched to a new code base. Please don't consider the above files or try to edit them any longer."},
        {"role": "assistant", "content": "Ok."},
        {"role": "user", "content": "I have *added these files to the chat* so you can go ahead and edit them.\n\napp.py\n```\nfrom flask import Flask\napp = Flask(__name__)\n```"},
        {"role": "assistant", "content": "Ok, any changes I propose will be to those files."},
        {"role": "user", "content": task},
        {"role": "system", "content": "To suggest changes to a file you MUST return the entire content of the updated file.\n*NEVER* skip, omit or elide content from a *file listing*."}
    ])
}

const AGENT_SYSTEM: &str = "You are a highly skilled software engineer with extensive knowledge in many programming languages, frameworks, design patterns, and best practices. You work in the user's repository through tools.\n====\nTOOL USE\nYou have access to a set of tools that are executed upon the user's approval. You can use one tool per message, and will receive the result of that tool use in the user's response. Read files before editing them. Use search_files to find code across the project; use execute_command to run tests and builds; use write_to_file to change files.\n====\nRULES\n- The current working directory is /home/user/project. You cannot cd into a different directory.\n- Do not ask for more information than necessary. Use the tools provided to accomplish the user's request.\n- Be concise. Do not start your messages with \"Great\", \"Certainly\", \"Okay\", \"Sure\".\n====\nSYSTEM INFORMATION\nOperating System: Linux 6.1\nDefault Shell: /bin/bash\nCurrent Working Directory: /home/user/project";

fn agent_tools() -> Value {
    let tool = |name: &str, description: &str, props: Value, required: Value| {
        json!({"type": "function", "function": {"name": name, "description": description,
            "parameters": {"type": "object", "properties": props, "required": required}}})
    };
    json!([
        tool(
            "read_file",
            "Read the contents of a file.",
            json!({"path": {"type": "string"}}),
            json!(["path"])
        ),
        tool(
            "list_files",
            "List the files in a directory.",
            json!({"path": {"type": "string"}, "recursive": {"type": "boolean"}}),
            json!(["path"])
        ),
        tool(
            "search_files",
            "Search files with a regular expression.",
            json!({"path": {"type": "string"}, "regex": {"type": "string"}}),
            json!(["path", "regex"])
        ),
        tool(
            "execute_command",
            "Run a shell command.",
            json!({"command": {"type": "string"}}),
            json!(["command"])
        ),
        tool(
            "write_to_file",
            "Write a whole file.",
            json!({"path": {"type": "string"}, "content": {"type": "string"}}),
            json!(["path", "content"])
        ),
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::value::RawValue;

    use super::*;
    use crate::config::{DEFAULT_POLICY, parse};
    use crate::routing::{Conversation, classifier, decide};

    /// The tier the default policy's classifier gives a request, read as the proxy reads it.
    fn tier_of(r: &Request) -> &'static str {
        let policy = parse("default", DEFAULT_POLICY, |_| None).unwrap();
        let text = r.body.to_string();
        let f: HashMap<&str, &RawValue> = serde_json::from_str(&text).unwrap();
        let conv = match r.path {
            "/v1/messages" => Conversation::from_anthropic(
                f.get("system").copied(),
                f["messages"],
                f.get("tools").copied(),
            )
            .unwrap(),
            "/v1/completions" => {
                let prompt: String = serde_json::from_str(f["prompt"].get()).unwrap();
                Conversation::from_prompt(prompt, f.contains_key("suffix"))
            }
            _ => Conversation::from_openai(f["messages"], f.get("tools").copied()).unwrap(),
        };
        let c = classifier::classify(&conv, &policy.classifier);
        let t = decide::tier_for(&policy, &c);
        if t == policy.primitive_tier {
            "primitive"
        } else {
            "architecture"
        }
    }

    #[test]
    fn the_classifier_agrees_with_the_workload_for_every_client() {
        let mut wrong = Vec::new();
        for (i, task) in TASKS.iter().enumerate() {
            for &client in CLIENTS {
                let r = build(client, task, i);
                let got = tier_of(&r);
                if got != r.expect.tier() {
                    wrong.push(format!(
                        "{} via {}: {got}",
                        &task.text[..50],
                        client.label()
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn forty_requests_cover_every_client_both_tiers_and_both_modes() {
        let rs: Vec<Request> = (0..40).map(request).collect();
        for &c in CLIENTS {
            assert!(rs.iter().filter(|r| r.client == c).count() >= 6, "{c:?}");
        }
        let arch = rs
            .iter()
            .filter(|r| r.expect == Expect::Architecture)
            .count();
        assert!((10..=25).contains(&arch), "{arch}");
        let streams = rs
            .iter()
            .filter(|r| r.body["stream"] == json!(true))
            .count();
        assert!(streams > 10 && streams < 35, "{streams}");
    }
}
