-- Where a service's container came from: 'berth' (Berth made it and may recreate or remove
-- it) or 'imported' (the user's own container, taken over by POST
-- /external-services/import: Berth starts and stops it in place but never recreates or
-- removes it, nor its volumes, unless asked).
ALTER TABLE services ADD COLUMN origin TEXT NOT NULL DEFAULT 'berth';
-- Intent of a delete of an imported service (?remove_container=true), honoured by whoever
-- finishes the delete, as keep_data is for Berth's own.
ALTER TABLE services ADD COLUMN remove_container BIGINT NOT NULL DEFAULT 0;
