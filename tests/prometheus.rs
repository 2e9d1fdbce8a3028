//! `bpftap --metrics ADDR` read by a real Prometheus parser: a counting script runs while a
//! workload calls getppid(2) and scrapes `/metrics` twice; each body is parsed by the
//! Prometheus client library's text-format parser (`tests/workloads/parse_prometheus.py`, run
//! by Debian's python3 with python3-prometheus-client), and the values are checked: they grow
//! between scrapes and are exact for the workload's calls.
//!
//! Needs root and tracefs like the end-to-end cases, a `python3` for the workload and
//! Debian's python3 with prometheus_client for the parser: without them the test says SKIP,
//! and fails under `CI=true`, where the install scripts provide them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The interpreter that sees Debian's python3-* packages (pyenv's does not).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"global calls, lat, by
probe syscall.getppid { if (pid() == target()) { calls++; lat <<< calls; by[execname(), "a\"b"]++ } }
probe end { printf("end calls=%d\n", calls); print(@hist_log(lat)) }"#;

/// The workload's interpreter itself (`python3` on PATH may be pyenv's wrapper).
fn python() -> Option<String> {
    let out = Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !path.is_empty()).then_some(path)
}

fn has_prometheus_client() -> bool {
    Command::new(DEBIAN_PYTHON).args(["-c", "import prometheus_client"]).output().is_ok_and(|o| o.status.success())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The metric families the Prometheus parser finds in `body` (it fails the test on a body
/// it rejects).
fn parse(body: &str) -> Vec<Value> {
    let mut parser = Command::new(DEBIAN_PYTHON)
        .arg("tests/workloads/parse_prometheus.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = parser.wait_with_output().unwrap();
    assert!(out.status.success(), "the Prometheus parser rejects:\n{body}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no metric family {name}: {families:#?}"))
}

/// The samples of a family named `sample`, as (labels, value).
fn samples<'a>(family: &'a Value, sample: &str) -> Vec<(&'a Value, f64)> {
    family["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == sample)
        .map(|s| (&s["labels"], s["value"].as_f64().unwrap()))
        .collect()
}

/// Checks one scrape made after `calls` calls; returns the probe's hits.
fn check_scrape(families: &[Value], calls: u32) -> f64 {
    let n = f64::from(calls);
    let gauge = family(families, "bpftap_calls");
    assert_eq!(gauge["type"], "gauge");
    assert_eq!(samples(gauge, "bpftap_calls")[0].1, n);

    // `lat <<< calls` took 1..=calls: a log histogram with buckets 1, 2-3, 4-7, ...
    let hist = family(families, "bpftap_lat");
    assert_eq!(hist["type"], "histogram");
    let buckets = samples(hist, "bpftap_lat_bucket");
    let tops: Vec<&str> = buckets.iter().map(|(labels, _)| labels["le"].as_str().unwrap()).collect();
    let top_bucket = (calls as u64 + 1).next_power_of_two() - 1;
    let mut want_tops: Vec<String> = (1..=top_bucket.ilog2() + 1).map(|b| ((1u64 << b) - 1).to_string()).collect();
    want_tops.push("+Inf".into());
    assert_eq!(tops, want_tops, "{hist}");
    for (labels, count) in &buckets {
        let le = labels["le"].as_str().unwrap();
        let want = le.parse::<f64>().map_or(n, |le| le.min(n));
        assert_eq!(*count, want, "bucket le={le}: {hist}");
    }
    assert_eq!(samples(hist, "bpftap_lat_count")[0].1, n);
    assert_eq!(samples(hist, "bpftap_lat_sum")[0].1, n * (n + 1.0) / 2.0);

    let by = samples(family(families, "bpftap_by"), "bpftap_by");
    assert_eq!(by.len(), 1, "{by:?}");
    assert!(by[0].0["key1"].as_str().unwrap().starts_with("python3"), "{by:?}");
    assert_eq!(by[0].0["key2"], "a\"b");
    assert_eq!(by[0].1, n);

    let lost = family(families, "bpftap_lost_records");
    assert_eq!(lost["type"], "counter");
    assert_eq!(samples(lost, "bpftap_lost_records_total")[0].1, 0.0);

    // Every process's getppid runs the probe; the workload's are some of them.
    let hits = family(families, "bpftap_probe_hits");
    assert_eq!(hits["type"], "counter");
    let hits = samples(hits, "bpftap_probe_hits_total");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].0["probe"], r#"kernel.trace("syscalls:sys_enter_getppid")"#);
    assert!(hits[0].1 >= n, "{hits:?}");
    let run_time = samples(family(families, "bpftap_probe_run_seconds"), "bpftap_probe_run_seconds_total");
    assert!(run_time[0].1 > 0.0, "{run_time:?}");
    hits[0].1
}

#[test]
fn metrics_parse_as_prometheus_text_and_grow_exactly() {
    let (Some(python), true) = (python(), has_prometheus_client()) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3, or {DEBIAN_PYTHON} with prometheus_client, is missing, and CI installs them"
        );
        eprintln!("SKIP: needs python3, and {DEBIAN_PYTHON} with prometheus_client (python3-prometheus-client)");
        return;
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let workload = format!("{python} tests/workloads/scrape_metrics.py http://{addr}/metrics 100 2");
    let mut bpftap = Command::new(env!("CARGO_BIN_EXE_bpftap"))
        .args(["--metrics", &addr, "-e", SCRIPT, "-c", &workload])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while bpftap.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = bpftap.kill();
            panic!("bpftap still runs after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = bpftap.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let body = |round: u32| {
        let prefix = format!("scrape {round}: ");
        stdout.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|l| format!("{l}\n")).collect::<String>()
    };
    let first = check_scrape(&parse(&body(1)), 100);
    let second = check_scrape(&parse(&body(2)), 200);
    assert!(second >= first + 100.0, "hits {first} then {second}");
    assert!(stdout.lines().any(|l| l == "end calls=200"), "{stdout}");
}
