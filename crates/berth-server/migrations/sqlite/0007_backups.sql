-- Backups (issue: backups to S3). Timestamps are RFC 3339 text like every other table; the API
-- shows Temps' epoch milliseconds.
--
-- A destination is any S3-compatible endpoint (Temps' "S3 source"), or a Berth-managed S3
-- service (`service_id`: its address and admin keys are read from the service at use, so
-- they follow its updates). `secret_key` is encrypted with the server key. A destination
-- that backups are recorded on cannot be deleted (RESTRICT): the records say where data is.
CREATE TABLE backup_destinations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT NOT NULL UNIQUE,
    bucket_name      TEXT NOT NULL,
    bucket_path      TEXT NOT NULL DEFAULT '',
    region           TEXT NOT NULL,
    endpoint         TEXT,
    force_path_style INTEGER NOT NULL DEFAULT 1,
    access_key_id    TEXT NOT NULL,
    secret_key       TEXT NOT NULL,
    service_id       INTEGER REFERENCES services(id) ON DELETE RESTRICT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

-- One backup run. `state` is running | succeeded | failed; `succeeded` is written only after
-- every object and the manifest were read back from the destination and matched. A backup
-- outlives its service (service_id set NULL; name and type kept) so it can still be restored.
CREATE TABLE backups (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    backup_id        TEXT NOT NULL UNIQUE,
    service_id       INTEGER REFERENCES services(id) ON DELETE SET NULL,
    service_name     TEXT NOT NULL,
    service_type     TEXT NOT NULL,
    destination_id   INTEGER NOT NULL REFERENCES backup_destinations(id) ON DELETE RESTRICT,
    schedule_id      INTEGER,
    backup_type      TEXT NOT NULL,
    state            TEXT NOT NULL,
    step             TEXT NOT NULL DEFAULT '',
    location         TEXT NOT NULL,
    size_bytes       INTEGER NOT NULL DEFAULT 0,
    file_count       INTEGER NOT NULL DEFAULT 0,
    checksum         TEXT,
    compression_type TEXT NOT NULL,
    error_message    TEXT,
    manifest         TEXT,
    -- Multipart uploads begun and not yet completed ([{key, upload_id}]): recorded before
    -- their first part, so a crash's cleanup can abort them (s3s-fs cannot list them).
    pending_uploads  TEXT NOT NULL DEFAULT '[]',
    -- A failed run whose leftovers could not all be removed (the destination was down):
    -- reconciler passes retry until they are gone.
    needs_cleanup    INTEGER NOT NULL DEFAULT 0,
    verify_state     TEXT,
    verify_message   TEXT,
    verified_at      TEXT,
    created_by       TEXT NOT NULL,
    tags             TEXT NOT NULL DEFAULT '[]',
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    expires_at       TEXT
);
CREATE INDEX backups_service ON backups(service_id, started_at);
CREATE INDEX backups_destination ON backups(destination_id, started_at);
