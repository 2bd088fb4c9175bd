-- A stack service can answer on the user's own domain (issue 10): such a
-- route gets its certificate from the ACME CA like an app's domain.
ALTER TABLE stack_routes ADD COLUMN acme INTEGER NOT NULL DEFAULT 0 CHECK (acme IN (0, 1));
