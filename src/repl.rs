//! `bpftap -i` (or `bpftap` with no script): the interactive session. A front end only:
//! each input is compiled by the driver against the session's symbols (its declarations,
//! the types and offsets of its globals) and added to one `runtime::Session` as a unit,
//! the same path a script takes.
//!
//! Two threads: the reader runs the rustyline prompt and sends each complete input (braces,
//! parentheses and strings balanced) to the main thread, waking it through a pipe; the
//! main thread owns the session and turns its event loop, so probes print while the prompt
//! waits (through rustyline's external printer, above the prompt), and handles each input
//! between two turns.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use codegen_bpf::layout::GlobalsPlan;
use lang::span::SourceKind;
use runtime::kernel_info::LiveKernel;
use runtime::output::ScriptOutput;
use runtime::session::{RunOptions, RuntimeError, Session, Stop, UnitId};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use crate::driver;

/// Bytes of an interactive session's globals: room for 500 strings of 128 bytes, or 8000
/// longs. Fixed, since the programs of every input address the one map.
const SESSION_GLOBALS_BYTES: u32 = 64 << 10;

const HELP: &str = "\
Type SystemTap: it is added to the running session at once.
  global NAME[, ...]        declare globals (later input uses them)
  function NAME(...) {...}  declare a function
  probe POINT {...}         compile and attach now; its output appears above the prompt
  STATEMENT                 run now in user space, e.g. print(n), delete a, n = 0
Commands:
  list                      probes (number, points, hits, run time) and globals
  delete N|N-M|all          detach and drop probes; globals keep their values
  disable N / enable N      detach / attach again, keeping the probe
  save FILE                 write the session as a script `bpftap FILE` runs
  load FILE                 add a script's globals, functions and probes
  clear                     set every global to zero and empty every array
  set NAME VALUE / show     settings: MAXSTRINGLEN, o (output file), x (target pid)
  help, quit (or Ctrl-D)    quit runs the end probes and prints the globals no one read
";

/// What the command line gives the session.
pub struct Config {
    pub options: driver::Options,
    pub run: RunOptions,
    pub output: Option<PathBuf>,
    /// `-f`: of the `-o` file; at the prompt, text.
    pub format: runtime::output::OutputFormat,
}

/// An input from the reader thread.
enum Input {
    Line(String),
    /// Ctrl-D, or the end of a non-terminal stdin.
    End,
}

/// One probe input of the session, kept for `save` and `list`.
struct ProbeInput {
    /// What `list`, `delete` and the others call it: 1, 2, ... in the order typed.
    number: u32,
    unit: UnitId,
    text: String,
    enabled: bool,
}

struct Repl<'k> {
    kernel: &'k LiveKernel,
    session: Session<'k>,
    options: driver::Options,
    /// The `global` and `function` inputs so far, in order.
    declarations: String,
    probes: Vec<ProbeInput>,
    next_number: u32,
    /// The session's globals, for completion in the reader thread.
    names: Arc<Mutex<Vec<String>>>,
    output: Option<PathBuf>,
    format: runtime::output::OutputFormat,
    /// `-c CMD`, until the first probe starts it.
    command: Option<String>,
    /// `-c`/`-x`: `target()`, said once when it has exited.
    target_gone_said: bool,
}

