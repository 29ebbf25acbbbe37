//! Wire types and codecs. No I/O here.

pub mod error;
pub mod openai;
pub mod sse;
