-- Per-project isolation inside a service: one tenant per (service, project, environment) holding
-- what was allocated (database or ACL user name, Redis database number) and its credentials.
-- Tenants outlive links on purpose: unlinking drops nothing and re-linking finds the same ones.
CREATE TABLE tenants (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id     INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    project_id     INTEGER NOT NULL,
    environment_id INTEGER NOT NULL,
    resource_name  TEXT NOT NULL,
    resource_number INTEGER,
    username       TEXT NOT NULL,
    secrets        TEXT NOT NULL,
    provisioned    INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    UNIQUE (service_id, project_id, environment_id),
    UNIQUE (service_id, resource_name),
    UNIQUE (service_id, resource_number)
);

-- A service linked to a project: its tenants' variables are injected into the project's
-- deployments. One service of each type per project.
CREATE TABLE links (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id   INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    project_id   INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    service_type TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (service_id, project_id),
    UNIQUE (project_id, service_type)
);
