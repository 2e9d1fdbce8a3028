//! (stub until the printf engine lands)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType { Long, String }
pub struct Format { types: Vec<ArgType> }
pub struct FormatError { pub offset: usize, pub message: String }
impl Format { pub fn arg_types(&self) -> Vec<ArgType> { self.types.clone() } }
pub fn parse_format(s: &str) -> Result<Format, FormatError> {
    let mut types = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            i += 1;
            while i < b.len() && b"-+ #0123456789.*".contains(&b[i]) { if b[i] == b'*' { types.push(ArgType::Long) } i += 1; }
            match b.get(i) { Some(b's') => types.push(ArgType::String), Some(b'%') => {}, Some(_) => types.push(ArgType::Long), None => return Err(FormatError{offset:i, message:"format ends inside a conversion".into()}) }
        }
        i += 1;
    }
    Ok(Format { types })
}
