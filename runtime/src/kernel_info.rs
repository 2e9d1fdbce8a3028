//! The running kernel as the compiler sees it: [`LiveKernel`], the real
//! [`lang::kernel::KernelInfo`], reading tracefs, `uname`, the kernel config and
//! `/sys/kernel/btf/vmlinux`; and [`ensure_tracefs`] / [`ensure_bpffs`], which mount those
//! file systems when they are missing.
//!
//! Everything is read lazily and at most once per [`LiveKernel`]: a script that names one
//! tracepoint reads one `format` file, and BTF is mapped (not parsed) only when asked for.
//! The tracefs `format` parser, [`parse_tracepoint_format`], is pure and unit-tested on
//! literal texts copied from a 6.18 kernel.
//!
//! `@cast(p, "FILE", "<stdio.h>")` names a type of C headers rather than the kernel's: the
//! system's C compiler writes the headers' types as BTF (`cc -gbtf`), read like the kernel's.
//! A loaded module's functions and types (`module("nfsd").function(...)`) are in its split
//! BTF, `/sys/kernel/btf/MODULE`, numbered on from the kernel's. Each set of headers and each
//! module is a universe of its own, told apart by the high bits of a [`TypeId`] (see
//! [`UNIVERSE_SHIFT`]); the kernel's ids keep those bits zero, and so do the kernel's types a
//! module's BTF refers to.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::{fs, mem};

use lang::kernel::{Bitfield, CType, FunctionSig, KernelError, KernelInfo, TracepointField, TracepointFormat, TypeId};

/// Where the kernel's BTF lives.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// A [`TypeId`] is `universe << UNIVERSE_SHIFT | id`: universe 0 is the kernel (about 150,000
/// types, well below 2^24), universe n the nth set of headers or module read.
const UNIVERSE_SHIFT: u32 = 24;

/// Why tracefs, bpffs or the kernel's BTF could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// Neither tracefs location has `events/`, and mounting tracefs failed.
    #[error("tracefs is not available: no `events/` in /sys/kernel/tracing or /sys/kernel/debug/tracing, and mounting it failed: {reason}")]
    NoTracefs { reason: String },
    /// `/sys/fs/bpf` is not a bpf file system and could not be mounted.
    #[error("cannot mount the bpf file system at /sys/fs/bpf: {reason}")]
    NoBpffs { reason: String },
    /// The kernel's BTF is missing or unreadable; bpftap needs it for every kernel type.
    #[error("cannot open kernel BTF at {path}: {reason} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf { path: String, reason: String },
}

/// The running kernel. Cheap to create; each fact is read on first use and kept.
pub struct LiveKernel {
    release: String,
    machine: String,
    tracefs: OnceLock<Result<PathBuf, SetupError>>,
    tracepoints: OnceLock<Vec<(String, String)>>,
    config: OnceLock<Option<HashMap<String, String>>>,
    btf: OnceLock<Result<btf_rs::Btf, SetupError>>,
    /// The headers `@cast` named and the modules scripts probed, in universe order (see
    /// [`UNIVERSE_SHIFT`]), each with its types or why they could not be had.
    universes: Mutex<Vec<Arc<Universe>>>,
    /// `type_by_name`'s answers: btf_rs finds a name by walking every type (tens of
    /// thousands), and a netfilter script asks for `sk_buff` in each of its probes' many
    /// variables, which took seconds.
    types_by_name: Mutex<HashMap<String, Result<TypeId, KernelError>>>,
    /// Every function in BTF by name, from one walk over the types: btf_rs finds one name by
    /// walking every type's name (65 ms in a debug build), and each tracepoint probe that
    /// reads an argument looks up two probe stubs, so `kernel.trace("syscalls:*")` took
    /// minutes.
    functions: OnceLock<BTreeMap<String, btf_rs::Func>>,
    /// `btf_ids_named`'s answers, for the same reason: the loader looks up a program's
    /// attach point (`btf_trace_sys_enter`) for each probe, and ten syscall probes took
    /// three seconds to attach in a debug build.
    ids_by_name: Mutex<HashMap<String, Vec<u32>>>,
}

impl LiveKernel {
    /// A type in C, as stap's listing (`-L`) prints target variables: `struct file*`,
    /// `size_t`, `char*`; `?` for an id BTF does not have.
    pub fn c_type_text(&self, id: TypeId) -> String {
        self.with_btf(id, |btf, local, _| Ok(c_type(btf, local, 0))).unwrap_or_else(|_| "?".into())
    }

    pub fn new() -> LiveKernel {
        let (release, machine) = uname();
        LiveKernel {
            release,
            machine,
            tracefs: OnceLock::new(),
            tracepoints: OnceLock::new(),
            config: OnceLock::new(),
            btf: OnceLock::new(),
            universes: Mutex::new(Vec::new()),
            types_by_name: Default::default(),
            functions: OnceLock::new(),
            ids_by_name: Default::default(),
        }
    }

    /// The ids of the BTF types named `name`, of any kind.
    pub fn btf_ids_named(&self, name: &str) -> Result<Vec<u32>, SetupError> {
        let btf = self.btf()?;
        let mut cache = self.ids_by_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(cache.entry(name.to_string()).or_insert_with(|| btf.resolve_ids_by_name(name).unwrap_or_default()).clone())
    }

