-- Berth state, SQLite flavour. Timestamps are RFC 3339 text written by Berth.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE environments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    slug       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, slug)
);

-- One managed service. `parameters` holds the non-secret parameters as JSON;
-- `secrets` holds the secret ones as JSON encrypted with the server key.
CREATE TABLE services (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL UNIQUE,
    service_type   TEXT NOT NULL,
    status         TEXT NOT NULL,
    desired_state  TEXT NOT NULL,
    parameters     TEXT NOT NULL,
    secrets        TEXT NOT NULL,
    container_name TEXT NOT NULL,
    volume_name    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- Intent log: a row is written before any Docker call of a multi-step operation, so the
-- reconciler can finish or undo it after a crash.
CREATE TABLE operations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id  INTEGER,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    step        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    error       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX operations_status ON operations(status);
