//! `bpftap -f json`: the real binary runs scripts against a real workload, and every line
//! of its output is parsed, checked field by field, and validated against the schema kept in
//! the repository, `docs/output.schema.json` (with the `jsonschema` crate).
//!
//! The workload is Python calling getppid(2), run under `-c` so the probes are attached
//! first; the script's output goes to a file (`-o`) so the workload's own stdout stays out of
//! it. Needs root and tracefs like the end-to-end cases, and a `python3`: without one each
//! test says SKIP, and fails under `CI=true`, where the install scripts provide it.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// The interpreter itself: `python3` on PATH may be a wrapper (pyenv) that makes syscalls
/// of its own.
fn python() -> Option<String> {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

fn python_or_skip() -> Option<String> {
    let python = python();
    if python.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "python3 is missing, and CI installs it");
        eprintln!("SKIP: no python3 to run the workload");
    }
    python
}

/// Runs bpftap with `args` and `-f json -o FILE`; its exit status and its records, each
/// checked against the schema.
fn run_json(test: &str, args: &[&str]) -> (std::process::ExitStatus, Vec<Value>) {
    let path = std::env::temp_dir().join(format!("bpftap-json-{test}-{}.ndjson", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_bpftap"))
        .args(["-f", "json", "-o"])
        .arg(&path)
        .args(args)
        .status()
        .expect("bpftap runs");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(&path);
    (status, records(&text))
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path()).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

fn schema_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/output.schema.json")
}

/// Parses NDJSON, every line one record that the schema accepts.
fn records(text: &str) -> Vec<Value> {
    let (validator, schema_path) = (validator(), schema_path());
    assert!(text.ends_with('\n'), "the output ends mid-line: {text:?}");
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let errors: Vec<String> =
                validator.iter_errors(&record).map(|e| format!("{e} at {}", e.instance_path())).collect();
            assert!(errors.is_empty(), "{line}\ndoes not match {}:\n{}", schema_path.display(), errors.join("\n"));
            record
        })
        .collect()
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).map(|r| &r["data"]).collect()
}

fn is_python(comm: &Value) -> bool {
    comm.as_str().is_some_and(|s| s.starts_with("python3"))
}

#[test]
fn printf_records_carry_the_typed_arguments_and_the_text() {
    let Some(python) = python_or_skip() else { return };
    // No shell in between: dash calls getppid(2) itself.
    let workload = format!("{python} tests/workloads/getppid_loop.py 3");
    let script = r#"probe syscall.getppid { if (pid() == target()) printf("%s pid=%d target=%d %s|%5d\n", execname(), pid(), target(), "x", -1) }"#;
    let (status, records) = run_json("printf", &["-e", script, "-c", &workload]);
    assert!(status.success(), "{status}");
    assert_eq!(
        records[0],
        json!({ "type": "start", "data": { "schema_version": 1, "bpftap": env!("CARGO_PKG_VERSION") } })
    );
    let printed = of_type(&records, "printf");
    assert_eq!(printed.len(), 3, "{records:#?}");
    let mut last_ts = 0;
    for p in printed {
        assert_eq!(p["probe"], "syscall.getppid");
        assert_eq!(p["format"], "%s pid=%d target=%d %s|%5d\n");
        let args = p["args"].as_array().unwrap();
        assert_eq!(args.len(), 5);
        assert!(is_python(&args[0]), "{p}");
        let pid = args[1].as_i64().expect("a pid is a number");
        assert_eq!(args[2], pid);
        assert_eq!(args[3], "x");
        assert_eq!(args[4], -1);
        assert_eq!(p["text"], format!("{} pid={pid} target={pid} x|   -1\n", args[0].as_str().unwrap()));
        let ts = p["ts_ns"].as_i64().unwrap();
        assert!(ts >= last_ts, "time goes backwards: {ts} after {last_ts}");
        last_ts = ts;
    }
    assert_eq!(records.len(), 4, "nothing but the start and the printfs: {records:#?}");
}