    /// See [`LiveKernel::functions`]; empty without BTF.
    fn function_index(&self) -> &BTreeMap<String, btf_rs::Func> {
        self.functions.get_or_init(|| match self.btf() {
            Ok(btf) => functions_by_name(btf, btf.type_iter()),
            Err(_) => BTreeMap::new(),
        })
    }

    /// The universe of `source` (see [`UNIVERSE_SHIFT`]), read on first use: headers are
    /// compiled, a module's BTF read on top of the kernel's.
    fn universe(&self, source: Source) -> Result<(u32, Arc<Universe>), KernelError> {
        let mut known = self.universes.lock().unwrap_or_else(|e| e.into_inner());
        let index = match known.iter().position(|u| u.source == source) {
            Some(i) => i,
            None => {
                let btf = match &source {
                    Source::Headers(headers) => header_btf(headers),
                    // Not kept: the module may be loaded later in a REPL session.
                    Source::Module(module) => match self.module_btf(module) {
                        Ok(btf) => Ok(btf),
                        Err(_) => return Err(KernelError::NoModule(module.clone())),
                    },
                };
                known.push(Arc::new(Universe {
                    source: source.clone(),
                    btf: btf.map(Arc::new),
                    functions: OnceLock::new(),
                }));
                known.len() - 1
            }
        };
        let universe = known[index].clone();
        match (&universe.btf, source) {
            (Ok(_), _) => Ok((index as u32 + 1, universe)),
            (Err(reason), Source::Headers(headers)) => Err(KernelError::NoHeader { headers, reason: reason.clone() }),
            (Err(_), Source::Module(module)) => Err(KernelError::NoModule(module)),
        }
    }

    /// Module `module`'s split BTF, on top of the kernel's.
    fn module_btf(&self, module: &str) -> Result<btf_rs::Btf, String> {
        // The name comes from a script: keep it inside /sys/kernel/btf.
        if !is_tracefs_name(module) || module == "vmlinux" {
            return Err(format!("`{module}` is not a module name"));
        }
        let base = self.btf().map_err(|e| e.to_string())?;
        btf_rs::Btf::from_split_file(Path::new(MODULE_BTF_DIR).join(module), base).map_err(|e| e.to_string())
    }

    /// Module `module`'s functions by name, from one walk over its own types.
    fn module_function_index(&self, module: &str) -> Result<(u32, Arc<Universe>), KernelError> {
        let (index, universe) = self.universe(Source::Module(module.to_string()))?;
        universe.functions.get_or_init(|| match &universe.btf {
            Ok(btf) => btf.split().map(|own| functions_by_name(btf, own.type_iter())).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        });
        Ok((index, universe))
    }

    /// The BTF id of module `module`'s function `name`, as the module's BTF object numbers
    /// it (what fentry's `attach_btf_id` is, with the object's fd beside it).
    pub fn module_function_btf_id(&self, module: &str, name: &str) -> Result<u32, String> {
        let (_, universe) = self.universe(Source::Module(module.to_string())).map_err(|e| e.to_string())?;
        let btf = universe.btf.as_ref().map_err(|e| e.clone())?;
        let ids = btf.resolve_ids_by_name(name).unwrap_or_default();
        ids.into_iter()
            .find(|id| matches!(btf.resolve_type_by_id(*id), Ok(btf_rs::Type::Func(_))))
            .ok_or_else(|| format!("no BTF for function {name} in module {module}"))
    }

    /// Runs `f` on the BTF `id` belongs to, with `id` as that BTF numbers it; `f`'s type ids
    /// come back numbered for the same universe by `tag`.
    fn with_btf<T>(
        &self,
        id: TypeId,
        f: impl FnOnce(&btf_rs::Btf, u32, &dyn Fn(u32) -> TypeId) -> Result<T, KernelError>,
    ) -> Result<T, KernelError> {
        let universe = id >> UNIVERSE_SHIFT;
        let local = id & ((1 << UNIVERSE_SHIFT) - 1);
        if universe == 0 {
            let btf = self.btf().map_err(|e| KernelError::NoBtf(e.to_string()))?;
            return f(btf, local, &|t| t);
        }
        let known = self.universes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Universe { btf: Ok(btf), source, .. }) = known.get(universe as usize - 1).map(|u| &**u) else {
            return Err(KernelError::NoType(format!("#{id}")));
        };
        let btf = btf.clone();
        // A module's BTF refers to the kernel's types by the kernel's ids: those stay the
        // kernel's, so that a `struct file *` is one type wherever it came from.
        let own_from = match source {
            Source::Module(_) => btf.split().map_or(0, |own| own.type_id_range().0),
            Source::Headers(_) => 0,
        };
        drop(known);
        let tag = |t: u32| if t == 0 || t < own_from { t } else { universe << UNIVERSE_SHIFT | t };
        f(&btf, local, &tag)
    }

    /// The tracefs root (mounting it if needed, see [`ensure_tracefs`]).
    pub fn tracefs(&self) -> Result<&Path, SetupError> {
        match self.tracefs.get_or_init(ensure_tracefs) {
            Ok(path) => Ok(path),
            Err(err) => Err(err.clone()),
        }
    }

    /// The kernel's BTF, memory-mapped on first use (btf-rs's mmap backend: types are decoded
    /// when looked up, so opening costs little time and memory). Kernels before 6.3 cannot
    /// mmap the sysfs BTF file (ENODEV): there it is read and parsed whole.
    pub fn btf(&self) -> Result<&btf_rs::Btf, SetupError> {
        let btf = self.btf.get_or_init(|| {
            btf_rs::Btf::from_file_with_backend(VMLINUX_BTF, btf_rs::Backend::Mmap)
                .or_else(|_| btf_rs::Btf::from_file_with_backend(VMLINUX_BTF, btf_rs::Backend::Cache))
                .map_err(|err| SetupError::NoBtf { path: VMLINUX_BTF.to_string(), reason: err.to_string() })
        });
        match btf {
            Ok(btf) => Ok(btf),
            Err(err) => Err(err.clone()),
        }
    }
}

