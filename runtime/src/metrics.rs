//! `--metrics ADDR`: an HTTP endpoint serving `GET /metrics` in Prometheus's text format,
//! and the pages of other user-space page probes (`json_data`'s `/data.json`).
//!
//! The listener runs on its own thread and never touches the script's state: each scrape
//! is a [`Scrape`] sent over a channel, answered by the session's event loop between
//! ring-buffer drains (the interpreter and the maps live there), so a slow or stuck client
//! never blocks the loop. The HTTP side is `std::net` with a minimal parser: one request per
//! connection, `Connection: close`, which is all a Prometheus scraper or curl needs.
//!
//! What the body is, [`exposition`] for a script without `probe prometheus`, is decided by
//! the session. A script's `prometheus` probes print the whole body: bpftap adds nothing to
//! it, so SystemTap's examples serve what they served under stap.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use codegen_bpf::layout::{GlobalsLayout, GLOBAL_LOST};
use lang::ir::Program;

use crate::arrays::{value_text, Arrays, Elem};
use crate::bpf::ProgStats;
use crate::format::Value;
use crate::stats::{self, Hist};
use crate::sys::MappedValue;
use crate::userspace;

/// How long a connection waits for the event loop to answer before giving up with 503.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request line and headers larger than this are refused.
const MAX_REQUEST_BYTES: usize = 16 << 10;

/// One GET waiting for its body.
pub struct Scrape {
    path: String,
    reply: Sender<Option<String>>,
}

impl Scrape {
    /// The path asked for, without its query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The page's body, or `None` for a path the script serves nothing at (404).
    pub fn answer(self, body: Option<String>) {
        // The connection may have timed out and gone; nothing is owed to it then.
        let _ = self.reply.send(body);
    }
}

/// The endpoint: its listening thread and the scrapes it is waiting on.
pub struct MetricsServer {
    pub addr: SocketAddr,
    scrapes: Receiver<Scrape>,
}

impl MetricsServer {
    /// Listens on `addr` (`HOST:PORT`, or only a port for the loopback address) and starts
    /// serving on a thread of its own.
    pub fn start(addr: &str) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(parse_addr(addr)?)?;
        let addr = listener.local_addr()?;
        let (tx, scrapes) = mpsc::channel();
        std::thread::Builder::new().name("bpftap-metrics".into()).spawn(move || {
            // It answers scrapes from maps and text it is handed: no capability needed.
            let _ = crate::sys::drop_capabilities();
            serve(listener, tx)
        })?;
        Ok(MetricsServer { addr, scrapes })
    }

    /// The scrapes that arrived since the last call.
    pub fn pending(&self) -> impl Iterator<Item = Scrape> + '_ {
        self.scrapes.try_iter()
    }
}

/// `9900` means `127.0.0.1:9900`: a script's data stays on the machine unless asked otherwise.
fn parse_addr(addr: &str) -> std::io::Result<SocketAddr> {
    if let Ok(port) = addr.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("`{addr}` names no address")))
}

/// Accepts connections until the process ends (the session going away drops the receiving
/// end, and every later scrape is answered 503).
fn serve(listener: TcpListener, scrapes: Sender<Scrape>) {
    for stream in listener.incoming().flatten() {
        let scrapes = scrapes.clone();
        // One thread per connection, so a client that never sends its request holds up no one.
        let _ = std::thread::Builder::new().stack_size(64 << 10).spawn(move || {
            let _ = handle(stream, &scrapes);
        });
    }
}

fn handle(stream: TcpStream, scrapes: &Sender<Scrape>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    // The whole request is capped, so a client cannot make us buffer without end.
    let mut reader = BufReader::new(Read::take(stream.try_clone()?, MAX_REQUEST_BYTES as u64));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are read and ignored: nothing in them changes the answer.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match method {
        "GET" | "HEAD" => {
            let (tx, rx) = mpsc::channel();
            let scrape = Scrape { path: path.to_string(), reply: tx };
            match scrapes.send(scrape).ok().and_then(|()| rx.recv_timeout(ANSWER_TIMEOUT).ok()) {
                Some(Some(body)) => ("200 OK", body),
                Some(None) => ("404 Not Found", "the script serves nothing here; try /metrics\n".to_string()),
                None => ("503 Service Unavailable", "the script is not running\n".to_string()),
            }
        }
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    };
    let content_type =
        if path.ends_with(".json") { "application/json" } else { "text/plain; version=0.0.4; charset=utf-8" };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// What the kernel counted for one attached kernel probe, read at scrape time.
pub struct ProbeSample<'a> {
    /// The probe point, resolved.
    pub point: &'a str,
    /// The point as the script names it.
    pub user_point: &'a str,
    /// Its BPF program's name, unique where two probes share a point.
    pub program: &'a str,
    pub stats: ProgStats,
}