pub fn run(mut config: Config, kernel: &LiveKernel) -> Result<ExitCode, String> {
    let interactive = std::io::stdin().is_terminal();
    let terminal = runtime::sys::Terminal::save();
    // Tab completes what all candidates share, a second Tab lists them, as in bash.
    let editor_config = rustyline::Config::builder().completion_type(rustyline::CompletionType::List).build();
    let mut editor: Editor<Completion, FileHistory> =
        Editor::with_config(editor_config).map_err(|e| format!("cannot start the prompt: {e}"))?;
    let names = Arc::new(Mutex::new(Vec::new()));
    editor.set_helper(Some(Completion::new(&config.options.include, names.clone())));
    let history = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".bpftap_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let printer: SharedPrinter = Arc::new(Mutex::new(match editor.create_external_printer() {
        Ok(printer) if interactive => Some(Box::new(printer) as Box<dyn rustyline::ExternalPrinter + Send>),
        _ => None,
    }));
    // The runtime's warnings go above the prompt too, like the output.
    config.run.messages = {
        let printer = printer.clone();
        Arc::new(move |message: &str| match printer.lock().map(|mut p| p.as_mut().map(|p| p.print(message.into()))) {
            Ok(Some(_)) => {}
            _ => eprint!("{message}"),
        })
    };
    let writer = Box::new(PrinterWriter { printer, pending: Vec::new() });
    let mut out = match &config.output {
        Some(path) => ScriptOutput::file(path.clone(), config.format, config.run.messages.clone())
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        None => ScriptOutput::to_writer(writer, config.run.messages.clone()),
    };
    let command = config.run.command.clone();
    let plan = GlobalsPlan::fixed(SESSION_GLOBALS_BYTES);
    let session = Session::new(kernel, config.run, plan).map_err(|e| e.to_string())?;
    let mut repl = Repl {
        kernel,
        session,
        options: config.options,
        declarations: String::new(),
        probes: Vec::new(),
        next_number: 1,
        names,
        output: config.output,
        format: config.format,
        command,
        target_gone_said: false,
    };
    if let Err(e) = repl.session.count_runs() {
        eprintln!("bpftap: warning: `list` shows no hit counts: the kernel refuses to count runs ({e})");
    }
    // What adding probes needs, and no more: tracefs mounted now, then CAP_SYS_ADMIN and
    // the rest dropped (the reader thread, started next, inherits the sets).
    let _ = kernel.tracefs();
    runtime::sys::keep_capabilities(runtime::sys::PROBE_CAPABILITIES)
        .map_err(|e| format!("cannot drop capabilities: {e}"))?;
    // `-c CMD` starts with the first probe, so that it runs traced.
    if repl.command.is_none() {
        repl.session.ready();
    }

    let (wake_read, wake_write) = runtime::sys::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let (input_tx, input_rx) = mpsc::channel::<Input>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    if interactive {
        println!("bpftap {}: type SystemTap, `help` for commands, Ctrl-D to quit", env!("CARGO_PKG_VERSION"));
    }
    std::thread::spawn(move || read_inputs(editor, history, interactive, input_tx, done_rx, wake_write));

    let mut result = Ok(());
    loop {
        let turn = match repl.session.turn(&mut out, Some(wake_read.as_fd())) {
            Ok(turn) => turn,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        let why = match turn.stop {
            None => None,
            // The session goes on without its target: the user decides when to quit.
            Some(Stop::TargetGone) => {
                if !repl.target_gone_said {
                    repl.target_gone_said = true;
                    let _ = writeln!(out, "bpftap: the target process has exited");
                }
                None
            }
            Some(Stop::Exit) => Some("a probe called exit()"),
            Some(Stop::Timeout) => Some("-T elapsed"),
            Some(Stop::ReaderGone) => Some("the output's reader has gone"),
        };
        if let Some(why) = why {
            let _ = writeln!(out, "bpftap: the session ends: {why}");
            break;
        }
        if turn.woken && repl.handle_inputs(&input_rx, &wake_read, &done_tx, &mut out) {
            break;
        }
        // A Ctrl-C while bpftap was busy interrupted that, not the session.
        runtime::sys::take_stop_signal();
    }
    let result = repl.session.finish(result, &mut out);
    let _ = out.flush();
    drop(repl);
    terminal.restore();
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("bpftap: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The reader thread: one input at a time, each complete (balanced) before it is sent;
/// waits for the main thread to handle it before showing the next prompt.
fn read_inputs(
    mut editor: Editor<Completion, FileHistory>,
    history: Option<PathBuf>,
    interactive: bool,
    inputs: mpsc::Sender<Input>,
    done: mpsc::Receiver<()>,
    wake: OwnedFd,
) {
    let send = |input: Input| {
        let sent = inputs.send(input).is_ok();
        let _ = runtime::sys::write_all(wake.as_fd(), b"i");
        sent
    };
    let mut pending = String::new();
    loop {
        let prompt = match (interactive, pending.is_empty()) {
            (false, _) => "",
            (true, true) => "bpftap> ",
            (true, false) => "...> ",
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if !pending.is_empty() {
                    pending.push('\n');
                }
                pending.push_str(&line);
                if !balanced(&pending) {
                    continue;
                }
                let input = std::mem::take(&mut pending);
                if input.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(input.as_str());
                if let Some(path) = &history {
                    let _ = editor.append_history(path);
                }
                if !send(Input::Line(input)) || done.recv().is_err() {
                    return;
                }
            }
            // Ctrl-C at the prompt drops the line being typed.
            Err(ReadlineError::Interrupted) => pending.clear(),
            Err(_) => {
                send(Input::End);
                return;
            }
        }
    }
}

/// Whether braces, parentheses and brackets close and strings end: an input is sent only
/// then, else the prompt continues it.
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                    None => return false,
                }
            },
            '#' => {
                // A comment to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

impl Repl<'_> {
    /// Handles the inputs the reader has sent; true to quit.
    fn handle_inputs(
        &mut self,
        inputs: &mpsc::Receiver<Input>,
        wake: &OwnedFd,
        done: &mpsc::Sender<()>,
        out: &mut ScriptOutput,
    ) -> bool {
        runtime::sys::drain_pipe(wake.as_fd());
        while let Ok(input) = inputs.try_recv() {
            let quit = match input {
                Input::End => true,
                Input::Line(line) => self.handle(&line, out),
            };
            let _ = out.flush();
            if quit {
                return true;
            }
            let _ = done.send(());
        }
        false
    }

    /// Handles one input; true to quit.
    fn handle(&mut self, input: &str, out: &mut ScriptOutput) -> bool {
        let trimmed = input.trim();
        let (word, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        let rest = rest.trim();
        let said = match word {
            "quit" if rest.is_empty() => return true,
            "help" if rest.is_empty() => Ok(HELP.to_string()),
            "list" if rest.is_empty() => self.list(out),
            "delete" if is_selection(rest) => self.delete(rest, out),
            "disable" | "enable" if is_selection(rest) => self.enable(rest, word == "enable"),
            "save" if !rest.is_empty() => self.save(rest),
            "load" if !rest.is_empty() => self.load(rest, out),
            "clear" if rest.is_empty() => {
                self.session.clear_globals();
                Ok(String::new())
            }
            "set" if !rest.is_empty() => self.set(rest, out),
            "show" if rest.is_empty() => Ok(self.show()),
            "global" | "function" | "private" => self.declare(trimmed),
            "probe" => self.add_probe(trimmed, out),
            _ => self.statement(trimmed, out),
        };
        match said {
            Ok(text) => {
                let _ = out.write_all(text.as_bytes());
            }
            Err(message) => {
                let _ = out.flush();
                eprint!("{message}");
                if !message.ends_with('\n') {
                    eprintln!();
                }
            }
        }
        self.update_names();
        false
    }

    fn compile(&self, text: &str, last_pass: u8) -> Result<driver::Compiled, String> {
        let options = driver::Options {
            known: self.session.known_types(),
            session: Some(self.declarations.clone()),
            globals_plan: self.session.plan().clone(),
            ..self.options.clone()
        };
        driver::compile("<input>", text, SourceKind::CommandLine, last_pass, self.kernel, &options)
            .map_err(|failure| lang::diag::render(&failure.diags, &failure.sources, std::io::stderr().is_terminal()))
    }

    /// `global ...`, `function ...`: checked, then kept for every later input.
    fn declare(&mut self, text: &str) -> Result<String, String> {
        self.compile(text, 1)?;
        self.declarations.push_str(text);
        self.declarations.push('\n');
        Ok(String::new())
    }

    /// `probe ...`: compiled, added and attached now.
    fn add_probe(&mut self, text: &str, out: &mut ScriptOutput) -> Result<String, String> {
        let compiled = self.compile(text, 4)?;
        let object = compiled.object.expect("pass 4 ran");
        let points: Vec<String> = object.program.handlers.iter().map(|h| h.point.clone()).collect();
        let unit = self.session.add(object, out).map_err(|e| describe(&e, &compiled.sources))?;
        if let Err(e) = self.session.attach_unit(unit) {
            let _ = self.session.remove(unit, out);
            return Err(describe(&e, &compiled.sources));
        }
        if let Some(command) = self.command.take() {
            self.session.ready();
            let _ = writeln!(out, "bpftap: started -c {command}");
        }
        let number = self.next_number;
        self.next_number += 1;
        self.probes.push(ProbeInput { number, unit, text: text.to_string(), enabled: true });
        Ok(format!("probe {number}: {}\n", points.join(", ")))
    }

    /// A statement: run once in user space, as a `begin` probe that is then dropped.
    fn statement(&mut self, text: &str, out: &mut ScriptOutput) -> Result<String, String> {
        let compiled = self.compile(&format!("probe begin {{\n{text}\n}}"), 4)?;
        let object = compiled.object.expect("pass 4 ran");
        let unit = self.session.add(object, out).map_err(|e| describe(&e, &compiled.sources));
        let _ = out.flush();
        if let Ok(unit) = unit {
            let _ = self.session.remove(unit, out);
        }
        unit.map(|_| String::new())
    }

    fn list(&self, out: &mut ScriptOutput) -> Result<String, String> {
        let mut text = String::new();
        let units = self.session.units();
        for p in &self.probes {
            let Some(info) = units.iter().find(|u| u.id == p.unit) else { continue };
            let state = if p.enabled { "attached" } else { "disabled" };
            // The input as typed, on one line; the points it resolved to after it.
            let typed: String = p.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let typed = match typed.char_indices().nth(60) {
                Some((cut, _)) => format!("{}...", &typed[..cut]),
                None => typed,
            };
            let _ = writeln!(
                text,
                "{:>3}  {typed}  [{}; {state}, {} hits, {:.3} ms]",
                p.number,
                info.points.join(", "),
                info.runs,
                info.run_ns as f64 / 1e6
            );
        }
        // The globals with their types, then (below) with their values.
        let known = self.session.known_types();
        let ty = |t: lang::ir::Ty| if t == lang::ir::Ty::Long { "long" } else { "string" };
        let mut globals: Vec<String> = known.globals.iter().map(|(n, t)| format!("{n}:{}", ty(*t))).collect();
        for (name, array) in &known.arrays {
            let keys: Vec<&str> = array.keys.iter().flatten().map(|t| ty(*t)).collect();
            let value = match array.value {
                Some(lang::ir::ValueKind::Stat) => "stats",
                Some(lang::ir::ValueKind::Str) => "string",
                _ => "long",
            };
            globals.push(format!("{name}[{}]:{value}", keys.join(",")));
        }
        globals.retain(|g| !g.starts_with("__"));
        if text.is_empty() && globals.is_empty() {
            return Ok("no probes and no globals yet\n".into());
        }
        if !globals.is_empty() {
            let _ = writeln!(text, "globals: {}", globals.join(", "));
        }
        let _ = out.write_all(text.as_bytes());
        self.session.print_globals(out, false).map_err(|e| e.to_string())?;
        Ok(String::new())
    }

    /// The units of the probes `selection` names (`N`, `N-M`, `all`).
    fn selected(&self, selection: &str) -> Vec<UnitId> {
        let (from, to) = match selection {
            "all" => (0, u32::MAX),
            _ => {
                let (from, to) = selection.split_once('-').unwrap_or((selection, selection));
                let (Ok(from), Ok(to)) = (from.parse::<u32>(), to.parse::<u32>()) else { return Vec::new() };
                (from, to)
            }
        };
        self.probes.iter().filter(|p| (from..=to).contains(&p.number)).map(|p| p.unit).collect()
    }

    fn delete(&mut self, selection: &str, out: &mut ScriptOutput) -> Result<String, String> {
        let units = self.selected(selection);
        if units.is_empty() {
            return Err(format!("no probe {selection}: `list` shows their numbers"));
        }
        for unit in &units {
            self.session.remove(*unit, out).map_err(|e| e.to_string())?;
        }
        self.probes.retain(|p| !units.contains(&p.unit));
        Ok(String::new())
    }

    fn enable(&mut self, selection: &str, enable: bool) -> Result<String, String> {
        let units = self.selected(selection);
        if units.is_empty() {
            return Err(format!("no probe {selection}: `list` shows their numbers"));
        }
        for p in self.probes.iter_mut().filter(|p| units.contains(&p.unit) && p.enabled != enable) {
            if enable {
                self.session.attach_unit(p.unit).map_err(|e| e.to_string())?;
            } else {
                self.session.detach_unit(p.unit);
            }
            p.enabled = enable;
        }
        Ok(String::new())
    }

    /// The session as a script: the declarations, then the probes, in order.
    fn script(&self) -> String {
        let mut text = self.declarations.clone();
        for p in &self.probes {
            text.push_str(&p.text);
            text.push('\n');
        }
        text
    }

    fn save(&self, path: &str) -> Result<String, String> {
        std::fs::write(path, self.script()).map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(format!("saved {} probe(s) to {path}\n", self.probes.len()))
    }

    /// Each top-level item of the file, as if typed.
    fn load(&mut self, path: &str, out: &mut ScriptOutput) -> Result<String, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let mut sources = lang::span::SourceMap::default();
        let file = sources.add(path, &text, SourceKind::Script);
        let env = lang::preprocess::PreprocessEnv::for_kernel(self.kernel, self.options.script_args.clone());
        let (items, diags) = lang::parse::prepare(&sources, file, &env, &mut Default::default());
        if lang::diag::has_errors(&diags) {
            return Err(lang::diag::render(&diags, &sources, std::io::stderr().is_terminal()));
        }
        for i in 0..items.len() {
            let tokens = items.tokens(i);
            let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else { continue };
            let item = &text[first.1.start as usize..last.1.end as usize];
            self.handle(item, out);
        }
        Ok(String::new())
    }

    fn set(&mut self, setting: &str, out: &mut ScriptOutput) -> Result<String, String> {
        let (name, value) = setting.split_once(char::is_whitespace).ok_or("use `set NAME VALUE`")?;
        let value = value.trim();
        match name {
            "MAXSTRINGLEN" => {
                if !self.probes.is_empty() || !self.session.units().is_empty() {
                    return Err("MAXSTRINGLEN can change only before the first probe".into());
                }
                self.options.string_capacity = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (16..=2048).contains(n))
                    .ok_or("give a number from 16 to 2048")?;
            }
            "x" => {
                let pid = value.parse::<i32>().ok().filter(|p| *p > 0).ok_or("give a process id")?;
                self.session.set_target(pid);
                self.target_gone_said = false;
            }
            "o" => {
                let path = PathBuf::from(value);
                *out = ScriptOutput::file(path.clone(), self.format, out.messages())
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                self.output = Some(path);
            }
            _ => return Err(format!("unknown setting `{name}` (`show` lists them)")),
        }
        Ok(String::new())
    }

    fn show(&self) -> String {
        let output = self.output.as_ref().map_or("the terminal".to_string(), |p| p.display().to_string());
        let target = self.session.target().map_or("none".to_string(), |pid| pid.to_string());
        format!("MAXSTRINGLEN {}\no {output}\nx {target}\n", self.options.string_capacity)
    }

    fn update_names(&self) {
        let known = self.session.known_types();
        let names = known.globals.into_iter().map(|(n, _)| n).chain(known.arrays.into_iter().map(|(n, _)| n));
        if let Ok(mut shared) = self.names.lock() {
            *shared = names.filter(|n| !n.starts_with("__")).collect();
        }
    }
}

