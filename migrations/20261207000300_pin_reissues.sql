-- Issue 27 point 5: a PIN half whose delivery failed for good is replaced
-- by a new PIN (*nuovo PIN*), asked for by a contact-centre agent for the
-- caller or by an operator of the competent office.

-- When the current initial PIN was issued (request, recovery, reissue):
-- its halves are the half deliveries from then on. Backfilled from the
-- request, or the last confirmed recovery.
ALTER TABLE pin_credentials ADD COLUMN issued_at timestamptz;
UPDATE pin_credentials c
   SET issued_at = GREATEST(c.requested_at,
                            COALESCE((SELECT max(r.confirmed_at) FROM pin_recoveries r
                                       WHERE r.tax_code = c.tax_code), c.requested_at));
ALTER TABLE pin_credentials ALTER COLUMN issued_at SET NOT NULL;

-- One reissue per failed half: asking again for the same half answers the
-- same reissue (idempotent), and two agents at once make one. Who asked is
-- kept; no half, no address: the new first half's delivery and letter say
-- where the new PIN went.
CREATE TABLE pin_reissues (
    id                   uuid        PRIMARY KEY,
    tax_code             text        NOT NULL REFERENCES pin_credentials (tax_code),
    replaces_delivery_id uuid        NOT NULL UNIQUE REFERENCES deliveries (id),
    requested_by_kind    text        NOT NULL
                                     CHECK (requested_by_kind IN ('contact_center_agent', 'operator')),
    -- The agent's or the operator's id.
    requested_by         text        NOT NULL,
    -- The operator's office (NULL for an agent).
    office_aoo           text,
    -- sms, email or pec.
    first_half_to        text        NOT NULL CHECK (first_half_to IN ('sms', 'email', 'pec')),
    first_half_delivery_id uuid      NOT NULL REFERENCES deliveries (id),
    letter_id            uuid        NOT NULL REFERENCES pin_postal_letters (id),
    correlation_id       text        NOT NULL,
    reissued_at          timestamptz NOT NULL
);
CREATE INDEX pin_reissues_by_tax_code ON pin_reissues (tax_code, reissued_at DESC);

CREATE TRIGGER pin_reissues_append_only
    BEFORE UPDATE OR DELETE ON pin_reissues
    FOR EACH ROW EXECUTE FUNCTION forbid_change();
