//! The truncation and empty-or-refusal checks.

use std::sync::LazyLock;

use regex::Regex;

use super::{Answer, Block, Verdict};

pub fn truncated(a: &Answer, blocks: &[Block<'_>]) -> Verdict {
    if a.ended_early {
        return Verdict::Fail("the stream ended before the answer was complete".into());
    }
    if matches!(a.finish_reason.as_deref(), Some("length" | "max_tokens")) {
        return Verdict::Fail("cut at the token limit (finish_reason: length)".into());
    }
    if let Some(b) = blocks.iter().find(|b| !b.closed) {
        return Verdict::Fail(format!(
            "the code block opened at line {} is never closed",
            b.line
        ));
    }
    Verdict::Pass
}

/// A refusal opening: "I'm sorry, but I can't", "I cannot help with", "As an AI ...".
static REFUSAL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\W*(i'?m sorry|i am sorry|sorry, (but )?i|i apologi[sz]e|as an ai\b|unfortunately,? i (can ?not|can't|am unable|won't)|i (can ?not|can't|won't|am unable to|'m unable to|am not able to|'m not able to) (help|assist|provide|do|comply|write|complete|fulfil))",
    )
    .ok()
});

/// Refusals longer than this are taken as answers that explain themselves.
const REFUSAL_MAX_CHARS: usize = 400;

pub fn empty(a: &Answer, blocks: &[Block<'_>]) -> Verdict {
    let text = a.text.trim();
    if text.is_empty() && a.tool_calls.is_empty() {
        return Verdict::Fail("empty answer".into());
    }
    if a.tool_calls.is_empty() && blocks.is_empty() && text.chars().count() <= REFUSAL_MAX_CHARS {
        let plain = text.replace(['\u{2019}', '\u{2018}'], "'");
        if REFUSAL.as_ref().is_some_and(|r| r.is_match(&plain)) {
            return Verdict::Fail("a refusal and nothing else".into());
        }
    }
    Verdict::Pass
}

#[cfg(test)]
mod tests {
    use super::super::{Answer, ToolCall, fence::blocks};
    use super::*;

    fn t(text: &str, finish: Option<&str>) -> Verdict {
        let a = Answer::text(text, finish);
        truncated(&a, &blocks(text))
    }

    fn e(text: &str) -> Verdict {
        empty(&Answer::text(text, Some("stop")), &blocks(text))
    }

    #[test]
    fn truncation() {
        assert_eq!(t("fine", Some("stop")), Verdict::Pass);
        assert!(t("fine", Some("length")).failed());
        assert!(t("x\n```js\nlet a = 1;\n", Some("stop")).failed());
        assert_eq!(t("```js\nlet a = 1;\n```", None), Verdict::Pass);
        let mut a = Answer::text("half", None);
        a.ended_early = true;
        assert!(truncated(&a, &[]).failed());
    }

    #[test]
    fn empty_and_refusals() {
        assert!(e("").failed());
        assert!(e("  \n ").failed());
        assert!(e("I'm sorry, but I can't help with that.").failed());
        assert!(e("I\u{2019}m sorry, I cannot assist with that request.").failed());
        assert!(e("As an AI language model, I cannot browse the internet.").failed());
        assert_eq!(
            e("Sorry for the confusion: here is the fix.\n```py\nx = 1\n```"),
            Verdict::Pass
        );
        assert_eq!(e("I can help with that. Use a set."), Verdict::Pass);
        assert_eq!(e("The capital of France is Paris."), Verdict::Pass);
        let mut a = Answer::text("", Some("tool_calls"));
        a.tool_calls.push(ToolCall {
            name: "f".into(),
            arguments: "{}".into(),
        });
        assert_eq!(empty(&a, &[]), Verdict::Pass);
    }
}
