-- The video rooms (Sportello telematico, seed 000): one per confirmed video
-- appointment, made when its first link is opened, with its own case for
-- the documents exchanged in the call.
CREATE TABLE video_rooms (
    appointment_id    uuid        PRIMARY KEY REFERENCES appointments (id),
    case_id           uuid        NOT NULL UNIQUE REFERENCES cases (id),
    -- The operator granted the citizen permission to publish.
    admitted          boolean     NOT NULL DEFAULT false,
    chat_enabled      boolean     NOT NULL DEFAULT false,
    documents_enabled boolean     NOT NULL DEFAULT false,
    -- The operator who last joined.
    operator_id       text,
    ended_at          timestamptz,
    -- The 72-hour document window after the call; its durable timer
    -- (`video.window`, key = appointment id) closes it.
    window_closes_at  timestamptz,
    window_closed_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (window_closed_at IS NULL OR window_closes_at IS NOT NULL),
    CHECK (window_closes_at IS NULL OR ended_at IS NOT NULL)
);

-- One-time codes sent by SMS to the appointment's phone: only a keyed hash
-- is kept. A code is spent when used or after 5 attempts.
CREATE TABLE video_codes (
    id             bigserial   PRIMARY KEY,
    appointment_id uuid        NOT NULL REFERENCES video_rooms (appointment_id),
    code_hmac      bytea       NOT NULL,
    issued_at      timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    attempts       smallint    NOT NULL DEFAULT 0 CHECK (attempts BETWEEN 0 AND 5),
    used_at        timestamptz,
    -- The SMS delivery that carried it.
    delivery_id    uuid
);
CREATE INDEX video_codes_by_room ON video_codes (appointment_id, issued_at DESC);

-- A browser that proved who it is: the citizen with the SMS code, the
-- operator with the identity provider's token. The browser keeps the key,
-- we keep its SHA-256.
CREATE TABLE video_passes (
    key_sha256     text        PRIMARY KEY,
    appointment_id uuid        NOT NULL REFERENCES video_rooms (appointment_id),
    role           text        NOT NULL CHECK (role IN ('citizen', 'operator')),
    principal      jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX video_passes_by_room ON video_passes (appointment_id);

-- The two seats: a room never holds more than two participants, one per
-- role. A row is a live WebSocket on some gateway process, refreshed by its
-- heartbeat; a row silent for 30 s is free (its process died).
CREATE TABLE video_seats (
    appointment_id uuid        NOT NULL REFERENCES video_rooms (appointment_id),
    role           text        NOT NULL CHECK (role IN ('citizen', 'operator')),
    connection_id  uuid        NOT NULL UNIQUE,
    gateway_id     text        NOT NULL,
    seated_at      timestamptz NOT NULL,
    seen_at        timestamptz NOT NULL,
    PRIMARY KEY (appointment_id, role)
);

-- The chat, kept with the appointment's case: both directions, append-only.
CREATE TABLE video_chat_messages (
    id             bigserial   PRIMARY KEY,
    appointment_id uuid        NOT NULL REFERENCES video_rooms (appointment_id),
    case_id        uuid        NOT NULL REFERENCES cases (id),
    author_role    text        NOT NULL CHECK (author_role IN ('citizen', 'operator')),
    author_id      text        NOT NULL,
    body           text        NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    sent_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX video_chat_by_room ON video_chat_messages (appointment_id, id);

CREATE FUNCTION video_chat_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'video chat messages are append-only';
END $$;
CREATE TRIGGER video_chat_append_only BEFORE UPDATE OR DELETE ON video_chat_messages
    FOR EACH ROW EXECUTE FUNCTION video_chat_append_only();
