-- Backups of Berth's own state (issue 10, item 9). A schedule backs up services (`services`,
-- as before) or Berth's own state (`berth_state`: its state database and secret key, sealed to
-- the passphrase-derived key in `meta`). A state backup is an ordinary `backups` row with no
-- service (`service_id` NULL) and `service_type` `berth-state`.
ALTER TABLE backup_schedules ADD COLUMN target TEXT NOT NULL DEFAULT 'services';
