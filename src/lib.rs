//! The `bpftap` library: the compile pipeline ([`driver`]) the command line calls, a library so
//! that the fuzz targets under `fuzz/` drive the very same passes 1-4.

pub mod driver;
