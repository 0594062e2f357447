-- The services Berth's own features keep their data in (KV's Redis, Blob's S3), one row per
-- feature, replacing 0005's KV-only table so every feature shares one mechanism. A row goes
-- with its service (ON DELETE CASCADE); a service backs at most one feature (UNIQUE).
-- `enabled = 0` is a feature turned off with its data kept (the service stays, stopped).
CREATE TABLE backing_services (
    feature    TEXT PRIMARY KEY,
    service_id BIGINT NOT NULL UNIQUE REFERENCES services(id) ON DELETE CASCADE,
    enabled    BIGINT NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
INSERT INTO backing_services (feature, service_id, enabled, updated_at)
    SELECT 'kv', service_id, enabled, updated_at FROM kv_backing;
DROP TABLE kv_backing;
