-- Intent a delete must honour on every path (API, reconciler after a crash): keep the volume.
ALTER TABLE services ADD COLUMN keep_data INTEGER NOT NULL DEFAULT 0;
-- Random id Berth writes into the data volume (`.berth-volume-id`) once the service first
-- runs. Before a container is (re)created on the volume, the file must hold this id; if not,
-- the data is not this service's and the service is marked `data_missing` instead.
ALTER TABLE services ADD COLUMN volume_marker TEXT;
-- A tenant whose login Berth turned off (its project or environment was deleted, or it was
-- unlinked with ?revoke=true). Its data stays; re-linking turns the login back on.
ALTER TABLE tenants ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;
-- Facts about the state database itself (the fingerprint of the key its secrets are
-- encrypted with).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
