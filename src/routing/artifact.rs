//! Whether a task is about one artifact: it opens by asking for one ("Write a function
//! that...", "Create a React component for...", "I need a bash script that..."), or it hands
//! over its code and asks about that code ("fix the SQL injection in this function", a
//! docstring stub to complete). By the labelling rule that is primitive whatever the artifact
//! touches (a login form, a database table), unless the task's prose also shows a reason for
//! architecture the rule names (a migration, a codebase to find one's way in). Pure: scans.

/// Words that may come before the request ("Please", "Can you", "I need you to").
const LEAD: &[&str] = &[
    "please", "can", "could", "would", "will", "you", "help", "me", "i", "we", "need", "want",
    "to", "us", "just", "quickly", "now", "hi", "hey", "ok", "so",
];

const VERBS: &[&str] = &[
    "write",
    "create",
    "implement",
    "build",
    "make",
    "generate",
    "code",
    "give",
    "define",
    "produce",
    "draft",
    "add",
];

/// What one self-contained artifact is called. Not "page": "build a voting page where users
/// log in" is how app ideas describe whole applications.
const ARTIFACTS: &[&str] = &[
    "function",
    "functions",
    "method",
    "class",
    "script",
    "component",
    "query",
    "regex",
    "regexp",
    "expression",
    "endpoint",
    "route",
    "handler",
    "hook",
    "test",
    "tests",
    "program",
    "snippet",
    "decorator",
    "macro",
    "command",
    "utility",
    "helper",
    "parser",
    "validator",
    "module",
    "struct",
    "enum",
    "interface",
    "template",
    "dockerfile",
    "makefile",
    "oneliner",
    "lambda",
    "closure",
    "trigger",
    "view",
    "serializer",
    "middleware",
    "snippet",
    "block",
    "job",
    "resolver",
    "rule",
    "producer",
    "consumer",
    "manifest",
    "schema",
    "entry",
    "controller",
    "scope",
    "validation",
    "dependency",
    "server",
    "alert",
    "workflow",
];

/// What is more than one artifact: met before an artifact word, the request is not one.
const WHOLES: &[&str] = &[
    "app",
    "apps",
    "application",
    "applications",
    "system",
    "systems",
    "service",
    "services",
    "platform",
    "website",
    "site",
    "backend",
    "frontend",
    "api",
    "apis",
    "product",
    "clone",
    "project",
    "library",
    "framework",
    "infrastructure",
    "pipeline",
    "architecture",
];

/// Stems of the rule's reasons for architecture that no single artifact outweighs.
const ARCHITECTURE_STEMS: &[&str] = &[
    "migrate",
    "migrating",
    "migration from",
    "migration to",
    "migration of",
    "codebase",
    " repositories",
    "the repository",
    "this repository",
    "repository's",
    "across",
    "microservice",
    " our ",
    "whole project",
    "entire project",
    "whole app",
    "entire app",
    "file by file",
    "every file",
    "all files",
    " to typescript",
    "to python 3",
];

/// Stems of infrastructure: a reason for architecture unless the opening asks for one
/// resource ("a Terraform snippet for one S3 bucket", "a single DynamoDB table").
const INFRA_STEMS: &[&str] = &[
    "kubernetes",
    "deploy",
    "terraform",
    "helm",
    "cluster",
    "provision",
    "scaling",
    "scalab",
];

/// How many words after the verb may name the artifact ("a small reusable React component").
const REACH: usize = 7;

pub fn asks_for_one_artifact(task: &str) -> bool {
    read(task).one_artifact()
}

/// What the task says about its artifact, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reading {
    /// The opening words ask for one artifact ("Write a function that...").
    pub named: bool,
    /// Code is handed over (at least `MIN_CODE_LINES` lines) and the prose asks about it.
    pub about_code: bool,
    /// Code is handed over, whatever the prose says.
    pub code: bool,
    /// The prose names one of the rule's reasons for architecture (a migration, "our").
    pub reason: bool,
}

impl Reading {
    pub fn one_artifact(self) -> bool {
        (self.named || self.about_code) && !self.reason
    }
}

pub fn read(task: &str) -> Reading {
    let lower = opening(task).to_ascii_lowercase();
    let named = names_one_artifact(&lower);
    let (prose, code_lines) = split_code(task, PROSE_READ);
    let code = code_lines >= MIN_CODE_LINES;
    Reading {
        named,
        about_code: code && asks_about_its_code(&prose),
        code,
        reason: names_a_reason(&prose)
            || (names_infrastructure(&prose) && !names_one_thing(&lower)),
    }
}

/// How much of a task's prose is read for reasons for architecture: the request says what
/// it is about early; a long task's tail is not read (the cost stays flat).
const PROSE_READ: usize = 8 * 1024;

/// `ARCHITECTURE_STEMS` as one case-insensitive pass; " our " also at the very start, never
/// inside "behaviour".
static REASONS: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| one_pass(ARCHITECTURE_STEMS));
static INFRA: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| one_pass(INFRA_STEMS));

