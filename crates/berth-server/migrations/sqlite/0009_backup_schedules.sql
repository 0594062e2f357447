-- Backup schedules and retention (issue 10, items 4 and 5). Timestamps are RFC 3339 text like
-- every other table; the API shows Temps' epoch milliseconds.
--
-- A schedule backs up one service (`service_id`), or every service that can be backed up
-- (NULL), to one destination, when its cron expression fires (UTC). `next_run` is the single
-- source of truth for "is a run due" (berth_core::backup::schedule): NULL arms it at the next
-- tick without a catch-up. Retention: `retention_period` days (Temps; 0 = no age limit) and
-- `keep_last` succeeded backups (Berth; NULL = no count limit); both unset keeps everything.
-- A destination a schedule writes to cannot be deleted (RESTRICT); a deleted service takes
-- its own schedules with it (CASCADE).
CREATE TABLE backup_schedules (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT NOT NULL UNIQUE,
    backup_type         TEXT NOT NULL,
    retention_period    INTEGER NOT NULL DEFAULT 0,
    keep_last           INTEGER,
    s3_source_id        INTEGER NOT NULL REFERENCES backup_destinations(id) ON DELETE RESTRICT,
    service_id          INTEGER REFERENCES services(id) ON DELETE CASCADE,
    schedule_expression TEXT NOT NULL,
    enabled             INTEGER NOT NULL DEFAULT 1,
    tags                TEXT NOT NULL DEFAULT '[]',
    description         TEXT,
    -- A run still going after this many seconds is aborted and recorded failed (NULL: no limit).
    max_runtime_secs    INTEGER,
    -- Each backup a run makes is verified by a restore into a throwaway service once it
    -- succeeded (the result recorded on the backup, as `POST /backups/{id}/verify` does).
    verify              INTEGER NOT NULL DEFAULT 0,
    next_run            TEXT,
    last_run            TEXT,
    -- Why the last run could not start a backup of some service (NULL when every one started).
    last_error          TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

-- A run of a schedule that became due (or was asked for: kind `manual`). The scheduler writes
-- it in the same transaction that moves the schedule's `next_run`, so a crash can neither
-- skip the run (the row is there, still to dispatch) nor double it (`next_run` moved with it).
-- `dispatched_at` is set once a backup was started for every service the run covers; each
-- backup names its run in `created_by` (`schedule:{id}/run:{run}`), so a run dispatched
-- again after a crash skips the services it already started.
CREATE TABLE backup_schedule_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id   INTEGER NOT NULL REFERENCES backup_schedules(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    due_at        TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    dispatched_at TEXT
);
CREATE INDEX backup_schedule_runs_pending ON backup_schedule_runs(dispatched_at, id);

-- Retention deletes a backup's objects after writing `deleted` with the time and the reason
-- (the intent first: a prune cut off half-way is finished by the next one, and a half-deleted
-- backup is never mistaken for a restorable one). A deleted backup stays listed, as `deleted`.
ALTER TABLE backups ADD COLUMN deleted_at TEXT;
ALTER TABLE backups ADD COLUMN deleted_reason TEXT;
CREATE INDEX backups_schedule ON backups(schedule_id, started_at);
