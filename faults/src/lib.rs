//! The fault suite's accounting, kept apart from the processes it drives so it is unit-tested:
//!
//! - [`ledger`]: what was acknowledged to senders, what each subscriber received live or
//!   through recovery, what history holds, and from those a [`ledger::Row`]: lost and
//!   duplicated, by message id;
//! - [`report`]: the rows as the table `scripts/faults` prints and `docs/reliability.md` keeps.
//!
//! The suite itself (the stack, the traffic, the faults) is `tests/suite.rs`.

pub mod ledger;
pub mod report;
