-- Restore runs (Temps' restore framework). A row is written before anything is touched (the
-- intent: which backup into which service, and how); `phase` says how far it got. At startup
-- a run still `running` was cut off by a crash and is marked failed with what it may have
-- left (a partly restored database, a new service to look at or delete).
CREATE TABLE restore_runs (
    id                  BIGSERIAL PRIMARY KEY,
    source_backup_id    BIGINT NOT NULL REFERENCES backups(id) ON DELETE RESTRICT,
    source_service_id   BIGINT,
    target_service_id   BIGINT REFERENCES services(id) ON DELETE SET NULL,
    target_service_name TEXT,
    mode                TEXT NOT NULL,
    -- One database of the backup, or NULL for all of it.
    database_name       TEXT,
    status              TEXT NOT NULL,
    phase               TEXT NOT NULL,
    safety_backup_id    BIGINT REFERENCES backups(id) ON DELETE SET NULL,
    recovery_target     TEXT,
    error_message       TEXT,
    started_at          TEXT,
    finished_at         TEXT,
    created_at          TEXT NOT NULL
);
CREATE INDEX restore_runs_target ON restore_runs(target_service_id, status);
