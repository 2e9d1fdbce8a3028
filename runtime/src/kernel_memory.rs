//! Kernel memory for the user-space handlers, read by `codegen_bpf::reader`'s program,
//! loaded before bpftap drops its capabilities, and only for a script whose user-space
//! handlers read kernel memory (one that reads none pays nothing).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;

use codegen_bpf::reader::{kernel_reader, READER_CHUNK, READER_CURRENT_TASK, READER_HEADER};

use crate::bpf;

/// The reader, loaded once; the error says why it could not be.
#[derive(Default)]
pub struct KernelMemory {
    prog: OnceLock<Result<OwnedFd, String>>,
}

impl KernelMemory {
    /// Whether any user-space handler of `program` reads kernel memory, and so needs the
    /// reader.
    pub fn needed_by(program: &lang::ir::Program) -> bool {
        use lang::ir::{AddrSpace, InstKind};
        program.handlers.iter().filter(|h| h.target.is_user_space()).any(|h| {
            h.func.blocks.values().flat_map(|b| &b.insts).any(|i| {
                matches!(
                    i.kind,
                    InstKind::Read { space: AddrSpace::Kernel, .. }
                        | InstKind::ReadStr { space: AddrSpace::Kernel, .. }
                        | InstKind::Call { builtin: lang::builtins::Builtin::TaskCurrent, .. }
                )
            })
        })
    }

    /// Loads the reader now, while bpftap may still load programs (it drops that right
    /// once attached); a failure is kept and reported at the first read.
    pub fn load(&self) {
        self.program();
    }

    fn program(&self) -> &Result<OwnedFd, String> {
        self.prog.get_or_init(|| {
            let insns = codegen_bpf::insn::encode(&kernel_reader());
            let spec = bpf::ProgSpec {
                name: "bpftap_read",
                prog_type: bpf::prog_type::SYSCALL,
                expected_attach_type: 0,
                attach_btf_id: 0,
                attach_btf_obj: None,
                flags: bpf::BPF_F_SLEEPABLE,
                insns: &insns,
                funcs: None,
            };
            bpf::prog_load(&spec).map_err(|e| format!("the kernel refused the memory reader: {} {}", e.error, e.log))
        })
    }

    /// One run: `len` bytes at `addr` (0: a string), the helper's result and the chunk.
    fn run(&self, addr: u64, len: u64) -> Result<(i64, Vec<u8>), String> {
        let prog = self.program().as_ref().map_err(Clone::clone)?;
        let mut ctx = vec![0u8; (READER_HEADER + READER_CHUNK) as usize];
        ctx[0..8].copy_from_slice(&addr.to_le_bytes());
        ctx[8..16].copy_from_slice(&len.to_le_bytes());
        bpf::prog_run_on_ctx(prog.as_fd(), &mut ctx).map_err(|e| format!("reading kernel memory: {e}"))?;
        let ret = i64::from_le_bytes(ctx[8..16].try_into().expect("8 bytes"));
        Ok((ret, ctx.split_off(READER_HEADER as usize)))
    }

    /// The address of bpftap's own task (see `codegen_bpf::reader`).
    pub fn current_task(&self) -> Result<u64, String> {
        Ok(self.run(0, READER_CURRENT_TASK)?.0 as u64)
    }

    /// `size` (1 to 8) bytes at `addr` as a little-endian number; `None` on a fault.
    pub fn read(&self, addr: u64, size: u8) -> Result<Option<u64>, String> {
        let (ret, bytes) = self.run(addr, u64::from(size))?;
        let mut word = [0u8; 8];
        word[..size as usize].copy_from_slice(&bytes[..size as usize]);
        Ok((ret == 0).then(|| u64::from_le_bytes(word)))
    }

    /// The string at `addr`, at most `max` bytes of it; `None` on a fault.
    pub fn read_str(&self, addr: u64, max: usize) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        while out.len() < max {
            let (ret, bytes) = self.run(addr + out.len() as u64, 0)?;
            if ret <= 0 {
                return Ok(None);
            }
            // `ret` counts the NUL; a full chunk may have been cut before the string's end.
            let text = &bytes[..ret as usize - 1];
            out.extend_from_slice(text);
            if (ret as u32) < READER_CHUNK {
                break;
            }
        }
        out.truncate(max);
        Ok(Some(out))
    }
}
