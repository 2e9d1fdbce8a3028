//! Helpers shared by the integration tests of `lang`.

use lang::ast::Script;

/// The `Debug` form of a script with every `Span { .. }` removed.
pub fn without_spans(script: &Script) -> String {
    let text = format!("{script:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Span { file: ") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a span ends with `}`");
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}
