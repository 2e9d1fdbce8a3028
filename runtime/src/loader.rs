//! Loading a compiled script into the kernel, with no object file in between: create the
//! maps, patch their fds into the programs' map references, load each program with
//! `BPF_PROG_LOAD`, and attach it the way its target needs (a perf event for tracepoints,
//! kprobes, uprobes and sampling; a tracing link for fentry/fexit and tp_btf, a raw
//! tracepoint for raw_tp; a netfilter link).
//!
//! Invariant: everything made here is an owned fd held by the caller; closing them detaches
//! and frees all of it, on every path, errors included.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use codegen_bpf::compile::{CompiledScript, KernelProbe};
use codegen_bpf::insn::{self, Insn};
use codegen_bpf::object::{MapDef, ObjectSpec, Reloc, RelocTarget};
use lang::family::Attach;
use lang::ir::{PerfEvent, PerfSample};

use crate::bpf::{self, prog_type, MapSpec, PerfSpec, ProgLoadError, ProgSpec};
use crate::kernel_info::LiveKernel;
use crate::session::RuntimeError;

/// `BPF_PSEUDO_MAP_FD` / `BPF_PSEUDO_MAP_VALUE`: what an `ld_imm64`'s `src` says its
/// immediate is.
const PSEUDO_MAP_FD: u8 = 1;
const PSEUDO_MAP_VALUE: u8 = 2;

/// Why a kernel probe did not load or attach, as data: the call that failed, what it was
/// asked for and the kernel's answer. Only `Display` turns it into words.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A call into the kernel failed; `needs` says what a kernel must have for it to work.
    #[error("{call} of {object}: {source}{}", needs.map(|n| format!(" ({n})")).unwrap_or_default())]
    Call { call: KernelCall, object: String, source: std::io::Error, needs: Option<&'static str> },
    /// The kernel refused to load a program that the verifier would check: its log's last
    /// line, when another form of the probe is tried next.
    #[error("verifier: {0}")]
    Verifier(String),
    /// This system lacks what the probe needs: a BTF id, a PMU, a symbol, tracefs.
    #[error("{0}")]
    Missing(String),
    /// The kernel refused fentry/fexit, and the handler reads arguments at the return.
    #[error(
        "this kernel refuses fentry/fexit ({fentry}), and the handler reads arguments at the return, which a \
         kretprobe cannot"
    )]
    NoKretprobe { fentry: Box<ProbeError> },
    /// Neither the preferred form of a probe nor its fallback attaches.
    #[error("this kernel allows neither {preferred} ({preferred_error}) nor {fallback} ({fallback_error}){}", needs.map(|n| format!("; {n}")).unwrap_or_default())]
    Neither {
        preferred: &'static str,
        preferred_error: Box<ProbeError>,
        fallback: &'static str,
        fallback_error: Box<ProbeError>,
        needs: Option<&'static str>,
    },
}

/// The kernel calls a probe's load and attachment make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelCall {
    ProgLoad,
    BtfLoad,
    PerfEventOpen,
    LinkCreate,
    RawTracepointOpen,
}

impl std::fmt::Display for KernelCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelCall::ProgLoad => "bpf(BPF_PROG_LOAD)",
            KernelCall::BtfLoad => "bpf(BPF_BTF_LOAD)",
            KernelCall::PerfEventOpen => "perf_event_open",
            KernelCall::LinkCreate => "bpf(BPF_LINK_CREATE)",
            KernelCall::RawTracepointOpen => "bpf(BPF_RAW_TRACEPOINT_OPEN)",
        })
    }
}

