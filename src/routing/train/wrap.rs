//! Wrapping a bare prompt the way IDE clients send it, to measure that the classifier judges
//! the task and not the wrapping. Shapes follow ../shared/clients/INDEX.md.

use std::borrow::Cow;

use crate::routing::input::{Conversation, Role, Turn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// The prompt alone, as `{"prompt": ...}`.
    Bare,
    /// A long editing system prompt with few-shot turns and a trailing reminder (aider, Continue).
    Editor,
    /// An agent system prompt with file and shell tools, the task quoted (opencode) or followed
    /// by a nudge (cline --yolo) or inside `<task>` with `<environment_details>` (Cline IDE).
    Agent,
    /// Claude Code: reminders in the user turn and a system turn after it.
    ClaudeCode,
    /// Codex: developer turns and an `<environment_context>` user turn before the task.
    Codex,
}

pub const ALL: &[Wrapping] = &[
    Wrapping::Bare,
    Wrapping::Editor,
    Wrapping::Agent,
    Wrapping::ClaudeCode,
    Wrapping::Codex,
];

impl Wrapping {
    pub fn name(self) -> &'static str {
        match self {
            Wrapping::Bare => "bare",
            Wrapping::Editor => "editor",
            Wrapping::Agent => "agent",
            Wrapping::ClaudeCode => "claude-code",
            Wrapping::Codex => "codex",
        }
    }
}

const EDITOR_SYSTEM: &str = "Act as an expert software developer.
Always use best practices when coding.
Respect and use existing conventions, libraries, etc that are already present in the code base.
Take requests for changes to the supplied code.
If the request is ambiguous, ask questions.
Always reply to the user in the same language they are using.
Once you understand the request you MUST:
1. Determine if any code changes are needed.
2. Explain any needed changes.
3. If changes are needed, output a copy of each file that needs changes.
To suggest changes to a file you MUST return the entire content of the updated file.
You MUST use this *file listing* format:
path/to/filename.js
```
// entire file content ...
// ... goes in between
```
Every *file listing* MUST use this format:
- First line: the filename with any originally provided path; no extra markup, punctuation, comments, etc. **JUST** the filename with path.
- Second line: opening ```
- ... entire content of the file ...
- Final line: closing ```
To suggest changes to a file you MUST return a *file listing* that contains the entire content of the file.
*NEVER* skip, omit or elide content from a *file listing* using \"...\" or by adding comments like \"... rest of code...\"!
Create a new file you MUST return a *file listing* which includes an appropriate filename, including any appropriate path.
Reply in English. Keep your answers concise and focused on the code the user shares with you; \
when the user asks about architecture, databases, services or deployment, answer with the same care.";

const EDITOR_REMINDER: &str =
    "To suggest changes to a file you MUST return the entire content of the updated file.
You MUST use this *file listing* format: the filename, then ```, the whole file, then ```.
*NEVER* skip, omit or elide content from a *file listing*.";

const AGENT_SYSTEM: &str = "You are a highly skilled software engineer with extensive knowledge in many programming \
languages, frameworks, design patterns, and best practices. You work in the user's repository through tools.
====
TOOL USE
You have access to a set of tools that are executed upon the user's approval. You can use one tool per message, \
and will receive the result of that tool use in the user's response. Read files before editing them. Use \
search_files to find code across the project; use execute_command to run tests, builds, migrations and \
deployments; use write_to_file and replace_in_file to change files.
====
RULES
- The current working directory is /home/user/project. You cannot cd into a different directory.
- Do not ask for more information than necessary. Use the tools provided to accomplish the user's request.
- When making changes to code, always consider the context in which the code is being used: the services, \
databases, infrastructure and architecture of the system it belongs to.
- Be concise. Do not start your messages with \"Great\", \"Certainly\", \"Okay\", \"Sure\".
====
SYSTEM INFORMATION
Operating System: Linux 6.1
Default Shell: /bin/bash
Home Directory: /home/user
Current Working Directory: /home/user/project
<env>
Working directory: /home/user/project
Is directory a git repo: yes
Platform: linux
Today's date: 2026-11-26
</env>";

const AGENT_TOOLS: &[&str] = &[
    "read_file",
    "write_to_file",
    "replace_in_file",
    "execute_command",
    "search_files",
    "list_files",
];
const CLAUDE_TOOLS: &[&str] = &[
    "Agent",
    "Bash",
    "Edit",
    "Read",
    "Write",
    "Glob",
    "Grep",
    "WebFetch",
    "TodoWrite",
];
const CODEX_TOOLS: &[&str] = &[
    "exec_command",
    "write_stdin",
    "apply_patch",
    "view_image",
    "update_plan",
];

