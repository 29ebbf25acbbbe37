//! Word normal forms: a crude suffix stripper and the function words left out of n-grams.

/// A crude suffix stripper: enough to make "services"/"service" and "deploying"/"deployed" meet.
pub fn stem(w: &str) -> &str {
    const SUFFIXES: &[&str] = &[
        "ments", "ment", "ings", "ing", "ions", "ion", "ies", "ied", "ers", "er", "ed", "es", "s",
        "ly", "y", "e",
    ];
    for s in SUFFIXES {
        if w.len() >= s.len() + 4 && w.ends_with(s) {
            let rest = &w[..w.len() - s.len()];
            if *s == "s" && (rest.ends_with('s') || rest.ends_with('u')) {
                continue;
            }
            return rest;
        }
    }
    w
}

/// Function words: frequent in every source, so what they weigh is a source's style.
pub fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "as", "into", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this",
    "that", "these", "those", "then", "than", "there", "their", "they", "them", "he", "she", "his",
    "her", "i", "me", "my", "you", "your", "can", "could", "will", "would", "should", "may",
    "might", "must", "do", "does", "did", "have", "has", "had", "if", "so", "not", "no", "all",
    "any", "each", "which", "what", "when", "where", "who", "how", "also", "only", "just", "some",
    "such", "very", "more", "most", "other", "about", "up", "out", "s", "t", "e", "g",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_meet() {
        assert_eq!(stem("services"), stem("service"));
        assert_eq!(stem("deploying"), stem("deployed"));
        assert_eq!(stem("users"), "user");
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("files"), stem("file"));
    }

    #[test]
    fn function_words_are_stopwords() {
        assert!(is_stopword("the") && is_stopword("could") && is_stopword("g"));
        assert!(!is_stopword("service") && !is_stopword("database"));
    }
}
