-- Staff sign-ins. The browser holds only a random session key; the row says
-- who signed in and until when, and signing out ends it for good (a copied
-- cookie is worthless afterwards). Keys are stored hashed: reading this table
-- does not give anyone a live session.
CREATE TABLE staff_sessions (
    key_sha256 text        PRIMARY KEY,
    principal  jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at   timestamptz
);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);
