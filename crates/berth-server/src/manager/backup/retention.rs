//! Retention: which backups of a service a destination keeps, decided from the destination's
//! own listing (the layout is the index, `berth_core::backup::layout`) by
//! `berth_core::backup::retention::plan`, which never deletes the newest succeeded backup.
//!
//! The policies are the schedules writing to the destination that cover the service
//! (`retention_period` days, `keep_last`); with several, a backup is deleted only when every
//! one of them deletes it, and with none nothing is. Only folders of services Berth has now
//! (type, name and id all matching) are looked at; other keys, other services' folders and
//! folders of deleted services are never touched.
//!
//! A backup's state comes from its record when Berth has one, else from the listing
//! (a manifest: succeeded; none: failed). The listing is read before the records, so any
//! object listed belongs to a run whose record is already there (a run records itself before
//! its first byte), and a running backup is never mistaken for a failed one.
//!
//! Pruning writes the intent first: the record becomes `deleted` (with the reason), then the
//! manifest and the other objects are deleted. A prune cut off half-way (crash, destination
//! down) leaves a `deleted` record whose leftovers the next prune removes; it never leaves a
//! record saying `succeeded` for a folder missing objects.

use std::collections::HashMap;

use berth_core::backup::layout::{self, ListedBackup};
use berth_core::backup::{BackupState, RetainedBackup, RetentionPolicy, retention};
use serde::Serialize;

use super::super::{ManagerError, ManagerResult, ServiceManager};
use super::destination::Target;
use super::state::{STATE_FOLDER_ID, STATE_SERVICE_NAME};
use crate::store::{
    BackupFilter, BackupRecord, BackupState as RecordState, STATE_SERVICE_TYPE, Schedule,
    ScheduleTarget, Service,
};

/// One backup found on the destination and what retention decides about it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlannedBackup {
    /// The backup's folder name (`20261128T051700Z-a1b2c3`).
    pub backup_id: String,
    /// Berth's record of it (`GET /backups/{id}`), when there is one.
    pub id: Option<i64>,
    /// As retention sees it: `succeeded`, `failed`, `running`, or `deleted` (an earlier prune
    /// was cut off; what is left goes).
    pub state: String,
    /// Epoch milliseconds, from the backup id.
    pub started_at: i64,
    /// Objects of it on the destination.
    pub objects: usize,
    pub reason: String,
}

/// Retention of one service's backups on one destination.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceRetention {
    pub service_id: i64,
    pub service_name: String,
    pub service_type: String,
    /// The schedules whose retention applies (a backup goes only if every one lets it go).
    pub schedule_ids: Vec<i64>,
    pub keep: Vec<PlannedBackup>,
    /// Deleted (or, on a dry run, what would be).
    pub delete: Vec<PlannedBackup>,
    /// What could not be deleted; the next prune tries again.
    pub errors: Vec<String>,
}

impl ServiceManager {
    /// What retention would delete from a destination, for one service or every one with
    /// backups there; nothing is changed.
    pub async fn retention_plan(
        &self,
        destination_id: i64,
        service_id: Option<i64>,
    ) -> ManagerResult<Vec<ServiceRetention>> {
        self.retention(destination_id, service_id, false).await
    }

    /// Applies retention on a destination (one service, or every one with backups there).
    pub async fn prune(
        &self,
        destination_id: i64,
        service_id: Option<i64>,
    ) -> ManagerResult<Vec<ServiceRetention>> {
        self.retention(destination_id, service_id, true).await
    }

