//! `-f json`: the script's output as NDJSON, one `{"type": ..., "data": ...}` object a line,
//! in the shape of bpftrace's `-f json` so its consumers can read it, but typed where bpftrace
//! is not. `docs/output.schema.json` is the schema of every record (IMPORTANT: change it,
//! and [`SCHEMA_VERSION`], with this file); `tests/json_output.rs` checks real output
//! against it.
//!
//! Records, by `type`:
//! - `start`: the first record of every output stream: `schema_version`, bpftap's version.
//! - `printf`: `probe` (the probe point, `null` when several probes share the format),
//!   `ts_ns` (wall-clock nanoseconds when bpftap read the record: kernel records carry no
//!   time), `format`, `args` (typed), `text` (what the text output prints).
//! - `hist`: `print(@hist_*)`: the statistic's numbers and its non-empty buckets.
//! - `value`, `map`, `stats`: globals printed at exit (a scalar; an array of numbers or
//!   strings; a statistic, scalar or array, with count, sum, min, max, avg and buckets).
//! - `lost`: output records the kernel dropped. `error`: what stopped the script, at its
//!   place in the source where known (the binary also writes one per compile error).
//!
//! Numbers are JSON numbers while a double holds them exactly (|n| <= 2^53), else decimal
//! strings; bytes that are not UTF-8 are written `\xNN` inside the string.

use std::io::Write;

use serde_json::{json, Map, Value as Json};

use crate::arrays::Elem;
use crate::event::{Event, EventSink, Location};
use crate::format::Value;
use crate::output::ScriptOutput;
use crate::stats::{self, Hist, Stat};

/// The version of `docs/output.schema.json`, in every `start` record.
pub const SCHEMA_VERSION: u32 = 1;

/// NDJSON records (see the module doc).
pub struct JsonSink;

impl EventSink for JsonSink {
    fn start(&self, out: &mut dyn Write) -> std::io::Result<()> {
        record(out, "start", json!({ "schema_version": SCHEMA_VERSION, "bpftap": env!("CARGO_PKG_VERSION") }))
    }

    fn emit(&self, out: &mut ScriptOutput, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::Printf { probe, format, args, text } => record(
                out,
                "printf",
                json!({
                    "probe": probe,
                    "ts_ns": crate::sys::realtime_ns(),
                    "format": format,
                    "args": args.iter().map(value).collect::<Vec<_>>(),
                    "text": bytes(text),
                }),
            ),
            Event::Hist { probe, array, keys, hist, stat, .. } => {
                let mut data = stat_fields(stat, Some(*hist));
                data.insert("probe".into(), json!(probe));
                data.insert("name".into(), json!(array));
                data.insert("key".into(), key(keys));
                record(out, "hist", Json::Object(data))
            }
            Event::Global { name, value: v } => record(out, "value", json!({ "name": name, "value": value(v) })),
            Event::Array { name, stat, entries } => {
                let entries: Vec<Json> = entries
                    .iter()
                    .map(|(keys, elem)| {
                        let v = match elem {
                            Elem::Long(n) => long(*n),
                            Elem::Str(s) => json!(s),
                            Elem::Stat(s) => Json::Object(stat_fields(s, *stat)),
                        };
                        json!({ "key": key(keys), "value": v })
                    })
                    .collect();
                let kind = if stat.is_some() { "stats" } else { "map" };
                record(out, kind, json!({ "name": name, "entries": entries }))
            }
            Event::Lost { records } => record(out, "lost", json!({ "records": long(*records) })),
            Event::Error { message, probe, location } => {
                let location = location
                    .map(|Location { file, line, column }| json!({ "file": file, "line": line, "column": column }));
                record(out, "error", json!({ "message": message, "probe": probe, "location": location }))
            }
        }
    }
}

fn record(out: &mut dyn Write, kind: &str, data: Json) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "data": data }))?;
    line.push(b'\n');
    out.write_all(&line)
}

/// A long as a JSON number while a double holds it exactly, else as a decimal string.
fn long(n: i64) -> Json {
    const EXACT: u64 = 1 << 53;
    if n.unsigned_abs() <= EXACT {
        json!(n)
    } else {
        json!(n.to_string())
    }
}

/// Bytes as a string: UTF-8 as is, every other byte as `\xNN`.
fn bytes(b: &[u8]) -> Json {
    let mut text = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    Json::String(text)
}

fn value(v: &Value) -> Json {
    match v {
        Value::Long(n) => long(*n),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => bytes(b),
    }
}

fn key(keys: &[Value]) -> Json {
    Json::Array(keys.iter().map(value).collect())
}

/// `count`, `sum`, `min`, `max`, `avg` (the last three `null` without samples), and for a
/// statistic that keeps a histogram, `hist`: its kind and its non-empty buckets as closed
/// intervals (`min` absent below a linear histogram's range, `max` above it).
fn stat_fields(s: &Stat, hist: Option<Hist>) -> Map<String, Json> {
    let optional = |r: Result<i64, stats::StatError>| r.map_or(Json::Null, long);
    let mut fields = Map::new();
    fields.insert("count".into(), long(s.count()));
    fields.insert("sum".into(), long(s.sum()));
    fields.insert("min".into(), optional(s.min()));
    fields.insert("max".into(), optional(s.max()));
    fields.insert("avg".into(), optional(s.avg()));
    let (mut shape, hist) = match hist {
        Some(h @ Hist::Log2) => (json!({ "kind": "log" }), h),
        Some(h @ Hist::Linear(l)) => {
            (json!({ "kind": "linear", "lo": long(l.lo), "hi": long(l.hi), "step": long(l.step) }), h)
        }
        Some(Hist::None) | None => return fields,
    };
    let buckets: Vec<Json> = stats::bucket_ranges(&hist, s)
        .into_iter()
        .map(|b| {
            let mut bucket = Map::new();
            if let Some(min) = b.min {
                bucket.insert("min".into(), long(min));
            }
            if let Some(max) = b.max {
                bucket.insert("max".into(), long(max));
            }
            bucket.insert("count".into(), long(b.count));
            Json::Object(bucket)
        })
        .collect();
    shape["buckets"] = Json::Array(buckets);
    fields.insert("hist".into(), shape);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_beyond_a_doubles_precision_are_strings() {
        assert_eq!(long(1 << 53), json!(9007199254740992i64));
        assert_eq!(long(-(1 << 53)), json!(-9007199254740992i64));
        assert_eq!(long((1 << 53) + 1), json!("9007199254740993"));
        assert_eq!(long(i64::MIN), json!("-9223372036854775808"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(bytes(b"caf\xc3\xa9 \xff\x00!"), json!("café \\xff\u{0}!"));
    }

    #[test]
    fn a_printf_is_one_line() {
        let body = crate::metrics::Body::default();
        let mut out = ScriptOutput::to_writer(Box::new(body.clone()), std::sync::Arc::new(|_: &str| {}));
        let args = [Value::Str("python3".into()), Value::Long(4242)];
        let event =
            Event::Printf { probe: Some("syscall.getppid"), format: "%s %d\n", args: &args, text: b"python3 4242\n" };
        JsonSink.emit(&mut out, &event).unwrap();
        out.flush().unwrap();
        let text = body.text();
        assert_eq!(text.lines().count(), 1);
        let record: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(record["type"], "printf");
        assert_eq!(record["data"]["args"], json!(["python3", 4242]));
        assert_eq!(record["data"]["text"], "python3 4242\n");
        assert!(record["data"]["ts_ns"].as_i64().unwrap() > 0);
    }
}
