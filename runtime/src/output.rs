//! Where a script's output goes ([`ScriptOutput`], through the sink `-f` chose), and the
//! decoding of ring-buffer records into what a script prints ([`Decoder`]).
//!
//! A record is `u32 kind, u32 pad` and the arguments at the offsets of
//! [`codegen_bpf::layout::record_layout`]; `kind` is a format id,
//! [`codegen_bpf::layout::record_kind::EXIT`], or
//! [`codegen_bpf::layout::record_error::MAX_ACTION`] with the handler in its low bits.
//! Formats come parsed in the program (`FormatDecl::format`): nothing is parsed here.

use codegen_bpf::layout::{self, record_kind};
use lang::builtins::Builtin;
use lang::ir::{FmtId, InstKind, Program, Sink, Ty};
use lang::printf::Format;

use std::io::Write;
use std::path::PathBuf;

use crate::event::{Event, EventSink, TextSink};
use crate::format::{format_bytes, Value};
use crate::json_sink::JsonSink;

/// `-f`: how the script's output is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// SystemTap's text.
    #[default]
    Text,
    /// NDJSON records ([`crate::json_sink`]).
    Json,
}

impl OutputFormat {
    fn sink(self) -> &'static dyn EventSink {
        match self {
            OutputFormat::Text => &TextSink,
            OutputFormat::Json => &JsonSink,
        }
    }
}

/// Where the script's output goes: stdout, or the `-o` file, which `switch_file()` rotates
/// as SystemTap's stapio does (FILE, then FILE.1, FILE.2, ...).
///
/// When the reader goes away (`bpftap ... | head -1`), the broken pipe is not an error: what
/// is written from then on is discarded and [`ScriptOutput::reader_gone`] tells the session
/// to end, as Ctrl-C would, so `end` still runs and the exit status is 0.
pub struct ScriptOutput {
    writer: std::io::BufWriter<Box<dyn Write>>,
    messages: Messages,
    /// The `-o` path and how many times it was switched.
    file: Option<(PathBuf, u32)>,
    reader_gone: bool,
    sink: &'static dyn EventSink,
}

impl ScriptOutput {
    fn new(
        w: Box<dyn Write>,
        file: Option<(PathBuf, u32)>,
        format: OutputFormat,
        messages: Messages,
    ) -> std::io::Result<ScriptOutput> {
        let sink = format.sink();
        let mut out = ScriptOutput { writer: std::io::BufWriter::new(w), messages, file, reader_gone: false, sink };
        sink.start(&mut out)?;
        Ok(out)
    }

    pub fn stdout(format: OutputFormat, messages: Messages) -> std::io::Result<ScriptOutput> {
        ScriptOutput::new(Box::new(std::io::stdout()), None, format, messages)
    }

    /// Text output to any writer (a scrape's response body, say); `switch_file()` only flushes.
    pub fn to_writer(w: Box<dyn Write>, messages: Messages) -> ScriptOutput {
        ScriptOutput { writer: std::io::BufWriter::new(w), messages, file: None, reader_gone: false, sink: &TextSink }
    }

    pub fn file(path: PathBuf, format: OutputFormat, messages: Messages) -> std::io::Result<ScriptOutput> {
        let f = std::fs::File::create(&path)?;
        ScriptOutput::new(Box::new(f), Some((path, 0)), format, messages)
    }

    /// Tells the user `text` (a warning, lost records): not part of the script's output. What
    /// was written before is flushed first, so the two read in order on one terminal.
    pub fn message(&mut self, text: &str) {
        let _ = self.flush();
        (self.messages)(text);
    }

    /// Where [`ScriptOutput::message`] goes.
    pub fn messages(&self) -> Messages {
        self.messages.clone()
    }

    /// Writes `event` as the output's format wants it.
    pub fn emit(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        let sink = self.sink;
        sink.emit(self, event)
    }

    /// Goes on in the next file, which starts as a new output does; on stdout, flushes only.
    pub fn switch_file(&mut self) -> std::io::Result<()> {
        self.flush()?;
        if let Some((path, n)) = &mut self.file {
            *n += 1;
            let mut next = path.clone().into_os_string();
            next.push(format!(".{n}"));
            self.writer = std::io::BufWriter::new(Box::new(std::fs::File::create(next)?));
            let sink = self.sink;
            sink.start(self)?;
        }
        Ok(())
    }

    /// Whether the reader of the output has gone (a broken pipe).
    pub fn reader_gone(&self) -> bool {
        self.reader_gone
    }

    /// A broken pipe turns the output into a sink; any other error is returned.
    fn unless_reader_gone<T>(&mut self, result: std::io::Result<T>, discarded: T) -> std::io::Result<T> {
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.reader_gone = true;
                // Dropping the old writer retries its buffer once, into the same broken pipe.
                self.writer = std::io::BufWriter::new(Box::new(std::io::sink()));
                Ok(discarded)
            }
            other => other,
        }
    }
}

impl Write for ScriptOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.writer.write(buf);
        self.unless_reader_gone(written, buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.writer.flush();
        self.unless_reader_gone(flushed, ())
    }
}

/// Where messages for the user go (warnings, lost records, a `system()` that failed): not
/// the script's output. The binary decides how to show them (stderr; under the REPL's
/// prompt); the runtime never writes to stderr itself. Each call is one message, ending
/// in a newline.
pub type Messages = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// What one record asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// A `printf` to the script's output ([`Decoder::event`] makes its [`Event`]).
    Print(Printed),
    /// Text for stderr (`warn`).
    Stderr(Vec<u8>),
    /// `error(msg)` ran in a kernel probe.
    Error(String),
    /// A shell command to start (`system`).
    Command(String),
    /// `exit()` ran in a kernel probe.
    Exit,
    /// A kernel handler (by index) ran out of loop iterations.
    MaxAction(usize),
    /// A record this script cannot have produced (a bug); shown, not hidden.
    Malformed(String),
}

