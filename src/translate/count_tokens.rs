//! `POST /v1/messages/count_tokens` for upstreams that cannot count (OpenAI-compatible ones):
//! an estimate, not a tokenizer. Text and tool definitions count one token per four bytes
//! (rounded up), each image 1,600 tokens (Anthropic's figure for a full-size image), plus
//! a few tokens of framing per message. Clients use it to decide when to compact; erring
//! a little high is the safe side.

use crate::protocol::anthropic::{Block, Content, MessagesRequest};

const BYTES_PER_TOKEN: usize = 4;
const IMAGE_TOKENS: u64 = 1_600;
const PER_MESSAGE: u64 = 4;

pub fn estimate(req: &MessagesRequest) -> u64 {
    let mut bytes = 0usize;
    let mut images = 0u64;
    let mut count = |c: &Content| match c {
        Content::Text(t) => bytes += t.len(),
        Content::Blocks(blocks) => {
            for b in blocks {
                count_block(b, &mut bytes, &mut images);
            }
        }
    };
    if let Some(s) = &req.system {
        count(s);
    }
    for m in &req.messages {
        count(&m.content);
    }
    for t in req.tools.iter().flatten() {
        bytes += serde_json::to_vec(t).map(|v| v.len()).unwrap_or(0);
    }
    bytes.div_ceil(BYTES_PER_TOKEN) as u64
        + images * IMAGE_TOKENS
        + PER_MESSAGE * req.messages.len() as u64
}

fn count_block(b: &Block, bytes: &mut usize, images: &mut u64) {
    match b {
        Block::Text { text, .. } => *bytes += text.len(),
        Block::Thinking { thinking, .. } => *bytes += thinking.len(),
        Block::Image { .. } => *images += 1,
        Block::ToolUse { name, input, .. } => *bytes += name.len() + input.to_string().len(),
        Block::ToolResult { content, .. } => match content {
            Some(Content::Text(t)) => *bytes += t.len(),
            Some(Content::Blocks(bs)) => bs.iter().for_each(|b| count_block(b, bytes, images)),
            None => {}
        },
        Block::RedactedThinking { data } => *bytes += data.len(),
        Block::Other => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_text_images_and_tools() {
        let small: MessagesRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"12345678"}]}"#,
        )
        .unwrap();
        assert_eq!(estimate(&small), 2 + PER_MESSAGE);
        let big: MessagesRequest = serde_json::from_str(
            r#"{"model":"m","system":"sys!","messages":[{"role":"user","content":[{"type":"text","text":"12345678"},{"type":"image","source":{"type":"url","url":"http://x"}}]}],"tools":[{"name":"f","input_schema":{}}]}"#,
        ).unwrap();
        assert!(estimate(&big) > estimate(&small) + IMAGE_TOKENS);
    }
}
