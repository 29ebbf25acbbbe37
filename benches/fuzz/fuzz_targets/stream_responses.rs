//! An OpenAI chat chunk stream translated to Responses API events (Codex served by a chat
//! upstream), fed cut anywhere, ended or broken off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::translate::responses::response::Envelope;
use tiergate::translate::responses::stream::ResponsesFromChat;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (cuts, stream) = tiergate_fuzz::cuts_and_stream(data);
    let namespaces = if flags & 4 == 4 { vec!["mcp__fs".to_string()] } else { Vec::new() };
    let mut t = ResponsesFromChat::new(Envelope::new(1, 0, "fuzz-model", namespaces));
    tiergate_fuzz::run_translator(&mut t, stream, &cuts, flags & 2 == 2);
});
