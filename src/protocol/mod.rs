//! Wire types and codecs. No I/O here.

pub mod anthropic;
pub mod error;
pub mod format;
pub mod openai;
pub mod openai_chat;
pub mod scan;
pub mod sse;

pub use format::Format;
