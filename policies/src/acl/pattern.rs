//! Name / URI patterns of the ACL: ANY, LITERAL, and EXPRESSION (an anchored regular expression,
//! compiled once at load with size limits so a hostile or careless pattern cannot blow up memory).

use ahash::AHashSet;
use regex::{Regex, RegexBuilder};

/// Longest EXPRESSION source accepted.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Compiled-program budget handed to the regex crate (bytes).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache budget per regex (bytes).
const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub enum Pattern {
    Any,
    /// One or more exact names (LITERAL).
    Names(AHashSet<Box<str>>),
    Expression(Regex),
}

impl Pattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Names(names) => names.contains(name),
            Pattern::Expression(regex) => regex.is_match(name),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("regular expression longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("invalid regular expression: {0}")]
    Invalid(String),
}

/// Compiles `source` so it must match the whole name: `^(?:source)$`.
///
/// The source is first compiled on its own, so something like `a)|(b` — which would escape the
/// anchoring group once wrapped — is refused instead of turning into an unanchored alternation.
pub fn compile_anchored(source: &str) -> Result<Regex, PatternError> {
    if source.len() > MAX_PATTERN_LEN {
        return Err(PatternError::TooLong);
    }
    build(source)?;
    build(&format!("^(?:{source})$"))
}

fn build(source: &str) -> Result<Regex, PatternError> {
    RegexBuilder::new(source)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| PatternError::Invalid(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn anchored_on_both_ends() {
        let regex = compile_anchored("ec.o").unwrap();
        assert!(regex.is_match("echo"));
        assert!(!regex.is_match("xecho"));
        assert!(!regex.is_match("echox"));
        assert!(!regex.is_match("echo\n"));
    }

    #[test]
    fn alternation_stays_anchored() {
        let regex = compile_anchored("a|b").unwrap();
        assert!(regex.is_match("a"));
        assert!(!regex.is_match("xa"));
        assert!(!regex.is_match("bx"));
    }

    #[test]
    fn group_escape_is_refused() {
        assert!(matches!(
            compile_anchored("a)|(b"),
            Err(PatternError::Invalid(_))
        ));
    }

    #[test]
    fn multiline_flag_cannot_unanchor() {
        let regex = compile_anchored("(?m)echo").unwrap();
        assert!(!regex.is_match("echo\nx"));
        assert!(!regex.is_match("x\necho"));
    }

    #[test]
    fn oversized_patterns_are_refused() {
        assert_eq!(
            compile_anchored(&"a".repeat(MAX_PATTERN_LEN + 1)).unwrap_err(),
            PatternError::TooLong
        );
        // Small source, huge program: the size limit stops it.
        assert!(compile_anchored("(?:[a-z]{1000}){1000}").is_err());
    }
}