/// `N`, `N-M` or `all`.
fn is_selection(text: &str) -> bool {
    text == "all"
        || text
            .split_once('-')
            .map_or(text.parse::<UnitId>().is_ok(), |(a, b)| a.parse::<UnitId>().is_ok() && b.parse::<UnitId>().is_ok())
}

fn describe(e: &RuntimeError, sources: &lang::span::SourceMap) -> String {
    let mut text = Vec::new();
    crate::write_runtime_error(&mut text, e, sources);
    String::from_utf8_lossy(&text).into_owned()
}

/// The script's output, printed above the prompt once flushed (on stdout where the
/// terminal cannot do that), each flush ending a line.
/// The prompt's printer of lines above it, shared by the output and the runtime's messages;
/// `None` when the input is not a terminal.
type SharedPrinter = Arc<Mutex<Option<Box<dyn rustyline::ExternalPrinter + Send>>>>;

struct PrinterWriter {
    printer: SharedPrinter,
    pending: Vec<u8>,
}

impl Write for PrinterWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        // The prompt is redrawn on the next line: a line left open would be overwritten.
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut printer = self.printer.lock().map_err(|_| std::io::Error::other("the prompt's printer panicked"))?;
        match printer.as_mut() {
            Some(printer) => printer.print(text).map_err(std::io::Error::other),
            None => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text.as_bytes())?;
                stdout.flush()
            }
        }
    }
}

