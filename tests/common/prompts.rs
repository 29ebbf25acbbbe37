//! Request texts the tests share: prompts whose classifier scores are known, and a secret.

/// Prompts and the scores the shipped classifier gives them (`tiergate classify`).
pub const CLEAR_PRIMITIVE: &str = "write a function that parses dates"; // 0.000
pub const UNSURE_PRIMITIVE: &str = "Counting Ways of Making Change."; // 0.330
pub const UNSURE_ARCHITECTURE: &str = "Return the top k requests during a time interval"; // 0.423
pub const CLEAR_ARCHITECTURE: &str = "Split the billing module of this service into its own \
    microservice with an event bus, and plan the database migration across our codebase."; // 1.000

/// A GitHub token, assembled here so that no file holds one.
pub fn secret() -> String {
    let tail: String = (0..36)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    format!("ghp_{}", tail.replace('a', "7"))
}
