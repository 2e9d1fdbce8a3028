//! `timer.profile` and `perf.sw.*`: a software perf event sampled on every CPU.

use super::{single, Attach, Context, KernelProgram};
use crate::ir::{PerfEvent, PerfSample};

pub(crate) fn program(event: PerfEvent, sample: PerfSample) -> KernelProgram<'static> {
    single("perf_event".into(), Context::PerfEvent, Attach::PerfEvent { event, sample })
}