#[test]
fn exit_time_arrays_statistics_and_histograms_are_structured() {
    let Some(python) = python_or_skip() else { return };
    let workload = format!("{python} tests/workloads/getppid_loop.py 5");
    let script = r#"global calls, total, lat, sizes, h, g, big
        probe syscall.getppid {
            if (pid() == target()) {
                calls[execname(), 7]++; total++; lat <<< 3; sizes[execname()] <<< 10
                h <<< 100; g <<< 120; g <<< -1; big[1] = 1 << 60
            }
        }
        probe end { print(@hist_log(h)); print(@hist_linear(g, 0, 200, 50)) }"#;
    let (status, records) = run_json("exit", &["-e", script, "-c", &workload]);
    assert!(status.success(), "{status}");

    let hists = of_type(&records, "hist");
    assert_eq!(hists.len(), 2, "{records:#?}");
    let expect_log = json!({
        "probe": "end", "name": "h", "key": [], "count": 5, "sum": 500, "min": 100, "max": 100, "avg": 100,
        "hist": { "kind": "log", "buckets": [{ "min": 64, "max": 127, "count": 5 }] }
    });
    assert_eq!(hists[0], &expect_log);
    let expect_linear = json!({
        "probe": "end", "name": "g", "key": [], "count": 10, "sum": 595, "min": -1, "max": 120, "avg": 59,
        "hist": { "kind": "linear", "lo": 0, "hi": 200, "step": 50,
                  "buckets": [{ "max": -1, "count": 5 }, { "min": 100, "max": 149, "count": 5 }] }
    });
    assert_eq!(hists[1], &expect_linear);

    let values = of_type(&records, "value");
    assert_eq!(values, [&json!({ "name": "total", "value": 5 })]);

    let named = |kind: &str, name: &str| {
        let found: Vec<&Value> = of_type(&records, kind).into_iter().filter(|d| d["name"] == name).collect();
        assert_eq!(found.len(), 1, "one {kind} record named {name}: {records:#?}");
        found[0].clone()
    };
    let calls = named("map", "calls");
    let entries = calls["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(is_python(&entries[0]["key"][0]), "{entries:?}");
    assert_eq!(entries[0]["key"][1], 7);
    assert_eq!(entries[0]["value"], 5);
    // 2^60 is past what a double holds exactly: a string.
    assert_eq!(
        named("map", "big"),
        json!({ "name": "big", "entries": [{ "key": [1], "value": "1152921504606846976" }] })
    );

    let lat = json!({ "name": "lat", "entries": [{ "key": [], "value": { "count": 5, "sum": 15, "min": 3, "max": 3, "avg": 3 } }] });
    assert_eq!(named("stats", "lat"), lat);
    let sizes = named("stats", "sizes");
    let entry = &sizes["entries"][0];
    assert!(is_python(&entry["key"][0]), "{entry}");
    assert_eq!(entry["value"], json!({ "count": 5, "sum": 50, "min": 10, "max": 10, "avg": 10 }));

    // What the text output prints, in its order: end's prints, then the scalars, then the arrays.
    let kinds: Vec<&str> = records.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[..4], ["start", "hist", "hist", "value"], "{kinds:?}");
    assert_eq!(kinds.len(), 8, "{kinds:?}");
}

#[test]
fn an_empty_statistic_has_no_min_max_or_avg() {
    let (status, records) =
        run_json("empty", &["-e", "global s, n probe begin { n = 1; exit() } probe never { s <<< 1 }"]);
    // `probe never` compiles to nothing; `s` stays empty.
    assert!(status.success(), "{status}");
    let stats = of_type(&records, "stats");
    let empty = json!({ "name": "s", "entries": [{ "key": [], "value": { "count": 0, "sum": 0, "min": null, "max": null, "avg": null } }] });
    assert_eq!(stats, [&empty]);
}

#[test]
fn the_error_that_stops_a_script_is_a_record_with_its_place() {
    let script = "global x\nprobe begin { x = 1 }\nprobe timer.ms(10) {\n  error(\"boom\")\n}";
    let (status, records) = run_json("error", &["-e", script]);
    assert!(!status.success());
    let errors = of_type(&records, "error");
    let expect = json!({
        "message": "error in timer.ms(10): boom",
        "probe": "timer.ms(10)",
        "location": { "file": "<command line>", "line": 3, "column": 1 }
    });
    assert_eq!(errors, [&expect]);
    // Like the text output, the globals are printed before the error is reported.
    assert_eq!(of_type(&records, "value"), [&json!({ "name": "x", "value": 1 })]);
}

#[test]
fn bytes_that_are_not_utf8_are_escaped_in_strings() {
    let Some(python) = python_or_skip() else { return };
    // A file name that is not UTF-8, read from the process's memory by a kernel probe.
    let workload = format!(
        r#"exec {python} -c 'import os; n = b"/tmp/bpftap-json-\xff\xfe"; os.close(os.open(n, os.O_CREAT | os.O_RDONLY)); os.unlink(n)'"#
    );
    let script = r#"probe kernel.trace("syscalls:sys_enter_openat") { if (pid() == target() && isinstr(user_string($filename), "bpftap-json")) printf("%s|%c\n", user_string($filename), 255) }"#;
    let (status, records) = run_json("bytes", &["-e", script, "-c", &workload]);
    assert!(status.success(), "{status}");
    let printed = of_type(&records, "printf");
    assert_eq!(printed.len(), 1, "{records:#?}");
    assert_eq!(printed[0]["args"], json!(["/tmp/bpftap-json-\\xff\\xfe", 255]));
    assert_eq!(printed[0]["text"], "/tmp/bpftap-json-\\xff\\xfe|\\xff\n");
}

