//! Which backups a retention policy keeps and which it deletes.
//!
//! Pure so the same [`plan`] serves the dry run (shown to the user) and the real pruning
//! (whose caller deletes exactly `plan.delete`), and so its guarantees can be property-tested:
//! the newest succeeded backup is never deleted whatever the policy, running backups are never
//! deleted, failed backups newer than the newest success stay for diagnosis, and planning again
//! over what was kept deletes nothing more. The input is what the destination's listing (plus
//! the caller's record of running backups) says, never a log of earlier prunes.

use serde::{Deserialize, Serialize};

const DAY_MS: i128 = 86_400_000;

/// How many backups of a service to keep. Both rules `None`: keep everything.
///
/// When both are set a backup is kept if either rule keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Keep the newest N succeeded backups.
    pub keep_last: Option<u32>,
    /// Keep every backup younger than N days.
    pub keep_days: Option<u32>,
}

impl RetentionPolicy {
    /// True when no rule is set, so nothing is ever deleted.
    pub const fn keeps_everything(&self) -> bool {
        self.keep_last.is_none() && self.keep_days.is_none()
    }
}

/// What became of a backup, as far as retention cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// Finished, with a valid manifest: restorable.
    Succeeded,
    /// Failed, or incomplete (objects without a valid manifest): holds nothing restorable.
    Failed,
    /// Still being written: never touched.
    Running,
}

/// One backup as seen by retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedBackup {
    pub backup_id: String,
    pub created_at_ms: i64,
    pub state: BackupState,
}

/// A backup and why it is kept or deleted, in words shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub backup_id: String,
    pub reason: String,
}

/// Every input backup appears exactly once, in `keep` or in `delete`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    pub keep: Vec<Decision>,
    pub delete: Vec<Decision>,
}

/// Decides, for each backup, whether `policy` keeps it at `now_ms`.
///
/// Order is newest first (by `created_at_ms`, then `backup_id`), so the plan is the same for
/// the same input in any order. A backup created in the future (clock skew) counts as young.
pub fn plan(policy: &RetentionPolicy, backups: &[RetainedBackup], now_ms: i64) -> RetentionPlan {
    let mut sorted: Vec<&RetainedBackup> = backups.iter().collect();
    sorted.sort_by(|a, b| (b.created_at_ms, &b.backup_id).cmp(&(a.created_at_ms, &a.backup_id)));

    let mut result = RetentionPlan::default();
    // Succeeded backups seen so far (all newer than the current one, given the order).
    let mut newer_succeeded: u64 = 0;
    for backup in sorted {
        let young = policy
            .keep_days
            .is_some_and(|days| is_younger_than(backup.created_at_ms, now_ms, days));
        let verdict = match backup.state {
            _ if policy.keeps_everything() => Ok("no retention policy: everything is kept".into()),
            BackupState::Running => Ok("still running".into()),
            BackupState::Succeeded => {
                let rank = newer_succeeded;
                newer_succeeded += 1;
                judge_succeeded(policy, rank, young)
            }
            BackupState::Failed => judge_failed(policy, newer_succeeded, young),
        };
        let decision = |reason| Decision {
            backup_id: backup.backup_id.clone(),
            reason,
        };
        match verdict {
            Ok(reason) => result.keep.push(decision(reason)),
            Err(reason) => result.delete.push(decision(reason)),
        }
    }
    result
}

/// `Ok(reason)` keeps, `Err(reason)` deletes. `rank` counts the succeeded backups newer than
/// this one.
fn judge_succeeded(policy: &RetentionPolicy, rank: u64, young: bool) -> Result<String, String> {
    if rank == 0 {
        return Ok("newest succeeded backup".into());
    }
    if let Some(n) = policy.keep_last
        && rank < u64::from(n)
    {
        return Ok(format!("within the {n} newest succeeded backups"));
    }
    if young && let Some(days) = policy.keep_days {
        return Ok(format!("younger than {}", days_text(days)));
    }
    Err(match (policy.keep_last, policy.keep_days) {
        (Some(n), Some(days)) => format!(
            "older than {} and not among the {n} newest succeeded backups",
            days_text(days)
        ),
        (Some(n), None) => format!("not among the {n} newest succeeded backups"),
        (None, Some(days)) => format!("older than {}", days_text(days)),
        (None, None) => unreachable!("an empty policy keeps everything"),
    })
}

