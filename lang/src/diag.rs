//! Diagnostics: every pass reports errors as [`Diagnostic`] values with spans; this module is
//! the only one that renders them (through miette), marking spans that fall in tapsets.

use crate::span::{SourceKind, SourceMap, Span};

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

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, span) }
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

/// Renders diagnostics as miette reports, one after the other. Spans in tapset files are
/// named `tapset NAME` so the user can tell the problem is not in their script.
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for d in diags {
        let file = sources.file(d.span.file);
        let name = match file.kind {
            SourceKind::Tapset => format!("tapset {}", file.name),
            _ => file.name.clone(),
        };
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            (!d.label.is_empty()).then(|| d.label.clone()),
            span_range(d.span),
        )];
        for (span, label) in &d.related {
            if span.file == d.span.file {
                labels.push(LabeledSpan::new_with_span(Some(label.clone()), span_range(*span)));
            }
        }
        let mut m = MietteDiagnostic::new(d.message.clone()).with_code(d.code).with_labels(labels);
        m = m.with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
        if let Some(h) = &d.help {
            m = m.with_help(h.clone());
        }
        let report = miette::Report::new(m).with_source_code(NamedSource::new(name, file.text.clone()));
        let _ = handler.render_report(&mut out, report.as_ref());
        out.push('\n');
    }
    out
}

fn span_range(span: Span) -> (usize, usize) {
    (span.start as usize, (span.end - span.start) as usize)
}

/// Whether any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.severity == Severity::Error)
}
