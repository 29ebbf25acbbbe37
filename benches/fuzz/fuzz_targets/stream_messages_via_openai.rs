//! An OpenAI chat chunk stream translated to Anthropic events (Claude Code served by a local
//! server or OpenAI), fed cut anywhere, ended or broken off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::translate::messages_via_openai::stream::MessagesFromOpenAi;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (cuts, stream) = tiergate_fuzz::cuts_and_stream(data);
    let mut t = MessagesFromOpenAi::new();
    tiergate_fuzz::run_translator(&mut t, stream, &cuts, flags & 2 == 2);
});