impl Default for LiveKernel {
    fn default() -> LiveKernel {
        LiveKernel::new()
    }
}

impl KernelInfo for LiveKernel {
    fn tracepoint(&self, group: &str, event: &str) -> Result<TracepointFormat, KernelError> {
        let no_tracepoint = || KernelError::NoTracepoint(group.to_string(), event.to_string());
        if !is_tracefs_name(group) || !is_tracefs_name(event) || group == FTRACE_GROUP {
            return Err(no_tracepoint());
        }
        let root = self.tracefs().map_err(|err| KernelError::Unreadable {
            path: "/sys/kernel/tracing".to_string(),
            reason: err.to_string(),
        })?;
        let path = root.join("events").join(group).join(event).join("format");
        let text = match read_tracefs_file(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(no_tracepoint()),
            Err(err) => {
                return Err(KernelError::Unreadable { path: path.display().to_string(), reason: err.to_string() });
            }
        };
        parse_tracepoint_format(group, event, &text)
    }

    fn tracepoints(&self) -> Vec<(String, String)> {
        self.tracepoints
            .get_or_init(|| match self.tracefs() {
                Ok(root) => list_tracepoints(root),
                Err(_) => Vec::new(),
            })
            .clone()
    }

    fn release(&self) -> String {
        self.release.clone()
    }

    fn arch(&self) -> String {
        self.machine.clone()
    }

    fn config(&self, name: &str) -> Option<String> {
        let config = self.config.get_or_init(read_config).as_ref()?;
        match config.get(name) {
            Some(value) => Some(value.clone()),
            None if !name.starts_with("CONFIG_") => config.get(&format!("CONFIG_{name}")).cloned(),
            None => None,
        }
    }

    fn type_by_name(&self, name: &str) -> Result<TypeId, KernelError> {
        let mut cache = self.types_by_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .entry(name.to_string())
            .or_insert_with(|| {
                let btf = self.btf().map_err(|e| KernelError::NoBtf(e.to_string()))?;
                find_type(btf, name).ok_or_else(|| KernelError::NoType(name.to_string()))
            })
            .clone()
    }

    fn header_type_by_name(&self, headers: &str, name: &str) -> Result<TypeId, KernelError> {
        let no_type = || KernelError::NoHeaderType { headers: headers.to_string(), name: name.to_string() };
        let (universe, u) = self.universe(Source::Headers(headers.to_string()))?;
        let id = u.btf.as_ref().ok().and_then(|btf| find_type(btf, name)).ok_or_else(no_type)?;
        Ok(universe << UNIVERSE_SHIFT | id)
    }

    fn is_header_type(&self, id: TypeId) -> bool {
        let universe = id >> UNIVERSE_SHIFT;
        let known = self.universes.lock().unwrap_or_else(|e| e.into_inner());
        universe != 0 && known.get(universe as usize - 1).is_some_and(|u| matches!(u.source, Source::Headers(_)))
    }

    fn module_type_by_name(&self, module: &str, name: &str) -> Result<TypeId, KernelError> {
        let (universe, u) = self.universe(Source::Module(module.to_string()))?;
        let id = u.btf.as_ref().ok().and_then(|btf| find_type(btf, name));
        let id = id.ok_or_else(|| KernelError::NoType(name.to_string()))?;
        // A kernel type found through the module's BTF is the kernel's.
        self.with_btf(universe << UNIVERSE_SHIFT, |_, _, tag| Ok(tag(id)))
    }

    fn module_function(&self, module: &str, name: &str) -> Result<FunctionSig, KernelError> {
        use btf_rs::{BtfType, Type};
        let no = || KernelError::NoModuleFunction { module: module.to_string(), name: name.to_string() };
        let (universe, u) = self.module_function_index(module)?;
        let (Ok(btf), Some(func)) = (&u.btf, u.functions.get().and_then(|f| f.get(name))) else { return Err(no()) };
        let Ok(Type::FuncProto(proto)) = btf.resolve_chained_type(func) else { return Err(no()) };
        self.with_btf(universe << UNIVERSE_SHIFT, |_, _, tag| {
            let params = proto
                .parameters
                .iter()
                .map(|p| (btf.resolve_name(p).unwrap_or_default(), tag(p.get_type_id().unwrap_or(0))))
                .collect();
            Ok(FunctionSig { name: name.to_string(), params, ret: tag(proto.return_type_id()) })
        })
    }

