//! What a script outputs, as typed values, and the sinks that write it: [`TextSink`] the bytes
//! SystemTap prints, [`JsonSink`](crate::json_sink::JsonSink) one JSON object a line (`-f json`).
//!
//! Every place that produces output (the ring-buffer drain, the interpreter's `printf` and
//! `print(@hist_*)`, the exit-time report of unread globals, the lost-record count, a
//! runtime error) builds one [`Event`] and hands it to
//! [`ScriptOutput::emit`](crate::output::ScriptOutput::emit), which hands it to the sink chosen
//! with `-f`. The text is formatted once, where the event is made (`format::format_bytes`,
//! `stats::print_hist_*`), and carried in the event beside the values it came from, so the
//! JSON view can never disagree with the text.

use std::io::Write;

use crate::arrays;
use crate::format::Value;
use crate::output::ScriptOutput;
use crate::stats::{Hist, Stat};

/// One piece of a script's output.
#[derive(Debug)]
pub enum Event<'a> {
    /// `printf`, `print`, `println`... of a probe: the format, its arguments as decoded (in
    /// the order of `Format::arg_types`) and the bytes they format to.
    Printf { probe: Option<&'a str>, format: &'a str, args: &'a [Value], text: &'a [u8] },
    /// `print(@hist_log(a[keys]))` or `@hist_linear`: the statistic and its chart.
    Hist { probe: Option<&'a str>, array: &'a str, keys: &'a [Value], hist: Hist, stat: &'a Stat, text: &'a str },
    /// A scalar global written but never read, printed at exit.
    Global { name: &'a str, value: &'a Value },
    /// An array or statistic global written but never read, printed at exit: its elements,
    /// already in the order SystemTap prints them (a scalar statistic, `s <<< v`, is one
    /// element without keys). `stat` is, for a statistic, the histogram it keeps.
    Array { name: &'a str, stat: Option<Hist>, entries: &'a [arrays::Entry] },
    /// Output records the kernel dropped because the ring buffer was full.
    Lost { records: i64 },
    /// The error that stopped the script, or one error of a script that does not compile,
    /// with its place where known. The binary also reports it on stderr, so the text sink
    /// writes nothing.
    Error { message: &'a str, probe: Option<&'a str>, location: Option<Location<'a>> },
}

/// A place in the script's source, for an [`Event::Error`].
#[derive(Debug, Clone, Copy)]
pub struct Location<'a> {
    pub file: &'a str,
    pub line: usize,
    pub column: usize,
}

/// Writes events to the script's output, one format each.
pub trait EventSink {
    /// What a new output stream starts with (a new `-o` file after `switch_file()` too).
    fn start(&self, out: &mut dyn Write) -> std::io::Result<()>;
    fn emit(&self, out: &mut ScriptOutput, event: &Event<'_>) -> std::io::Result<()>;
}

/// SystemTap's output: the text of each event, byte for byte.
pub struct TextSink;

impl EventSink for TextSink {
    fn start(&self, _out: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }

    fn emit(&self, out: &mut ScriptOutput, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::Printf { text, .. } => out.write_all(text),
            Event::Hist { text, .. } => out.write_all(text.as_bytes()),
            Event::Global { name, value } => {
                let value = match value {
                    Value::Long(n) => crate::stats::Value::Long(*n),
                    other => crate::stats::Value::Str(arrays::value_text(other)),
                };
                out.write_all(crate::stats::format_global_scalar(name, &value).as_bytes())
            }
            Event::Array { name, entries, .. } => out.write_all(arrays::exit_lines(name, entries).as_bytes()),
            // A message for the user, not part of the script's output.
            Event::Lost { records } => {
                out.message(&format!("bpftap: {records} output record(s) lost: the ring buffer was full\n"));
                Ok(())
            }
            Event::Error { .. } => Ok(()),
        }
    }
}