    async fn retention(
        &self,
        destination_id: i64,
        service_id: Option<i64>,
        apply: bool,
    ) -> ManagerResult<Vec<ServiceRetention>> {
        let destination = self.destination(destination_id).await?;
        let only = match service_id {
            Some(STATE_FOLDER_ID) => Some(Owner::state()),
            Some(id) => Some(Owner::of(&self.service(id).await?)),
            None => None,
        };
        let target = self.destination_target(&destination).await?;
        let list_prefix = match &only {
            Some(o) => layout::service_folder(&target.prefix, &o.service_type, &o.name, o.id)
                .map_err(|e| ManagerError::Internal(format!("service folder: {e}")))?,
            None => layout::destination_root(&target.prefix),
        };
        // The listing first, then the records (see the module docs).
        let keys: Vec<String> = target
            .client
            .list_all(&target.bucket, &list_prefix)
            .await
            .map_err(|e| {
                ManagerError::Unavailable(format!("listing {}/{list_prefix}: {e}", target.location))
            })?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let listed = layout::parse_listing(&target.prefix, keys.iter().map(String::as_str));
        let records: HashMap<String, BackupRecord> = self
            .store
            .list_backups(BackupFilter {
                destination_id: Some(destination_id),
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|r| (r.backup_id.clone(), r))
            .collect();
        let schedules = self.store.schedules_in_destination(destination_id).await?;
        let owners: Vec<Owner> = match only {
            Some(o) => vec![o],
            None => {
                let services = self.store.list_services().await?;
                let mut owners: Vec<Owner> = services.iter().map(Owner::of).collect();
                owners.push(Owner::state());
                owners
            }
        };

        let mut by_service: HashMap<i64, Vec<ListedBackup>> = HashMap::new();
        for backup in listed {
            by_service
                .entry(backup.service_id)
                .or_default()
                .push(backup);
        }
        let mut result = Vec::new();
        for owner in owners {
            // Same id, name and type: a folder of this very owner, nobody else's.
            let backups: Vec<ListedBackup> = by_service
                .get(&owner.id)
                .into_iter()
                .flatten()
                .filter(|b| b.service_name == owner.name && b.service_type == owner.service_type)
                .cloned()
                .collect();
            if backups.is_empty() {
                continue;
            }
            let covering: Vec<&Schedule> = schedules
                .iter()
                .filter(|s| owner.is_covered_by(s))
                .collect();
            let mut planned = plan_service(&owner, &covering, &backups, &records, now_ms());
            if apply {
                self.delete_planned(&target, &backups, &mut planned).await;
            }
            result.push(planned);
        }
        Ok(result)
    }

    /// Deletes what the plan deletes: the record becomes `deleted` first, then the manifest
    /// and every other object of the folder go.
    async fn delete_planned(
        &self,
        target: &Target,
        backups: &[ListedBackup],
        planned: &mut ServiceRetention,
    ) {
        for decision in &planned.delete {
            let Some(backup) = backups
                .iter()
                .find(|b| b.backup_id.as_str() == decision.backup_id)
            else {
                continue;
            };
            if decision.id.is_some()
                && decision.state != RecordState::Deleted.as_str()
                && let Err(e) = self
                    .store
                    .mark_backup_deleted(&decision.backup_id, &decision.reason)
                    .await
            {
                planned
                    .errors
                    .push(format!("recording {} deleted: {e}", decision.backup_id));
                continue;
            }
            crate::crashpoint::hit("retention.after_marked_deleted");
            let manifest = layout::manifest_key(&backup.folder);
            let mut keys: Vec<&String> = backup.keys.iter().filter(|k| **k == manifest).collect();
            keys.extend(backup.keys.iter().filter(|k| **k != manifest));
            for key in keys {
                if let Err(e) = target.client.delete_object(&target.bucket, key).await {
                    planned.errors.push(format!("deleting {key}: {e}"));
                }
            }
            tracing::info!(
                backup = %decision.backup_id,
                service_id = planned.service_id,
                reason = %decision.reason,
                "retention deleted a backup"
            );
        }
    }
}

/// Whose backups a plan is about: a service, or Berth's own state.
#[derive(Debug, Clone)]
struct Owner {
    id: i64,
    name: String,
    service_type: String,
}

impl Owner {
    fn of(service: &Service) -> Self {
        Self {
            id: service.id,
            name: service.name.clone(),
            service_type: service.service_type.clone(),
        }
    }

    fn state() -> Self {
        Self {
            id: STATE_FOLDER_ID,
            name: STATE_SERVICE_NAME.into(),
            service_type: STATE_SERVICE_TYPE.into(),
        }
    }

