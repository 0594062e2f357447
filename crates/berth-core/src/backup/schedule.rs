//! Backup schedules: cron expressions (UTC) and the restart-safe [`tick`].
//!
//! A schedule's stored `next_run` is the single source of truth for "is a run due". [`tick`]
//! never looks at past runs: when `next_run <= now` it runs once, however many occurrences were
//! missed while Berth was down, and moves `next_run` to the first occurrence strictly after
//! `now`. The caller persists that new `next_run` in the same transaction as the run's record;
//! then a restart can neither skip a due run (the old `next_run` is still stored, so the next
//! tick runs it) nor double one (the run and the moved `next_run` commit together). A crash
//! between the commit and the run itself leaves a recorded run that never finished: the
//! caller's recovery marks it failed (it is not started a second time).
//!
//! Around the ticks: a new or re-enabled schedule, or one whose expression changed, stores
//! `next_run = None`, so the first tick only arms it (no catch-up for time it was not active);
//! a disabled schedule is not ticked; "run now" records a run without touching `next_run`.
//! Per-service or all-services is a matter of which rows the caller keeps, not of this module.
//!
//! Cron is evaluated by `croner` (POSIX/Vixie semantics, `L`/`W`/`#`, names, `@daily` and
//! friends). Five fields, or six with seconds first; a schedule firing more than once a minute
//! is refused, since a backup takes longer than that ([`CronSchedule::parse`]). A server may
//! lower that limit for tests ([`CronSchedule::parse_with_min_interval`]).

use std::fmt;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use thiserror::Error;

/// Longest expression accepted (a real one is a few dozen characters).
pub const MAX_EXPRESSION_LEN: usize = 200;

const MINUTE_MS: i64 = 60_000;
/// The shortest interval between two runs [`CronSchedule::parse`] allows: one minute.
pub const MIN_INTERVAL_SECS: u32 = 60;
/// Where [`CronSchedule::check_frequency`] starts looking (any time will do; a day after the
/// epoch keeps `minute - 1` away from negative timestamps).
const FREQUENCY_PROBE_FROM_MS: i64 = 86_400_000;

/// Why an expression was refused; the message is meant for the API's user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleError {
    #[error("cron expression is empty")]
    Empty,
    #[error("cron expression is {0} characters long; at most {MAX_EXPRESSION_LEN} are allowed")]
    TooLong(usize),
    #[error(
        "cron expression has {0} fields; expected 5 (minute hour day-of-month month day-of-week), \
         6 (with seconds first) or a nickname such as @daily"
    )]
    FieldCount(usize),
    #[error(
        "unknown cron nickname {0:?}; use @hourly, @daily, @weekly, @monthly, @yearly or @annually"
    )]
    UnknownNickname(String),
    #[error("invalid cron expression {expression:?}: {reason}")]
    Invalid { expression: String, reason: String },
    #[error(
        "cron expression {expression:?} fires more often than once every {min_interval_secs} s; \
         backups run at most that often"
    )]
    TooFrequent {
        expression: String,
        min_interval_secs: u32,
    },
    #[error("cron expression {0:?} never fires")]
    NeverFires(String),
}

/// A parsed cron expression, evaluated in UTC.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expression: String,
    cron: Cron,
}

