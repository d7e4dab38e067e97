-- Issue 27: what a contact-centre agent does on a caller's simplified PIN
-- names the verification of the half the caller read out
-- (pin_agent_verifications): the application it submits, and its reads.

-- The verification an agent's application was submitted under (NULL: the
-- applicant was identified otherwise, or applied themselves).
ALTER TABLE applications ADD COLUMN pin_verification_id uuid
    REFERENCES pin_agent_verifications (id);

-- Agents' reads of a caller's applications are recorded beside their reads
-- of tickets: `ticket_ids` are the applications' back-office cases.
ALTER TABLE agent_reads ADD COLUMN pin_verification_id uuid
    REFERENCES pin_agent_verifications (id);
ALTER TABLE agent_reads DROP CONSTRAINT agent_reads_what_check;
ALTER TABLE agent_reads ADD CONSTRAINT agent_reads_what_check CHECK (
    what IN ('ticket_search', 'ticket_detail', 'application_list', 'application_detail')
);

-- Bookings never admit the simplified PIN (the access policy's
-- `appointments`, seed 000: a full digital identity), so no booking is made
-- under a verification: the column added for it would stay empty.
ALTER TABLE appointments DROP COLUMN pin_verification_id;
