//! A new application described by its user stories ("User can search for a food", "- [ ]
//! Survey Coordinator can define a survey"): a product specification, greenfield. For such a
//! task the labelling rule's case 3 decides (two or more parts of its own: architecture);
//! what its prose sounds like does not.

use super::project::in_list;

/// Who a story is about, lower case.
const SUBJECTS: &[&str] = &[
    "user",
    "users",
    "visitor",
    "visitors",
    "player",
    "players",
    "customer",
    "customers",
    "admin",
    "admins",
    "administrator",
    "administrators",
];
const MODALS: &[&str] = &["can", "will", "should", "must", "may"];
/// Capitalised words that open sentences, not roles.
const PRONOUNS: &[&str] = &[
    "we",
    "it",
    "you",
    "i",
    "they",
    "this",
    "that",
    "there",
    "he",
    "she",
    "one",
    "which",
    "who",
    "what",
    "each",
    "all",
    "some",
    "any",
    "people",
    "everyone",
    "developer",
    "developers",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stories {
    /// Lines that are a user story ("User can...", "As a user...", "Survey Respondent can...").
    pub stories: u8,
    /// Checklist items ("- [ ] ...").
    pub checklist: u8,
}

impl Stories {
    pub fn describe_an_app(&self) -> bool {
        self.stories >= 3 || (self.checklist >= 3 && self.stories >= 1)
    }
}

pub fn read(text: &str) -> Stories {
    let mut s = Stories::default();
    for line in text.lines() {
        let mut t = line.trim_start();
        t = t.trim_start_matches(['-', '*', '+']).trim_start();
        if let Some(rest) = t.strip_prefix("[ ]").or_else(|| t.strip_prefix("[x]")) {
            s.checklist = s.checklist.saturating_add(1);
            t = rest.trim_start();
        }
        if is_story(t) {
            s.stories = s.stories.saturating_add(1);
        }
    }
    s
}

fn is_story(t: &str) -> bool {
    let mut words = [""; 4];
    let mut n = 0;
    for w in t
        .split(|c: char| !(c.is_ascii_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
        .take(4)
    {
        words[n] = w;
        n += 1;
    }
    let is = |i: usize, list: &[&str]| i < n && in_list(words[i], list);
    let capital = |i: usize| {
        i < n
            && words[i]
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase())
            && !in_list(words[i], PRONOUNS)
    };
    if is(0, &["as"]) && is(1, &["a", "an"]) {
        return true;
    }
    let at = usize::from(is(0, &["the"]));
    (is(at, SUBJECTS) && is(at + 1, MODALS))
        // A role of two capitalised words: "Survey Coordinator can".
        || (capital(at) && capital(at + 1) && is(at + 2, MODALS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_stories_are_counted_and_prose_is_not() {
        let app = "Calorie Counter\n\n## User Stories\n\n-   [ ] User can enter search terms.\n-   [ ] User can click on the 'Search' button.\n- [ ] Survey Respondents can see results.\n- [ ] The user should see a warning.";
        let s = read(app);
        assert_eq!((s.stories, s.checklist), (4, 4));
        assert!(s.describe_an_app());
        let prose = "We can use Postgres.\nIt can fail.\nUsers report that it crashes.\nDevelopers can add plugins.\n- [x] I searched the issues";
        let s = read(prose);
        assert_eq!(s.stories, 0);
        assert!(!s.describe_an_app());
    }
}
