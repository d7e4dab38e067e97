-- Issue 33 point 4: which schemes (gestioni) are open to booking is data,
-- as it is for deleghe. Seed 002: the Agenda opens to positions of other
-- schemes, UniEmens first; opening one is an UPDATE of this table.
ALTER TABLE gestioni ADD COLUMN open_to_booking boolean NOT NULL DEFAULT false;
UPDATE gestioni SET open_to_booking = true WHERE code = 'aziende_uniemens';

-- The scheme of the position an appointment is about: an intermediary's
-- delega must cover it. Every appointment so far was a UniEmens one, and a
-- writer that names none (an older binary in a rolling upgrade) books one.
ALTER TABLE appointments
    ADD COLUMN gestione text NOT NULL DEFAULT 'aziende_uniemens' REFERENCES gestioni (code);