impl CronSchedule {
    /// Parses a 5- or 6-field expression (or `@hourly`, `@daily`, `@weekly`, `@monthly`,
    /// `@yearly`) and checks it fires at all and at most once a minute.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        Self::parse_with_min_interval(expression, MIN_INTERVAL_SECS)
    }

    /// [`CronSchedule::parse`] with another shortest interval between two runs, in seconds
    /// (clamped to 1..=60; a server's tests use a few seconds to keep schedules quick).
    pub fn parse_with_min_interval(
        expression: &str,
        min_interval_secs: u32,
    ) -> Result<Self, ScheduleError> {
        let trimmed = expression.trim();
        if trimmed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        if trimmed.len() > MAX_EXPRESSION_LEN {
            return Err(ScheduleError::TooLong(trimmed.len()));
        }
        let fields = trimmed.split_whitespace().count();
        let nickname = fields == 1 && trimmed.starts_with('@');
        if !nickname && !(5..=6).contains(&fields) {
            return Err(ScheduleError::FieldCount(fields));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| match nickname {
                true => ScheduleError::UnknownNickname(trimmed.to_string()),
                false => ScheduleError::Invalid {
                    expression: trimmed.to_string(),
                    reason: e.to_string(),
                },
            })?;
        let schedule = Self {
            expression: trimmed.to_string(),
            cron,
        };
        schedule.check_frequency(min_interval_secs.clamp(1, MIN_INTERVAL_SECS))?;
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first occurrence strictly after `ms` (epoch milliseconds), or `None` if there is
    /// none (out of range, or a date that never comes again).
    pub fn next_after(&self, ms: i64) -> Option<i64> {
        // croner works in whole seconds: searching from the second `ms` falls in, exclusive,
        // is "strictly after" for every `ms` within that second.
        let start = DateTime::<Utc>::from_timestamp_millis(ms.div_euclid(1000) * 1000)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp_millis())
    }

    /// The seconds field is independent of the others, so every minute that fires at all
    /// fires at the same seconds: the gaps between them within the first firing minute, and
    /// the gap from its last second to the same first second a minute later, are every gap
    /// there can be (the wrap-around is counted even when the next minute does not fire, which
    /// can only refuse more). With a limit of 60 s this is "at most once a minute": one second
    /// a minute gives a 60 s wrap-around, two or more give a gap under 60 s.
    fn check_frequency(&self, min_interval_secs: u32) -> Result<(), ScheduleError> {
        let first = self
            .next_after(FREQUENCY_PROBE_FROM_MS)
            .ok_or_else(|| ScheduleError::NeverFires(self.expression.clone()))?;
        let minute = first.div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut fires = Vec::new();
        let mut at = self.next_after(minute - 1);
        while let Some(t) = at.filter(|t| *t < minute + MINUTE_MS) {
            fires.push(t);
            at = self.next_after(t);
        }
        let wrap = fires
            .first()
            .zip(fires.last())
            .map(|(first, last)| first + MINUTE_MS - last);
        let smallest = fires
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain(wrap)
            .min()
            .unwrap_or(MINUTE_MS);
        if smallest < i64::from(min_interval_secs) * 1000 {
            return Err(ScheduleError::TooFrequent {
                expression: self.expression.clone(),
                min_interval_secs,
            });
        }
        Ok(())
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// What one tick decided: whether to start a run now, and the `next_run` to persist (with the
/// run's record, in one transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub run_now: bool,
    pub next_run_ms: Option<i64>,
}

