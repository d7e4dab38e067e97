-- Appointments (Agenda appuntamenti): calendars as data, office closures,
-- appointments with their two-phase booking, and one capacity row per
-- booked slot that makes a double booking impossible.

-- Opening hours per office x desk x mode (in person, phone call-back,
-- video call) and ISO weekday (1 = Monday), in Europe/Rome wall-clock time.
-- A slot starts every `slot_minutes` from `opens` and must end by `closes`;
-- `capacity` is the number of operators on duty for each slot. A row
-- applies from `valid_from` to `valid_to` (both included; NULL: no end).
-- Changing a calendar is a data change: new rows, or a `valid_to` on old ones.
CREATE TABLE calendars (
    id           bigserial PRIMARY KEY,
    office_aoo   text      NOT NULL,
    desk_kind    text      NOT NULL,
    mode         text      NOT NULL CHECK (mode IN ('in_person', 'phone', 'video')),
    weekday      smallint  NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens        time      NOT NULL,
    closes       time      NOT NULL,
    slot_minutes smallint  NOT NULL CHECK (slot_minutes BETWEEN 5 AND 240),
    capacity     smallint  NOT NULL CHECK (capacity BETWEEN 1 AND 100),
    valid_from   date      NOT NULL,
    valid_to     date,
    CHECK (opens < closes),
    CHECK (valid_to IS NULL OR valid_from <= valid_to),
    FOREIGN KEY (office_aoo, desk_kind) REFERENCES desks (office_aoo, kind)
);
CREATE INDEX calendars_by_desk ON calendars (office_aoo, desk_kind, mode);

-- Days an office is closed besides the national holidays (computed in
-- domain::appointment::holiday: fixed dates and Easter Monday), e.g. the
-- patron saint of its town.
CREATE TABLE office_closures (
    office_aoo text NOT NULL REFERENCES offices (aoo),
    day        date NOT NULL,
    reason     text NOT NULL,
    PRIMARY KEY (office_aoo, day)
);

-- Cassetto booking ("Richiedi appuntamento" from a conversation): allowed
-- this many days after the conversation's first message, per ambito.
ALTER TABLE ambiti
    ADD COLUMN appointment_after_days integer NOT NULL DEFAULT 10
        CHECK (appointment_after_days BETWEEN 0 AND 365);
UPDATE ambiti SET appointment_after_days = CASE code
    WHEN 'uniemens' THEN 15
    WHEN 'versamenti' THEN 10
    WHEN 'regolarita_contributiva' THEN 5
    WHEN 'certificazioni' THEN 10
    WHEN 'estratto_conto' THEN 20
    WHEN 'pensioni' THEN 15
    WHEN 'invalidita_civile' THEN 15
    WHEN 'ammortizzatori_sociali' THEN 7
    ELSE 10 END;

-- One row per slot someone booked: `taken` counts its live holds and
-- confirmed appointments, and the CHECK refuses more than its capacity.
-- Taking a seat is `taken = taken + 1 WHERE taken < capacity` under the
-- row's lock, so concurrent bookings of the last seat serialise and exactly
-- one wins. `capacity` is copied from the calendar at the first booking.
CREATE TABLE appointment_slots (
    office_aoo text        NOT NULL,
    desk_kind  text        NOT NULL,
    mode       text        NOT NULL,
    starts_at  timestamptz NOT NULL,
    capacity   smallint    NOT NULL CHECK (capacity >= 1),
    taken      smallint    NOT NULL CHECK (taken BETWEEN 0 AND capacity),
    PRIMARY KEY (office_aoo, desk_kind, mode, starts_at)
);

CREATE TABLE appointments (
    id               uuid        PRIMARY KEY,
    -- codice fiscale of the citizen the appointment is for.
    subject_tax_code text        NOT NULL,
    -- The contribution position, when booked by an intermediary under a delega.
    matricola        text,
    -- Who booked it, exactly as authenticated; and its kind, for queries.
    booked_by        jsonb       NOT NULL,
    booked_by_key    text        NOT NULL,
    channel          text        NOT NULL,
    office_aoo       text        NOT NULL,
    desk_kind        text        NOT NULL,
    mode             text        NOT NULL CHECK (mode IN ('in_person', 'phone', 'video')),
    starts_at        timestamptz NOT NULL,
    ends_at          timestamptz NOT NULL CHECK (starts_at < ends_at),
    state            text        NOT NULL
        CHECK (state IN ('held', 'confirmed', 'cancelled', 'expired', 'done')),
    hold_expires_at  timestamptz NOT NULL,
    phone            text        NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    notes            text        NOT NULL CHECK (length(notes) BETWEEN 1 AND 1000),
    -- The Cassetto conversation it was requested from.
    ticket_id        uuid        REFERENCES tickets (id),
    cancelled_by     text        CHECK (cancelled_by IN ('citizen', 'office')),
    cancel_reason    text,
    -- Prenota resent with the same key (per booking actor) is the same hold.
    idempotency_key  text,
    request_sha256   text        NOT NULL,
    correlation_id   text        NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    confirmed_at     timestamptz,
    cancelled_at     timestamptz,
    FOREIGN KEY (office_aoo, desk_kind) REFERENCES desks (office_aoo, kind),
    FOREIGN KEY (office_aoo, desk_kind, mode, starts_at)
        REFERENCES appointment_slots (office_aoo, desk_kind, mode, starts_at),
    CONSTRAINT appointments_idempotency UNIQUE (booked_by_key, idempotency_key)
);
CREATE INDEX appointments_by_subject ON appointments (subject_tax_code, starts_at DESC);
CREATE INDEX appointments_by_office ON appointments (office_aoo, starts_at);
CREATE INDEX appointments_by_slot ON appointments (office_aoo, desk_kind, mode, starts_at)
    WHERE state = 'held';

