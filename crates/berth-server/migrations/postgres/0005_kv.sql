-- The Redis service KV keeps its data in (`/api/kv/*`), and whether KV is on. At most one row
-- (`id = 1`). It goes with its service (ON DELETE CASCADE): a create that fails and is undone,
-- or any delete, never leaves KV pointing at a service that is gone. `enabled = 0` is KV
-- turned off with its data kept (the service stays, stopped).
CREATE TABLE kv_backing (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    service_id BIGINT NOT NULL UNIQUE REFERENCES services(id) ON DELETE CASCADE,
    enabled    BIGINT NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL
);
