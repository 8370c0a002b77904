//! Crash points for the tests of crash safety: at a named step the process aborts, ending as
//! a `kill -9` there would (no destructors, no flushing, no graceful close), so a test can
//! restart it and check what survived. Set only by `debug.crash_at`, which production
//! configs leave empty.

use crate::state::AppState;

/// Aborts the process if `debug.crash_at` names `step`.
pub fn crash_point(s: &AppState, step: &str) {
    if s.config.debug.crash_at == step {
        eprintln!("chorus-api: debug.crash_at = {step:?}: aborting here");
        std::process::abort();
    }
}
