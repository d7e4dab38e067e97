-- Dead letters kept for the integrator's tools (`sportello dead-letters`):
-- collected once from the broker's sportello.dead-letter queue (acked after
-- this row committed), then listed, shown, replayed or discarded here without
-- touching a broker message again. Rows are never deleted by the tools:
-- replaying or discarding records when.
CREATE TABLE dead_letters (
    -- The id the tools show: stable, in the order the letters were collected.
    id             BIGSERIAL PRIMARY KEY,
    -- As the sender sent it (not necessarily a UUID); empty when none.
    message_id     TEXT NOT NULL,
    message_type   TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    exchange       TEXT NOT NULL,
    routing_key    TEXT NOT NULL,
    queue          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    failed_at      TIMESTAMPTZ,
    collected_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    headers        JSONB NOT NULL,
    body           BYTEA NOT NULL,
    -- A copy the broker delivers twice (collector stopped before its ack) is
    -- kept once: digest of queue, routing key, failure time, reason, body.
    fingerprint    TEXT NOT NULL UNIQUE,
    replayed_at    TIMESTAMPTZ,
    discarded_at   TIMESTAMPTZ,
    CHECK (replayed_at IS NULL OR discarded_at IS NULL)
);

CREATE INDEX dead_letters_open ON dead_letters (id)
    WHERE replayed_at IS NULL AND discarded_at IS NULL;
