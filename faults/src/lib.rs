//! The fault suite's accounting, kept apart from the processes it drives so it is unit-tested:
//!
//! - [`ledger`]: what was acknowledged to senders, what each subscriber received live or
//!   through recovery, what history holds, and from those a [`ledger::Row`]: lost and
//!   duplicated, by message id;
//! - [`report`]: the rows as the table `scripts/faults` prints and `docs/reliability.md` keeps;
//! - [`rss`]: the soak's verdict on a process's memory samples (flat after warm-up or not).
//!
//! The suite itself (the stack, the traffic, the faults, the soak) is `tests/suite/`.

pub mod ledger;
pub mod report;
pub mod rss;
