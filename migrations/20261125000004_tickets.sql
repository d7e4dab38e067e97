-- Back-office tickets (quesiti): routing reference data, registration,
-- lifecycle history, search.

-- Offices (sedi) are identified by their AOO, the registering unit of their
-- protocol numbers. Exactly one office is the triage desk: requests no rule
-- routes land there, are registered there, and its operators reassign them.
CREATE TABLE offices (
    aoo       text    PRIMARY KEY CHECK (aoo ~ '^[0-9]{4}$'),
    name      text    NOT NULL,
    province  text    CHECK (province ~ '^[A-Z]{2}$'),
    is_triage boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX offices_one_triage ON offices (is_triage) WHERE is_triage;

-- Desks (sportelli) of an office, by the kind of matter they handle. One desk
-- may handle several kinds (it then has several rows with the same name).
CREATE TABLE desks (
    office_aoo text NOT NULL REFERENCES offices (aoo),
    kind       text NOT NULL,
    name       text NOT NULL,
    PRIMARY KEY (office_aoo, kind)
);

-- Ambiti: the areas a request can be about, and the kind of desk that handles each.
CREATE TABLE ambiti (
    code      text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,63}$'),
    label     text NOT NULL,
    desk_kind text NOT NULL
);

-- Smistamento: territory -> office. The most specific rule wins: postal code,
-- then municipality, then province. Municipality names are stored lower case.
CREATE TABLE routing_rules (
    id           bigserial PRIMARY KEY,
    province     text NOT NULL CHECK (province ~ '^[A-Z]{2}$'),
    municipality text CHECK (municipality = lower(municipality)),
    postal_code  text CHECK (postal_code ~ '^[0-9]{5}$'),
    office_aoo   text NOT NULL REFERENCES offices (aoo),
    UNIQUE NULLS NOT DISTINCT (province, municipality, postal_code)
);
CREATE INDEX routing_rules_by_province ON routing_rules (province);

INSERT INTO offices (aoo, name, province, is_triage) VALUES
    ('0001', 'Smistamento centrale', NULL, true),
    ('1900', 'Direzione Provinciale Cremona', 'CR', false),
    ('1901', 'Agenzia territoriale di Crema', 'CR', false),
    ('2600', 'Direzione Provinciale Lodi', 'LO', false),
    ('2601', 'Agenzia territoriale di Codogno', 'LO', false),
    ('4902', 'Agenzia complessa Milano Nord', 'MI', false),
    ('4903', 'Agenzia complessa di Milano Est', 'MI', false),
    ('3400', 'Direzione Provinciale Genova', 'GE', false),
    ('3401', 'Agenzia complessa di Sestri Levante', 'GE', false),
    ('3402', 'Agenzia complessa di Sestri Ponente', 'GE', false),
    ('7500', 'Direzione Provinciale Reggio Calabria', 'RC', false),
    ('2300', 'Direzione Provinciale Cosenza', 'CS', false);

INSERT INTO desks (office_aoo, kind, name)
SELECT aoo, 'aziende', 'aziende e contribuzione' FROM offices WHERE NOT is_triage;

