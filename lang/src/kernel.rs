//! The kernel as the compiler sees it: the [`KernelInfo`] trait, and [`Fixture`], a small
//! in-memory kernel for tests.
//!
//! Every fact about the running kernel reaches `lang` through this trait. The real
//! implementation (tracefs formats, `/sys/kernel/btf/vmlinux`) lives in `runtime`, so `lang`
//! reads no kernel interface and is unit-tested against a [`Fixture`].

use std::collections::BTreeMap;

/// One field of a tracepoint record, from its tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointField {
    pub name: String,
    /// The C type as tracefs writes it, e.g. `struct sockaddr *` or `char[16]`.
    pub c_type: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// A tracepoint's record layout. `fields` excludes the common header (`common_pid`, ...),
/// which is available under `common_fields`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TracepointFormat {
    pub group: String,
    pub event: String,
    pub common_fields: Vec<TracepointField>,
    pub fields: Vec<TracepointField>,
}

impl TracepointFormat {
    pub fn field(&self, name: &str) -> Option<&TracepointField> {
        self.fields.iter().chain(&self.common_fields).find(|f| f.name == name)
    }

    /// Size of the record in bytes: reading past it passes the verifier but fails at attach.
    pub fn record_size(&self) -> u32 {
        self.fields.iter().chain(&self.common_fields).map(|f| f.offset + f.size).max().unwrap_or(0)
    }
}

/// A BTF type id of the running kernel.
pub type TypeId = u32;

/// A kernel C type, as far as the compiler cares: typedefs, `const` and `volatile` are
/// already looked through.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CType {
    /// Integers, enums, `bool`, `char`.
    Int {
        size: u32,
        signed: bool,
    },
    Pointer {
        to: TypeId,
    },
    Array {
        elem: TypeId,
        len: u32,
    },
    /// A struct or union.
    Struct {
        name: String,
        size: u32,
    },
    Void,
    /// Functions, floats and the like: nothing a script can use.
    Other(String),
}

/// A bitfield member of a kernel struct: `bits` bits from bit `bit_offset` of the struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Bitfield {
    pub bit_offset: u32,
    pub bits: u32,
    pub signed: bool,
}

/// A kernel function's signature, from BTF.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FunctionSig {
    pub name: String,
    /// Parameter names and types, in order.
    pub params: Vec<(String, TypeId)>,
    /// 0 for `void`.
    pub ret: TypeId,
}

/// Why a kernel fact could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("no tracepoint {0}:{1} in this kernel")]
    NoTracepoint(String, String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the kernel has no function `{0}` (none in its BTF)")]
    NoFunction(String),
    #[error("the kernel's BTF has no type `{0}`")]
    NoType(String),
    #[error("`{ty}` has no member `{member}`")]
    NoMember { ty: String, member: String },
    #[error("the kernel's BTF does not name the arguments of tracepoint `{0}`")]
    NoTracepointArgs(String),
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux): {0}")]
    NoBtf(String),
    /// A module whose BTF (`/sys/kernel/btf/MODULE`) is absent: not loaded, or built in.
    #[error("module `{0}` is not loaded (no /sys/kernel/btf/{0})")]
    NoModule(String),
    #[error("module `{module}` has no function `{name}` (none in its BTF)")]
    NoModuleFunction { module: String, name: String },
    #[error("cannot read the types of `{headers}`: {reason}")]
    NoHeader { headers: String, reason: String },
    #[error("`{headers}` has no type `{name}`")]
    NoHeaderType { headers: String, name: String },
}

