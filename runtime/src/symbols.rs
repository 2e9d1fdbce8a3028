//! Where a symbol of an ELF file is, as the offset in the file that a uprobe takes.

use std::path::Path;

use object::{Object, ObjectKind, ObjectSection, ObjectSymbol};

/// The file offset of the function `symbol` in the executable or library at `path`: its
/// address translated through the section that holds it (for executables and shared
/// objects, whose addresses are not file offsets). The static symbol table is searched
/// first, then the dynamic one (stripped libraries have only that).
pub fn file_offset(path: &Path, symbol: &str) -> Result<u64, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: not an ELF file ({e})", path.display()))?;
    let found = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.name() == Ok(symbol))
        .ok_or_else(|| format!("no function `{symbol}` in {}", path.display()))?;
    if !matches!(file.kind(), ObjectKind::Dynamic | ObjectKind::Executable) {
        return Ok(found.address());
    }
    let section = found
        .section_index()
        .and_then(|i| file.section_by_index(i).ok())
        .ok_or_else(|| format!("`{symbol}` in {} is in no section", path.display()))?;
    let (offset, _) = section
        .file_range()
        .ok_or_else(|| format!("`{symbol}` in {} is in a section with no file data", path.display()))?;
    Ok(found.address() - section.address() + offset)
}

/// A kernel symbol holding an address: its name, the address's offset in it, its size (up
/// to the next symbol) and its module ("" for the kernel itself).
#[derive(Debug, PartialEq, Eq)]
pub struct KernelSymbol<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub size: u64,
    pub module: &'a str,
}

/// /proc/kallsyms's text symbols, sorted by address; read once, on the first lookup.
struct Kallsyms {
    /// (address, name, module)
    symbols: Vec<(u64, String, String)>,
    /// The kernel's own text, `_stext` to `_etext`.
    kernel_text: Option<std::ops::Range<u64>>,
}

impl Kallsyms {
    fn parse(text: &str) -> Kallsyms {
        let named = |wanted: &str| {
            text.lines().find_map(|line| {
                let mut fields = line.split_whitespace();
                let addr = fields.next()?;
                (fields.nth(1)? == wanted).then(|| u64::from_str_radix(addr, 16).ok()).flatten()
            })
        };
        let kernel_text = match (named("_stext"), named("_etext")) {
            (Some(start), Some(end)) if start != 0 && start < end => Some(start..end),
            _ => None,
        };
        let mut symbols: Vec<(u64, String, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
                let kind = fields.next()?;
                let name = fields.next()?;
                let module = fields.next().map_or("", |m| m.trim_matches(|c| c == '[' || c == ']'));
                // Text symbols only: data symbols would split functions (and without
                // kptr access every address reads 0).
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string(), module.to_string()))
            })
            .collect();
        // Stable, by address only: of the names at one address (aliases) the first in the
        // file's order is the one the kernel's own lookup (`%ps`, in kernel probes) gives.
        symbols.sort_by_key(|(a, _, _)| *a);
        Kallsyms { symbols, kernel_text }
    }

    fn find(&self, addr: u64) -> Option<KernelSymbol<'_>> {
        let last = self.symbols.partition_point(|(a, _, _)| *a <= addr).checked_sub(1)?;
        let start = self.symbols[last].0;
        let (_, name, module) = &self.symbols[self.symbols.partition_point(|(a, _, _)| *a < start)];
        // The size runs to the next address that has a symbol, as the kernel counts it.
        let size = self.symbols.get(last + 1).map_or(0, |(next, _, _)| next - start);
        Some(KernelSymbol { name, offset: addr - start, size, module })
    }
}

/// /proc/kallsyms, opened while bpftap still has its capabilities: the kernel shows real
/// addresses to the credentials that opened the file (CAP_SYSLOG), so a file opened before
/// [`crate::sys::drop_capabilities`] still reads them after. Read at the first lookup only.
static KALLSYMS_FILE: std::sync::Mutex<Option<std::fs::File>> = std::sync::Mutex::new(None);

/// Opens /proc/kallsyms for later lookups; see [`KALLSYMS_FILE`].
pub fn open_kallsyms() {
    if let Ok(mut file) = KALLSYMS_FILE.lock() {
        *file = std::fs::File::open("/proc/kallsyms").ok();
    }
}

fn kallsyms() -> &'static Kallsyms {
    static KALLSYMS: std::sync::OnceLock<Kallsyms> = std::sync::OnceLock::new();
    KALLSYMS.get_or_init(|| {
        let opened = KALLSYMS_FILE.lock().ok().and_then(|mut f| f.take());
        let text = match opened {
            Some(mut file) => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut file, &mut text).map(|_| text).unwrap_or_default()
            }
            None => std::fs::read_to_string("/proc/kallsyms").unwrap_or_default(),
        };
        Kallsyms::parse(&text)
    })
}

