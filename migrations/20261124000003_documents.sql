-- Cases, delegations and documents (video room, Cassetto).

-- pratica: what documents belong to. Tickets and video-room appointments own
-- one; `office_aoo` is the competent office, whose operators act on it.
CREATE TABLE cases (
    id          uuid        PRIMARY KEY,
    citizen_tax_code text   NOT NULL,
    matricola   text,
    office_aoo  text        NOT NULL CHECK (office_aoo ~ '^[0-9]{4}$'),
    subject     text        NOT NULL,
    opened_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_by_citizen ON cases (citizen_tax_code);

-- delega: an intermediary may act for a citizen (or one of their contribution
-- positions, when `matricola` is set) between valid_from and valid_to, unless revoked.
CREATE TABLE delegations (
    id                    uuid        PRIMARY KEY,
    intermediary_tax_code text        NOT NULL,
    citizen_tax_code      text        NOT NULL,
    matricola             text,
    valid_from            timestamptz NOT NULL,
    valid_to              timestamptz NOT NULL,
    revoked_at            timestamptz,
    CHECK (valid_from < valid_to)
);
CREATE INDEX delegations_by_intermediary ON delegations (intermediary_tax_code, citizen_tax_code);

CREATE TABLE documents (
    id             uuid        PRIMARY KEY,
    case_id        uuid        NOT NULL REFERENCES cases (id),
    -- from_citizen: "Inviati" for the citizen; to_citizen: "Ricevuti".
    direction      text        NOT NULL CHECK (direction IN ('from_citizen', 'to_citizen')),
    -- Sanitised display name; storage is by content hash, never by name.
    file_name      text        NOT NULL,
    media_type     text        NOT NULL,
    size_bytes     bigint      NOT NULL CHECK (size_bytes > 0),
    sha256         text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    state          text        NOT NULL CHECK (state IN ('uploaded', 'registration_in_progress', 'registered', 'deleted')),
    conformity_asserted boolean NOT NULL,
    uploaded_by    jsonb       NOT NULL,
    uploaded_at    timestamptz NOT NULL,
    registration_id uuid       REFERENCES registrations (id)
);
CREATE INDEX documents_by_case ON documents (case_id, uploaded_at);

-- Every state change, with who and when; append-only.
CREATE TABLE document_transitions (
    id          bigserial   PRIMARY KEY,
    document_id uuid        NOT NULL REFERENCES documents (id),
    from_state  text,
    to_state    text        NOT NULL,
    actor       jsonb       NOT NULL,
    at          timestamptz NOT NULL,
    correlation_id text     NOT NULL
);
CREATE INDEX document_transitions_by_document ON document_transitions (document_id, id);

CREATE TRIGGER document_transitions_append_only BEFORE UPDATE OR DELETE ON document_transitions
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