fn call_error(call: KernelCall, object: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProbeError {
    let object = object.into();
    move |source| ProbeError::Call { call, object, source, needs: None }
}

/// The script's maps, in the order of `ObjectSpec::maps`, and its read-only data.
pub struct Maps {
    fds: Vec<OwnedFd>,
    rodata: Option<OwnedFd>,
}

impl Maps {
    /// Creates the maps of `object`, the ring buffer with `ring_bytes` of data, except those
    /// `shared` gives (maps of the session the object uses too: its globals, the arrays an
    /// earlier input made).
    pub fn create(
        object: &ObjectSpec,
        ring_bytes: u32,
        mut shared: impl FnMut(usize, &MapDef) -> Result<Option<OwnedFd>, RuntimeError>,
    ) -> Result<Maps, RuntimeError> {
        let mut fds = Vec::with_capacity(object.maps.len());
        for (index, def) in object.maps.iter().enumerate() {
            if let Some(fd) = shared(index, def)? {
                fds.push(fd);
                continue;
            }
            fds.push(create_map(def, ring_bytes)?);
        }
        let rodata = if object.rodata.is_empty() {
            None
        } else {
            let spec = MapSpec {
                name: ".rodata",
                map_type: codegen_bpf::object::map_type::ARRAY,
                key_size: 4,
                value_size: object.rodata.len() as u32,
                max_entries: 1,
                flags: bpf::BPF_F_RDONLY_PROG,
            };
            let fd = bpf::map_create(&spec).map_err(|e| map_error(".rodata", e))?;
            bpf::fill_and_freeze(fd.as_fd(), &object.rodata).map_err(|e| map_error(".rodata", e))?;
            Some(fd)
        };
        Ok(Maps { fds, rodata })
    }

    /// The map at `ObjectSpec::maps[index]`.
    pub fn fd(&self, index: usize) -> BorrowedFd<'_> {
        self.fds[index].as_fd()
    }

    /// The program's instructions with its map references made fds, encoded.
    fn relocate(&self, insns: &[Insn], relocs: &[Reloc]) -> Vec<u8> {
        let mut insns = insns.to_vec();
        for reloc in relocs {
            let (fd, src, offset) = match reloc.target {
                RelocTarget::Map(i) => (self.fds[i].as_raw_fd(), PSEUDO_MAP_FD, 0),
                RelocTarget::MapValue(i) => (self.fds[i].as_raw_fd(), PSEUDO_MAP_VALUE, 0),
                RelocTarget::Rodata(off) => {
                    let fd = self.rodata.as_ref().expect("a .rodata reference implies .rodata").as_raw_fd();
                    (fd, PSEUDO_MAP_VALUE, off as i32)
                }
            };
            insns[reloc.insn_index].src = src;
            insns[reloc.insn_index].imm = fd;
            insns[reloc.insn_index + 1].imm = offset;
        }
        insn::encode(&insns)
    }
}

/// Creates one map; a ring buffer gets `ring_bytes` of data.
pub fn create_map(def: &MapDef, ring_bytes: u32) -> Result<OwnedFd, RuntimeError> {
    let is_ring = def.map_type == codegen_bpf::object::map_type::RINGBUF;
    let spec = MapSpec {
        name: &def.name,
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: if is_ring { ring_bytes } else { def.max_entries },
        flags: def.flags,
    };
    bpf::map_create(&spec).map_err(|e| map_error(&def.name, e))
}

fn map_error(name: &str, e: std::io::Error) -> RuntimeError {
    if e.raw_os_error() == Some(libc::EPERM) {
        return RuntimeError::NotPermitted;
    }
    RuntimeError::Map { name: name.to_string(), source: e }
}

/// Loads one kernel probe's program(s) and attaches them; the fds that keep them attached
/// are pushed to `held`, the program's first (the session reads its statistics through it).
pub fn attach(
    compiled: &CompiledScript,
    maps: &Maps,
    probe: &KernelProbe,
    kernel: &LiveKernel,
    force_kprobes: bool,
    held: &mut Vec<OwnedFd>,
) -> Result<(), RuntimeError> {
    let point = compiled.program.handlers[probe.handler].point.as_str();
    let a = Attaching { compiled, maps, probe, kernel, point };
    let Some(program) = probe.target.kernel_program() else {
        return Err(a.error(ProbeError::Missing("a user-space handler has no kernel program".into())));
    };
    let fds = match program.attach {
        // A handler that reads no record runs the same as a raw tracepoint, by name, which
        // costs less per event and detaches at once; the perf event where the kernel has no
        // raw tracepoint of that name.
        Attach::Tracepoint { group, event } if probe.context_free => match a.raw_tp(event) {
            Ok(fds) => fds,
            Err(_) => a.tracepoint(group, event)?,
        },
        Attach::Tracepoint { group, event } => a.tracepoint(group, event)?,
        Attach::Uprobe { path, symbol, ret } => a.uprobe(path, symbol, ret)?,
        Attach::PerfEvent { event, sample } => a.perf(event, sample)?,
        Attach::Function { name, module, ret } => a.kernel_function(name, module, ret, force_kprobes)?,
        Attach::BtfRawTracepoint { event } => a.raw_tracepoint(event)?,
        Attach::RawTracepoint { event } => a.raw_tp(event)?,
        Attach::Netfilter { pf, hook, priority } => a.netfilter(pf, hook, priority)?,
    };
    held.extend(fds);
    Ok(())
}

