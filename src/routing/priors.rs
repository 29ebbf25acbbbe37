//! The labelling rule's cases as fixed amounts of evidence, added to the text model's logit.
//! Hand-set, and each one names its case: dev's sources are each one kind of request, so a
//! weight learned from them would learn a source's writing, not the rule. What fires is
//! decided by named detectors (`evidence`, `artifact`, `phrases`, `structure`), so
//! `classify --explain` says which case applied.

use super::evidence::Evidence;

/// No reason for architecture in the task's words, its structure or where its code lives. A
/// short task has few n-grams, so the intercept and a few code words could tip it over.
pub const NO_EVIDENCE: f64 = -2.5;

/// Rule case 3: an application that needs two or more parts of its own (a store, accounts,
/// several users sharing data, a server, payments). One part alone stays the model's call.
pub const MULTI_COMPONENT_APP: f64 = 2.0;

/// One artifact asked for ("Write a function that...", "A GraphQL resolver for..."), or code
/// handed over with a question about it: primitive whatever the artifact touches.
pub const ONE_ARTIFACT: f64 = -2.0;

/// Rule case 2: a project's issue (a named project asked for a change or reported
/// misbehaving; a product misbehaving with none of its code here; work across "the project"
/// or "our" code). The repository is not in the prompt.
pub const PROJECT_ISSUE: f64 = 2.5;

/// A question for the assistant, or one artifact, about a language or a named library, for
/// no project of its own and no team ("pydantic v2: how do I..."): the public API answers it.
pub const API_QUESTION: f64 = -2.0;

/// The logit of a new application described by its user stories: `+GREENFIELD` with two or
/// more parts of its own (case 3), `-GREENFIELD` with fewer (the rule's small greenfield app).
pub const GREENFIELD: f64 = 3.0;

/// Structure priors (see `structure::priors`) that add up to this much say a repository is
/// at hand, and the priors that read the task alone stand aside.
pub const STRUCTURE_EVIDENCE: f64 = 0.8;

/// What the task's text showed, for the priors.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub evidence: Evidence,
    /// Cue words and phrases that are the rule's evidence for architecture.
    pub cues: u32,
    /// Application parts of its own (see `phrases::Matcher::app_parts`).
    pub app_parts: u32,
    /// The sum of the structure priors.
    pub structure: f64,
}

/// The priors that apply, named.
pub fn of(s: &Seen) -> Vec<(&'static str, f64)> {
    let ev = &s.evidence;
    let repo = s.structure >= STRUCTURE_EVIDENCE;
    let mut out = Vec::new();
    if s.cues == 0 && !ev.outside() && !repo {
        out.push(("no architecture evidence", NO_EVIDENCE));
    }
    let one_artifact = !repo && ev.one_artifact();
    if one_artifact {
        out.push(("one artifact asked for", ONE_ARTIFACT));
    }
    let issue = ev.project_issue() || ev.product_defect() || ev.codebase_work();
    if issue {
        out.push((
            "a project's issue: its repository is not in the prompt",
            PROJECT_ISSUE,
        ));
    }
    if !issue && !one_artifact && !repo && (ev.plain_question() || ev.library_question()) {
        out.push(("a question about an API", API_QUESTION));
    }
    if s.app_parts >= 2 && !one_artifact {
        out.push(("multi-component application", MULTI_COMPONENT_APP));
    }
    out
}

/// For a new application described by its user stories (`Evidence::greenfield_app`), the
/// rule's case 3 alone: its parts decide.
pub fn greenfield(app_parts: u32) -> (&'static str, f64) {
    if app_parts >= 2 {
        (
            "an application of two or more parts (user stories)",
            GREENFIELD,
        )
    } else {
        (
            "an application of fewer than two parts (user stories)",
            -GREENFIELD,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{artifact, evidence};

    fn names(text: &str, cues: u32) -> Vec<&'static str> {
        let seen = Seen {
            evidence: evidence::read(text, artifact::read(text)),
            cues,
            app_parts: 0,
            structure: 0.0,
        };
        of(&seen).into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn each_case_of_the_rule_fires_on_its_own_kind_of_task() {
        let issue = "a project's issue: its repository is not in the prompt";
        assert_eq!(
            names("inkwell-sdk v3.2: uploads hang forever on slow links", 0),
            [issue]
        );
        assert_eq!(names("Support Python 3.14 in driftwood-cli", 0), [issue]);
        assert_eq!(
            names("How do I read a gzip file line by line in Python?", 0),
            ["no architecture evidence", "a question about an API"]
        );
        assert_eq!(
            names(
                "Fix the bug in this function:\n```python\ndef f(x):\n    return x +\n```",
                0
            ),
            ["no architecture evidence", "one artifact asked for"]
        );
        // A reproduction snippet does not bring a tagged issue's repository into the prompt.
        assert_eq!(
            names(
                "[Bug] export fails\n\n```python\nimport x\nx.export()\nx.close()\n```\nThis throws.",
                1
            ),
            [issue]
        );
    }

    #[test]
    fn structure_that_shows_a_repository_silences_the_task_only_priors() {
        let text = "How do I read a gzip file line by line in Python?";
        let seen = Seen {
            evidence: evidence::read(text, artifact::read(text)),
            cues: 0,
            app_parts: 0,
            structure: 1.0,
        };
        assert!(of(&seen).is_empty());
        assert_eq!(greenfield(2).1, GREENFIELD);
        assert_eq!(greenfield(1).1, -GREENFIELD);
    }
}