    fn module_functions(&self, module: &str) -> Result<Vec<String>, KernelError> {
        let (_, u) = self.module_function_index(module)?;
        Ok(u.functions.get().map(|f| f.keys().cloned().collect()).unwrap_or_default())
    }
    fn type_of(&self, id: TypeId) -> Result<CType, KernelError> {
        self.with_btf(id, |btf, local, tag| Ok(tag_ctype(resolve_ctype(btf, local)?, tag)))
            .map_err(|_| KernelError::NoType(format!("#{id}")))
    }

    fn function(&self, name: &str) -> Result<FunctionSig, KernelError> {
        use btf_rs::{BtfType, Type};
        let btf = self.btf().map_err(|e| KernelError::NoBtf(e.to_string()))?;
        let no = || KernelError::NoFunction(name.to_string());
        let func = self.function_index().get(name).ok_or_else(no)?;
        let Ok(Type::FuncProto(proto)) = btf.resolve_chained_type(func) else { return Err(no()) };
        let params = proto
            .parameters
            .iter()
            .map(|p| (btf.resolve_name(p).unwrap_or_default(), p.get_type_id().unwrap_or(0)))
            .collect();
        Ok(FunctionSig { name: name.to_string(), params, ret: proto.return_type_id() })
    }

    fn functions(&self) -> Vec<String> {
        self.function_index().keys().cloned().collect()
    }

    fn kfunc(&self, name: &str) -> Option<u32> {
        let btf = self.btf().ok()?;
        self.btf_ids_named(name)
            .ok()?
            .into_iter()
            .find(|id| matches!(btf.resolve_type_by_id(*id), Ok(btf_rs::Type::Func(_))))
    }

    /// kprobes (tracefs has `kprobe_events`) or ftrace's function list readable, which fentry
    /// needs: Firecracker's kernel has neither, Debian's has both.
    fn probes_functions(&self) -> bool {
        let Ok(tracefs) = self.tracefs() else { return false };
        let mut first = [0u8; 1];
        tracefs.join("kprobe_events").exists()
            || fs::File::open(tracefs.join("available_filter_functions"))
                .and_then(|mut f| f.read(&mut first))
                .is_ok_and(|n| n > 0)
    }

    fn member(&self, id: TypeId, member: &str) -> Result<(u32, TypeId), KernelError> {
        let name = match self.type_of(id) {
            Ok(CType::Struct { name, .. }) => name,
            _ => format!("#{id}"),
        };
        let found = self.with_btf(id, |btf, local, tag| {
            Ok(find_member(btf, local, member, 0).map(|found| FoundMember { ty: tag(found.ty), ..found }))
        })?;
        match found {
            Some(found) if found.bits == 0 => Ok((found.bit_offset / 8, found.ty)),
            _ => Err(KernelError::NoMember { ty: name, member: member.to_string() }),
        }
    }

    fn bitfield(&self, id: TypeId, member: &str) -> Result<Bitfield, KernelError> {
        let no_member = || KernelError::NoMember { ty: format!("#{id}"), member: member.to_string() };
        let found = self.with_btf(id, |btf, local, tag| {
            Ok(find_member(btf, local, member, 0).map(|found| FoundMember { ty: tag(found.ty), ..found }))
        })?;
        let found = found.filter(|found| found.bits > 0).ok_or_else(no_member)?;
        let signed = matches!(self.type_of(found.ty), Ok(CType::Int { signed: true, .. }));
        Ok(Bitfield { bit_offset: found.bit_offset, bits: found.bits, signed })
    }
}

/// Where the kernel lists each loaded module's BTF, `/sys/kernel/btf/MODULE`.
pub const MODULE_BTF_DIR: &str = "/sys/kernel/btf";

/// What a universe of types (see [`UNIVERSE_SHIFT`]) was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// C headers as `@cast` names them: `<stdio.h>`.
    Headers(String),
    /// A loaded module's split BTF.
    Module(String),
}

/// One universe of types: where from, its BTF or why it could not be read, and (for a
/// module) its functions by name.
struct Universe {
    source: Source,
    btf: Result<Arc<btf_rs::Btf>, String>,
    functions: OnceLock<BTreeMap<String, btf_rs::Func>>,
}

/// The id of a struct, union or typedef named `name` (`task_struct`, `struct sock`) in `btf`.
fn find_type(btf: &btf_rs::Btf, name: &str) -> Option<u32> {
    let (want_struct, bare) = match name.trim().split_once(' ') {
        Some(("struct" | "union", rest)) => (true, rest.trim()),
        _ => (false, name.trim()),
    };
    let ids = btf.resolve_ids_by_name(bare).ok()?;
    // Prefer a struct or union definition over a forward declaration or a typedef.
    let mut fallback = None;
    for id in ids {
        match btf.resolve_type_by_id(id) {
            Ok(btf_rs::Type::Struct(_) | btf_rs::Type::Union(_)) => return Some(id),
            Ok(btf_rs::Type::Typedef(_) | btf_rs::Type::Int(_) | btf_rs::Type::Enum(_)) if !want_struct => {
                fallback.get_or_insert(id);
            }
            _ => {}
        }
    }
    fallback
}

