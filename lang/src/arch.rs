//! The machine a script is compiled for, by SystemTap's names.
//!
//! It comes from the kernel a script is compiled against ([`crate::kernel::KernelInfo::arch`],
//! uname's machine), not from the machine bpftap was built on: the code generator picks
//! `struct pt_regs` offsets by it, and the syscall probes their numbers.

/// The machines whose `struct pt_regs` and syscall numbers bpftap knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Arch {
    #[default]
    X86_64,
    Arm64,
}

impl Arch {
    /// The arch of a uname machine name (`x86_64`, `aarch64`), or of SystemTap's name for it
    /// (`arm64`, as `stap -a` takes).
    pub fn from_machine(machine: &str) -> Option<Arch> {
        match machine {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// SystemTap's name, the value of `arch` in `%( arch == "..." %)` conditionals.
    pub fn stap_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// `(number, name)` of the machine's syscalls, sorted by number. arm64's table is not
    /// generated yet: there, `syscall.*` wildcards and `syscall_name()` know no names.
    pub fn syscalls(self) -> &'static [(u32, &'static str)] {
        match self {
            Arch::X86_64 => crate::syscall_table::X86_64,
            Arch::Arm64 => &[],
        }
    }
}

/// SystemTap's name for uname's `machine`: `arm64` for `aarch64`; others unchanged.
pub fn stap_machine_name(machine: &str) -> &str {
    match Arch::from_machine(machine) {
        Some(arch) => arch.stap_name(),
        None => machine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names_are_systemtaps() {
        assert_eq!(stap_machine_name("aarch64"), "arm64");
        assert_eq!(stap_machine_name("x86_64"), "x86_64");
        assert_eq!(stap_machine_name("riscv64"), "riscv64");
        assert_eq!(Arch::from_machine("arm64"), Some(Arch::Arm64));
    }
}
