//! Whether a task opens by asking for one artifact: "Write a function that...", "Create a
//! React component for...", "Implement an Express route that...". By the labelling rule that
//! is primitive whatever the artifact touches (a login form, a database table), unless the
//! task also shows a reason for architecture the rule names (a migration, a codebase to find
//! one's way in). Pure: a scan of the opening words.

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
    "migrat",
    "codebase",
    "repositor",
    "across",
    "microservice",
    "refactor",
    "our ",
    "whole project",
    "entire project",
    "whole app",
    "entire app",
    "file by file",
    "every file",
    "all files",
    " to typescript",
    "to python 3",
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
    let opening = opening(task);
    let mut words = opening
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .skip_while(|w| LEAD.contains(&w.as_str()));
    if !words.next().is_some_and(|w| VERBS.contains(&w.as_str())) {
        return false;
    }
    for w in words.take(REACH) {
        if WHOLES.contains(&w.as_str()) {
            return false;
        }
        if ARTIFACTS.contains(&w.as_str()) {
            let lower = task.to_ascii_lowercase();
            return !ARCHITECTURE_STEMS.iter().any(|s| lower.contains(s));
        }
    }
    false
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
    fn only_the_opening_sentence_names_the_request() {
        assert!(!asks_for_one_artifact(
            "The dashboard is slow. Write a function that caches it."
        ));
        let long = format!("Write {} function", "very ".repeat(100));
        assert!(!asks_for_one_artifact(&long));
        assert!(!asks_for_one_artifact("Écris une fonction"));
    }
}
