-- Benefit applications (domande di prestazione). Each is worked as a ticket
-- (its back-office case) and registered under the ticket's protocol number;
-- this table keeps what only an application has.
CREATE TABLE applications (
    id                 uuid        PRIMARY KEY,
    -- One application per citizen per benefit: a resubmission (the F5) finds
    -- this row, a concurrent one fails on it and is retried against it.
    citizen_tax_code   text        NOT NULL,
    benefit            text        NOT NULL,
    category           text        NOT NULL,
    ticket_id          uuid        NOT NULL UNIQUE REFERENCES tickets (id),
    -- The message that made it.
    message_id         uuid        NOT NULL UNIQUE,
    -- Benefit, category, applicant, fields and IBAN: tells a resubmission of
    -- the same application from a different second one.
    fingerprint        text        NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    applicant          jsonb       NOT NULL,
    fields             jsonb       NOT NULL,
    iban               text        NOT NULL,
    -- The account's holders as declared (intestatari).
    holders            jsonb       NOT NULL,
    channel            text        NOT NULL,
    submitted_by       jsonb       NOT NULL,
    -- The credential it was submitted with (for an agent: how the citizen
    -- identified on the phone, e.g. pin_simplified).
    credential         text,
    -- When the channel accepted it (the window is judged at this instant).
    submitted_at       timestamptz NOT NULL,
    registered_at      timestamptz NOT NULL,
    UNIQUE (citizen_tax_code, benefit)
);
