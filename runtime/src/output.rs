//! Decoding ring-buffer records into the text a script prints.
//!
//! A record is `u32 kind, u32 pad` and the arguments at the offsets of
//! [`codegen_bpf::layout::record_layout`]; `kind` is a format id,
//! [`codegen_bpf::layout::record_kind::EXIT`], or
//! [`codegen_bpf::layout::record_error::MAX_ACTION`] with the handler in its low bits.
//! Formats are parsed once, when the decoder is made.

use codegen_bpf::layout::{self, record_kind};
use lang::builtins::Builtin;
use lang::ir::{Program, Sink, Ty};
use lang::printf::Format;

use std::io::Write;
use std::path::PathBuf;

use crate::format::{format_bytes, Value};

/// Where the script's output goes: stdout, or the `-o` file, which `switch_file()` rotates
/// as SystemTap's stapio does (FILE, then FILE.1, FILE.2, ...).
///
/// When the reader goes away (`bpftap ... | head -1`), the broken pipe is not an error: what
/// is written from then on is discarded and [`ScriptOutput::reader_gone`] tells the session
/// to end, as Ctrl-C would, so `end` still runs and the exit status is 0.
pub struct ScriptOutput {
    writer: std::io::BufWriter<Box<dyn Write>>,
    /// The `-o` path and how many times it was switched.
    file: Option<(PathBuf, u32)>,
    reader_gone: bool,
}

impl ScriptOutput {
    fn new(w: Box<dyn Write>, file: Option<(PathBuf, u32)>) -> ScriptOutput {
        ScriptOutput { writer: std::io::BufWriter::new(w), file, reader_gone: false }
    }

    pub fn stdout() -> ScriptOutput {
        ScriptOutput::new(Box::new(std::io::stdout()), None)
    }

    /// Output to any writer (a scrape's response body, say); `switch_file()` only flushes.
    pub fn to_writer(w: Box<dyn Write>) -> ScriptOutput {
        ScriptOutput::new(w, None)
    }

    pub fn file(path: PathBuf) -> std::io::Result<ScriptOutput> {
        let f = std::fs::File::create(&path)?;
        Ok(ScriptOutput::new(Box::new(f), Some((path, 0))))
    }

    /// Goes on in the next file; on stdout, flushes only.
    pub fn switch_file(&mut self) -> std::io::Result<()> {
        self.flush()?;
        if let Some((path, n)) = &mut self.file {
            *n += 1;
            let mut next = path.clone().into_os_string();
            next.push(format!(".{n}"));
            self.writer = std::io::BufWriter::new(Box::new(std::fs::File::create(next)?));
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

/// What one record asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// Text to print.
    Print(Vec<u8>),
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

pub struct Decoder {
    /// Per format: the parsed text, the record layout, the argument types and the deferred
    /// arguments (see [`lang::ir::FormatDecl::deferred`]).
    formats: Vec<(Option<Format>, layout::RecordLayout, Vec<Ty>, Vec<(usize, Builtin)>, Sink)>,
    string_capacity: u32,
}

impl Decoder {
    pub fn new(program: &Program) -> Decoder {
        let cap = program.string_capacity;
        let formats = program
            .formats
            .values()
            .map(|f| {
                let text = lang::printf::parse_format(&f.text).ok();
                (text, layout::record_layout(f, cap), f.args.clone(), f.deferred.clone(), f.sink)
            })
            .collect();
        Decoder { formats, string_capacity: cap }
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
        let Some((Some(format), layout, tys, deferred, sink)) = self.formats.get(kind as usize) else {
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
            if let Some(Value::Long(n)) = args.get(*i) {
                args[*i] = Value::Str(crate::userspace::text_of_long(*builtin, *n));
            }
        }
        let text = format_bytes(format, &args);
        match sink {
            Sink::Output => Record::Print(text),
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
            args: vec![Ty::Str, Ty::Long],
            ..Default::default()
        });
        let mut rec = vec![0u8; 8];
        let mut s = b"python3".to_vec();
        s.resize(16, 0);
        rec.extend(s);
        rec.extend(42i64.to_le_bytes());
        assert_eq!(Decoder::new(&program).decode(&rec), Record::Print(b"python3[42]\n".to_vec()));
        assert_eq!(Decoder::new(&program).decode(&u32::MAX.to_le_bytes()), Record::Exit);
    }
}
