-- Booking over the broker: what each applied booking command answered (so a
-- repeat answers the same), and the phone call-backs handed to agents.

-- The outcome of every booking command applied from the broker, refusals
-- included, keyed like its inbox row. Written in the command's transaction.
CREATE TABLE appointment_command_outcomes (
    message_id        uuid        PRIMARY KEY,
    idempotency_scope text        NOT NULL,
    idempotency_key   text        NOT NULL,
    outcome           jsonb       NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (idempotency_scope, idempotency_key)
);

-- Ricontatto telefonico: each call put on an office desk's queue. One row
-- per attempt; the outcome is recorded once (the agent's message is applied
-- exactly once and only where no outcome is recorded yet).
CREATE TABLE appointment_calls (
    call_id        uuid        PRIMARY KEY,
    appointment_id uuid        NOT NULL REFERENCES appointments (id),
    attempt        integer     NOT NULL CHECK (attempt >= 1),
    queued_at      timestamptz NOT NULL,
    outcome        text        CHECK (outcome IN ('done', 'no_answer', 'rescheduled')),
    agent          text,
    note           text,
    recorded_at    timestamptz,
    UNIQUE (appointment_id, attempt),
    CHECK ((outcome IS NULL) = (recorded_at IS NULL))
);
CREATE INDEX appointment_calls_open ON appointment_calls (appointment_id) WHERE outcome IS NULL;
