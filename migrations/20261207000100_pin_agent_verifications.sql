-- Issue 27: a contact-centre agent checks the first half of the PIN that
-- the caller reads out (POST /pin/agent-verifications, or the broker's
-- pin.verification_requested). A match is kept here: which agent, which
-- caller, when, and until when it serves the call. The half itself is
-- never kept: it was compared with the credential's argon2 hash and
-- dropped. What the agent then does on the simplified PIN names the row.
CREATE TABLE pin_agent_verifications (
    id             uuid        PRIMARY KEY,
    agent_id       text        NOT NULL,
    tax_code       text        NOT NULL,
    verified_at    timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL CHECK (expires_at > verified_at),
    correlation_id text        NOT NULL
);
CREATE INDEX pin_agent_verifications_by_tax_code
    ON pin_agent_verifications (tax_code, verified_at DESC);

CREATE TRIGGER pin_agent_verifications_append_only
    BEFORE UPDATE OR DELETE ON pin_agent_verifications
    FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- The verification an agent's booking was made under (NULL: the caller
-- was identified otherwise).
ALTER TABLE appointments ADD COLUMN pin_verification_id uuid
    REFERENCES pin_agent_verifications (id);
