-- Issue 33 point 2: every submission has a visible fate (GET /submissions).

-- A message the intake refused, kept when its envelope could be read: the
-- dead letter is the operators' copy, this is what its publisher and the
-- citizen it concerns may read. Written before the dead letter is sent, so
-- a redelivery writes it again (the latest refusal wins); forgotten with
-- the inbox (INBOX_RETENTION_DAYS).
CREATE TABLE submission_refusals (
    message_id       uuid        PRIMARY KEY,
    -- The publisher's actor key (citizen:…, intermediary:…, agent:…, operator:…).
    submitter        text        NOT NULL,
    message_type     text        NOT NULL,
    idempotency_key  text        NOT NULL,
    -- The citizen it concerns, when the principal alone says so.
    subject_tax_code text,
    code             text        NOT NULL,
    reason           text        NOT NULL,
    refused_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX submission_refusals_key
    ON submission_refusals (submitter, message_type, idempotency_key);

-- A resend under a new message id (the F5) makes nothing new: the inbox
-- keeps only the first, so the resend's id is kept here, with the first's.
-- Only resends write here; forgotten with the inbox.
CREATE TABLE duplicate_submissions (
    message_id          uuid        PRIMARY KEY,
    original_message_id uuid        NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now()
);

-- The ticket a request opened, by the request's message id.
CREATE INDEX tickets_request_message_id ON tickets (request_message_id);