/// A decoded `printf` record: its format, arguments and text.
#[derive(Debug, PartialEq, Eq)]
pub struct Printed {
    pub fmt: FmtId,
    pub args: Vec<Value>,
    pub text: Vec<u8>,
}

pub struct Decoder {
    formats: Vec<RecordFormat>,
    string_capacity: u32,
}

/// What the decoder knows of one format id.
struct RecordFormat {
    text: String,
    format: Format,
    layout: layout::RecordLayout,
    args: Vec<Ty>,
    /// See [`lang::ir::FormatDecl::deferred`].
    deferred: Vec<(usize, Builtin)>,
    sink: Sink,
    /// The point of the one kernel probe whose records have this format; `None` when several
    /// share it (formats are interned, and a record carries only the format's id).
    probe: Option<String>,
}

impl Decoder {
    pub fn new(program: &Program) -> Decoder {
        let cap = program.string_capacity;
        let mut probes: Vec<Vec<&str>> = vec![Vec::new(); program.formats.len()];
        for h in program.handlers.iter().filter(|h| !h.target.is_user_space()) {
            for inst in h.func.blocks.values().flat_map(|b| &b.insts) {
                if let InstKind::Printf { fmt, .. } = &inst.kind {
                    let points = &mut probes[fmt.as_u32() as usize];
                    if !points.contains(&h.user_point.as_str()) {
                        points.push(&h.user_point);
                    }
                }
            }
        }
        let formats = program
            .formats
            .values()
            .zip(probes)
            .map(|(f, points)| RecordFormat {
                text: f.text.clone(),
                format: f.format.clone(),
                layout: layout::record_layout(f, cap),
                args: f.args.clone(),
                deferred: f.deferred.clone(),
                sink: f.sink,
                probe: match points[..] {
                    [point] => Some(point.to_string()),
                    _ => None,
                },
            })
            .collect();
        Decoder { formats, string_capacity: cap }
    }

    /// The output event of a decoded `printf`.
    pub fn event<'a>(&'a self, printed: &'a Printed) -> Event<'a> {
        let format = &self.formats[printed.fmt.as_u32() as usize];
        Event::Printf { probe: format.probe.as_deref(), format: &format.text, args: &printed.args, text: &printed.text }
    }

    pub fn decode(&self, bytes: &[u8]) -> Record {
        let Some(kind) = bytes.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) else {
            return Record::Malformed(format!("record of {} bytes", bytes.len()));
        };
        if kind == record_kind::EXIT {
            return Record::Exit;
        }
        if kind & 0xff00_0000 == layout::record_error::MAX_ACTION {
            return Record::MaxAction((kind & 0x00ff_ffff) as usize);
        }
        let Some(RecordFormat { format, layout, args: tys, deferred, sink, .. }) = self.formats.get(kind as usize)
        else {
            return Record::Malformed(format!("unknown record kind {kind}"));
        };
        if bytes.len() < layout.size as usize {
            return Record::Malformed(format!("record {kind} has {} bytes, wants {}", bytes.len(), layout.size));
        }
        let mut args: Vec<Value> = tys
            .iter()
            .zip(&layout.arg_offsets)
            .map(|(ty, off)| {
                let off = *off as usize;
                match ty {
                    Ty::Long => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&bytes[off..off + 8]);
                        Value::Long(i64::from_le_bytes(b))
                    }
                    Ty::Str => {
                        let slot = &bytes[off..off + self.string_capacity as usize];
                        let end = slot.iter().position(|c| *c == 0).unwrap_or(slot.len());
                        match std::str::from_utf8(&slot[..end]) {
                            Ok(s) => Value::Str(s.to_string()),
                            Err(_) => Value::Bytes(slot[..end].to_vec()),
                        }
                    }
                }
            })
            .collect();
        for (i, builtin) in deferred {
            if let Some(arg) = args.get(*i) {
                args[*i] = Value::Str(crate::userspace::deferred_text(*builtin, arg));
            }
        }
        let text = format_bytes(format, &args);
        match sink {
            Sink::Output => Record::Print(Printed { fmt: FmtId::from_u32(kind), args, text }),
            Sink::Stderr => Record::Stderr(text),
            Sink::Command => Record::Command(String::from_utf8_lossy(&text).into_owned()),
            Sink::Error => Record::Error(String::from_utf8_lossy(&text).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use lang::ir::FormatDecl;

    use super::*;

    #[test]
    fn decodes_a_printf_record() {
        let mut program = Program { string_capacity: 16, ..Default::default() };
        program.formats.push(FormatDecl {
            text: "%s[%d]\n".into(),
            format: lang::printf::parse_format("%s[%d]\n").unwrap(),
            args: vec![Ty::Str, Ty::Long],
            ..Default::default()
        });
        let mut rec = vec![0u8; 8];
        let mut s = b"python3".to_vec();
        s.resize(16, 0);
        rec.extend(s);
        rec.extend(42i64.to_le_bytes());
        let decoder = Decoder::new(&program);
        let Record::Print(printed) = decoder.decode(&rec) else { panic!("not a print: {rec:?}") };
        assert_eq!(printed.text, b"python3[42]\n");
        assert_eq!(printed.args, [Value::Str("python3".into()), Value::Long(42)]);
        let Event::Printf { probe, format, .. } = decoder.event(&printed) else { panic!() };
        assert_eq!((probe, format), (None, "%s[%d]\n"));
        assert_eq!(Decoder::new(&program).decode(&u32::MAX.to_le_bytes()), Record::Exit);
    }
}
