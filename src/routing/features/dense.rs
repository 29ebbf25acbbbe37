//! The dense features by name. A slot is a cue group (`lexicon::GROUPS`), a phrase group
//! (`phrases::PHRASES`) or one of the `Extra` features; its index in the weight vector is
//! derived from the slot, never from the order values were pushed in.

use crate::routing::lexicon::GROUPS;
use crate::routing::phrases::PHRASES;

/// Dense features that are neither a cue group nor a phrase group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extra {
    /// Share of the architecture cue groups that occur.
    ArchVariety,
    /// ln(1 + distinct paths).
    Paths,
    /// Code in the task (a fence, an assert, a doctest, an indented statement).
    Code,
    /// The task ends with a question mark.
    Question,
    /// ln((1 + architecture cues) / (1 + primitive cues)).
    CueBalance,
    /// Application components beyond the first.
    AppComponents,
    /// None of the labeling rule's reasons for architecture occurs.
    NoEvidence,
    /// A project is named: slug, issue reference, repository link, issue tag, "name:" opening.
    NamedProject,
    /// A named project asked for a change or reported misbehaving (`Evidence::project_issue`).
    ProjectIssue,
    /// A product misbehaving with nothing of it in the prompt.
    ProductDefect,
    /// A question or one artifact about a named library or version.
    LibraryQuestion,
    /// The task points at what it hands over ("this function" with the code).
    InPrompt,
    /// ln(1 + issue and pull request references, @mentions).
    IssueRefs,
    /// A version is named.
    Version,
    /// ln(1 + issue template sections).
    IssueTemplate,
    /// A stack frame in a library's or a project's modules.
    LibraryTrace,
    /// A traceback only through a script and the standard library.
    ScriptTrace,
    /// "we", "our" in the first line.
    Ours,
    /// A question for the assistant naming no project and no team.
    PlainQuestion,
}

impl Extra {
    pub const ALL: [Extra; 19] = [
        Extra::ArchVariety,
        Extra::Paths,
        Extra::Code,
        Extra::Question,
        Extra::CueBalance,
        Extra::AppComponents,
        Extra::NoEvidence,
        Extra::NamedProject,
        Extra::ProjectIssue,
        Extra::ProductDefect,
        Extra::LibraryQuestion,
        Extra::InPrompt,
        Extra::IssueRefs,
        Extra::Version,
        Extra::IssueTemplate,
        Extra::LibraryTrace,
        Extra::ScriptTrace,
        Extra::Ours,
        Extra::PlainQuestion,
    ];

    /// The name stored in model.json and shown by `classify --explain`.
    pub fn name(self) -> &'static str {
        match self {
            Extra::ArchVariety => "arch_variety",
            Extra::Paths => "paths",
            Extra::Code => "code",
            Extra::Question => "question",
            Extra::CueBalance => "cue_balance",
            Extra::AppComponents => "app_components",
            Extra::NoEvidence => "no_evidence",
            Extra::NamedProject => "named_project",
            Extra::ProjectIssue => "project_issue",
            Extra::ProductDefect => "product_defect",
            Extra::LibraryQuestion => "library_question",
            Extra::InPrompt => "in_prompt",
            Extra::IssueRefs => "issue_refs",
            Extra::Version => "version",
            Extra::IssueTemplate => "issue_template",
            Extra::LibraryTrace => "library_trace",
            Extra::ScriptTrace => "script_trace",
            Extra::Ours => "ours",
            Extra::PlainQuestion => "plain_question",
        }
    }
}

/// One dense feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A cue group, by its index in `GROUPS`.
    Group(usize),
    /// A phrase group, by its index in `PHRASES`.
    Phrase(usize),
    Extra(Extra),
}

impl Slot {
    pub fn index(self) -> usize {
        match self {
            Slot::Group(g) => g,
            Slot::Phrase(p) => GROUPS.len() + p,
            Slot::Extra(e) => GROUPS.len() + PHRASES.len() + e as usize,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::Group(g) => GROUPS.get(g).map_or("?", |g| g.name),
            Slot::Phrase(p) => PHRASES.get(p).map_or("?", |p| p.name),
            Slot::Extra(e) => e.name(),
        }
    }

    /// Every slot, in index order.
    pub fn all() -> impl Iterator<Item = Slot> {
        (0..GROUPS.len())
            .map(Slot::Group)
            .chain((0..PHRASES.len()).map(Slot::Phrase))
            .chain(Extra::ALL.into_iter().map(Slot::Extra))
    }
}

/// Number of dense features: one per cue group and phrase group, plus `Extra`.
pub fn dense_len() -> usize {
    GROUPS.len() + PHRASES.len() + Extra::ALL.len()
}

/// The name of dense feature `i`.
pub fn dense_name(i: usize) -> &'static str {
    Slot::all().nth(i).map_or("?", Slot::name)
}

/// Dense feature values, addressed by slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Values(pub Vec<f32>);

impl Default for Values {
    fn default() -> Self {
        Values(vec![0.0; dense_len()])
    }
}

impl Values {
    pub fn set(&mut self, slot: Slot, v: f32) {
        if let Some(x) = self.0.get_mut(slot.index()) {
            *x = v;
        }
    }

    pub fn get(&self, slot: Slot) -> f32 {
        self.0.get(slot.index()).copied().unwrap_or(0.0)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_its_own_index_and_name() {
        let slots: Vec<Slot> = Slot::all().collect();
        assert_eq!(slots.len(), dense_len());
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(dense_name(i), s.name());
        }
        let mut names: Vec<&str> = slots.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), dense_len(), "names are unique");
        assert_eq!(dense_name(dense_len()), "?");
    }
}