fn one_pass(stems: &[&str]) -> Option<regex::Regex> {
    let alternatives: Vec<String> = stems
        .iter()
        .map(|s| regex::escape(s).replace(' ', r"(?:^|\s|$)"))
        .collect();
    regex::Regex::new(&format!("(?i){}", alternatives.join("|"))).ok()
}

fn names_a_reason(prose: &str) -> bool {
    REASONS.as_ref().is_some_and(|r| r.is_match(prose))
}

fn names_infrastructure(prose: &str) -> bool {
    INFRA.as_ref().is_some_and(|r| r.is_match(prose))
}

/// The opening asks for one resource: "for one S3 bucket", "a single table".
fn names_one_thing(lower_opening: &str) -> bool {
    lower_opening
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "one" || w == "single")
}

/// The opening words name one artifact, after an optional request verb: "Write a function",
/// "I need a bash script", "single html file: ...", "python script using watchdog".
pub fn names_one_artifact(lower_opening: &str) -> bool {
    let mut words = lower_opening
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .skip_while(|w| LEAD.contains(w))
        .peekable();
    // Without a request verb the opening must be the artifact's name itself ("bash script
    // for...", "single html file:"), in few words and with an unmistakable noun: "Design the
    // news feed function" and "Installation method" are not requests for one.
    let (reach, nouns) = match words.next_if(|w| VERBS.contains(w)) {
        Some(_) => (REACH, ARTIFACTS),
        None => {
            // "An nginx location block": the article is not one of the few words.
            words.next_if(|w| *w == "a" || *w == "an");
            (3, PLAIN_ARTIFACTS)
        }
    };
    for w in words.take(reach) {
        if WHOLES.contains(&w) {
            return false;
        }
        if nouns.contains(&w) {
            return true;
        }
    }
    false
}

/// Artifact nouns that name one even without a verb before them.
const PLAIN_ARTIFACTS: &[&str] = &[
    "script",
    "function",
    "component",
    "file",
    "regex",
    "query",
    "snippet",
    "block",
    "handler",
    "resolver",
    "template",
    "job",
    "endpoint",
    "route",
    "dockerfile",
    "makefile",
    "serializer",
    "controller",
    "hook",
    "middleware",
    "class",
    "rule",
    "schema",
    "validator",
    "struct",
    "enum",
    "decorator",
];

/// Code handed over with the task: at least this many lines of it.
const MIN_CODE_LINES: usize = 3;
/// Prose around handed-over code longer than this is more than a question about the code.
const MAX_PROSE_WITH_CODE: usize = 600;

/// The task is mostly its own code and points at it ("this function", "it", "below"), or it
/// is a stub to complete (it starts with the code).
fn asks_about_its_code(prose: &str) -> bool {
    const POINTERS: &[&str] = &[
        "this ",
        "these ",
        " it ",
        " it?",
        " it.",
        "below",
        "above",
        "the following",
        "here is",
        "here's",
        "my code",
        "my function",
    ];
    let prose = prose.trim();
    if prose.len() > MAX_PROSE_WITH_CODE {
        return false;
    }
    let lower = prose.to_ascii_lowercase();
    lower.is_empty() || POINTERS.iter().any(|p| lower.contains(p))
}

/// The task without its code (fenced blocks and lines that read as code), and how many code
/// lines it had, read until the prose passes `max_prose` bytes. A task that opens with code
/// (a stub) keeps only the prose after it.
fn split_code(task: &str, max_prose: usize) -> (String, usize) {
    let (mut prose, mut code) = (String::new(), 0);
    let (mut fenced, mut output) = (false, false);
    let mut stub = looks_like_code(task.trim_start().lines().next().unwrap_or(""));
    for line in task.lines() {
        let t = line.trim();
        if let Some(tag) = t.strip_prefix("```") {
            fenced = !fenced;
            // An untagged fence or a `text`/`console` one may hold what a program printed
            // (a log, a console session): only its lines that read as code are code.
            output = fenced && OUTPUT_TAGS.contains(&tag.trim());
            code += 1;
            continue;
        }
        if fenced && output && !looks_like_code(t) {
            continue;
        }
        if fenced || looks_like_code(t) {
            code += 1;
            continue;
        }
        if stub {
            // A docstring or comment inside the stub is the stub's.
            if t.is_empty() || line.starts_with(char::is_whitespace) {
                code += 1;
                continue;
            }
            stub = false;
        }
        prose.push_str(line);
        prose.push('\n');
        if prose.len() > max_prose {
            break;
        }
    }
    (prose, code)
}

/// Fence tags of program output rather than code.
const OUTPUT_TAGS: &[&str] = &[
    "",
    "text",
    "txt",
    "console",
    "log",
    "output",
    "plaintext",
    "shell-session",
];

