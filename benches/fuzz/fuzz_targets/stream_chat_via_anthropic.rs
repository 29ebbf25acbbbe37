//! An Anthropic event stream translated to OpenAI chat chunks (an OpenAI client served by
//! Anthropic), fed cut anywhere, ended or broken off.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tiergate::translate::chat_via_anthropic::stream::ChatFromAnthropic;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (cuts, stream) = tiergate_fuzz::cuts_and_stream(data);
    let mut t = ChatFromAnthropic::new(0, flags & 1 == 1);
    tiergate_fuzz::run_translator(&mut t, stream, &cuts, flags & 2 == 2);
});