/// The schema is no rubber stamp: records a little off what bpftap writes fail it.
#[test]
fn the_schema_rejects_records_bpftap_does_not_write() {
    let validator = validator();
    let printf = json!({ "probe": "begin", "ts_ns": 1, "format": "%d", "args": [1], "text": "1" });
    assert!(validator.is_valid(&json!({ "type": "printf", "data": printf })));
    let stat = json!({ "count": 1, "sum": 1, "min": 1, "max": 1, "avg": 1 });
    assert!(validator
        .is_valid(&json!({ "type": "stats", "data": { "name": "s", "entries": [{ "key": [], "value": stat }] } })));
    let bad = [
        json!({ "type": "printf", "data": { "probe": "begin", "ts_ns": 1, "format": "%d", "args": [1] } }),
        json!({ "type": "printf", "data": { "probe": "begin", "ts_ns": 1, "format": "%d", "args": [1.5], "text": "1" } }),
        json!({ "type": "printf", "data": { "probe": "begin", "ts_ns": 1, "format": "%d", "args": [1], "text": "1", "x": 0 } }),
        json!({ "type": "printf", "data": printf, "extra": 1 }),
        json!({ "type": "nonsense", "data": {} }),
        json!({ "type": "start", "data": { "schema_version": 2, "bpftap": "0.1.0" } }),
        json!({ "type": "value", "data": { "name": "x", "value": 9007199254740993u64 } }),
        json!({ "type": "stats", "data": { "name": "s", "entries": [{ "key": [], "value": { "count": 1 } }] } }),
        json!({ "type": "hist", "data": { "probe": null, "name": "h", "key": [], "count": 1, "sum": 1, "min": 1,
            "max": 1, "avg": 1, "hist": { "kind": "log", "buckets": [{ "count": 1 }] } } }),
        json!({ "type": "error", "data": { "message": "m", "probe": null, "location": { "file": "f", "line": 0, "column": 1 } } }),
    ];
    for record in bad {
        assert!(!validator.is_valid(&record), "the schema accepts {record}");
    }
}

#[test]
fn records_the_kernel_drops_are_counted_in_a_lost_record() {
    let Some(python) = python_or_skip() else { return };
    // 20 000 records of 8 KiB into a 1 MiB ring buffer, faster than bpftap reads them.
    let workload = format!("{python} tests/workloads/getppid_loop.py 20000");
    let script = r#"global s
        probe begin { s = "0123456789abcdef"; s = s.s.s.s; s = s.s.s.s; s = s.s.s.s }
        probe syscall.getppid { if (pid() == target()) printf("%s%s%s%s\n", s, s, s, s) }"#;
    let (status, records) = run_json("lost", &["-s", "1", "-D", "MAXSTRINGLEN=2048", "-e", script, "-c", &workload]);
    assert!(status.success(), "{status}");
    let printed = of_type(&records, "printf").len() as i64;
    let lost = of_type(&records, "lost");
    assert_eq!(lost.len(), 1, "the ring buffer kept up: {printed} records, none lost");
    let lost = lost[0]["records"].as_i64().unwrap();
    assert!(lost > 0);
    assert_eq!(printed + lost, 20000, "{printed} printed, {lost} lost");
    assert_eq!(records.last().unwrap()["type"], "lost");
}

#[test]
fn a_script_that_does_not_compile_gives_an_error_record_per_error() {
    let (status, records) = run_json("compile", &["-e", "probe begin {\n  x = \n}\nprobe nosuch.thing { }"]);
    assert!(!status.success());
    assert_eq!(records[0]["type"], "start");
    let errors = of_type(&records, "error");
    assert!(!errors.is_empty(), "{records:#?}");
    for e in &errors {
        assert_eq!(e["probe"], Value::Null);
        assert_eq!(e["location"]["file"], "<command line>");
    }
    let first = errors[0];
    assert!(first["message"].as_str().unwrap().starts_with("E0"), "{first}");
    assert_eq!((&first["location"]["line"], &first["location"]["column"]), (&json!(3), &json!(1)), "{first}");
}