    /// A schedule's retention applies to the backups it makes: state schedules to the
    /// state's, the others to their service's (or every service's).
    fn is_covered_by(&self, schedule: &Schedule) -> bool {
        match schedule.target {
            ScheduleTarget::BerthState => self.service_type == STATE_SERVICE_TYPE,
            ScheduleTarget::Services => {
                self.service_type != STATE_SERVICE_TYPE
                    && schedule.service_id.is_none_or(|id| id == self.id)
            }
        }
    }
}

/// The plan for one owner's backups on a destination, under the covering schedules'
/// policies. Pure, apart from the inputs.
fn plan_service(
    service: &Owner,
    covering: &[&Schedule],
    backups: &[ListedBackup],
    records: &HashMap<String, BackupRecord>,
    now_ms: i64,
) -> ServiceRetention {
    let mut planned = ServiceRetention {
        service_id: service.id,
        service_name: service.name.clone(),
        service_type: service.service_type.clone(),
        schedule_ids: covering.iter().map(|s| s.id).collect(),
        keep: Vec::new(),
        delete: Vec::new(),
        errors: Vec::new(),
    };
    let view = |b: &ListedBackup, state: &str, reason: String| PlannedBackup {
        backup_id: b.backup_id.to_string(),
        id: records.get(b.backup_id.as_str()).map(|r| r.id),
        state: state.to_string(),
        started_at: b.backup_id.started_at_ms(),
        objects: b.keys.len(),
        reason,
    };
    let mut retained = Vec::new();
    for b in backups {
        let state = match records.get(b.backup_id.as_str()).map(|r| r.state) {
            Some(RecordState::Deleted) => {
                planned.delete.push(view(
                    b,
                    RecordState::Deleted.as_str(),
                    "deleted by an earlier prune that did not finish: removing what is left".into(),
                ));
                continue;
            }
            Some(RecordState::Running) => BackupState::Running,
            Some(RecordState::Succeeded) => BackupState::Succeeded,
            Some(RecordState::Failed) => BackupState::Failed,
            None if b.has_manifest => BackupState::Succeeded,
            None => BackupState::Failed,
        };
        retained.push(RetainedBackup {
            backup_id: b.backup_id.to_string(),
            created_at_ms: b.backup_id.started_at_ms(),
            state,
        });
    }
    let policies: Vec<RetentionPolicy> = covering.iter().map(|s| policy_of(s)).collect();
    let plans: Vec<_> = policies
        .iter()
        .map(|p| retention::plan(p, &retained, now_ms))
        .collect();
    // Newest first, as the core orders its plans.
    retained.sort_by(|a, b| (b.created_at_ms, &b.backup_id).cmp(&(a.created_at_ms, &a.backup_id)));
    for r in &retained {
        let listed = backups
            .iter()
            .find(|b| b.backup_id.as_str() == r.backup_id)
            .expect("retained from the listing");
        let state = state_name(r.state);
        if plans.is_empty() {
            let reason = "no schedule writing to this destination covers this service: \
                          everything is kept";
            planned.keep.push(view(listed, state, reason.into()));
            continue;
        }
        let kept_by = plans.iter().find_map(|p| {
            p.keep
                .iter()
                .find(|d| d.backup_id == r.backup_id)
                .map(|d| d.reason.clone())
        });
        match kept_by {
            Some(reason) => planned.keep.push(view(listed, state, reason)),
            None => {
                let reasons: Vec<String> = plans
                    .iter()
                    .filter_map(|p| p.delete.iter().find(|d| d.backup_id == r.backup_id))
                    .map(|d| d.reason.clone())
                    .collect();
                planned.delete.push(view(listed, state, reasons.join("; ")));
            }
        }
    }
    planned
}

/// A schedule's retention: `retention_period` days (0: no age limit) and `keep_last`.
pub(super) fn policy_of(schedule: &Schedule) -> RetentionPolicy {
    RetentionPolicy {
        keep_last: schedule
            .keep_last
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
        keep_days: (schedule.retention_period > 0)
            .then(|| u32::try_from(schedule.retention_period).unwrap_or(u32::MAX)),
    }
}

fn state_name(state: BackupState) -> &'static str {
    match state {
        BackupState::Succeeded => "succeeded",
        BackupState::Failed => "failed",
        BackupState::Running => "running",
    }
}