/// One kernel probe being loaded and attached: each way of `Attach` is a method, which returns
/// the fds that keep the probe attached, the program's first.
struct Attaching<'a> {
    compiled: &'a CompiledScript,
    maps: &'a Maps,
    probe: &'a KernelProbe,
    kernel: &'a LiveKernel,
    point: &'a str,
}

impl Attaching<'_> {
    fn error(&self, source: ProbeError) -> RuntimeError {
        RuntimeError::Attach { point: self.point.to_string(), source }
    }

    fn load_error(&self, source: ProbeError) -> RuntimeError {
        RuntimeError::Load { point: self.point.to_string(), source }
    }

    /// Loads the object's program `name` as `prog_type`; a tracing program attaches to BTF
    /// id `attach_btf_id` of the kernel, or of module BTF object `attach_btf_obj`.
    fn load(
        &self,
        name: &str,
        prog_type: u32,
        expected_attach_type: u32,
        attach_btf_id: u32,
        attach_btf_obj: Option<BorrowedFd<'_>>,
    ) -> Result<OwnedFd, RuntimeError> {
        let point = self.point;
        let program = self
            .compiled
            .object
            .programs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| self.load_error(ProbeError::Missing(format!("no program {name}"))))?;
        let insns = self.maps.relocate(&program.insns, &program.relocs);
        let funcs = codegen_bpf::btf::func_info(&program.insns);
        let btf = match funcs.is_empty() {
            true => None,
            false => Some(
                bpf::btf_load(&codegen_bpf::btf::func_btf())
                    .map_err(|e| self.load_error(call_error(KernelCall::BtfLoad, "its callbacks")(e)))?,
            ),
        };
        let funcs = btf.as_ref().map(|fd| (fd.as_fd(), funcs.as_slice()));
        let spec = ProgSpec {
            name,
            prog_type,
            expected_attach_type,
            attach_btf_id,
            attach_btf_obj,
            flags: 0,
            insns: &insns,
            funcs,
        };
        bpf::prog_load(&spec).map_err(|e| load_error(e, point, name, &self.probe.spans))
    }

    /// A tracepoint: a perf event of the tracepoint's id.
    fn tracepoint(&self, group: &str, event: &str) -> Result<Vec<OwnedFd>, RuntimeError> {
        let prog = self.load(&self.probe.name, prog_type::TRACEPOINT, 0, 0, None)?;
        let tracefs = self.kernel.tracefs().map_err(|e| self.error(ProbeError::Missing(e.to_string())))?;
        let id = read_number(&tracefs.join("events").join(group).join(event).join("id"))
            .map_err(|e| self.error(ProbeError::Missing(format!("tracepoint {group}:{event}: {e}"))))?;
        let spec = PerfSpec { perf_type: bpf::perf_type::TRACEPOINT, config: id, ..PerfSpec::default() };
        let event = bpf::perf_attach(&spec, prog.as_fd())
            .map_err(|e| self.error(call_error(KernelCall::PerfEventOpen, format!("tracepoint {group}:{event}"))(e)))?;
        Ok(vec![prog, event])
    }

    fn uprobe(&self, path: &str, symbol: &str, ret: bool) -> Result<Vec<OwnedFd>, RuntimeError> {
        let prog = self.load(&self.probe.name, prog_type::KPROBE, 0, 0, None)?;
        let offset =
            crate::symbols::file_offset(Path::new(path), symbol).map_err(|e| self.error(ProbeError::Missing(e)))?;
        let event = probe_event("uprobe", path, offset, ret, prog.as_fd()).map_err(|e| self.error(e))?;
        Ok(vec![prog, event])
    }

    /// A sampling perf event: one per online CPU.
    fn perf(&self, event: PerfEvent, sample: PerfSample) -> Result<Vec<OwnedFd>, RuntimeError> {
        let prog = self.load(&self.probe.name, prog_type::PERF_EVENT, 0, 0, None)?;
        let (sample, freq) = match sample {
            PerfSample::Frequency(hz) => (hz, true),
            PerfSample::Period(n) => (n, false),
        };
        let config = match event {
            PerfEvent::CpuClock => 0,
            PerfEvent::TaskClock => 1,
        };
        // One perf event per CPU: a sampling probe fires on every CPU.
        let cpus = crate::sys::online_cpus()
            .map_err(|e| self.error(ProbeError::Missing(format!("cannot list the online CPUs: {e}"))))?;
        let mut events = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let spec =
                PerfSpec { perf_type: bpf::perf_type::SOFTWARE, config, sample, freq, cpu, ..PerfSpec::default() };
            let clock = format!("{event:?} on CPU {cpu}");
            events.push(
                bpf::perf_attach(&spec, prog.as_fd())
                    .map_err(|e| self.error(call_error(KernelCall::PerfEventOpen, clock)(e)))?,
            );
        }
        Ok(std::iter::once(prog).chain(events).collect())
    }

    /// fentry/fexit where the kernel allows them, else the kprobe form the object carries.
    /// A module's function is found in the module's BTF object for fentry; a kprobe finds it
    /// by name, as the kernel's own.
    fn kernel_function(
        &self,
        name: &str,
        module: Option<&str>,
        ret: bool,
        force_kprobes: bool,
    ) -> Result<Vec<OwnedFd>, RuntimeError> {
        let fentry = if force_kprobes {
            Err(ProbeError::Missing("not tried (kprobes forced)".to_string()))
        } else {
            let module_btf = match module {
                Some(m) => {
                    bpf::module_btf(m).map(Some).map_err(|e| ProbeError::Missing(format!("module {m}'s BTF: {e}")))
                }
                None => Ok(None),
            };
            module_btf.and_then(|module_btf| {
                let kind = if ret { "fexit" } else { "fentry" };
                attach_tracing(
                    self.kernel,
                    &format!("{kind} {name}"),
                    |kernel| match module {
                        Some(m) => kernel.module_function_btf_id(m, name),
                        None => function_btf_id(kernel, name),
                    },
                    |id| {
                        let attach_type = if ret { bpf::BPF_TRACE_FEXIT } else { bpf::BPF_TRACE_FENTRY };
                        let obj = module_btf.as_ref().map(|fd| fd.as_fd());
                        self.load(&self.probe.name, prog_type::TRACING, attach_type, id, obj)
                    },
                )
            })
        };
        match fentry {
            Ok(fds) => Ok(fds.into()),
            Err(fentry_error) => {
                let Some(kname) = self.probe.kprobe_fallback.as_deref() else {
                    return Err(self.error(ProbeError::NoKretprobe { fentry: Box::new(fentry_error) }));
                };
                let prog = self.load(kname, prog_type::KPROBE, 0, 0, None)?;
                let event = probe_event("kprobe", name, 0, ret, prog.as_fd())
                    .or_else(|e| match crate::symbols::compiler_clone(name) {
                        Some(clone) => probe_event("kprobe", &clone, 0, ret, prog.as_fd()),
                        None => Err(e),
                    })
                    .map_err(|kprobe_error| {
                        self.error(ProbeError::Neither {
                            preferred: "fentry/fexit",
                            preferred_error: Box::new(fentry_error),
                            fallback: "kprobes",
                            fallback_error: Box::new(kprobe_error),
                            needs: Some("kernel.function probes need one of them (CONFIG_KPROBES, or BPF trampolines)"),
                        })
                    })?;
                Ok(vec![prog, event])
            }
        }
    }

    fn raw_tracepoint(&self, event: &str) -> Result<Vec<OwnedFd>, RuntimeError> {
        // tp_btf where the kernel has it (5.5+): a tracing program on the event's BTF
        // typedef. Else the same code as a raw tracepoint program, on the event's name.
        let tp_btf = attach_tracing(
            self.kernel,
            &format!("tp_btf {event}"),
            |kernel| raw_tracepoint_btf_id(kernel, event),
            |id| self.load(&self.probe.name, prog_type::TRACING, bpf::BPF_TRACE_RAW_TP, id, None),
        );
        match tp_btf {
            Ok(fds) => Ok(fds.into()),
            Err(tp_btf_error) => self.raw_tp(event).map_err(|e| match e {
                RuntimeError::Attach { source, .. } => self.error(ProbeError::Neither {
                    preferred: "tp_btf",
                    preferred_error: Box::new(tp_btf_error),
                    fallback: "raw_tp",
                    fallback_error: Box::new(source),
                    needs: None,
                }),
                other => other,
            }),
        }
    }

    /// A raw tracepoint program attached by the event's name: no BTF to look up, which
    /// keeps a syscall probe's start in a millisecond (finding `btf_trace_sys_enter` in the
    /// kernel's BTF walks every type: ~10 ms and 2.6 MB resident).
    fn raw_tp(&self, event: &str) -> Result<Vec<OwnedFd>, RuntimeError> {
        let prog = self.load(&self.probe.name, prog_type::RAW_TRACEPOINT, 0, 0, None)?;
        let name = CString::new(event).map_err(|e| self.error(ProbeError::Missing(e.to_string())))?;
        let link = bpf::tracing_attach(prog.as_fd(), Some(&name))
            .map_err(|e| self.error(call_error(KernelCall::RawTracepointOpen, event)(e)))?;
        Ok(vec![prog, link])
    }

    fn netfilter(&self, pf: u32, hook: u32, priority: i32) -> Result<Vec<OwnedFd>, RuntimeError> {
        let prog =
            self.load(&self.probe.name, prog_type::NETFILTER, bpf::BPF_NETFILTER, 0, None).map_err(|e| match e {
                RuntimeError::Load { point, source: ProbeError::Call { call, object, source, needs: None } } => {
                    let needs = Some("netfilter BPF programs need Linux 6.4 or later");
                    RuntimeError::Load { point, source: ProbeError::Call { call, object, source, needs } }
                }
                other => other,
            })?;
        // Two BPF programs may not share a hook's priority (EBUSY): take the next free one
        // below ours, which also lets several bpftap sessions watch the same hook.
        let mut attempt = 0;
        let link = loop {
            match bpf::netfilter_link(prog.as_fd(), bpf::BPF_NETFILTER, pf, hook, priority - attempt) {
                Ok(link) => break link,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 4096 => attempt += 1,
                // Linux (6.18 included) links BPF programs to the IPv4 and IPv6 hooks only.
                Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) && !matches!(pf, 2 | 10) => {
                    let family = match pf {
                        3 => "NFPROTO_ARP".to_string(),
                        7 => "NFPROTO_BRIDGE".to_string(),
                        n => format!("protocol family {n}"),
                    };
                    return Err(RuntimeError::FamilyRefused { point: self.point.to_string(), family });
                }
                Err(source) => {
                    let needs = Some("the kernel needs CONFIG_NETFILTER_BPF_LINK, Linux 6.4+");
                    let object = format!("netfilter hook {hook} of protocol family {pf}");
                    return Err(self.error(ProbeError::Call { call: KernelCall::LinkCreate, object, source, needs }));
                }
            }
        };
        Ok(vec![prog, link])
    }
}

