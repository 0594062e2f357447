-- What a token may do: `admin` (everything), `read_only` (GET/HEAD only) or `project` (the
-- reads of one project, `project_id`). No foreign key on purpose: a revoked token keeps the id
-- of its deleted project for the record; deleting a project revokes its tokens in the same
-- transaction, and a token whose project is gone never authenticates.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_tokens ADD COLUMN project_id INTEGER;
CREATE INDEX api_tokens_project ON api_tokens(project_id);
