//! Diagnostics: every pass reports errors as [`Diagnostic`] values with spans; this module is
//! the only one that renders them (through miette), marking spans that fall in tapsets.

use crate::span::Span;

/// One error or warning, as data. Passes build these; `render` turns them into text.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable short code, e.g. `E0101`, for tests and documentation.
    pub code: &'static str,
    /// Lowercase, no trailing period, naming the user's construct.
    pub message: String,
    /// The primary location and its label.
    pub span: Span,
    pub label: String,
    /// Further locations, e.g. the other use in a type conflict.
    pub related: Vec<(Span, String)>,
    pub help: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            related: Vec::new(),
            help: None,
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }
}
