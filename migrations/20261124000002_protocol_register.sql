-- Protocollo: the official register. Numbers are unique, strictly increasing
-- and gapless per registering unit (AOO) and calendar year (Europe/Rome).

-- One row per AOO and year. Taking numbers updates this row, which holds its
-- lock until commit: registrations of one AOO serialise here, a rollback (or
-- a killed session) gives the numbers back, and nothing else can take them.
CREATE TABLE protocol_counters (
    aoo         text    NOT NULL CHECK (aoo ~ '^[0-9]{4}$'),
    year        integer NOT NULL CHECK (year BETWEEN 2000 AND 9999),
    last_number bigint  NOT NULL CHECK (last_number >= 0),
    PRIMARY KEY (aoo, year)
);

CREATE TABLE registrations (
    id            uuid        PRIMARY KEY,
    aoo           text        NOT NULL,
    year          integer     NOT NULL,
    number        bigint      NOT NULL CHECK (number >= 1),
    -- segnatura, e.g. INPS.0040.29/05/2025.0001632
    signature     text        NOT NULL UNIQUE,
    registered_at timestamptz NOT NULL,
    registered_by jsonb       NOT NULL,
    subject       text        NOT NULL,
    -- [{ "name": ..., "sha256": ..., "size": ... }]
    files         jsonb       NOT NULL,
    -- What asked for it (idempotency: one registration per request).
    request_id    uuid        NOT NULL UNIQUE,
    correlation_id text       NOT NULL,
    UNIQUE (aoo, year, number)
);

CREATE INDEX registrations_day ON registrations (registered_at);

-- Annulment is itself a record; the registration stays as it was.
CREATE TABLE registration_annulments (
    registration_id uuid        PRIMARY KEY REFERENCES registrations (id),
    reason          text        NOT NULL CHECK (length(reason) > 0),
    annulled_by     jsonb       NOT NULL,
    annulled_at     timestamptz NOT NULL DEFAULT now()
);

-- registro giornaliero: the previous day's registrations, stored immutably,
-- each day chaining the hash of the day before.
CREATE TABLE daily_registers (
    day           date        PRIMARY KEY,
    content       bytea       NOT NULL,
    content_sha256 text       NOT NULL,
    previous_sha256 text,
    chain_sha256  text        NOT NULL,
    produced_at   timestamptz NOT NULL DEFAULT now()
);

-- Registrations, annulments and daily registers are never edited or deleted.
CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER registrations_append_only BEFORE UPDATE OR DELETE ON registrations
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER annulments_append_only BEFORE UPDATE OR DELETE ON registration_annulments
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER daily_registers_append_only BEFORE UPDATE OR DELETE ON daily_registers
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