/// Loads (through `load`, given the BTF id `btf_id` finds) and attaches a tracing program:
/// the fentry or fexit form of a function probe, or the tp_btf form of a raw tracepoint
/// probe (`object` names which, for errors). Any failure is a reason to try the other form
/// (kprobe, raw_tp) instead.
fn attach_tracing(
    kernel: &LiveKernel,
    object: &str,
    btf_id: impl FnOnce(&LiveKernel) -> Result<u32, String>,
    load: impl FnOnce(u32) -> Result<OwnedFd, RuntimeError>,
) -> Result<[OwnedFd; 2], ProbeError> {
    let id = btf_id(kernel).map_err(ProbeError::Missing)?;
    let prog = load(id).map_err(|e| match e {
        RuntimeError::Verifier { log, .. } => ProbeError::Verifier(log.lines().last().unwrap_or("").to_string()),
        RuntimeError::NotPermitted => ProbeError::Call {
            call: KernelCall::ProgLoad,
            object: object.to_string(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
            needs: None,
        },
        RuntimeError::Load { source, .. } | RuntimeError::Attach { source, .. } => source,
        other => ProbeError::Missing(other.to_string()),
    })?;
    let link = bpf::tracing_attach(prog.as_fd(), None).map_err(call_error(KernelCall::LinkCreate, object))?;
    Ok([prog, link])
}

/// The id of the `FUNC` named `name` in the kernel's BTF.
fn function_btf_id(kernel: &LiveKernel, name: &str) -> Result<u32, String> {
    btf_id_of(kernel, name, |ty| matches!(ty, btf_rs::Type::Func(_)))?
        .ok_or_else(|| format!("no BTF for function {name}"))
}

/// The id of the typedef `btf_trace_EVENT` in the kernel's BTF: what a tp_btf program is
/// loaded for.
fn raw_tracepoint_btf_id(kernel: &LiveKernel, event: &str) -> Result<u32, String> {
    let name = format!("btf_trace_{event}");
    btf_id_of(kernel, &name, |ty| matches!(ty, btf_rs::Type::Typedef(_)))?
        .ok_or_else(|| format!("no BTF typedef {name}"))
}

/// The id of the type named `name` that is of the kind `kind` accepts.
fn btf_id_of(kernel: &LiveKernel, name: &str, kind: impl Fn(&btf_rs::Type) -> bool) -> Result<Option<u32>, String> {
    let btf = kernel.btf().map_err(|e| e.to_string())?;
    let ids = kernel.btf_ids_named(name).map_err(|e| e.to_string())?;
    Ok(ids.into_iter().find(|id| btf.resolve_type_by_id(*id).is_ok_and(|ty| kind(&ty))))
}

/// Opens a kprobe or uprobe perf event through the kernel's `kprobe`/`uprobe` PMU
/// (`/sys/bus/event_source/devices/PMU`): `target` is the function name (kprobe) or the
/// file's path (uprobe), `offset` the place in the file (uprobe).
fn probe_event(pmu: &str, target: &str, offset: u64, ret: bool, prog: BorrowedFd<'_>) -> Result<OwnedFd, ProbeError> {
    let dir = Path::new("/sys/bus/event_source/devices").join(pmu);
    let perf_type =
        read_number(&dir.join("type")).map_err(|e| ProbeError::Missing(format!("no {pmu} PMU ({e})")))? as u32;
    let config = if ret {
        // `config:N`: the bit that makes it a return probe.
        let format = std::fs::read_to_string(dir.join("format/retprobe"))
            .map_err(|e| ProbeError::Missing(format!("no {pmu} return probes ({e})")))?;
        let bit: u32 = format.trim().strip_prefix("config:").and_then(|b| b.parse().ok()).unwrap_or(0);
        1u64 << bit
    } else {
        0
    };
    let name = CString::new(target).map_err(|e| ProbeError::Missing(e.to_string()))?;
    let spec = PerfSpec { perf_type, config, name: Some(&name), offset, ..PerfSpec::default() };
    bpf::perf_attach(&spec, prog).map_err(call_error(KernelCall::PerfEventOpen, format!("{pmu} {target}")))
}

fn read_number(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim().parse().map_err(|_| format!("{}: not a number", path.display()))
}

/// A load failure: no permission, or the verifier's log with the script span of the
/// instruction it stopped at (the last instruction index the log names).
fn load_error(e: ProgLoadError, point: &str, name: &str, spans: &[(usize, lang::span::Span)]) -> RuntimeError {
    if e.error.raw_os_error() == Some(libc::EPERM) && e.log.trim().is_empty() {
        return RuntimeError::NotPermitted;
    }
    if e.log.trim().is_empty() {
        let source =
            ProbeError::Call { call: KernelCall::ProgLoad, object: name.to_string(), source: e.error, needs: None };
        return RuntimeError::Load { point: point.to_string(), source };
    }
    let insn = e.log.lines().rev().find_map(|l| l.split(':').next().and_then(|n| n.trim().parse::<usize>().ok()));
    let span = insn.and_then(|i| spans.iter().take_while(|(at, _)| *at <= i).last().map(|(_, s)| *s));
    RuntimeError::Verifier { point: point.to_string(), span, log: e.log }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_errors_name_the_call_its_object_and_the_errno() {
        let fentry = ProbeError::Call {
            call: KernelCall::ProgLoad,
            object: "fentry vfs_read".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
            needs: None,
        };
        let neither = ProbeError::Neither {
            preferred: "fentry/fexit",
            preferred_error: Box::new(fentry),
            fallback: "kprobes",
            fallback_error: Box::new(ProbeError::Missing("no kprobe PMU".into())),
            needs: Some("kernel.function probes need one of them"),
        };
        assert_eq!(
            neither.to_string(),
            "this kernel allows neither fentry/fexit (bpf(BPF_PROG_LOAD) of fentry vfs_read: Operation not \
             permitted (os error 1)) nor kprobes (no kprobe PMU); kernel.function probes need one of them"
        );
        let link = ProbeError::Call {
            call: KernelCall::LinkCreate,
            object: "netfilter hook 0 of protocol family 2".into(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
            needs: Some("Linux 6.4+"),
        };
        assert_eq!(
            link.to_string(),
            "bpf(BPF_LINK_CREATE) of netfilter hook 0 of protocol family 2: Invalid argument (os error 22) (Linux 6.4+)"
        );
    }
}
