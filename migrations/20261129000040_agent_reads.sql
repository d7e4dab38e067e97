-- Contact-centre agents reading a caller's tickets (issue 15): every read
-- (history search or one ticket) is recorded here in the transaction that
-- serves it, with how the caller was identified on the phone. Operators of
-- an office query the reads of their office's tickets. Append-only.
CREATE TABLE agent_reads (
    id               bigserial   PRIMARY KEY,
    agent_id         text        NOT NULL,
    citizen_tax_code text        NOT NULL,
    identified_by    text        NOT NULL
        CHECK (identified_by IN ('spid', 'cie', 'cns', 'pin', 'pin_simplified')),
    -- ticket_search: GET /tickets (with `query`); ticket_detail: GET /tickets/{id}.
    what             text        NOT NULL CHECK (what IN ('ticket_search', 'ticket_detail')),
    -- What the agent was shown, and the office of each of those tickets
    -- when it was read (aligned): the operators who may see the read.
    ticket_ids       uuid[]      NOT NULL,
    offices          text[]      NOT NULL
        CHECK (cardinality(offices) = cardinality(ticket_ids)),
    query            jsonb,
    correlation_id   text        NOT NULL,
    read_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_reads_by_office ON agent_reads USING gin (offices);

CREATE TRIGGER agent_reads_append_only BEFORE UPDATE OR DELETE ON agent_reads
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