/// Type `id` of `btf`, with typedefs, qualifiers and tags looked through.
fn resolve_ctype(btf: &btf_rs::Btf, id: u32) -> Result<CType, KernelError> {
    let no_type = || KernelError::NoType(format!("#{id}"));
    let mut id = id;
    // Typedefs, qualifiers and tags chain to the real type; bound the walk.
    for _ in 0..32 {
        if id == 0 {
            return Ok(CType::Void);
        }
        let ty = btf.resolve_type_by_id(id).map_err(|_| no_type())?;
        use btf_rs::{BtfType, Type};
        if let Some(next) = qualified(&ty) {
            id = next.ok_or_else(no_type)?;
            continue;
        }
        return Ok(match ty {
            Type::Int(i) => CType::Int { size: i.size() as u32, signed: i.is_signed() },
            Type::Enum(e) => CType::Int { size: e.size() as u32, signed: e.is_signed() },
            Type::Enum64(e) => CType::Int { size: e.size() as u32, signed: e.is_signed() },
            Type::Ptr(p) => CType::Pointer { to: p.get_type_id().unwrap_or(0) },
            Type::Array(a) => CType::Array { elem: a.get_type_id().unwrap_or(0), len: a.len() as u32 },
            Type::Struct(st) | Type::Union(st) => {
                CType::Struct { name: btf.resolve_name(&st).unwrap_or_default(), size: st.size() as u32 }
            }
            Type::Void => CType::Void,
            other => CType::Other(other.name().to_string()),
        });
    }
    Err(no_type())
}

/// `ty` with the type ids it holds renumbered by `tag` (see [`LiveKernel::with_btf`]).
fn tag_ctype(ty: CType, tag: &dyn Fn(u32) -> TypeId) -> CType {
    match ty {
        CType::Pointer { to } => CType::Pointer { to: tag(to) },
        CType::Array { elem, len } => CType::Array { elem: tag(elem), len },
        other => other,
    }
}

/// The types of C headers (`<stdio.h>`, or several: `<sys/types.h><stdio.h>`) as BTF: the
/// C compiler (`cc`, or `$CC`) compiles a file including them with `-gbtf`, keeping the types
/// nothing uses, and the object's `.BTF` section holds them all.
fn header_btf(headers: &str) -> Result<btf_rs::Btf, String> {
    let mut source = String::new();
    for header in headers.split_inclusive('>') {
        let header = header.trim();
        if !(header.starts_with('<') && header.ends_with('>') && header.len() > 2) {
            return Err(format!("`{header}` is not a header as `<stdio.h>` names one"));
        }
        source.push_str(&format!("#include {header}\n"));
    }
    // A directory of our own (0700, refused if it exists), so no one else can plant the
    // object we read back.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("bpftap-headers-{}-{nanos}", std::process::id()));
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let object = dir.join("headers.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let result = (|| {
        let mut child = std::process::Command::new(&cc)
            .args(["-gbtf", "-fno-eliminate-unused-debug-types", "-c", "-x", "c", "-", "-o"])
            .arg(&object)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run the C compiler `{cc}`: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            io::Write::write_all(&mut stdin, source.as_bytes()).map_err(|e| e.to_string())?;
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().find(|l| l.contains("error")).unwrap_or(stderr.trim());
            return Err(format!("`{cc} -gbtf` failed: {first}"));
        }
        let data = fs::read(&object).map_err(|e| format!("{}: {e}", object.display()))?;
        use object::{Object, ObjectSection};
        let file = object::File::parse(&*data).map_err(|e| format!("the compiler's output: {e}"))?;
        let section = file.section_by_name(".BTF").ok_or("the compiler wrote no .BTF section")?;
        let bytes = section.data().map_err(|e| e.to_string())?;
        btf_rs::Btf::from_bytes(bytes).map_err(|e| format!("the compiler's BTF: {e}"))
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

/// A member found in a struct: where it starts (in bits, from the outer struct), its width
/// for a bitfield (0 otherwise) and its type.
struct FoundMember {
    bit_offset: u32,
    bits: u32,
    ty: u32,
}

/// For a typedef, qualifier or type tag: the id of the type it names. `None` for other kinds.
fn qualified(ty: &btf_rs::Type) -> Option<Option<u32>> {
    use btf_rs::{BtfType, Type};
    match ty {
        Type::Typedef(t) => Some(t.get_type_id()),
        Type::Const(t) => Some(t.get_type_id()),
        Type::Volatile(t) => Some(t.get_type_id()),
        Type::Restrict(t) => Some(t.get_type_id()),
        Type::TypeTag(t) => Some(t.get_type_id()),
        _ => None,
    }
}

/// Looks for `member` in struct or union `id`, descending into anonymous members; its bit
/// offset is counted from `base` bits.
fn find_member(btf: &btf_rs::Btf, id: u32, member: &str, base: u32) -> Option<FoundMember> {
    use btf_rs::{BtfType, Type};
    let mut id = id;
    let st = loop {
        match btf.resolve_type_by_id(id).ok()? {
            Type::Struct(st) | Type::Union(st) => break st,
            ty => id = qualified(&ty)??,
        }
    };
    for m in &st.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        let bit_offset = base + m.bit_offset();
        if name == member {
            return Some(FoundMember { bit_offset, bits: m.bitfield_size().unwrap_or(0), ty: m.get_type_id()? });
        }
        if name.is_empty() {
            if let Some(found) = find_member(btf, m.get_type_id()?, member, bit_offset) {
                return Some(found);
            }
        }
    }
    None
}