/// Failed backups hold nothing restorable, but those newer than the newest success may explain
/// why backups are failing, so they stay.
fn judge_failed(
    policy: &RetentionPolicy,
    newer_succeeded: u64,
    young: bool,
) -> Result<String, String> {
    if newer_succeeded == 0 {
        return Ok("failed after the newest succeeded backup: kept for diagnosis".into());
    }
    if young && let Some(days) = policy.keep_days {
        return Ok(format!("failed, but younger than {}", days_text(days)));
    }
    Err(match policy.keep_days {
        Some(days) => format!(
            "failed (nothing restorable), older than the newest succeeded backup and than {}",
            days_text(days)
        ),
        None => "failed (nothing restorable) and older than the newest succeeded backup".into(),
    })
}

/// Strictly younger than `days`; a creation time in the future is young.
fn is_younger_than(created_at_ms: i64, now_ms: i64, days: u32) -> bool {
    i128::from(now_ms) - i128::from(created_at_ms) < i128::from(days) * DAY_MS
}

fn days_text(days: u32) -> String {
    if days == 1 {
        "1 day".into()
    } else {
        format!("{days} days")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const NOW: i64 = 1_800_000_000_000;

    fn backup(id: &str, days_ago: i64, state: BackupState) -> RetainedBackup {
        RetainedBackup {
            backup_id: id.into(),
            created_at_ms: NOW - days_ago * DAY_MS as i64,
            state,
        }
    }

    fn ids(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().map(|d| d.backup_id.as_str()).collect()
    }

    fn policy(keep_last: Option<u32>, keep_days: Option<u32>) -> RetentionPolicy {
        RetentionPolicy {
            keep_last,
            keep_days,
        }
    }

    use BackupState::{Failed, Running, Succeeded};

    #[test]
    fn keep_last_keeps_the_newest_succeeded_and_drops_old_failures() {
        let backups = [
            backup("b1", 5, Succeeded),
            backup("b2", 4, Failed),
            backup("b3", 3, Succeeded),
            backup("b4", 2, Succeeded),
            backup("b5", 1, Failed),
        ];
        let plan = plan(&policy(Some(2), None), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["b5", "b4", "b3"]);
        assert_eq!(ids(&plan.delete), ["b2", "b1"]);
        assert_eq!(
            plan.keep[0].reason,
            "failed after the newest succeeded backup: kept for diagnosis"
        );
        assert_eq!(plan.keep[1].reason, "newest succeeded backup");
        assert_eq!(plan.keep[2].reason, "within the 2 newest succeeded backups");
        assert_eq!(
            plan.delete[1].reason,
            "not among the 2 newest succeeded backups"
        );
    }

    #[test]
    fn both_rules_keep_what_either_keeps() {
        let backups = [
            backup("old", 30, Succeeded),
            backup("week", 6, Succeeded),
            backup("b", 2, Succeeded),
            backup("a", 1, Succeeded),
        ];
        let plan = plan(&policy(Some(2), Some(7)), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["a", "b", "week"]);
        assert_eq!(plan.keep[2].reason, "younger than 7 days");
        assert_eq!(
            plan.delete[0].reason,
            "older than 7 days and not among the 2 newest succeeded backups"
        );
    }

    #[test]
    fn the_newest_success_survives_keep_last_zero_and_old_age() {
        let backups = [
            backup("ancient", 400, Succeeded),
            backup("older", 500, Succeeded),
        ];
        let plan = plan(&policy(Some(0), Some(1)), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["ancient"]);
        assert_eq!(ids(&plan.delete), ["older"]);
    }

    #[test]
    fn running_and_failures_without_a_success_are_kept() {
        let backups = [
            backup("r", 100, Running),
            backup("f1", 90, Failed),
            backup("f2", 80, Failed),
        ];
        let plan = plan(&policy(Some(1), Some(1)), &backups, NOW);
        assert!(plan.delete.is_empty());
        assert_eq!(plan.keep[2].reason, "still running");
    }

    #[test]
    fn future_backups_are_young_and_ties_order_by_id() {
        let mut backups = vec![backup("x", -2, Succeeded), backup("y", -2, Succeeded)];
        backups.push(backup("z", 10, Succeeded));
        let plan = plan(&policy(Some(1), Some(1)), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["y", "x"]);
        assert_eq!(plan.keep[1].reason, "younger than 1 day");
        assert_eq!(ids(&plan.delete), ["z"]);
    }

    #[test]
    fn keep_days_is_strict_to_the_millisecond() {
        let day = DAY_MS as i64;
        let at = |id: &str, age_ms: i64| RetainedBackup {
            backup_id: id.into(),
            created_at_ms: NOW - age_ms,
            state: Succeeded,
        };
        let backups = [
            at("newest", 0),
            at("young", 7 * day - 1),
            at("old", 7 * day),
        ];
        let plan = plan(&policy(None, Some(7)), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["newest", "young"]);
        assert_eq!(ids(&plan.delete), ["old"]);
        assert_eq!(plan.delete[0].reason, "older than 7 days");
    }

    #[test]
    fn no_policy_keeps_everything() {
        let backups = [backup("a", 1000, Failed), backup("b", 2000, Succeeded)];
        let plan = plan(&RetentionPolicy::default(), &backups, NOW);
        assert_eq!(ids(&plan.keep), ["a", "b"]);
        assert!(plan.delete.is_empty());
    }

    fn arb_state() -> impl Strategy<Value = BackupState> {
        prop_oneof![Just(Succeeded), Just(Failed), Just(Running)]
    }

    /// Up to 40 backups spread over 60 days (some a day in the future), with unique ids.
    fn arb_backups() -> impl Strategy<Value = Vec<RetainedBackup>> {
        let day = DAY_MS as i64;
        prop::collection::vec((-day..60 * day, arb_state()), 0..40).prop_map(|entries| {
            entries
                .into_iter()
                .enumerate()
                .map(|(i, (age, state))| RetainedBackup {
                    backup_id: format!("id{i:02}"),
                    created_at_ms: NOW - age,
                    state,
                })
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
        (prop::option::of(0u32..10), prop::option::of(0u32..40)).prop_map(|(l, d)| policy(l, d))
    }

    fn newest_succeeded(backups: &[RetainedBackup]) -> Option<&RetainedBackup> {
        backups
            .iter()
            .filter(|b| b.state == Succeeded)
            .max_by(|a, b| (a.created_at_ms, &a.backup_id).cmp(&(b.created_at_ms, &b.backup_id)))
    }

    proptest! {
        #[test]
        fn every_backup_lands_exactly_once(p in arb_policy(), backups in arb_backups()) {
            let plan = plan(&p, &backups, NOW);
            let mut seen: Vec<&str> = ids(&plan.keep);
            seen.extend(ids(&plan.delete));
            prop_assert_eq!(seen.len(), backups.len());
            let unique: HashSet<&str> = seen.iter().copied().collect();
            prop_assert_eq!(unique.len(), backups.len());
            prop_assert!(backups.iter().all(|b| unique.contains(b.backup_id.as_str())));
        }

        #[test]
        fn protected_backups_are_never_deleted(p in arb_policy(), backups in arb_backups()) {
            let plan = plan(&p, &backups, NOW);
            let deleted: HashSet<&str> = ids(&plan.delete).into_iter().collect();
            if let Some(newest) = newest_succeeded(&backups) {
                prop_assert!(!deleted.contains(newest.backup_id.as_str()));
            }
            let mut succeeded: Vec<&RetainedBackup> =
                backups.iter().filter(|b| b.state == Succeeded).collect();
            succeeded.sort_by(|a, b| (b.created_at_ms, &b.backup_id).cmp(&(a.created_at_ms, &a.backup_id)));
            let keep_last = p.keep_last.unwrap_or(0) as usize;
            for b in &backups {
                let id = b.backup_id.as_str();
                if b.state == Running {
                    prop_assert!(!deleted.contains(id), "running {} deleted", id);
                }
                let age = NOW - b.created_at_ms;
                if let Some(days) = p.keep_days && age < i64::from(days) * DAY_MS as i64 {
                    prop_assert!(!deleted.contains(id), "young {} deleted", id);
                }
            }
            for b in succeeded.iter().take(keep_last) {
                prop_assert!(!deleted.contains(b.backup_id.as_str()));
            }
        }

        #[test]
        fn planning_the_kept_set_again_deletes_nothing(p in arb_policy(), backups in arb_backups()) {
            let first = plan(&p, &backups, NOW);
            let kept: HashSet<&str> = ids(&first.keep).into_iter().collect();
            let rest: Vec<RetainedBackup> = backups
                .iter()
                .filter(|b| kept.contains(b.backup_id.as_str()))
                .cloned()
                .collect();
            let second = plan(&p, &rest, NOW);
            prop_assert!(second.delete.is_empty(), "{:?}", second.delete);
        }

        #[test]
        fn input_order_does_not_matter(p in arb_policy(), mut backups in arb_backups()) {
            let first = plan(&p, &backups, NOW);
            backups.reverse();
            prop_assert_eq!(first, plan(&p, &backups, NOW));
        }

        #[test]
        fn no_policy_deletes_nothing(backups in arb_backups()) {
            prop_assert!(plan(&RetentionPolicy::default(), &backups, NOW).delete.is_empty());
        }
    }
}
