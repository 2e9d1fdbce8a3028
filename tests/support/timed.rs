//! Running a command with a deadline and its stderr captured, for the harness-less runners
//! that run bpftap on many scripts (`compat.rs`, `load_all.rs`).

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a run gave: its status (`None` when it was killed at the deadline or could not be
/// waited for) and its stderr.
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

/// Runs `command` with stdin and stdout closed, killing it after `timeout`.
pub fn run(mut command: Command, timeout: Duration) -> std::io::Result<Finished> {
    let started = Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    Ok(Finished { status, stderr: reader.join().unwrap_or_default() })
}
