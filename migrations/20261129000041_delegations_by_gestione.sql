-- Delegations by scheme (issue 15, seed 002): an intermediary acts on a
-- citizen's positions of one scheme (gestione) only under an active delega
-- for that scheme; deleghe are granted and revoked by messages.

-- The institute's schemes. `open_to_delegations`: whether deleghe (and so
-- intermediaries' requests) are accepted for it. Seed 002's first release
-- opens Aziende UniEmens only, "successivamente saranno attivate anche le
-- altre gestioni": opening one is an UPDATE of this table, no code change.
CREATE TABLE gestioni (
    code                text    PRIMARY KEY CHECK (code ~ '^[a-z][a-z_]{1,39}$'),
    label               text    NOT NULL,
    open_to_delegations boolean NOT NULL DEFAULT false
);
INSERT INTO gestioni (code, label, open_to_delegations) VALUES
    ('aziende_uniemens', 'Aziende con dipendenti (UniEmens)', true),
    ('artigiani', 'Artigiani', false),
    ('commercianti', 'Commercianti', false),
    ('gestione_separata', 'Gestione separata', false),
    ('agricoli', 'Lavoratori agricoli autonomi', false),
    ('lavoratori_domestici', 'Lavoratori domestici', false),
    ('dipendenti_pubblici', 'Dipendenti pubblici', false);

-- Every delegation, ticket and case so far was about a UniEmens position,
-- the only scheme of the first release: that is their scheme. Tickets and
-- cases keep the default (appointments' cases are UniEmens in this release);
-- a delegation must always say.
ALTER TABLE delegations
    ADD COLUMN gestione text NOT NULL DEFAULT 'aziende_uniemens' REFERENCES gestioni (code);
ALTER TABLE delegations ALTER COLUMN gestione DROP DEFAULT;
ALTER TABLE tickets
    ADD COLUMN gestione text NOT NULL DEFAULT 'aziende_uniemens' REFERENCES gestioni (code);
ALTER TABLE cases
    ADD COLUMN gestione text NOT NULL DEFAULT 'aziende_uniemens' REFERENCES gestioni (code);

-- Who granted and revoked, and by which message (rows inserted by hand
-- before messages existed have none).
ALTER TABLE delegations
    ADD COLUMN granted_by jsonb,
    ADD COLUMN granted_by_message uuid,
    ADD COLUMN revoked_by jsonb,
    ADD COLUMN revoked_by_message uuid,
    ADD COLUMN revocation_reason text;

DROP INDEX delegations_by_intermediary;
CREATE INDEX delegations_by_intermediary
    ON delegations (intermediary_tax_code, citizen_tax_code, gestione);
CREATE INDEX delegations_by_position ON delegations (intermediary_tax_code, matricola);