fn now_ms() -> i64 {
    super::run::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::backup::BackupId;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_800_000_000_000;

    fn service() -> Owner {
        Owner {
            id: 7,
            name: "db".into(),
            service_type: "postgres".into(),
        }
    }

    fn schedule(id: i64, keep_last: Option<i64>, retention_period: i64) -> Schedule {
        Schedule {
            id,
            name: format!("s{id}"),
            backup_type: "full".into(),
            retention_period,
            keep_last,
            s3_source_id: 1,
            service_id: None,
            target: ScheduleTarget::Services,
            schedule_expression: "@daily".into(),
            enabled: true,
            tags: vec![],
            description: None,
            max_runtime_secs: None,
            verify: false,
            next_run: None,
            last_run: None,
            last_error: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    /// A listed backup `days_ago` old, with or without its manifest.
    fn listed(days_ago: i64, suffix: u8, manifest: bool) -> ListedBackup {
        let id = BackupId::new(NOW - days_ago * DAY, [0, 0, suffix]).unwrap();
        let folder = format!("p/berth/postgres/db-7/{id}/");
        let mut keys = vec![format!("{folder}db-app.dump")];
        if manifest {
            keys.push(format!("{folder}manifest.json"));
        }
        ListedBackup {
            service_type: "postgres".into(),
            service_name: "db".into(),
            service_id: 7,
            backup_id: id,
            folder,
            has_manifest: manifest,
            keys,
        }
    }

    fn ids(list: &[PlannedBackup]) -> Vec<&str> {
        list.iter().map(|b| b.backup_id.as_str()).collect()
    }

    #[test]
    fn state_schedules_cover_only_the_state_and_service_schedules_only_services() {
        let every_service = schedule(1, Some(1), 0);
        let state = Schedule {
            target: ScheduleTarget::BerthState,
            ..schedule(2, Some(1), 0)
        };
        let one_service = Schedule {
            service_id: Some(8),
            ..schedule(3, Some(1), 0)
        };
        assert!(service().is_covered_by(&every_service));
        assert!(!service().is_covered_by(&state));
        assert!(!service().is_covered_by(&one_service));
        assert!(Owner::state().is_covered_by(&state));
        assert!(!Owner::state().is_covered_by(&every_service));
    }

    #[test]
    fn without_a_covering_schedule_everything_is_kept() {
        let backups = [listed(3, 1, true), listed(2, 2, false)];
        let plan = plan_service(&service(), &[], &backups, &HashMap::new(), NOW);
        assert_eq!(plan.keep.len(), 2);
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn states_come_from_the_listing_when_there_is_no_record() {
        let backups = [
            listed(4, 1, true),
            listed(3, 2, false),
            listed(2, 3, true),
            listed(1, 4, true),
        ];
        let s = schedule(1, Some(1), 0);
        let plan = plan_service(&service(), &[&s], &backups, &HashMap::new(), NOW);
        // The newest succeeded stays; older ones go, the manifest-less one as failed.
        assert_eq!(ids(&plan.keep), vec![backups[3].backup_id.as_str()]);
        assert_eq!(plan.delete.len(), 3);
        let failed = plan
            .delete
            .iter()
            .find(|d| d.backup_id == backups[1].backup_id.as_str())
            .unwrap();
        assert_eq!(failed.state, "failed");
    }

    #[test]
    fn several_schedules_delete_only_what_every_one_deletes() {
        let backups = [
            listed(40, 1, true),
            listed(20, 2, true),
            listed(10, 3, true),
            listed(1, 4, true),
        ];
        let last_two = schedule(1, Some(2), 0);
        let month = schedule(2, None, 30);
        let plan = plan_service(
            &service(),
            &[&last_two, &month],
            &backups,
            &HashMap::new(),
            NOW,
        );
        assert_eq!(ids(&plan.delete), vec![backups[0].backup_id.as_str()]);
        assert_eq!(plan.keep.len(), 3);
    }

    #[test]
    fn a_keep_last_of_zero_still_keeps_the_newest_succeeded() {
        let backups = [listed(2, 1, true), listed(1, 2, true), listed(0, 3, false)];
        let s = schedule(1, Some(0), 0);
        let plan = plan_service(&service(), &[&s], &backups, &HashMap::new(), NOW);
        // The failed one is newer than the newest success: kept for diagnosis.
        assert_eq!(
            ids(&plan.keep),
            vec![backups[2].backup_id.as_str(), backups[1].backup_id.as_str()]
        );
        assert_eq!(ids(&plan.delete), vec![backups[0].backup_id.as_str()]);
    }
}
