-- The spine: inbox (exactly-once effects), outbox (reliable events), durable timers, first tickets.

-- Every intake message that changed state is remembered here, in the same
-- transaction as its effects. A redelivery or a resend (same message id, or the
-- same principal re-using an idempotency key) finds its row and does nothing.
CREATE TABLE inbox (
    message_id       uuid        PRIMARY KEY,
    message_type     text        NOT NULL,
    -- The idempotency key is scoped by whoever acted, so one citizen's key can
    -- never suppress another citizen's request.
    idempotency_scope text       NOT NULL,
    idempotency_key  text        NOT NULL,
    -- SHA-256 of the payload: a key re-used with different content is an error,
    -- not a silent duplicate.
    payload_sha256   text        NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (idempotency_scope, idempotency_key)
);

-- Events leave through here, written in the transaction that caused them and
-- relayed to the broker with publisher confirms; rows are deleted only once
-- the broker has confirmed them.
CREATE TABLE outbox (
    id             bigserial   PRIMARY KEY,
    message_id     uuid        NOT NULL,
    exchange       text        NOT NULL,
    routing_key    text        NOT NULL,
    message_type   text        NOT NULL,
    correlation_id text        NOT NULL,
    -- The exact JSON bytes to publish.
    body           bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sportello_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

-- Durable timers: schedule at an instant, cancel, fire at least once.
CREATE TYPE timer_state AS ENUM ('scheduled', 'fired', 'cancelled');

CREATE TABLE timers (
    id           uuid        PRIMARY KEY,
    -- What the timer is for (`appointment.hold`, `cron`, ...): it becomes the
    -- routing key suffix of the `timer.fired` event.
    kind         text        NOT NULL,
    -- Caller's natural key, e.g. the appointment id: scheduling twice is a no-op.
    key          text        NOT NULL,
    fire_at      timestamptz NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state        timer_state NOT NULL DEFAULT 'scheduled',
    correlation_id text      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    fired_at     timestamptz,
    cancelled_at timestamptz,
    UNIQUE (kind, key)
);

CREATE INDEX timers_due ON timers (fire_at) WHERE state = 'scheduled';

CREATE FUNCTION notify_timers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sportello_timers', '');
    RETURN NULL;
END $$;

CREATE TRIGGER timers_changed AFTER INSERT OR UPDATE OF fire_at ON timers
    FOR EACH STATEMENT EXECUTE FUNCTION notify_timers();

-- quesito: a back-office ticket opened by a citizen's request.
CREATE TYPE ticket_state AS ENUM ('aperta', 'in_carico', 'chiusa');

CREATE TABLE tickets (
    id                 uuid         PRIMARY KEY,
    -- The request that opened it. One ticket per request is guaranteed by the
    -- inbox row written in the same transaction, so no second index here.
    request_message_id uuid         NOT NULL,
    channel            text         NOT NULL,
    ambito             text         NOT NULL,
    matricola          text,
    subject            text         NOT NULL,
    body               text         NOT NULL,
    -- codice fiscale of the person the request is about (the citizen, or the
    -- citizen a contact-centre agent acted for).
    subject_tax_code   text         NOT NULL,
    -- Who published it, exactly as the envelope carried it.
    submitted_by       jsonb        NOT NULL,
    contact_email      text,
    contact_phone      text,
    state              ticket_state NOT NULL DEFAULT 'aperta',
    correlation_id     text         NOT NULL,
    opened_at          timestamptz  NOT NULL,
    updated_at         timestamptz  NOT NULL
);

CREATE INDEX tickets_subject_tax_code ON tickets (subject_tax_code, opened_at DESC);
CREATE INDEX tickets_matricola ON tickets (matricola, opened_at DESC) WHERE matricola IS NOT NULL;