fn turn(role: Role, text: impl Into<String>) -> Turn<'static> {
    Turn {
        role,
        text: Cow::Owned(text.into()),
        attachments: 0,
    }
}

fn tools(names: &[&str]) -> Vec<Cow<'static, str>> {
    names.iter().map(|n| Cow::Owned((*n).to_string())).collect()
}

/// The conversation a client would send for `prompt`. `variant` picks among a client
/// family's shapes (e.g. opencode's quotes or cline's nudge) so that every shape is covered.
pub fn wrap(prompt: &str, how: Wrapping, variant: usize) -> Conversation<'static> {
    match how {
        Wrapping::Bare => Conversation {
            turns: vec![turn(Role::User, prompt)],
            tools: Vec::new(),
            fim: false,
        },
        Wrapping::Editor => Conversation {
            turns: vec![
                turn(Role::System, EDITOR_SYSTEM),
                turn(Role::User, "Change get_factorial() to use math.factorial"),
                turn(
                    Role::Assistant,
                    "To make this change we need to modify `mathweb/flask/app.py`:\n\nmathweb/flask/app.py\n```\nimport math\n```",
                ),
                turn(
                    Role::User,
                    "I switched to a new code base. Please don't consider the above files or try to edit them any longer.",
                ),
                turn(Role::Assistant, "Ok."),
                turn(
                    Role::User,
                    "I have *added these files to the chat* so you can go ahead and edit them.\n\napp.py\n```\nfrom flask import Flask\napp = Flask(__name__)\n```",
                ),
                turn(
                    Role::Assistant,
                    "Ok, any changes I propose will be to those files.",
                ),
                turn(Role::User, prompt),
                turn(Role::System, EDITOR_REMINDER),
            ],
            tools: Vec::new(),
            fim: false,
        },
        Wrapping::Agent => {
            let mut turns = vec![turn(Role::System, AGENT_SYSTEM)];
            match variant % 3 {
                0 => turns.push(turn(Role::User, format!("\"{prompt}\""))),
                1 => {
                    turns.push(turn(Role::User, prompt));
                    turns.push(turn(Role::User, "[SYSTEM] This run is not complete until you call the submit_and_exit tool. Continue working on the task."));
                }
                _ => turns.push(turn(
                    Role::User,
                    format!("<task>\n{prompt}\n</task>\n\n<environment_details>\n# Current Working Directory (/home/user/project) Files\napp.py\nbilling.py\ndb.py\nREADME.md\n\n# Current Time\n2026-11-26 10:00\n</environment_details>"),
                )),
            }
            Conversation {
                turns,
                tools: tools(AGENT_TOOLS),
                fim: false,
            }
        }
        Wrapping::ClaudeCode => {
            let reminder = "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# important-instruction-reminders\nDo what has been asked; nothing more, nothing less.\nWhen you create commits, add a Co-Authored-By trailer.\n</system-reminder>";
            let env = "<env>\nWorking directory: /home/user/project\nIs directory a git repo: Yes\nPlatform: linux\nToday's date: 2026-11-26\n</env>\nYou are powered by the model claude-opus. Available agent types: general-purpose, Explore, Plan.";
            Conversation {
                turns: vec![
                    turn(
                        Role::System,
                        "You are Claude Code, Anthropic's official CLI for Claude. You are an interactive agent that helps users with software engineering tasks.",
                    ),
                    turn(Role::User, format!("{reminder}\n{prompt}")),
                    turn(Role::System, env),
                ],
                tools: tools(CLAUDE_TOOLS),
                fim: false,
            }
        }
        Wrapping::Codex => Conversation {
            turns: vec![
                turn(
                    Role::System,
                    "You are Codex, based on GPT-5. You are running as a coding agent in the Codex CLI on a user's computer. Use exec_command to run shell commands and apply_patch to edit files.",
                ),
                turn(
                    Role::System,
                    "<permissions instructions>Filesystem sandboxing: workspace-write. Network access is restricted.</permissions instructions>",
                ),
                turn(
                    Role::User,
                    "<environment_context>\n  <cwd>/home/user/project</cwd>\n  <shell>bash</shell>\n  <current_date>2026-11-26</current_date>\n  <sandbox_mode>workspace-write</sandbox_mode>\n</environment_context>",
                ),
                turn(Role::User, prompt),
            ],
            tools: tools(CODEX_TOOLS),
            fim: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::task;

    #[test]
    fn every_wrapping_keeps_the_task_findable() {
        let prompt = "Design a URL shortener with a database and a cache.";
        for &w in ALL {
            for v in 0..3 {
                let c = wrap(prompt, w, v);
                let t = task::extract(&c);
                assert_eq!(t.text, prompt, "{w:?} {v}");
                assert_eq!(t.side_call, None, "{w:?} {v}");
            }
        }
    }
}
