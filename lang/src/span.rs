//! Source positions: every syntax node carries a [`Span`] into a file held by the [`SourceMap`].
//!
//! Positions are byte offsets; lines and columns are computed only for display.

use std::fmt;

/// Index of a file in the [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FileId(pub u32);

/// A byte range `start..end` in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }

    /// The smallest span covering both (which must be in the same file).
    pub fn to(self, other: Span) -> Span {
        debug_assert_eq!(self.file, other.file);
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// Where a source file came from; tapset spans are marked as such in diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SourceKind {
    /// A script file named on the command line.
    Script,
    /// The text of `-e`.
    CommandLine,
    /// A tapset file, built in or from `-I`.
    Tapset,
}

#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    pub kind: SourceKind,
    /// The offset where each line starts: `-p4` names the line of every few instructions,
    /// and counting newlines from the start of the file each time was quadratic.
    line_starts: Vec<u32>,
}

/// All source text of one compilation: the script and every tapset file.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>, kind: SourceKind) -> FileId {
        let text = text.into();
        let line_starts =
            std::iter::once(0).chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i as u32 + 1)).collect();
        self.files.push(SourceFile { name: name.into(), text, kind, line_starts });
        FileId(self.files.len() as u32 - 1)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }

    /// The text a span covers.
    pub fn snippet(&self, span: Span) -> &str {
        &self.file(span.file).text[span.start as usize..span.end as usize]
    }

    /// 1-based line and column of a span's start.
    pub fn line_col(&self, span: Span) -> (usize, usize) {
        let file = self.file(span.file);
        let start = (span.start as usize).min(file.text.len());
        let line = file.line_starts.partition_point(|&s| s as usize <= start);
        (line, start - file.line_starts[line - 1] as usize + 1)
    }

    /// The text of the line a span starts on, without its newline.
    pub fn line_text(&self, span: Span) -> &str {
        let file = self.file(span.file);
        let (line, _) = self.line_col(span);
        let start = file.line_starts[line - 1] as usize;
        let end = file.line_starts.get(line).map_or(file.text.len(), |&e| e as usize - 1);
        &file.text[start..end]
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let mut sources = SourceMap::default();
        let f = sources.add("t.stp", "ab\n\ncd\n", SourceKind::Script);
        let at = |start| Span::new(f, start, start);
        let found: Vec<_> = (0..=7).map(|i| (sources.line_col(at(i)), sources.line_text(at(i)))).collect();
        assert_eq!(
            found,
            [
                ((1, 1), "ab"),
                ((1, 2), "ab"),
                ((1, 3), "ab"),
                ((2, 1), ""),
                ((3, 1), "cd"),
                ((3, 2), "cd"),
                ((3, 3), "cd"),
                ((4, 1), ""),
            ]
        );
    }
}
