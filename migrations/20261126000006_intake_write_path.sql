-- The intake writes a ticket and everything that points at its registration
-- before it takes the protocol number, so that the AOO counter locks (which
-- serialise every registrar of that office) are held only for the
-- registrations, the events and the commit. The references to a
-- registration are therefore checked at commit.
ALTER TABLE tickets
    ALTER CONSTRAINT tickets_registration_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE documents
    ALTER CONSTRAINT documents_registration_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- Only operators' actions carry an action key; the `opened` entry of every
-- ticket does not need an index entry of its own.
ALTER TABLE ticket_history DROP CONSTRAINT ticket_history_ticket_id_action_key_key;
CREATE UNIQUE INDEX ticket_history_action_key ON ticket_history (ticket_id, action_key)
    WHERE action_key IS NOT NULL;
