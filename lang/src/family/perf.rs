//! `timer.profile` and `perf.sw.*`: a software perf event sampled on every CPU.

use super::{single, Attach, Context, KernelProgram};
use crate::ast::ProbePoint;
use crate::diag::Diagnostic;
use crate::elaborate::{literal_number, point_text, Resolved, Unresolved};
use crate::ir::{PerfEvent, PerfSample, Target};
use crate::kernel::KernelInfo;

pub(crate) fn program(event: PerfEvent, sample: PerfSample) -> KernelProgram<'static> {
    single("perf_event".into(), Context::PerfEvent, Attach::PerfEvent { event, sample })
}

/// `timer.profile`: the CPU clock sampled at the kernel's tick rate.
pub(crate) fn timer_profile(kernel: &dyn KernelInfo) -> Resolved {
    let hz = kernel.config("CONFIG_HZ").and_then(|v| v.parse().ok()).unwrap_or(250);
    let target = Target::Perf { event: PerfEvent::CpuClock, sample: PerfSample::Frequency(hz) };
    Resolved::plain(target, "timer.profile".into())
}

/// `perf.sw.cpu_clock` and `perf.sw.task_clock`, with `.sample(N)` (every millionth event
/// by default).
pub(crate) fn software(point: &ProbePoint, clock: &str) -> Result<Vec<Resolved>, Unresolved> {
    let comps = &point.components;
    let event = if clock == "cpu_clock" { PerfEvent::CpuClock } else { PerfEvent::TaskClock };
    let period = comps.get(3).and_then(literal_number).unwrap_or(1_000_000);
    if period <= 0 {
        return Err(Unresolved::Failed(Diagnostic::error(
            "E0103",
            format!("sample period must be positive, not {period}"),
            comps[3].span,
        )));
    }
    let target = Target::Perf { event, sample: PerfSample::Period(period as u64) };
    Ok(vec![Resolved::plain(target, point_text(point))])
}