/// The kernel's own copy of function `name` that the compiler specialised and renamed
/// (`finish_task_switch.isra.0`, `.constprop.0`, `.part.0`; not a `.cold` part), for a kprobe
/// when `name` itself is not in kallsyms. BTF still names it `name`.
pub fn compiler_clone(name: &str) -> Option<String> {
    let prefix = format!("{name}.");
    kallsyms()
        .symbols
        .iter()
        .find(|(_, sym, module)| module.is_empty() && sym.starts_with(&prefix) && !sym.ends_with(".cold"))
        .map(|(_, sym, _)| sym.clone())
}

/// The kernel symbol holding `addr` (root reads real addresses from /proc/kallsyms).
pub fn kernel_symbol(addr: u64) -> Option<KernelSymbol<'static>> {
    kallsyms().find(addr)
}

/// `modname(addr)`: the loaded module whose memory holds `addr` (from /proc/modules, which
/// a kernel without modules does not have), "kernel" for the kernel's own text, else
/// SystemTap's error.
pub fn modname(addr: u64) -> Result<String, String> {
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    module_at(&modules, addr)
        .map(str::to_string)
        .or_else(|| kallsyms().kernel_text.as_ref().is_some_and(|t| t.contains(&addr)).then(|| "kernel".to_string()))
        .ok_or_else(|| "Cannot determine kernel module name".to_string())
}

/// The module of /proc/modules (`name size refcount deps state address`) whose `size` bytes
/// from `address` hold `addr`.
fn module_at(modules: &str, addr: u64) -> Option<&str> {
    modules.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let size: u64 = fields.get(1)?.parse().ok()?;
        let base = u64::from_str_radix(fields.get(5)?.trim_start_matches("0x"), 16).ok()?;
        (base != 0 && (base..base + size).contains(&addr)).then_some(fields[0])
    })
}

/// `symname(addr)`: the symbol's name, or the address in hex as SystemTap gives it.
pub fn symname(addr: u64) -> String {
    kernel_symbol(addr).map_or_else(|| format!("{addr:#x}"), |s| s.name.to_string())
}

/// `symdata(addr)`: `name+0xoffset/0xsize [module]`, or the address in hex.
pub fn symdata(addr: u64) -> String {
    match kernel_symbol(addr) {
        None => format!("{addr:#x}"),
        Some(s) if s.module.is_empty() => format!("{}+{:#x}/{:#x}", s.name, s.offset, s.size),
        Some(s) => format!("{}+{:#x}/{:#x} [{}]", s.name, s.offset, s.size, s.module),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
ffffffff81000000 T _stext
ffffffff81000100 T do_one
ffffffff81000180 d some_data
ffffffff81000200 t do_two
ffffffff81000200 T do_two_alias
ffffffff81000280 T do_three
ffffffffc0000000 t mod_fn\t[nf_tables]
";

    #[test]
    fn an_address_falls_in_the_text_symbol_before_it() {
        let k = Kallsyms::parse(TEXT);
        assert_eq!(
            k.find(0xffffffff81000190),
            Some(KernelSymbol { name: "do_one", offset: 0x90, size: 0x100, module: "" })
        );
        assert_eq!(
            k.find(0xffffffff81000210),
            Some(KernelSymbol { name: "do_two", offset: 0x10, size: 0x80, module: "" })
        );
        assert_eq!(k.find(0xffffffffc0000010).map(|s| s.module), Some("nf_tables"));
        assert_eq!(k.find(0x1000), None);
        assert_eq!(Kallsyms::parse(TEXT).kernel_text, None);
        let with_text = Kallsyms::parse("ffffffff81000000 T _stext\nffffffff82000000 T _etext\n");
        assert_eq!(with_text.kernel_text, Some(0xffffffff81000000..0xffffffff82000000));
    }

    #[test]
    fn a_module_holds_the_addresses_of_its_size_from_its_base() {
        let modules = "\
nf_tables 352256 0 - Live 0xffffffffc0a00000
ext4 1081344 1 mbcache,jbd2, Live 0xffffffffc0800000 (E)
";
        assert_eq!(module_at(modules, 0xffffffffc0a00010), Some("nf_tables"));
        assert_eq!(module_at(modules, 0xffffffffc0800000 + 1081343), Some("ext4"));
        assert_eq!(module_at(modules, 0xffffffffc0800000 + 1081344), None);
    }
}