INSERT INTO desks (office_aoo, kind, name) VALUES
    ('1900', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('1900', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('1901', 'conto_assicurativo', 'conto assicurativo e pensioni'),
    ('1901', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('2600', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('2600', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('2601', 'conto_assicurativo', 'conto assicurativo-pensioni-indennità-ammortizzatori sociali'),
    ('2601', 'ammortizzatori', 'conto assicurativo-pensioni-indennità-ammortizzatori sociali'),
    ('4902', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('4902', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('4903', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('4903', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('3400', 'conto_assicurativo', 'conto assicurativo'),
    ('3400', 'pensioni', 'pensioni'),
    ('3400', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('3401', 'multiservizi', 'multiservizi'),
    ('3402', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('3402', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('7500', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('7500', 'ammortizzatori', 'indennità e ammortizzatori sociali'),
    ('2300', 'conto_assicurativo', 'conto assicurativo-pensioni-prestazioni pubbliche-inv. civ.'),
    ('2300', 'ammortizzatori', 'indennità e ammortizzatori sociali');

-- Where one desk covers "conto assicurativo-pensioni-...", it handles pensions too.
INSERT INTO desks (office_aoo, kind, name)
SELECT office_aoo, 'pensioni', name FROM desks
WHERE kind = 'conto_assicurativo' AND name LIKE '%pensioni%';

INSERT INTO ambiti (code, label, desk_kind) VALUES
    ('uniemens', 'UniEmens', 'aziende'),
    ('versamenti', 'Versamenti', 'aziende'),
    ('regolarita_contributiva', 'Regolarità contributiva (DURC)', 'aziende'),
    ('certificazioni', 'Certificazioni', 'aziende'),
    ('estratto_conto', 'Estratto conto contributivo', 'conto_assicurativo'),
    ('pensioni', 'Pensioni', 'pensioni'),
    ('invalidita_civile', 'Invalidità civile', 'conto_assicurativo'),
    ('ammortizzatori_sociali', 'Indennità e ammortizzatori sociali', 'ammortizzatori');

INSERT INTO routing_rules (province, municipality, postal_code, office_aoo) VALUES
    ('CR', NULL, NULL, '1900'),
    ('CR', 'crema', NULL, '1901'),
    ('LO', NULL, NULL, '2600'),
    ('LO', 'codogno', NULL, '2601'),
    ('GE', NULL, NULL, '3400'),
    ('GE', 'sestri levante', NULL, '3401'),
    ('GE', 'genova', '16153', '3402'),
    ('GE', 'genova', '16154', '3402'),
    ('RC', NULL, NULL, '7500'),
    ('CS', NULL, NULL, '2300'),
    ('MI', 'milano', '20125', '4902'),
    ('MI', 'milano', '20126', '4902'),
    ('MI', 'milano', '20127', '4902'),
    ('MI', 'milano', '20158', '4902'),
    ('MI', 'milano', '20159', '4902'),
    ('MI', 'milano', '20161', '4902'),
    ('MI', 'milano', '20162', '4902'),
    ('MI', 'milano', '20128', '4903'),
    ('MI', 'milano', '20129', '4903'),
    ('MI', 'milano', '20131', '4903'),
    ('MI', 'milano', '20132', '4903'),
    ('MI', 'milano', '20133', '4903'),
    ('MI', 'milano', '20134', '4903'),
    ('MI', 'milano', '20137', '4903'),
    ('MI', 'milano', '20138', '4903'),
    ('MI', 'milano', '20139', '4903');

-- Tickets now carry where they were routed and their protocol registration.
-- Before this migration no deployment held tickets; any test rows go to triage.
ALTER TABLE tickets
    ADD COLUMN office_aoo text REFERENCES offices (aoo),
    ADD COLUMN desk_kind text,
    -- How it reached its office: `rule`, `triage` (no rule matched; see
    -- routing_note), or `reassigned` by an operator.
    ADD COLUMN routed_by text NOT NULL DEFAULT 'triage'
        CHECK (routed_by IN ('rule', 'triage', 'reassigned')),
    ADD COLUMN routing_note text,
    ADD COLUMN registration_id uuid REFERENCES registrations (id),
    ADD COLUMN assigned_operator text,
    -- esito: set when closed, never otherwise.
    ADD COLUMN outcome text CHECK (outcome IN ('accolta', 'respinta', 'evasa')),
    ADD COLUMN province text,
    ADD COLUMN municipality text,
    ADD COLUMN subject_search tsvector
        GENERATED ALWAYS AS (to_tsvector('italian', subject)) STORED,
    ADD CONSTRAINT tickets_outcome_when_closed
        CHECK ((state = 'chiusa') = (outcome IS NOT NULL));
UPDATE tickets SET office_aoo = '0001' WHERE office_aoo IS NULL;
ALTER TABLE tickets ALTER COLUMN office_aoo SET NOT NULL, ALTER COLUMN routed_by DROP DEFAULT;

CREATE INDEX tickets_office_queue ON tickets (office_aoo, updated_at DESC);
CREATE INDEX tickets_subject_search ON tickets USING gin (subject_search);

-- Every change of a ticket, in order, never edited: opening, routing,
-- taking in charge, comments (public: the citizen sees them; internal: staff
-- only), reassignment, closing with its outcome.
CREATE TABLE ticket_history (
    id             bigserial    PRIMARY KEY,
    ticket_id      uuid         NOT NULL REFERENCES tickets (id),
    kind           text         NOT NULL CHECK (kind IN
                       ('opened', 'taken_in_charge', 'commented', 'reassigned', 'closed')),
    from_state     ticket_state,
    to_state       ticket_state NOT NULL,
    visibility     text         NOT NULL CHECK (visibility IN ('public', 'internal')),
    comment        text,
    outcome        text,
    from_office    text,
    to_office      text,
    actor          jsonb        NOT NULL,
    at             timestamptz  NOT NULL,
    correlation_id text         NOT NULL,
    -- The client's key for this action (a form's token, an Idempotency-Key
    -- header): the same action sent twice is applied once.
    action_key     text,
    UNIQUE (ticket_id, action_key)
);
CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_id, id);

CREATE TRIGGER ticket_history_append_only BEFORE UPDATE OR DELETE ON ticket_history
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