/// Decides from the stored `next_run_ms` alone (see the module docs for the contract).
///
/// - `None` (new, re-enabled or edited schedule): no run; arm at the first occurrence after now.
/// - `Some(t)` with `t <= now`: one run, however many occurrences were missed; the new
///   `next_run` is the first occurrence strictly after `now`.
/// - `Some(t)` with `t > now`: nothing to do, `next_run` unchanged (even when the clock went
///   back, so a run already made is not made again).
pub fn tick(next_run_ms: Option<i64>, now_ms: i64, schedule: &CronSchedule) -> Tick {
    match next_run_ms {
        Some(due) if due > now_ms => Tick {
            run_now: false,
            next_run_ms: Some(due),
        },
        stored => Tick {
            run_now: stored.is_some(),
            next_run_ms: schedule.next_after(now_ms),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-11-28T05:17:00Z.
    const T0: i64 = 1_795_843_020_000;
    const HOUR: i64 = 3_600_000;

    fn at(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn five_fields_are_minutes_in_utc() {
        assert_eq!(at("2026-11-28T05:17:00Z"), T0);
        let daily = CronSchedule::parse(" 30 3 * * * ").unwrap();
        assert_eq!(daily.expression(), "30 3 * * *");
        assert_eq!(daily.next_after(T0), Some(at("2026-11-29T03:30:00Z")));
        let weekdays = CronSchedule::parse("0 12 * * MON-FRI").unwrap();
        // 2026-11-28 is a Saturday.
        assert_eq!(weekdays.next_after(T0), Some(at("2026-11-30T12:00:00Z")));
        let nick = CronSchedule::parse("@daily").unwrap();
        assert_eq!(nick.next_after(T0), Some(at("2026-11-29T00:00:00Z")));
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let s = CronSchedule::parse("15 0 3 * * *").unwrap();
        assert_eq!(s.next_after(T0), Some(at("2026-11-29T03:00:15Z")));
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = CronSchedule::parse("17 5 * * *").unwrap();
        let tomorrow = T0 + 24 * HOUR;
        assert_eq!(s.next_after(T0 - 1), Some(T0));
        assert_eq!(s.next_after(T0), Some(tomorrow));
        assert_eq!(s.next_after(T0 + 500), Some(tomorrow));
        assert_eq!(s.next_after(T0 + 1_000), Some(tomorrow));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        use ScheduleError::*;
        let err = |e: &str| CronSchedule::parse(e).unwrap_err();
        assert_eq!(err("  "), Empty);
        assert_eq!(err("* * * *"), FieldCount(4));
        assert_eq!(err("0 0 0 * * * 2030"), FieldCount(7));
        assert_eq!(err(&"1,".repeat(150)), TooLong(300));
        assert!(
            matches!(err("61 * * * *"), Invalid { .. }),
            "{:?}",
            err("61 * * * *")
        );
        assert_eq!(err("@fortnightly"), UnknownNickname("@fortnightly".into()));
        assert!(matches!(err("0 0 * * FOO"), Invalid { .. }));
        assert_eq!(err("0 0 31 2 *"), NeverFires("0 0 31 2 *".into()));
        let message = err("61 * * * *").to_string();
        assert!(
            message.starts_with("invalid cron expression \"61 * * * *\": "),
            "{message}"
        );
    }

    #[test]
    fn more_than_once_a_minute_is_refused() {
        for e in [
            "* * * * * *",
            "*/30 * * * * *",
            "0,59 0 * * * *",
            "0-1 0 0 1 1 *",
        ] {
            assert_eq!(
                CronSchedule::parse(e).unwrap_err(),
                ScheduleError::TooFrequent {
                    expression: e.into(),
                    min_interval_secs: 60
                },
                "{e}"
            );
        }
        for e in ["* * * * *", "59 * * * * *", "0 */5 * * * *", "@hourly"] {
            assert!(CronSchedule::parse(e).is_ok(), "{e}");
        }
    }

    #[test]
    fn a_lower_limit_allows_seconds_apart_but_not_closer() {
        let every_5s = CronSchedule::parse_with_min_interval("*/5 * * * * *", 5).unwrap();
        assert_eq!(every_5s.next_after(T0), Some(T0 + 5_000));
        let ok = ["*/5 * * * * *", "0,30 * * * * *", "* * * * *", "@daily"];
        for e in ok {
            assert!(CronSchedule::parse_with_min_interval(e, 5).is_ok(), "{e}");
        }
        // 58 and 2 are 4 s apart across the minute boundary; 0,3 are 3 s apart.
        for e in ["*/4 * * * * *", "2,58 * * * * *", "0,3,30 * * * * *"] {
            assert_eq!(
                CronSchedule::parse_with_min_interval(e, 5).unwrap_err(),
                ScheduleError::TooFrequent {
                    expression: e.into(),
                    min_interval_secs: 5
                },
                "{e}"
            );
        }
        // The limit is clamped to 1..=60.
        assert!(CronSchedule::parse_with_min_interval("* * * * * *", 0).is_ok());
        assert!(CronSchedule::parse_with_min_interval("*/30 * * * * *", 3600).is_err());
        assert!(CronSchedule::parse_with_min_interval("0 * * * * *", 3600).is_ok());
    }

    #[test]
    fn a_new_schedule_arms_without_running() {
        let s = CronSchedule::parse("0 * * * *").unwrap();
        let t = tick(None, T0, &s);
        assert_eq!(
            t,
            Tick {
                run_now: false,
                next_run_ms: Some(at("2026-11-28T06:00:00Z"))
            }
        );
    }

    #[test]
    fn a_due_run_runs_once_and_moves_past_now() {
        let s = CronSchedule::parse("0 * * * *").unwrap();
        let due = at("2026-11-28T05:00:00Z");
        assert_eq!(
            tick(Some(due), due - 1, &s),
            Tick {
                run_now: false,
                next_run_ms: Some(due)
            }
        );
        let t = tick(Some(due), due, &s);
        assert_eq!(
            t,
            Tick {
                run_now: true,
                next_run_ms: Some(due + HOUR)
            }
        );
        assert!(!tick(t.next_run_ms, due, &s).run_now);
    }

    #[test]
    fn missed_runs_collapse_into_one_catch_up() {
        let s = CronSchedule::parse("0 * * * *").unwrap();
        // Down for three days: 72 occurrences missed, one run.
        let stored = Some(T0 - 72 * HOUR);
        let t = tick(stored, T0, &s);
        assert_eq!(
            t,
            Tick {
                run_now: true,
                next_run_ms: Some(at("2026-11-28T06:00:00Z"))
            }
        );
        let again = tick(t.next_run_ms, T0 + 60_000, &s);
        assert!(!again.run_now);
    }

    /// The caller commits the run record and the new `next_run` together. A restart before
    /// that commit finds the old `next_run` and decides the same single run again (the first
    /// one was never recorded, so never started); a restart after it finds the new one and
    /// does not run: no skip, no double.
    #[test]
    fn a_restart_around_the_commit_neither_skips_nor_doubles() {
        let s = CronSchedule::parse("0 3 * * *").unwrap();
        let stored = Some(at("2026-11-28T03:00:00Z"));
        let decided = tick(stored, T0, &s);
        assert!(decided.run_now);
        // Crash before the commit: the stored value is unchanged, so it runs after restart.
        let after_restart = tick(stored, T0 + 120_000, &s);
        assert_eq!(
            after_restart,
            Tick {
                run_now: true,
                next_run_ms: decided.next_run_ms
            }
        );
        // Crash after the commit: the new value is stored, nothing runs again.
        assert!(!tick(decided.next_run_ms, T0 + 120_000, &s).run_now);
        // A clock stepped back after the run does not bring the run back.
        assert!(!tick(decided.next_run_ms, T0 - 2 * HOUR, &s).run_now);
    }

    proptest! {
        /// Ticking at arbitrary moments runs exactly when an occurrence fell in
        /// (previous tick, this tick], as computed independently of croner.
        #[test]
        fn ticks_run_once_per_window_with_an_occurrence(
            gaps in prop::collection::vec(1i64..4 * HOUR, 1..60),
        ) {
            let quarter = 15 * 60_000;
            let s = CronSchedule::parse("*/15 * * * *").unwrap();
            let mut now = T0 + 7_777;
            let mut stored = tick(None, now, &s).next_run_ms;
            for gap in gaps {
                let previous = now;
                now += gap;
                let t = tick(stored, now, &s);
                let occurred = now.div_euclid(quarter) > previous.div_euclid(quarter);
                prop_assert_eq!(t.run_now, occurred);
                let next = t.next_run_ms.unwrap();
                prop_assert!(next > now && next - now <= quarter);
                stored = t.next_run_ms;
            }
        }
    }
}
