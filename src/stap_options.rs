//! SystemTap's command-line options that bpftap accepts for compatibility: scripts and their
//! `.meta` install checks are written against `stap --help`, and an option bpftap has no use
//! for must not be the reason a script fails. Each option here either does what it does in
//! stap, does nothing because bpftap has nothing for it to act on (said in its help), or stops
//! the run with one sentence saying why it cannot apply.

use std::path::PathBuf;

#[derive(clap::Args, Debug, Default)]
pub struct StapOptions {
    /// Suppress warnings.
    #[arg(short = 'w')]
    pub no_warnings: bool,
    /// Turn warnings into errors.
    #[arg(short = 'W')]
    pub warnings_are_errors: bool,
    /// Collect probe timing information: print each kernel probe's hit count and run time at
    /// exit (on stderr; counted by the kernel).
    #[arg(short = 't')]
    pub timing: bool,
    /// Guru mode: refused, bpftap never writes kernel memory.
    #[arg(short = 'g')]
    guru: bool,
    /// Compile for another kernel: only the running one (its release, or a build tree of it) is
    /// accepted, since bpftap reads the running kernel's BTF.
    #[arg(short = 'r', value_name = "DIR|RELEASE")]
    release: Option<String>,
    /// Compile for another architecture: only the running one is accepted.
    #[arg(short = 'a', value_name = "ARCH")]
    arch: Option<String>,
    /// Run the script text as well as the script file or -e (repeatable).
    #[arg(short = 'E', value_name = "SCRIPT")]
    pub extra_scripts: Vec<String>,
    /// Keep the temporary directory (none: bpftap writes no temporary files).
    #[arg(short = 'k')]
    keep_temps: bool,
    /// Unoptimized translation (no effect).
    #[arg(short = 'u')]
    unoptimized: bool,
    /// Prologue searching for function probes (no effect: arguments come from BTF).
    #[arg(short = 'P')]
    prologue_searching: bool,
    /// Bulk (per-CPU file) mode (no effect: one output stream).
    #[arg(short = 'b')]
    bulk: bool,
    /// Pass an option to kbuild (no effect: no kernel module is built).
    #[arg(short = 'B', value_name = "NAME=VALUE")]
    kbuild: Vec<String>,
    /// The runtime directory (no effect: the runtime is built in).
    #[arg(short = 'R', value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// Add symbol data for OBJECT (no effect: symbols are read at run time).
    #[arg(short = 'd', value_name = "OBJECT")]
    symbol_objects: Vec<PathBuf>,
    /// Add symbol data for the shared libraries the target uses (no effect: `umodname` reads
    /// the running process's mappings; user symbols are addresses in hex, as for -d).
    #[arg(long = "ldd")]
    ldd: bool,
    /// Add symbol data for every loaded kernel module (no effect: `symname` and `modname`
    /// come from the running kernel's own symbol table, modules included).
    #[arg(long = "all-modules")]
    all_modules: bool,
    /// Flight-recorder mode: refused, run bpftap in the background with -o FILE instead.
    #[arg(short = 'F')]
    flight_recorder: bool,
    /// With -o, the most SIZE megabytes a file and N files (accepted; not enforced yet).
    #[arg(short = 'S', value_name = "SIZE[,N]")]
    file_limits: Option<String>,
    /// Catch run-time errors and skip the handler quietly (bpftap's handlers do not abort).
    #[arg(long = "suppress-handler-errors")]
    suppress_handler_errors: bool,
    /// No time limits on probe handlers (bpftap's loops are bounded by the verifier).
    #[arg(long = "suppress-time-limits")]
    suppress_time_limits: bool,
    /// Substitute zero for bad $variables: refused, bpftap checks every $variable against BTF.
    #[arg(long = "skip-badvars")]
    skip_badvars: bool,
    /// The language version to be compatible with (accepted).
    #[arg(long = "compatible", value_name = "VERSION")]
    compatible: Option<String>,
    /// The pass-5 runtime: bpftap is always its own BPF runtime (`kernel`, `bpf` accepted).
    #[arg(long = "runtime", value_name = "MODE")]
    runtime_mode: Option<String>,
    /// SystemTap's `--runtime=bpf` (no effect: bpftap's runtime is its own BPF one).
    #[arg(long = "bpf")]
    bpf_runtime: bool,
    /// Use a compile server: refused, bpftap compiles locally in milliseconds.
    #[arg(long = "use-server", value_name = "SERVER", num_args = 0..=1)]
    use_server: Option<Vec<String>>,
    /// Check the script for a privilege level: refused, bpftap needs root (or CAP_BPF and CAP_PERFMON).
    #[arg(long = "privilege", value_name = "LEVEL")]
    privilege: Option<String>,
    /// As --privilege=stapusr: refused likewise.
    #[arg(long = "unprivileged")]
    unprivileged: bool,
    /// A directory for temporary files (no effect).
    #[arg(long = "tmpdir", value_name = "DIR")]
    tmpdir: Option<PathBuf>,
}

