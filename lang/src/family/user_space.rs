//! `begin`, `end`, `error` (with priorities), `never`, interval timers (`timer.ms(N)`..),
//! the `--metrics` pages (`prometheus`, `json_data`) and `__stdin`: handlers the runtime
//! runs in user space, interpreted from the IR. They compile to no BPF program; the runtime's
//! session runs each at its moment (`begin` at start, timers on their clock, `end` at exit).

use crate::ast::Component;
use crate::diag::Diagnostic;
use crate::elaborate::{literal_number, Resolved, Unresolved};
use crate::ir::{self, Target};

/// `timer.ms(N)` and its siblings (`unit` is `ms`, `s`, `hz`, ...).
pub(crate) fn timer(unit: &str, count: &Component) -> Result<Vec<Resolved>, Unresolved> {
    let per_unit: Option<fn(i64) -> Option<i64>> = match unit {
        "s" | "sec" => Some(|n| n.checked_mul(1_000_000_000)),
        "ms" | "msec" => Some(|n| n.checked_mul(1_000_000)),
        "us" | "usec" => Some(|n| n.checked_mul(1_000)),
        "ns" | "nsec" => Some(Some),
        "hz" => Some(|n| (n > 0).then(|| 1_000_000_000 / n)),
        "jiffies" => Some(|n| n.checked_mul(4_000_000)),
        _ => None,
    };
    let (Some(f), Some(n)) = (per_unit, literal_number(count)) else {
        return Err(Unresolved::Unknown);
    };
    if n <= 0 {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0103",
            format!("timer interval must be positive, not {n}"),
            count.span,
        )));
    }
    // A year at most: longer is a typo, and it must not overflow nanoseconds.
    const MAX_INTERVAL_NS: i64 = 365 * 24 * 3600 * 1_000_000_000;
    let Some(ns) = f(n).filter(|ns| (1..=MAX_INTERVAL_NS).contains(ns)) else {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0103",
            format!("timer interval {n} is out of range: at most a year, at least a nanosecond"),
            count.span,
        )));
    };
    Ok(vec![Resolved::plain(Target::Timer { interval_ns: ns as u64 }, format!("timer.{unit}({n})"))])
}

/// `begin`, `end` and `error` with their priority, `never`, the `--metrics` pages and
/// `__stdin`.
pub(crate) fn named(name: &str, component: &Component) -> Option<Resolved> {
    let priority = literal_number(component).unwrap_or(0);
    let target = match name {
        "begin" => Target::Begin { priority },
        "end" => Target::End { priority },
        "error" => Target::Error { priority },
        // Type-checked as a user-space probe, then left out (see `ElabProbe::never`).
        "never" => Target::Begin { priority: 0 },
        "prometheus" => Target::Page { path: ir::METRICS_PATH },
        "json_data" => Target::Page { path: ir::JSON_DATA_PATH },
        "__json_metadata" => Target::Page { path: ir::JSON_METADATA_PATH },
        "__stdin" => Target::Stdin,
        _ => return None,
    };
    Some(Resolved::plain(target, name.into()))
}