/// Parses a tracefs `events/GROUP/EVENT/format` file. Fields named `common_*` go to
/// `common_fields`; an array field `__u8 saddr[4]` becomes name `saddr`, type `__u8[4]`; a
/// dynamic field keeps its `__data_loc` in the type (`__data_loc char[]`).
pub fn parse_tracepoint_format(group: &str, event: &str, text: &str) -> Result<TracepointFormat, KernelError> {
    let malformed = |line: &str, why: &str| KernelError::Unreadable {
        path: format!("events/{group}/{event}/format"),
        reason: format!("{why} in `{}`", line.trim()),
    };
    let mut format = TracepointFormat { group: group.to_string(), event: event.to_string(), ..Default::default() };
    for line in text.lines() {
        let line_trimmed = line.trim();
        // `field special:` is how kernels before 4.x wrote some common fields.
        let Some(rest) = line_trimmed.strip_prefix("field:").or_else(|| line_trimmed.strip_prefix("field special:"))
        else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next().unwrap_or("");
        let (mut offset, mut size, mut signed) = (None, None, false);
        for part in parts {
            let Some((key, value)) = part.split_once(':') else {
                continue;
            };
            let number = || value.trim().parse::<u32>().map_err(|_| malformed(line, "bad number"));
            match key.trim() {
                "offset" => offset = Some(number()?),
                "size" => size = Some(number()?),
                "signed" => signed = number()? != 0,
                _ => {}
            }
        }
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(malformed(line, "missing offset or size"));
        };
        let Some((c_type, name)) = decl.rsplit_once(char::is_whitespace) else {
            return Err(malformed(line, "no field name"));
        };
        let (name, c_type) = match name.split_once('[') {
            Some((name, dims)) => (name, format!("{}[{dims}", c_type.trim_end())),
            None => (name, c_type.trim_end().to_string()),
        };
        if name.is_empty() {
            return Err(malformed(line, "no field name"));
        }
        let field = TracepointField { name: name.to_string(), c_type, offset, size, signed };
        if field.name.starts_with("common_") {
            format.common_fields.push(field);
        } else {
            format.fields.push(field);
        }
    }
    if format.common_fields.is_empty() && format.fields.is_empty() {
        return Err(KernelError::Unreadable {
            path: format!("events/{group}/{event}/format"),
            reason: "no fields".to_string(),
        });
    }
    Ok(format)
}

/// Finds tracefs with its `events/` directory, mounting tracefs at `/sys/kernel/tracing` if
/// neither usual place has it.
pub fn ensure_tracefs() -> Result<PathBuf, SetupError> {
    const PLACES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
    for place in PLACES {
        if Path::new(place).join("events").is_dir() {
            return Ok(PathBuf::from(place));
        }
    }
    let reason = match mount("nodev", PLACES[0], "tracefs") {
        Ok(()) if Path::new(PLACES[0]).join("events").is_dir() => return Ok(PathBuf::from(PLACES[0])),
        Ok(()) => "mounted, but it has no `events/`".to_string(),
        Err(err) => err.to_string(),
    };
    Err(SetupError::NoTracefs { reason })
}

/// Makes sure `/sys/fs/bpf` is a bpf file system (for pinning), mounting one if not.
pub fn ensure_bpffs() -> Result<PathBuf, SetupError> {
    const PLACE: &str = "/sys/fs/bpf";
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let is_bpffs = || {
        let path = CString::new(PLACE).expect("no NUL in a constant");
        // SAFETY: statfs is a plain C struct, valid when all zero.
        let mut buf: libc::statfs = unsafe { mem::zeroed() };
        // SAFETY: `path` is NUL-terminated and `buf` is a valid statfs to fill.
        let rc = unsafe { libc::statfs(path.as_ptr(), &mut buf) };
        rc == 0 && buf.f_type as i64 == BPF_FS_MAGIC
    };
    if is_bpffs() {
        return Ok(PathBuf::from(PLACE));
    }
    match mount("bpf", PLACE, "bpf") {
        Ok(()) if is_bpffs() => Ok(PathBuf::from(PLACE)),
        Ok(()) => Err(SetupError::NoBpffs { reason: "mounted, but statfs does not say bpf".to_string() }),
        Err(err) => Err(SetupError::NoBpffs { reason: err.to_string() }),
    }
}

fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    let source = CString::new(source)?;
    let target = CString::new(target)?;
    let fstype = CString::new(fstype)?;
    // SAFETY: all strings are NUL-terminated and outlive the call; no data argument.
    let rc = unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `(release, machine)` from uname(2).
fn uname() -> (String, String) {
    // SAFETY: utsname is a plain C struct, valid when all zero.
    let mut buf: libc::utsname = unsafe { mem::zeroed() };
    // SAFETY: `buf` is a valid utsname to fill; uname cannot fail with a valid pointer.
    if unsafe { libc::uname(&mut buf) } != 0 {
        return (String::new(), String::new());
    }
    let field = |chars: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates each utsname field within its array.
        unsafe { CStr::from_ptr(chars.as_ptr()) }.to_string_lossy().into_owned()
    };
    (field(&buf.release), field(&buf.machine))
}

