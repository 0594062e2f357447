//! Named crash points for crash-injection tests: when `BERTH_CRASHPOINT` names a point, the
//! process aborts there, as abruptly as a SIGKILL (no destructors, no flush). Costs one env
//! lookup per point in production, where the variable is unset.

pub fn hit(point: &str) {
    if std::env::var("BERTH_CRASHPOINT").is_ok_and(|p| p == point) {
        eprintln!("berth: crash point {point} reached, aborting");
        std::process::abort();
    }
}