/// The script's globals as metrics, for a script without `probe prometheus`: a scalar is a
/// gauge `bpftap_NAME`; an array one metric with labels `key1`.. (a string value becomes a
/// `value` label on a sample of 1); a statistic a summary, `_count` and `_sum`, or, when the
/// script takes `@hist_log` or `@hist_linear` of it, a histogram (`_bucket{le=...}` at the
/// top of each bucket that holds samples, `+Inf`, `_sum`, `_count`). Names starting with `__`
/// are the tapsets' own and left out. Then bpftap's own: the output records lost, and per
/// kernel probe (`probes`, when the kernel's statistics are on) its runs, run time and
/// recursion misses.
pub fn exposition(
    program: &Program,
    layout: &GlobalsLayout,
    globals: &MappedValue,
    arrays: &Arrays<'_>,
    probes: Option<&[ProbeSample<'_>]>,
) -> String {
    let mut out = String::new();
    for (g, decl) in program.globals.iter() {
        if decl.name.starts_with("__") {
            continue;
        }
        let name = format!("bpftap_{}", decl.name);
        header(&mut out, &name, &format!("the script's global `{}`", decl.name), "gauge");
        match userspace::load_global(program, layout, globals, g) {
            Value::Long(n) => out.push_str(&format!("{name} {n}\n")),
            text => out.push_str(&format!("{name}{{value=\"{}\"}} 1\n", escape_label(&value_text(&text)))),
        }
    }
    for (a, decl) in program.arrays.iter() {
        if decl.name.starts_with("__") {
            continue;
        }
        let name = format!("bpftap_{}", decl.name);
        let entries = arrays.entries(a);
        let stat = arrays.stat_hist(a);
        let hist = stat.filter(|h| *h != Hist::None);
        let kind = match stat {
            None => "gauge",
            Some(Hist::None) => "summary",
            Some(_) => "histogram",
        };
        header(&mut out, &name, &format!("the script's global `{}`", decl.name), kind);
        for (keys, elem) in entries {
            let mut labels: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| format!("key{}=\"{}\"", i + 1, escape_label(&value_text(k))))
                .collect();
            match elem {
                Elem::Long(n) => sample(&mut out, &name, "", &labels, n),
                Elem::Str(s) => {
                    labels.push(format!("value=\"{}\"", escape_label(&s)));
                    sample(&mut out, &name, "", &labels, 1);
                }
                Elem::Stat(s) => {
                    if let Some(hist) = hist {
                        let mut below = 0;
                        for bucket in stats::bucket_ranges(&hist, &s) {
                            // Values are integers, so `le` the top of a closed bucket counts it whole.
                            let Some(max) = bucket.max else { continue };
                            below += bucket.count;
                            sample(
                                &mut out,
                                &name,
                                "_bucket",
                                &[&labels[..], &[format!("le=\"{max}\"")]].concat(),
                                below,
                            );
                        }
                        let inf = [&labels[..], &["le=\"+Inf\"".to_string()]].concat();
                        sample(&mut out, &name, "_bucket", &inf, s.count());
                    }
                    sample(&mut out, &name, "_sum", &labels, s.sum());
                    sample(&mut out, &name, "_count", &labels, s.count());
                }
            }
        }
    }
    let lost = globals.load_long(GLOBAL_LOST);
    let help = "output records the kernel dropped because the ring buffer was full";
    header(&mut out, "bpftap_lost_records_total", help, "counter");
    out.push_str(&format!("bpftap_lost_records_total {lost}\n"));
    if let Some(probes) = probes {
        probe_metrics(&mut out, probes);
    }
    out
}

/// Per kernel probe, from the kernel's program statistics.
fn probe_metrics(out: &mut String, probes: &[ProbeSample<'_>]) {
    let labels = |p: &ProbeSample<'_>| {
        vec![format!("probe=\"{}\"", escape_label(p.point)), format!("program=\"{}\"", escape_label(p.program))]
    };
    let name = "bpftap_probe_hits_total";
    header(out, name, "times the probe's BPF program ran", "counter");
    for p in probes {
        sample(out, name, "", &labels(p), p.stats.run_cnt);
    }
    let name = "bpftap_probe_run_seconds_total";
    header(out, name, "time the probe's BPF program ran, in seconds", "counter");
    for p in probes {
        sample(out, name, "", &labels(p), p.stats.run_time_ns as f64 / 1e9);
    }
    let name = "bpftap_probe_missed_total";
    header(out, name, "runs the kernel skipped because the probe's program was running on that CPU already", "counter");
    for p in probes {
        sample(out, name, "", &labels(p), p.stats.recursion_misses);
    }
}

/// One sample line: `NAME SUFFIX{labels} value`.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &[String], value: impl std::fmt::Display) {
    if labels.is_empty() {
        out.push_str(&format!("{name}{suffix} {value}\n"));
    } else {
        out.push_str(&format!("{name}{suffix}{{{}}} {value}\n", labels.join(",")));
    }
}

fn header(out: &mut String, metric: &str, help: &str, kind: &str) {
    out.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} {kind}\n"));
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_is_loopback() {
        assert_eq!(parse_addr("9900").unwrap(), "127.0.0.1:9900".parse().unwrap());
        assert_eq!(parse_addr("[::1]:80").unwrap(), "[::1]:80".parse().unwrap());
        assert!(parse_addr("nowhere").is_err());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    /// Sends `request` to a new server from a thread; the scrape it makes and the client
    /// thread that will return the response.
    fn request(request: &'static [u8]) -> (Scrape, std::thread::JoinHandle<String>) {
        let server = MetricsServer::start("127.0.0.1:0").unwrap();
        let addr = server.addr;
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(request).unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            text
        });
        loop {
            if let Some(s) = server.pending().next() {
                return (s, client);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_scrape_gets_the_event_loops_answer() {
        let (scrape, client) = request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(scrape.path(), "/metrics");
        scrape.answer(Some("m 1\n".into()));
        let text = client.join().unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nm 1\n"), "{text}");
    }

    #[test]
    fn a_page_the_script_does_not_serve_is_not_found() {
        let (scrape, client) = request(b"GET /nothing.json HTTP/1.0\r\n\r\n");
        assert_eq!(scrape.path(), "/nothing.json");
        scrape.answer(None);
        let text = client.join().unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(text.contains("Content-Type: application/json\r\n"), "{text}");
    }
}

/// A response body the `prometheus` probes print into (shared: the script's output writer
/// owns one handle, the scrape reads the other).
#[derive(Clone, Default)]
pub struct Body(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Body {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.borrow()).into_owned()
    }
}

impl std::io::Write for Body {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
