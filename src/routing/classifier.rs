//! The classifier: a pure function from a conversation to a score in 0..1 (1 = architecture)
//! and the reasons that weighed most.

use super::input::{Conversation, Role};

#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Probability-like score that the task is architecture-scale.
    pub score: f64,
    /// A bounded reason code (for the header and metrics).
    pub code: &'static str,
    /// Human-readable features that weighed most, strongest first.
    pub reasons: Vec<String>,
}

const ARCHITECTURE_WORDS: &[(&str, f64)] = &[
    ("microservice", 2.5),
    ("architecture", 1.5),
    ("migrat", 2.0),
    ("across the codebase", 2.5),
    ("refactor", 1.0),
    ("scalab", 1.5),
    ("deploy", 1.0),
    ("kubernetes", 1.5),
    ("event bus", 2.0),
    ("system design", 2.0),
    ("load balanc", 1.5),
    ("database schema", 1.0),
    ("multiple services", 2.0),
    ("monolith", 2.0),
];

const PRIMITIVE_WORDS: &[(&str, f64)] = &[
    ("write a function", 2.0),
    ("single file", 1.5),
    ("regex", 1.5),
    ("canvas", 1.0),
    ("one function", 1.5),
    ("snippet", 1.0),
    ("implement", 0.5),
];

/// A first honest classifier: keyword weights on the user's last turn.
pub fn classify(conv: &Conversation<'_>) -> Classification {
    if conv.fim {
        return Classification {
            score: 0.0,
            code: "fim",
            reasons: vec!["fill-in-the-middle completion".into()],
        };
    }
    let task = conv
        .turns
        .iter()
        .rev()
        .find(|t| t.role == Role::User)
        .map(|t| t.text.to_lowercase())
        .unwrap_or_default();
    let mut logit = -0.5;
    let mut hits: Vec<(f64, String)> = Vec::new();
    for (word, w) in ARCHITECTURE_WORDS {
        if task.contains(word) {
            logit += w;
            hits.push((*w, format!("mentions \"{word}\"")));
        }
    }
    for (word, w) in PRIMITIVE_WORDS {
        if task.contains(word) {
            logit -= w;
            hits.push((-*w, format!("mentions \"{word}\"")));
        }
    }
    hits.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    let score = 1.0 / (1.0 + (-logit).exp());
    let code = if score >= 0.5 {
        "classifier_architecture"
    } else {
        "classifier_primitive"
    };
    Classification {
        score,
        code,
        reasons: hits.into_iter().take(5).map(|(_, r)| r).collect(),
    }
}
