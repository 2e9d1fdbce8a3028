//! `begin`, `end`, `error` (with priorities), `never`, interval timers (`timer.ms(N)`..),
//! the `--metrics` pages (`prometheus`, `json_data`) and `__stdin`: handlers the runtime
//! runs in user space, interpreted from the IR. They compile to no BPF program.
