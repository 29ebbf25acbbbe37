//! Where the code a task needs lives (LABELING.md case 2): evidence that a repository exists
//! outside the prompt (a named project, a slug, an issue number, a version, an issue
//! template, a stack trace through a library's modules, "our" code) weighed against evidence
//! that everything is in the prompt (pasted code the task points at, one artifact asked for,
//! a question about an API, a traceback from a short script). Each becomes a named dense
//! feature (`features::Extra`), so its weight is learned and `classify --explain` names it.

mod project;
mod stories;
mod title;
mod trace;

pub use project::{Marks, is_slug, is_version};
pub use stories::Stories;
pub use title::{Ask, Title};
pub use trace::Frames;

use super::artifact::Reading;

/// How much of the task is read for marks and stack frames.
const READ: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub title: Title,
    pub marks: Marks,
    pub frames: Frames,
    pub stories: Stories,
    pub artifact: Reading,
}

impl Evidence {
    /// A project is named: a slug, an issue reference, a repository link, an issue tag, or
    /// a name before the colon of the first line.
    pub fn named(&self) -> bool {
        self.title.prefix
            || self.title.tag
            || self.title.prefix_slug
            || self.marks.slugs > 0
            || self.marks.issue_refs > 0
            || self.marks.repo_links > 0
    }

    /// Everything is in the prompt: pasted code the task points at, or the first line points
    /// at something here ("this", "my") without "our".
    pub fn in_prompt(&self) -> bool {
        (self.artifact.about_code || (self.title.points && !self.title.ours))
            && self.frames.library == 0
            && self.marks.issue_refs == 0
    }

    /// The one-artifact reading holds: nothing says the artifact belongs to a project.
    pub fn one_artifact(&self) -> bool {
        let handed_over = self.artifact.about_code || (self.artifact.code && self.script_trace());
        (self.artifact.one_artifact() || (handed_over && !self.artifact.reason))
            && !self.title.ours
            && !self.project_issue()
            && self.frames.library == 0
            && self.marks.issue_refs == 0
            && self.marks.template == 0
    }

    /// A project's issue: it is named (or a version, a template, a library's stack trace
    /// says it exists), and the task asks for a change to it or reports it misbehaving.
    pub fn project_issue(&self) -> bool {
        let exists = self.named()
            || self.title.product
            || self.marks.versions > 0
            || self.marks.template > 0
            || self.frames.library > 0;
        let asks = matches!(self.title.ask, Ask::Change | Ask::Defect)
            || (self.title.ask == Ask::Other
                && (self.title.tag || self.title.prefix_slug || self.marks.issue_refs > 0));
        // Pasted code outweighs a weak sign (a name before a colon, "the app"), not an
        // issue's own marks: a reproduction snippet does not bring the repository along.
        let strong = self.title.tag
            || self.title.prefix_slug
            || self.marks.slugs > 0
            || self.marks.issue_refs > 0
            || self.marks.template > 0
            || self.marks.versions > 0
            || self.frames.library > 0;
        let here = (self.title.points && !self.title.ours) || (self.in_prompt() && !strong);
        exists && asks && !here
    }

    /// A product misbehaving, named or not ("cli-hub crashes on Windows"), with nothing of it
    /// in the prompt.
    pub fn product_defect(&self) -> bool {
        self.title.ask == Ask::Defect && !self.in_prompt() && !self.artifact.code
    }

    /// A question for the assistant or one artifact, about a named library or version
    /// ("pydantic v2: how do I..."): answered from the library's public API.
    pub fn library_question(&self) -> bool {
        matches!(self.title.ask, Ask::Question | Ask::Artifact)
            && !self.title.ours
            && (self.title.prefix || self.marks.versions > 0)
    }

    /// Work across a codebase that exists and is not in the prompt: a reason the rule names
    /// (a migration, "across", "the whole project") about "the project" or "our" code.
    pub fn codebase_work(&self) -> bool {
        self.artifact.reason && (self.title.product || self.title.ours) && !self.in_prompt()
    }

    /// A new application described by its user stories, for no named project and no team.
    pub fn greenfield_app(&self) -> bool {
        // A link to a repository is a reference ("see the example on GitHub"), not the
        // project the task is about.
        self.stories.describe_an_app()
            && !(self.title.prefix || self.title.tag || self.title.prefix_slug)
            && self.marks.issue_refs == 0
            && !self.title.ours
            && self.marks.template == 0
    }

    /// A question for the assistant that names no project and no team ("How do I mock
    /// `datetime.now()`?").
    pub fn plain_question(&self) -> bool {
        self.title.ask == Ask::Question && !self.title.ours && !self.named()
    }

    /// A traceback only through a script and the standard library.
    pub fn script_trace(&self) -> bool {
        self.frames.script > 0 && self.frames.library == 0
    }

    /// Any sign of a repository outside the prompt (for the no-evidence prior).
    pub fn outside(&self) -> bool {
        self.project_issue()
            || self.product_defect()
            || self.codebase_work()
            || self.marks.issue_refs > 0
            || self.marks.template > 0
            || self.frames.library > 0
    }
}

/// Reads a task once. `artifact` is the task's artifact reading (see `artifact::read`).
pub fn read(task: &str, artifact: Reading) -> Evidence {
    let text = super::features::cut(task, READ);
    Evidence {
        title: title::read(text),
        marks: project::marks(text),
        frames: trace::frames(text),
        stories: stories::read(text),
        artifact,
    }
}