/// Names tracefs could have as a group or event: refuse `/`, `.` and `..` so a script cannot
/// make us read outside `events/`.
fn is_tracefs_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Every `group:event`, sorted. Read from `available_events`: one file, 4.5 ms for 2305
/// events on 6.18 against 10.8 ms for walking `events/` (debug build); the walk is the
/// fallback.
/// `events/ftrace/` holds the tracer's own record formats, which are not tracepoints (and are
/// absent from `available_events`): neither listed nor found by name.
const FTRACE_GROUP: &str = "ftrace";

/// Reads a small tracefs file such as a tracepoint's `format`. Tracefs files report size 0,
/// so `fs::read_to_string` starts from a 32-byte read and doubles: seven reads for a typical
/// format, each of which makes the kernel walk the record's fields again. One read into a
/// buffer of a few pages takes the whole file; a script with 200 probes reads 200 formats.
fn read_tracefs_file(path: &Path) -> io::Result<String> {
    let mut text = String::with_capacity(16 * 1024);
    fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

fn list_tracepoints(root: &Path) -> Vec<(String, String)> {
    let mut list = match fs::read_to_string(root.join("available_events")) {
        Ok(text) => parse_available_events(&text),
        Err(_) => walk_events(root),
    };
    list.sort();
    list.dedup();
    list
}

fn parse_available_events(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(group, event)| (group.to_string(), event.to_string()))
        .collect()
}