-- Seed 000: the video-call days (since 1 July 2025), 20-minute
-- appointments all day (08:30-16:30) on each desk's dedicated weekday.
-- Codogno's single desk serves both kinds of matter.
INSERT INTO calendars (office_aoo, desk_kind, mode, weekday, opens, closes, slot_minutes, capacity, valid_from)
SELECT office, kind, 'video', weekday, '08:30', '16:30', 20, 1, DATE '2025-07-01'
FROM (VALUES
    ('1900', 'conto_assicurativo', 4), ('1900', 'ammortizzatori', 4),
    ('1901', 'conto_assicurativo', 3), ('1901', 'ammortizzatori', 3),
    ('2600', 'conto_assicurativo', 2), ('2600', 'ammortizzatori', 2),
    ('2601', 'conto_assicurativo', 2), ('2601', 'ammortizzatori', 2),
    ('4902', 'conto_assicurativo', 4), ('4902', 'ammortizzatori', 3),
    ('4903', 'conto_assicurativo', 3), ('4903', 'ammortizzatori', 3),
    ('3400', 'conto_assicurativo', 1), ('3400', 'pensioni', 1), ('3400', 'ammortizzatori', 2),
    ('3401', 'multiservizi', 1),
    ('3402', 'conto_assicurativo', 1), ('3402', 'ammortizzatori', 2),
    ('7500', 'conto_assicurativo', 1), ('7500', 'ammortizzatori', 3),
    ('2300', 'conto_assicurativo', 3), ('2300', 'ammortizzatori', 5)
) AS seed (office, kind, weekday);

-- In person: mornings Monday to Friday, 30-minute slots, two operators;
-- not on a desk's video day (the whole day is the video call's).
INSERT INTO calendars (office_aoo, desk_kind, mode, weekday, opens, closes, slot_minutes, capacity, valid_from)
SELECT d.office_aoo, d.kind, 'in_person', w, '08:30', '12:30', 30, 2, DATE '2025-01-01'
FROM desks d CROSS JOIN generate_series(1, 5) AS w
WHERE NOT EXISTS (SELECT 1 FROM calendars c
                  WHERE c.office_aoo = d.office_aoo AND c.desk_kind = d.kind
                    AND c.mode = 'video' AND c.weekday = w);

-- Phone call-back (ricontatto telefonico): Monday to Thursday afternoons,
-- 15-minute calls, one operator.
INSERT INTO calendars (office_aoo, desk_kind, mode, weekday, opens, closes, slot_minutes, capacity, valid_from)
SELECT d.office_aoo, d.kind, 'phone', w, '14:00', '16:00', 15, 1, DATE '2025-01-01'
FROM desks d CROSS JOIN generate_series(1, 4) AS w
WHERE NOT EXISTS (SELECT 1 FROM calendars c
                  WHERE c.office_aoo = d.office_aoo AND c.desk_kind = d.kind
                    AND c.mode = 'video' AND c.weekday = w);

-- Patron saints of the offices' towns, every year to 2035.
INSERT INTO office_closures (office_aoo, day, reason)
SELECT office, make_date(y, m, d), reason
FROM (VALUES
    ('1900', 11, 13, 'Sant''Omobono, patrono di Cremona'),
    ('1901', 6, 10, 'San Pantaleone, patrono di Crema'),
    ('2600', 1, 19, 'San Bassiano, patrono di Lodi'),
    ('2601', 7, 16, 'Madonna del Carmine, patrona di Codogno'),
    ('4902', 12, 7, 'Sant''Ambrogio, patrono di Milano'),
    ('4903', 12, 7, 'Sant''Ambrogio, patrono di Milano'),
    ('3400', 6, 24, 'San Giovanni Battista, patrono di Genova'),
    ('3401', 6, 29, 'Santi Pietro e Paolo, patroni di Sestri Levante'),
    ('3402', 6, 24, 'San Giovanni Battista, patrono di Genova'),
    ('7500', 4, 23, 'San Giorgio, patrono di Reggio Calabria'),
    ('2300', 2, 12, 'Madonna del Pilerio, patrona di Cosenza')
) AS patron (office, m, d, reason)
CROSS JOIN generate_series(2025, 2035) AS y;
