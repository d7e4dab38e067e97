-- Notifications: what the citizen sees in the notification centre, and the
-- email/SMS deliveries with their log.

-- recapiti: the contacts and preferences known for a citizen. A request may
-- carry its own contact, which its notifications use first.
CREATE TABLE citizen_contacts (
    tax_code      text        PRIMARY KEY,
    email         text,
    phone         text,
    email_enabled boolean     NOT NULL DEFAULT true,
    sms_enabled   boolean     NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One notification per (event, rule): a redelivered or republished event
-- finds its row and plans nothing again.
CREATE TABLE notifications (
    id             uuid        PRIMARY KEY,
    event_id       uuid        NOT NULL,
    rule           text        NOT NULL,
    tax_code       text        NOT NULL,
    -- The tabs of the notification centre: Avvisi e messaggi, Scadenze, Appuntamenti.
    tab            text        NOT NULL CHECK (tab IN ('messages', 'deadlines', 'appointments')),
    title          text        NOT NULL,
    body           text        NOT NULL,
    -- What it is about (ticket, case, appointment, ...), for the operators' log.
    subject_kind   text,
    subject_id     uuid,
    -- Deadline or appointment start; the centre counts the days left to it.
    due_at         timestamptz,
    link           text,
    -- The link is shown only on the Europe/Rome day of due_at (video calls).
    link_on_due_day boolean    NOT NULL DEFAULT false,
    -- Set when no delivery could be planned (no contact, or all disabled).
    unreachable    text,
    correlation_id text        NOT NULL,
    created_at     timestamptz NOT NULL,
    read_at        timestamptz,
    -- Superseded by a later event about the same subject (an appointment
    -- cancelled): no longer a deadline.
    withdrawn_at   timestamptz,
    -- The office whose operators may read its delivery log (an
    -- appointment's; tickets and cases are checked against their own).
    office_aoo     text,
    UNIQUE (event_id, rule)
);
CREATE INDEX notifications_by_citizen ON notifications (tax_code, tab, created_at DESC);
CREATE INDEX notifications_unread ON notifications (tax_code, tab) WHERE read_at IS NULL;
CREATE INDEX notifications_by_subject ON notifications (subject_id);

-- One delivery per notification and medium, rendered when planned.
CREATE TABLE deliveries (
    id              uuid        PRIMARY KEY,
    notification_id uuid        NOT NULL REFERENCES notifications (id),
    medium          text        NOT NULL CHECK (medium IN ('email', 'sms')),
    address         text        NOT NULL,
    subject         text,
    text_body       text        NOT NULL,
    html_body       text,
    state           text        NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    -- When a queued delivery is due; when a sending one's claim expires.
    due_at          timestamptz NOT NULL,
    last_error      text,
    provider_id     text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (notification_id, medium)
);
CREATE INDEX deliveries_due ON deliveries (medium, due_at) WHERE state IN ('queued', 'sending');

-- Every attempt, never edited: the delivery log operators read.
CREATE TABLE delivery_attempts (
    id          bigserial   PRIMARY KEY,
    delivery_id uuid        NOT NULL REFERENCES deliveries (id),
    attempt     integer     NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    detail      text,
    at          timestamptz NOT NULL,
    UNIQUE (delivery_id, attempt)
);

CREATE TRIGGER delivery_attempts_append_only BEFORE UPDATE OR DELETE ON delivery_attempts
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
