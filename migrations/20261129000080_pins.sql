-- The institute's PIN (seed 003). No PIN, half or chosen, is ever stored in
-- clear: the credential keeps argon2id hashes (PHC strings); a half waiting
-- for its SMS/email is sealed (AES-256-GCM under a key derived from
-- PIN_SECRET) in pin_sealed_halves and deleted once its delivery is sent or
-- failed; the second half's letter waits sealed in pin_postal_letters until
-- the postal service takes it, then its seal is deleted.
CREATE TABLE pin_credentials (
    tax_code            text        PRIMARY KEY,
    -- issued: a 16-character initial PIN awaits first use; active: the
    -- citizen's own PIN; revoked: a new request is needed.
    state               text        NOT NULL CHECK (state IN ('issued', 'active', 'revoked')),
    -- The simplified access (first half alone) is for a PIN never activated.
    ever_activated      boolean     NOT NULL DEFAULT false,
    first_half_hash     text,
    initial_hash        text,
    pin_hash            text,
    -- Wrong attempts since the last success, and the lock they reached.
    failures            integer     NOT NULL DEFAULT 0,
    locks_in_a_row      integer     NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    surname             text        NOT NULL,
    name                text        NOT NULL,
    birth_date          date        NOT NULL,
    sex                 text        NOT NULL CHECK (sex IN ('M', 'F')),
    birthplace_code     text        NOT NULL,
    birth_municipality  text        NOT NULL,
    birth_province      text        NOT NULL,
    residence           jsonb       NOT NULL,
    home_phone          text,
    mobile              text,
    email               text,
    pec                 text,
    channel             text        NOT NULL,
    requested_at        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    CHECK (state <> 'issued' OR (initial_hash IS NOT NULL)),
    CHECK (state <> 'active' OR pin_hash IS NOT NULL)
);

-- A half held for its delivery (deliveries keep a body with a placeholder).
CREATE TABLE pin_sealed_halves (
    delivery_id  uuid        PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
    nonce        bytea       NOT NULL,
    sealed       bytea       NOT NULL,
    sealed_at    timestamptz NOT NULL DEFAULT now()
);

-- The print-and-mail queue of second halves (posta ordinaria).
CREATE TABLE pin_postal_letters (
    id           uuid        PRIMARY KEY,
    tax_code     text        NOT NULL,
    recipient    text        NOT NULL,
    address      jsonb       NOT NULL,
    -- Sealed second half: deleted (NULL) once the postal service took it.
    nonce        bytea,
    sealed       bytea,
    queued_at    timestamptz NOT NULL,
    taken_at     timestamptz,
    CHECK ((taken_at IS NULL) = (sealed IS NOT NULL))
);
CREATE INDEX pin_postal_letters_queued ON pin_postal_letters (queued_at) WHERE taken_at IS NULL;

-- Recovery (ripristino): confirmed by the link emailed to the citizen.
CREATE TABLE pin_recoveries (
    id            uuid        PRIMARY KEY,
    tax_code      text        NOT NULL REFERENCES pin_credentials (tax_code),
    -- SHA-256 of the link's secret; compared in constant time.
    secret_hash   bytea       NOT NULL,
    -- The two contacts the halves go to: medium:address each.
    first_to      text        NOT NULL,
    second_to     text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    confirmed_at  timestamptz
);

-- Conversion to "dispositivo": the request.submitted its upload wrote to the
-- intake (through the outbox); the ticket it opens carries the same
-- request_message_id, and that ticket's closing esito decides.
CREATE TABLE pin_conversions (
    message_id    uuid        PRIMARY KEY,
    tax_code      text        NOT NULL REFERENCES pin_credentials (tax_code),
    requested_at  timestamptz NOT NULL
);
CREATE INDEX pin_conversions_citizen ON pin_conversions (tax_code);

INSERT INTO ambiti (code, label, desk_kind) VALUES
    ('pin_dispositivo', 'Conversione del PIN in PIN dispositivo', 'conto_assicurativo');