/// What the compiler may ask of a kernel.
pub trait KernelInfo {
    /// The record layout of tracepoint `group:event`.
    fn tracepoint(&self, group: &str, event: &str) -> Result<TracepointFormat, KernelError>;
    /// Every tracepoint as `(group, event)`, sorted; used to expand wildcards and for `-l`.
    fn tracepoints(&self) -> Vec<(String, String)>;
    /// The release, e.g. `6.18.44-fc-v657` (for `kernel_v`/`kernel_vr` conditionals).
    fn release(&self) -> String;
    /// The machine, e.g. `x86_64` (for `arch` conditionals).
    fn arch(&self) -> String;
    /// The value of a kernel config option (`y`, `m`, a string or a number), where known.
    fn config(&self, name: &str) -> Option<String>;
    /// The id of a struct, union or typedef by name (`task_struct`, `struct sock`).
    fn type_by_name(&self, name: &str) -> Result<TypeId, KernelError> {
        Err(KernelError::NoType(name.to_string()))
    }
    /// A type of C headers, `headers` as `@cast` names them (`</usr/include/stdio.h>`, or
    /// several: `<sys/types.h><stdio.h>`), by name as for [`KernelInfo::type_by_name`]. Its
    /// id serves every other method as a kernel type's does.
    fn header_type_by_name(&self, headers: &str, name: &str) -> Result<TypeId, KernelError> {
        Err(KernelError::NoHeaderType { headers: headers.to_string(), name: name.to_string() })
    }
    /// Whether `id` is a type of C headers (see [`KernelInfo::header_type_by_name`]): its
    /// values live in user space.
    fn is_header_type(&self, id: TypeId) -> bool {
        let _ = id;
        false
    }
    /// A type, with typedefs and qualifiers looked through.
    fn type_of(&self, id: TypeId) -> Result<CType, KernelError> {
        Err(KernelError::NoType(format!("#{id}")))
    }
    /// A member of a struct or union (searching anonymous members): its byte offset and type.
    fn member(&self, id: TypeId, member: &str) -> Result<(u32, TypeId), KernelError> {
        Err(KernelError::NoMember { ty: format!("#{id}"), member: member.to_string() })
    }
    /// A bitfield member of a struct or union (searching anonymous members), which
    /// [`KernelInfo::member`] does not give: it has no byte offset.
    fn bitfield(&self, id: TypeId, member: &str) -> Result<Bitfield, KernelError> {
        Err(KernelError::NoMember { ty: format!("#{id}"), member: member.to_string() })
    }
    /// A kernel function's signature.
    fn function(&self, name: &str) -> Result<FunctionSig, KernelError> {
        Err(KernelError::NoFunction(name.to_string()))
    }
    /// The C arguments of tracepoint `event`, as its BPF raw tracepoint receives them, named
    /// as in the kernel source. BTF names them only in a function with the same parameters:
    /// the event's probe stub `__probestub_EVENT` (Linux 6.4+), else `__bpf_trace_EVENT`
    /// (there only for an event that is its own template). The stub's leading
    /// `void *__data` is not an argument.
    fn tracepoint_args(&self, event: &str) -> Result<FunctionSig, KernelError> {
        let stub = self
            .function(&format!("__probestub_{event}"))
            .or_else(|_| self.function(&format!("__bpf_trace_{event}")))
            .map_err(|_| KernelError::NoTracepointArgs(event.to_string()))?;
        Ok(FunctionSig { name: event.to_string(), params: stub.params.into_iter().skip(1).collect(), ret: 0 })
    }
    /// The names of every kernel function in BTF, sorted (for wildcards and `-l`).
    fn functions(&self) -> Vec<String> {
        Vec::new()
    }
    /// A function of loaded module `module`, from the module's split BTF; its type ids serve
    /// every other method as the kernel's do.
    fn module_function(&self, module: &str, name: &str) -> Result<FunctionSig, KernelError> {
        let _ = name;
        Err(KernelError::NoModule(module.to_string()))
    }
    /// The names of every function in module `module`'s BTF, sorted.
    fn module_functions(&self, module: &str) -> Result<Vec<String>, KernelError> {
        Err(KernelError::NoModule(module.to_string()))
    }
    /// A struct, union or typedef of module `module`'s BTF by name, as
    /// [`KernelInfo::type_by_name`] finds the kernel's.
    fn module_type_by_name(&self, module: &str, name: &str) -> Result<TypeId, KernelError> {
        let _ = name;
        Err(KernelError::NoModule(module.to_string()))
    }
    /// Whether this kernel can probe its functions at all (kprobes, or BPF trampolines for
    /// fentry/fexit). A `kernel.function` point marked `?` or `!` is skipped where it cannot,
    /// so that a tapset alias falls back to tracepoints.
    fn probes_functions(&self) -> bool {
        false
    }
    /// The BTF id of kernel function `name` where BPF programs may call it (a kfunc, such as
    /// `bpf_iter_num_next`); `None` where the kernel has no such function.
    fn kfunc(&self, _name: &str) -> Option<u32> {
        None
    }
}

/// The type `@cast(addr, name, module)` names: from C headers when `module` is some
/// (`<stdio.h>`), else the kernel's or a loaded module's. `module` may list several places,
/// `kernel:nfsd`, searched in order: `kernel` (and `kernel<linux/sched.h>`) is the kernel's
/// BTF, another name that module's.
pub fn cast_type(kernel: &dyn KernelInfo, name: &str, module: Option<&str>) -> Result<TypeId, KernelError> {
    match module {
        Some(headers) if headers.starts_with('<') => kernel.header_type_by_name(headers, name),
        Some(places) => {
            let mut found = Err(KernelError::NoType(name.to_string()));
            for place in places.split(':') {
                found = match place {
                    "" => continue,
                    p if p.starts_with("kernel") => kernel.type_by_name(name),
                    m => kernel.module_type_by_name(m, name),
                };
                if found.is_ok() {
                    break;
                }
            }
            found
        }
        None => kernel.type_by_name(name),
    }
}

/// A tiny kernel for unit tests: tracepoints and function signatures given as data (no
/// types: `->member` finds nothing).
#[derive(Clone, Debug, Default)]
pub struct Fixture {
    pub tracepoints: BTreeMap<(String, String), TracepointFormat>,
    pub config: BTreeMap<String, String>,
    pub functions: BTreeMap<String, FunctionSig>,
    /// What [`KernelInfo::probes_functions`] answers.
    pub probes_functions: bool,
    /// uname's machine; `x86_64` when `None`.
    pub machine: Option<String>,
    /// What [`KernelInfo::kfunc`] answers.
    pub kfuncs: BTreeMap<String, u32>,
}

impl KernelInfo for Fixture {
    fn tracepoint(&self, group: &str, event: &str) -> Result<TracepointFormat, KernelError> {
        self.tracepoints
            .get(&(group.to_string(), event.to_string()))
            .cloned()
            .ok_or_else(|| KernelError::NoTracepoint(group.to_string(), event.to_string()))
    }

    fn tracepoints(&self) -> Vec<(String, String)> {
        self.tracepoints.keys().cloned().collect()
    }

    fn release(&self) -> String {
        "6.1.0-fixture".to_string()
    }

    fn arch(&self) -> String {
        self.machine.clone().unwrap_or_else(|| "x86_64".to_string())
    }

    fn config(&self, name: &str) -> Option<String> {
        self.config.get(name).cloned()
    }

    fn function(&self, name: &str) -> Result<FunctionSig, KernelError> {
        self.functions.get(name).cloned().ok_or_else(|| KernelError::NoFunction(name.to_string()))
    }

    fn functions(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn kfunc(&self, name: &str) -> Option<u32> {
        self.kfuncs.get(name).copied()
    }

    fn probes_functions(&self) -> bool {
        self.probes_functions
    }
}