/// Lists tracepoints by walking `events/GROUP/EVENT/` directories.
pub fn walk_events(root: &Path) -> Vec<(String, String)> {
    let mut list = Vec::new();
    let Ok(groups) = fs::read_dir(root.join("events")) else {
        return list;
    };
    for group in groups.flatten() {
        if !group.file_type().is_ok_and(|t| t.is_dir()) || group.file_name() == FTRACE_GROUP {
            continue;
        }
        let Ok(events) = fs::read_dir(group.path()) else {
            continue;
        };
        let group_name = group.file_name().to_string_lossy().into_owned();
        for event in events.flatten() {
            if event.file_type().is_ok_and(|t| t.is_dir()) {
                list.push((group_name.clone(), event.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    list.sort();
    list
}

/// Reads `/proc/config.gz`, else `/boot/config-RELEASE`; `None` when neither is readable.
fn read_config() -> Option<HashMap<String, String>> {
    let text = match fs::File::open("/proc/config.gz") {
        Ok(file) => {
            let mut text = String::new();
            flate2::read::GzDecoder::new(file).read_to_string(&mut text).ok()?;
            text
        }
        Err(_) => fs::read_to_string(format!("/boot/config-{}", uname().0)).ok()?,
    };
    Some(parse_config(&text))
}

/// `CONFIG_X=value` lines; quotes around string values are removed, `# ... is not set`
/// lines and comments are skipped.
fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// The functions among `types` by name (the first of each name), their names read through
/// `btf`. A decoding error ends the walk with what was read so far.
fn functions_by_name<I>(btf: &btf_rs::Btf, mut types: I) -> BTreeMap<String, btf_rs::Func>
where
    I: fallible_iterator::FallibleIterator<Item = btf_rs::Type>,
{
    let mut functions = BTreeMap::new();
    while let Ok(Some(ty)) = types.next() {
        if let btf_rs::Type::Func(f) = ty {
            if let Ok(name) = btf.resolve_name(&f) {
                functions.entry(name).or_insert(f);
            }
        }
    }
    functions
}

/// A BTF type in C, as stap prints target variables: `struct file*`, `size_t`, `char*`.
/// Qualifiers are left out (bpftap looks through them, and so does stap's listing).
fn c_type(btf: &btf_rs::Btf, id: u32, depth: u32) -> String {
    use btf_rs::{BtfType, Type};
    if id == 0 {
        return "void".into();
    }
    let Ok(ty) = btf.resolve_type_by_id(id) else { return "?".into() };
    let named = |t: &dyn BtfType, kw: &str| {
        let n = btf.resolve_name(t).unwrap_or_default();
        if n.is_empty() {
            format!("{kw} {{...}}")
        } else {
            format!("{kw} {n}")
        }
    };
    let inner = |t: &dyn BtfType| {
        if depth > 16 {
            "?".to_string()
        } else {
            c_type(btf, t.get_type_id().unwrap_or(0), depth + 1)
        }
    };
    match &ty {
        Type::Void => "void".into(),
        Type::Int(t) => btf.resolve_name(t).unwrap_or_else(|_| "int".into()),
        Type::Float(t) => btf.resolve_name(t).unwrap_or_else(|_| "double".into()),
        Type::Typedef(t) => btf.resolve_name(t).unwrap_or_default(),
        Type::Struct(t) => named(t, "struct"),
        Type::Union(t) => named(t, "union"),
        Type::Enum(t) => named(t, "enum"),
        Type::Enum64(t) => named(t, "enum"),
        Type::Fwd(t) => named(t, if t.is_union() { "union" } else { "struct" }),
        Type::Ptr(t) => match btf.resolve_chained_type(t) {
            Ok(Type::FuncProto(p)) => format!("{} (*)()", c_type(btf, p.return_type_id(), depth + 1)),
            _ => format!("{}*", inner(t)),
        },
        Type::Array(t) => format!("{}[{}]", inner(t), t.len()),
        Type::Const(t) | Type::Volatile(t) | Type::Restrict(t) => inner(t),
        Type::TypeTag(t) => inner(t),
        Type::FuncProto(_) => "function".into(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: &str = "name: sys_enter_connect
ID: 2230
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:struct sockaddr * uservaddr;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;

print fmt: \"fd: 0x%08lx, uservaddr: 0x%08lx, addrlen: 0x%08lx\", ((unsigned long)(REC->fd)), ((unsigned long)(REC->uservaddr)), ((unsigned long)(REC->addrlen))
";

    const EXEC: &str = "name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

    const SET_STATE: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;

print fmt: \"sport=%hu saddr=%pI4\", REC->sport, REC->saddr
";

    /// One line per field: `name: c_type @offset+size signed?`, common fields first.
    fn show(format: &TracepointFormat) -> String {
        let mut out = String::new();
        for (section, fields) in [("common", &format.common_fields), ("fields", &format.fields)] {
            out.push_str(section);
            out.push('\n');
            for f in fields {
                let signed = if f.signed { " signed" } else { "" };
                out.push_str(&format!("  {}: {} @{}+{}{}\n", f.name, f.c_type, f.offset, f.size, signed));
            }
        }
        out
    }

    #[test]
    fn parses_connect() {
        let format = parse_tracepoint_format("syscalls", "sys_enter_connect", CONNECT).unwrap();
        expect_test::expect![[r#"
            common
              common_type: unsigned short @0+2
              common_flags: unsigned char @2+1
              common_preempt_count: unsigned char @3+1
              common_pid: int @4+4 signed
            fields
              __syscall_nr: int @8+4 signed
              fd: int @16+8
              uservaddr: struct sockaddr * @24+8
              addrlen: int @32+8
        "#]]
        .assert_eq(&show(&format));
        assert_eq!(format.record_size(), 40);
        assert_eq!((format.group.as_str(), format.event.as_str()), ("syscalls", "sys_enter_connect"));
    }

    #[test]
    fn keeps_data_loc_and_arrays() {
        let exec = parse_tracepoint_format("sched", "sched_process_exec", EXEC).unwrap();
        expect_test::expect![[r#"
            fields
              filename: __data_loc char[] @8+4
              pid: pid_t @12+4 signed
              old_pid: pid_t @16+4 signed
        "#]]
        .assert_eq(show(&exec).split_once("fields\n").map(|(_, f)| format!("fields\n{f}")).unwrap().as_str());
        let state = parse_tracepoint_format("sock", "inet_sock_set_state", SET_STATE).unwrap();
        expect_test::expect![[r#"
            fields
              skaddr: const void * @8+8
              oldstate: int @16+4 signed
              sport: __u16 @24+2
              saddr: __u8[4] @32+4
              saddr_v6: __u8[16] @40+16
        "#]]
        .assert_eq(show(&state).split_once("fields\n").map(|(_, f)| format!("fields\n{f}")).unwrap().as_str());
    }

    #[test]
    fn rejects_malformed() {
        let err = parse_tracepoint_format("g", "e", "format:\n\tfield:int x;\toffset:zz;\tsize:4;\n").unwrap_err();
        assert_eq!(err.to_string(), "cannot read events/g/e/format: bad number in `field:int x;\toffset:zz;\tsize:4;`");
        let err = parse_tracepoint_format("g", "e", "format:\n\tfield:int;\toffset:0;\tsize:4;\n").unwrap_err();
        assert_eq!(err.to_string(), "cannot read events/g/e/format: no field name in `field:int;\toffset:0;\tsize:4;`");
        let err = parse_tracepoint_format("g", "e", "name: e\n").unwrap_err();
        assert_eq!(err.to_string(), "cannot read events/g/e/format: no fields");
    }

    #[test]
    fn parses_config_and_events() {
        let config =
            parse_config("#\n# CONFIG_FOO is not set\nCONFIG_BPF=y\nCONFIG_HZ=250\nCONFIG_LOCALVERSION=\"-fc\"\n");
        assert_eq!(config.get("CONFIG_BPF").map(String::as_str), Some("y"));
        assert_eq!(config.get("CONFIG_HZ").map(String::as_str), Some("250"));
        assert_eq!(config.get("CONFIG_LOCALVERSION").map(String::as_str), Some("-fc"));
        assert_eq!(config.get("CONFIG_FOO"), None);
        assert_eq!(
            parse_available_events("sched:sched_switch\nsyscalls:sys_enter_connect\n"),
            [("sched".into(), "sched_switch".into()), ("syscalls".into(), "sys_enter_connect".into())]
        );
    }

    #[test]
    fn refuses_paths_outside_events() {
        for name in ["", ".", "..", "a/b", "../../etc"] {
            assert!(!is_tracefs_name(name), "{name:?}");
        }
        assert!(is_tracefs_name("sys_enter_connect"));
    }
}
