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