fn looks_like_code(line: &str) -> bool {
    const STARTS: &[&str] = &[
        "def ",
        "class ",
        "function ",
        "async ",
        "return",
        "import ",
        "from ",
        "const ",
        "let ",
        "var ",
        "fn ",
        "pub ",
        "if (",
        "for (",
        "while (",
        "} else",
        "#include",
        "@",
        "//",
    ];
    let t = line.trim();
    // `x = f(y)`, `print(x)`, `db.save(item)`; not "(use httpx instead)".
    let call = |t: &str| {
        t.ends_with(')')
            && (t.contains(" = ")
                || t.split('(')
                    .next()
                    .is_some_and(|head| !head.is_empty() && !head.contains(' ')))
    };
    !t.is_empty()
        && (STARTS.iter().any(|s| t.starts_with(s))
            || t.ends_with(['{', '}', ';'])
            || t.ends_with("):")
            || call(t))
}

/// The first sentence (at most 200 bytes).
fn opening(task: &str) -> &str {
    let t = task.trim_start();
    let end = t
        .char_indices()
        .take_while(|&(i, _)| i < 200)
        .find(|&(_, c)| matches!(c, '.' | '?' | '!' | '\n' | ':'))
        .map_or(t.len().min(200), |(i, _)| i);
    let end = (0..=end)
        .rev()
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(0);
    &t[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_artifacts_are_recognised_whatever_they_touch() {
        for t in [
            "Write a Python function that returns the n-th Fibonacci number.",
            "Create a React component for a login form with email and password fields.",
            "Please implement an Express route that returns the users from the database as JSON.",
            "Can you write a bash script that backs up the postgres database every night?",
            "Build a shopping cart class in TypeScript with add, remove and total methods.",
            "Write a SQL query that returns each user's total order amount.",
            "I need you to write a regex matching ISO dates",
        ] {
            assert!(asks_for_one_artifact(t), "{t}");
        }
    }

    #[test]
    fn applications_systems_and_codebase_work_are_not_one_artifact() {
        for t in [
            "Build a web app where users sign up and share todo lists in real time.",
            "Design a URL shortener service.",
            "Write a script to migrate our users from MySQL to Postgres.",
            "Create a backend API for an online store with payments.",
            "Refactor the auth module across the codebase.",
            "Fix the crash when the config file is missing.",
            "Add a function to our repository's utils that parses dates.",
            "Create a script that converts the whole project from JavaScript to TypeScript.",
            "Write a Terraform module that provisions a cluster.",
            "",
            "Write",
        ] {
            assert!(!asks_for_one_artifact(t), "{t}");
        }
    }

    #[test]
    fn code_handed_over_with_a_question_about_it_is_one_artifact() {
        let flatten = "this is way too nested, can you flatten it? keep behaviour identical\n\n\
            function canEdit(user, doc) {\n  if (user) {\n    return doc.ownerId === user.id;\n  }\n  return false;\n}";
        assert!(asks_for_one_artifact(flatten));
        let fenced = "fix the sql injection in this login function\n\n```python\ndef login(conn, u):\n    cur = conn.cursor()\n    cur.execute(f\"SELECT id FROM users WHERE u = '{u}'\")\n    return cur.fetchone()\n```";
        assert!(asks_for_one_artifact(fenced));
        let stub = "def dsn(cfg: dict) -> str:\n    \"\"\"Build a PostgreSQL URI from a config dict.\n\n    >>> dsn({'host': 'db'})\n    \"\"\"\n";
        assert!(asks_for_one_artifact(stub));
        // Code in a bug report against a codebase, or a long story around it, is not.
        let ours = "Our checkout service times out under load, see this handler:\n```go\nfunc Pay(w http.ResponseWriter, r *http.Request) {\n  db.Exec(q)\n}\n```";
        assert!(!asks_for_one_artifact(ours));
        let no_pointer =
            "Login fails for SSO users after the upgrade.\n```\nfoo();\nbar();\nbaz();\n```";
        assert!(!asks_for_one_artifact(no_pointer));
    }

    #[test]
    fn the_reasons_are_one_pattern_with_word_edges() {
        assert!(REASONS.is_some());
        assert!(names_a_reason("Our app"));
        assert!(names_a_reason("move it to TypeScript"));
        assert!(!names_a_reason("keep behaviour identical"));
    }

    #[test]
    fn a_plain_artifact_name_needs_no_verb_but_design_questions_are_not_one() {
        assert!(asks_for_one_artifact(
            "I need a bash script that rotates my logs."
        ));
        assert!(asks_for_one_artifact(
            "single html file: a canvas starfield, no libraries"
        ));
        assert!(!asks_for_one_artifact(
            "Design the Facebook news feed function"
        ));
        assert!(!asks_for_one_artifact(
            "Installation method: Home Assistant OS"
        ));
    }

    #[test]
    fn only_the_opening_sentence_names_the_request() {
        assert!(!asks_for_one_artifact(
            "The dashboard is slow. Write a function that caches it."
        ));
        let long = format!("Write {} function", "very ".repeat(100));
        assert!(!asks_for_one_artifact(&long));
        assert!(!asks_for_one_artifact("Écris une fonction"));
    }
}