/// Tab completion: probe points after `probe` (what `-l PREFIX*` lists: tapset aliases,
/// `kernel.trace("group:event")`, `kernel.function("...")`); in a probe's body, the point's
/// variables (what `-L` lists), function names (built-in and tapset) and the session's
/// globals.
#[derive(Helper, Highlighter, Hinter, Validator)]
struct Completion {
    include: Vec<PathBuf>,
    functions: Vec<String>,
    globals: Arc<Mutex<Vec<String>>>,
    kernel: LiveKernel,
}

impl Completion {
    fn new(include: &[PathBuf], globals: Arc<Mutex<Vec<String>>>) -> Completion {
        let mut functions: Vec<String> = lang::builtins::BUILTINS.iter().map(|b| b.name.to_string()).collect();
        for tapset in driver::tapset_texts(include) {
            let mut words = tapset.text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            while let Some(word) = words.next() {
                if word == "function" {
                    match words.find(|w| !w.is_empty()) {
                        Some(name) if !name.starts_with('_') => functions.push(name.to_string()),
                        _ => {}
                    }
                }
            }
        }
        functions.sort();
        functions.dedup();
        Completion { include: include.to_vec(), functions, globals, kernel: LiveKernel::new() }
    }

    /// In the body of a probe being typed, the variables of its (first) point, as `-L` lists
    /// them: the alias's variables and the `$` context variables.
    fn probe_variables(&self, line: &str) -> Vec<String> {
        let Some(rest) = line.trim_start().strip_prefix("probe") else { return Vec::new() };
        let Some(head) = rest.split_once('{').map(|(head, _)| head) else { return Vec::new() };
        let point = head.split(['/', ',']).next().unwrap_or("").trim();
        if point.is_empty() {
            return Vec::new();
        }
        let listing = crate::list::list(point, true, &self.include, &self.kernel).unwrap_or_default();
        // `POINT name:type $name:type ...`; a type may hold spaces (`struct sock*`).
        let mut names: Vec<String> = listing
            .lines()
            .flat_map(|l| l.split_whitespace().skip(1))
            .filter_map(|token| token.split_once(':').map(|(name, _)| name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Where the probe point being typed starts, if the cursor is in one.
    fn point_start(line: &str) -> Option<usize> {
        let start = line.trim_start();
        let probe = start.strip_prefix("probe")?;
        if !probe.starts_with(char::is_whitespace) || probe.contains('{') || probe.contains('/') {
            return None;
        }
        // After the last `,` outside quotes, or after `probe `.
        let offset = line.len() - probe.len();
        let mut at = offset;
        let mut quoted = false;
        for (i, c) in probe.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => at = offset + i + 1,
                _ => {}
            }
        }
        Some(at + (line[at..].len() - line[at..].trim_start().len()))
    }
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let line = &line[..pos];
        let pair = |s: &str| Pair { display: s.to_string(), replacement: s.to_string() };
        if let Some(start) = Completion::point_start(line) {
            let typed = &line[start..];
            // A point being typed inside quotes needs its closing `")` for -l.
            let pattern = match typed.matches('"').count() % 2 {
                1 => format!("{typed}*\")"),
                _ => format!("{typed}*"),
            };
            let listing = crate::list::list(&pattern, false, &self.include, &self.kernel).unwrap_or_default();
            let mut points: Vec<&str> = listing.lines().filter(|p| p.starts_with(typed)).collect();
            points.truncate(500);
            return Ok((start, points.into_iter().map(pair).collect()));
        }
        let start = line.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')).map_or(0, |i| i + 1);
        let word = &line[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        let globals = self.globals.lock().map(|g| g.clone()).unwrap_or_default();
        let variables = self.probe_variables(line);
        let found =
            variables.iter().chain(&self.functions).chain(&globals).filter(|n| n.starts_with(word)).map(|n| pair(n));
        Ok((start, found.collect()))
    }
}
