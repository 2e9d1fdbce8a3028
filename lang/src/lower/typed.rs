//! Kernel memory through BTF types: `$var`s of the probe's context, `->member` and `[i]`
//! chains, `@cast`, bitfields, and the address space each read is in.

use super::*;

impl Ctx<'_> {
    /// An expression whose kernel C type is known: `$field` of a tracepoint, `@cast`,
    /// `->member`, `&`, `*`. Returns its value and, for pointers (and arrays, which decay
    /// to their address), the type pointed to.
    pub(super) fn typed(&mut self, e: &Expr) -> Option<(Var, Option<TypeId>)> {
        let span = e.span;
        match &e.kind {
            ExprKind::Cast { expr, type_name, module } => {
                let v = self.long_expr(expr);
                let id = self.cast_type(type_name, module.as_deref(), span)?;
                Some((v, Some(id)))
            }
            ExprKind::TargetVar(name) if self.function.is_some() => {
                let sig = self.function?;
                let ty = match sig.params.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => *t,
                    None => sig.ret,
                };
                let v = self.target_var(name, span)?;
                let pointee = match self.kernel_info.type_of(ty) {
                    Ok(CType::Pointer { to }) => Some(to),
                    _ => None,
                };
                Some((v, pointee))
            }
            ExprKind::TargetVar(name) => {
                let field = self.format.and_then(|f| f.field(name)).cloned();
                let v = self.target_var(name, span)?;
                let pointee = field.and_then(|f| {
                    let t = f.c_type.trim().strip_suffix('*')?.trim().trim_start_matches("const ").to_string();
                    self.kernel_info.type_by_name(&t).ok()
                });
                Some((v, pointee))
            }
            ExprKind::Member { base, name } => {
                let (addr, ty) = self.typed(base)?;
                let Some(ty) = ty else {
                    self.error(
                        Diagnostic::error(
                            "E0313",
                            format!("cannot find `->{name}`: the type of this value is unknown"),
                            base.span,
                        )
                        .with_help("tell bpftap the type with @cast(ptr, \"struct_name\")"),
                    );
                    return None;
                };
                let (off, mty) = match self.kernel_info.member(ty, name) {
                    Ok(m) => m,
                    Err(err) => {
                        if let Ok(field) = self.kernel_info.bitfield(ty, name) {
                            let space = self.space_of(ty);
                            return self.read_bitfield(addr, field, space, span).map(|v| (v, None));
                        }
                        self.error(Diagnostic::error("E0314", err.to_string(), span));
                        return None;
                    }
                };
                let at = self.member_addr(addr, ty, name, off, span);
                self.load_typed(at, mty, span)
            }
            ExprKind::Index { base, keys } if !matches!(base.kind, ExprKind::Ident(_)) => {
                let (addr, elem) = self.element_addr(base, keys, span)?;
                self.load_typed(addr, elem, span)
            }
            ExprKind::AddressOf(inner) => match &inner.kind {
                ExprKind::Member { base, name } => {
                    let (addr, ty) = self.typed(base)?;
                    let ty = ty?;
                    let (off, mty) = self.kernel_info.member(ty, name).ok()?;
                    Some((self.member_addr(addr, ty, name, off, span), Some(mty)))
                }
                // `&@cast(p, "T")`: the object's address, `p` (what `&@container_of(..)` is).
                ExprKind::Cast { .. } => self.typed(inner),
                // `&@cast(0, "T")[1]` is sizeof(T): SystemTap's @cast_sizeof.
                ExprKind::Index { base, keys } if !matches!(base.kind, ExprKind::Ident(_)) => {
                    let (addr, elem) = self.element_addr(base, keys, span)?;
                    Some((addr, Some(elem)))
                }
                _ => {
                    self.error(Diagnostic::error(
                        "E0313",
                        "`&` takes a `->member` or an element `[i]` of a kernel value",
                        span,
                    ));
                    None
                }
            },
            ExprKind::Deref(inner) => {
                let (addr, ty) = self.typed(inner)?;
                match ty {
                    Some(t) => self.load_typed(addr, t, span),
                    None => {
                        let dst = self.temp(Ty::Long);
                        let space = ir::AddrSpace::Kernel;
                        self.emit(InstKind::Read { dst, addr, size: 8, signed: true, space, fault: None }, span);
                        Some((dst, None))
                    }
                }
            }
            ExprKind::Ident(name) => match self.resolve(name) {
                Some(Place::Local(v)) => Some((v, self.local_types.get(&v).copied().flatten())),
                _ => self.expr(e).map(|v| (v, None)),
            },
            _ => self.expr(e).map(|v| (v, None)),
        }
    }

    /// `addr + off`, the address of member `name` of the struct of type `ty` at `addr`. A
    /// kernel struct's member offset is noted as such, for objects that run on other kernels.
    pub(super) fn member_addr(&mut self, addr: Var, ty: TypeId, name: &str, off: u32, span: Span) -> Var {
        let at = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: at, lhs: addr, rhs: Operand::Imm(off as i64) }, span);
        if self.space_of(ty) == ir::AddrSpace::Kernel {
            self.func.member_offsets.push((at, ir::MemberOffset { ty, member: name.to_string() }));
        }
        at
    }

    /// `$ptr[i]` / `$s->arr[i]` / `@cast(p, "T")[i]`: the address and type of element i of a
    /// kernel array or pointer.
    pub(super) fn element_addr(&mut self, base: &Expr, keys: &[Expr], span: Span) -> Option<(Var, TypeId)> {
        let [index] = keys else {
            self.error(Diagnostic::error("E0313", "a kernel array takes one index", span));
            return None;
        };
        let (base_v, ty) = self.typed(base)?;
        let Some(elem) = ty.and_then(|t| self.pointee(t, base.span)) else {
            self.error(Diagnostic::error("E0313", "only a typed kernel pointer or array can be indexed", base.span));
            return None;
        };
        let size = self.type_size(elem).unwrap_or(8);
        let i = self.long_expr(index);
        let scaled = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Mul, dst: scaled, lhs: i, rhs: Operand::Imm(size as i64) }, span);
        let addr = self.temp(Ty::Long);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: addr, lhs: base_v, rhs: Operand::Var(scaled) }, span);
        Some((addr, elem))
    }

    /// The value of type `ty` at `addr`: integers and pointers are read; structs and arrays
    /// stay addresses (so `->` can go on, and arrays decay as in C).
    pub(super) fn load_typed(&mut self, addr: Var, ty: TypeId, span: Span) -> Option<(Var, Option<TypeId>)> {
        let space = self.space_of(ty);
        match self.kernel_info.type_of(ty) {
            Ok(CType::Int { size, signed }) if matches!(size, 1 | 2 | 4 | 8) => {
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Read { dst, addr, size: size as u8, signed, space, fault: None }, span);
                Some((dst, None))
            }
            Ok(CType::Pointer { to }) => {
                let dst = self.temp(Ty::Long);
                self.emit(InstKind::Read { dst, addr, size: 8, signed: false, space, fault: None }, span);
                Some((dst, Some(to)))
            }
            Ok(CType::Struct { .. }) => Some((addr, Some(ty))),
            Ok(CType::Array { elem, .. }) => Some((addr, Some(elem))),
            Ok(other) => {
                self.error(Diagnostic::error(
                    "E0315",
                    format!("bpftap cannot read a kernel value of type {other:?}"),
                    span,
                ));
                None
            }
            Err(err) => {
                self.error(Diagnostic::error("E0314", err.to_string(), span));
                None
            }
        }
    }

    /// Where a value of type `ty` lives: a C header's type (`@cast(p, "FILE", "<stdio.h>")`)
    /// describes user memory, every other type kernel memory.
    pub(super) fn space_of(&self, ty: TypeId) -> ir::AddrSpace {
        if self.kernel_info.is_header_type(ty) {
            ir::AddrSpace::User
        } else {
            ir::AddrSpace::Kernel
        }
    }

    /// The value of bitfield `field` of the struct at `addr`: the smallest read that holds
    /// its bits, shifted down and masked (or sign-extended).
    pub(super) fn read_bitfield(
        &mut self,
        addr: Var,
        field: Bitfield,
        space: ir::AddrSpace,
        span: Span,
    ) -> Option<Var> {
        let shift = field.bit_offset % 8;
        let Some(size) = [1u32, 2, 4, 8].into_iter().find(|size| shift + field.bits <= size * 8) else {
            self.error(Diagnostic::error("E0315", "bpftap cannot read a bitfield this wide", span));
            return None;
        };
        let at = self.temp(Ty::Long);
        let byte = Operand::Imm((field.bit_offset / 8) as i64);
        self.emit(InstKind::Binary { op: BinOp::Add, dst: at, lhs: addr, rhs: byte }, span);
        let raw = self.temp(Ty::Long);
        self.emit(InstKind::Read { dst: raw, addr: at, size: size as u8, signed: false, space, fault: None }, span);
        Some(self.extract_bits(raw, shift, field.bits, field.signed, span))
    }

    /// Bits `low..low + bits` of `v` as a value, sign-extended when `signed`.
    pub(super) fn extract_bits(&mut self, v: Var, low: u32, bits: u32, signed: bool, span: Span) -> Var {
        // The top bit to bit 63, then down to bit 0: `Shr` is arithmetic, so a signed value
        // comes out sign-extended, and an unsigned one is masked after.
        let up = self.temp(Ty::Long);
        let left = Operand::Imm((64 - low - bits) as i64);
        self.emit(InstKind::Binary { op: BinOp::Shl, dst: up, lhs: v, rhs: left }, span);
        let down = self.temp(Ty::Long);
        let right = Operand::Imm((64 - bits) as i64);
        self.emit(InstKind::Binary { op: BinOp::Shr, dst: down, lhs: up, rhs: right }, span);
        if signed || bits == 64 {
            return down;
        }
        let value = self.temp(Ty::Long);
        let mask = Operand::Imm((1i64 << bits) - 1);
        self.emit(InstKind::Binary { op: BinOp::And, dst: value, lhs: down, rhs: mask }, span);
        value
    }

    /// For indexing: the element type of a pointer's target or an array.
    pub(super) fn pointee(&mut self, ty: TypeId, _span: Span) -> Option<TypeId> {
        match self.kernel_info.type_of(ty).ok()? {
            CType::Array { elem, .. } => Some(elem),
            _ => Some(ty),
        }
    }

    pub(super) fn type_size(&self, ty: TypeId) -> Option<u32> {
        match self.kernel_info.type_of(ty).ok()? {
            CType::Int { size, .. } => Some(size),
            CType::Pointer { .. } => Some(8),
            CType::Struct { size, .. } => Some(size),
            CType::Array { elem, len } => self.type_size(elem).map(|s| s * len),
            _ => None,
        }
    }

    pub(super) fn cast_type(&mut self, name: &str, module: Option<&str>, span: Span) -> Option<TypeId> {
        match crate::kernel::cast_type(self.kernel_info, name, module) {
            Ok(id) => Some(id),
            Err(err) => {
                self.error(Diagnostic::error("E0314", err.to_string(), span));
                None
            }
        }
    }

    pub(super) fn target_var(&mut self, name: &str, span: Span) -> Option<Var> {
        if let Some(sig) = self.function {
            let dst = self.temp(Ty::Long);
            let (kind, ty) = match sig.params.iter().position(|(n, _)| n == name) {
                Some(index) => (InstKind::LoadArg { dst, index: index as u32 }, sig.params[index].1),
                None if name == "return" => (InstKind::LoadReturn { dst }, sig.ret),
                None => return None,
            };
            self.emit(kind, span);
            // The context holds each value in 64 bits, and those above a narrower integer's
            // are not its sign (raw tracepoints zero them, fentry leaves what the register held).
            return match self.kernel_info.type_of(ty) {
                Ok(CType::Int { size, signed }) if size < 8 => Some(self.extract_bits(dst, 0, size * 8, signed, span)),
                _ => Some(dst),
            };
        }
        if name == "return" && self.format.is_some_and(|f| f.group == "process") {
            let dst = self.temp(Ty::Long);
            self.emit(InstKind::LoadReturn { dst }, span);
            return Some(dst);
        }
        let field = self.format.and_then(|f| f.field(name)).cloned()?;
        let ty = field_ty(&field.c_type);
        let dst = self.temp(ty);
        let kind = if field.c_type.starts_with("__data_loc") {
            InstKind::LoadContextDataLoc { dst, offset: field.offset }
        } else if ty == Ty::Str {
            InstKind::LoadContextStr { dst, offset: field.offset, len: field.size }
        } else if matches!(field.size, 1 | 2 | 4 | 8) {
            InstKind::LoadContext { dst, offset: field.offset, size: field.size as u8, signed: field.signed }
        } else {
            self.error(Diagnostic::error(
                "E0305",
                format!("`${name}` is a {}-byte `{}`, which bpftap cannot read as a value", field.size, field.c_type),
                span,
            ));
            return None;
        };
        self.emit(kind, span);
        Some(dst)
    }
}