/// What the options ask of the run, once checked.
pub struct Checked {
    /// Notes for stderr: options accepted without effect are not worth a word, but a limit
    /// that is not enforced is.
    pub warnings: Vec<String>,
}

impl StapOptions {
    /// Refuses the options that cannot apply, with the reason.
    pub fn check(&self, running_release: &str, running_arch: &str) -> Result<Checked, String> {
        if self.guru {
            return Err("-g (guru mode) is refused: bpftap runs only verified BPF that never writes \
                        kernel memory, and it has no embedded C"
                .into());
        }
        if let Some(r) = &self.release {
            let names_running = r == running_release
                || r.trim_end_matches('/').ends_with(&format!("/{running_release}/build"))
                || r.trim_end_matches('/').ends_with(&format!("/{running_release}"));
            if !names_running {
                return Err(format!(
                    "-r {r}: bpftap compiles for the running kernel ({running_release}), whose BTF it reads; \
                     compile on the target machine instead"
                ));
            }
        }
        if let Some(a) = &self.arch {
            if lang::arch::Arch::from_machine(a).is_none_or(|a| Some(a) != lang::arch::Arch::from_machine(running_arch))
            {
                return Err(format!("-a {a}: bpftap compiles for the running architecture ({running_arch}) only"));
            }
        }
        if self.flight_recorder {
            return Err("-F (flight recorder) is not supported: run bpftap in the background with -o FILE".into());
        }
        if self.skip_badvars {
            return Err("--skip-badvars is not supported: bpftap checks every $variable against the kernel's BTF \
                        and reports the ones that do not exist"
                .into());
        }
        if self.use_server.is_some() {
            return Err("--use-server is not supported: bpftap compiles on this machine, in milliseconds".into());
        }
        if self.privilege.is_some() || self.unprivileged {
            return Err("--privilege and --unprivileged are not supported: bpftap needs root, or CAP_BPF and \
                        CAP_PERFMON"
                .into());
        }
        if let Some(mode) = &self.runtime_mode {
            if !matches!(mode.as_str(), "kernel" | "bpf") {
                return Err(format!("--runtime={mode}: bpftap's only runtime is its own BPF one"));
            }
        }
        let mut warnings = Vec::new();
        if self.file_limits.is_some() {
            warnings.push("-S is accepted but not enforced: the output file is not switched".into());
        }
        // Accepted without effect, as documented on each option.
        let _ = (
            self.keep_temps,
            self.unoptimized,
            self.prologue_searching,
            self.bulk,
            &self.kbuild,
            &self.runtime_dir,
            &self.symbol_objects,
            self.ldd,
            self.all_modules,
            self.bpf_runtime,
            self.suppress_handler_errors,
            self.suppress_time_limits,
            &self.compatible,
            &self.tmpdir,
        );
        Ok(Checked { warnings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        stap: StapOptions,
    }

    fn check(args: &[&str]) -> Result<Checked, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("bpftap").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        cli.stap.check("6.18.0", "x86_64")
    }

    #[test]
    fn options_without_effect_are_accepted() {
        for args in [
            &["--all-modules", "--ldd", "-k", "-u", "-b", "-P"][..],
            &["-d", "/bin/ls", "-d", "kernel", "-B", "V=1", "-R", "/tmp"],
            &["--suppress-handler-errors", "--suppress-time-limits", "--compatible", "4.0"],
            &["-r", "6.18.0", "-a", "x86_64", "--runtime", "bpf", "--bpf"],
            &["-r", "/lib/modules/6.18.0/build"],
        ] {
            assert!(check(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn options_that_cannot_apply_say_why() {
        for (args, word) in [
            (&["-g"][..], "guru"),
            (&["-r", "5.10.0"], "running kernel (6.18.0)"),
            (&["-a", "arm64"], "running architecture"),
            (&["-F"], "flight recorder"),
            (&["--use-server"], "compiles on this machine"),
            (&["--skip-badvars"], "BTF"),
            (&["--unprivileged"], "root"),
            (&["--runtime", "dyninst"], "only runtime"),
        ] {
            let err = check(args).err().unwrap_or_default();
            assert!(err.contains(word), "{args:?}: {err}");
        }
    }
}
