-- The citizen's name as the booking declared it (Prenota's optional
-- `citizen_name`): the video room's session panel names its participants.
-- Optional: bookings made before, or by channels that do not send it, keep
-- only the codice fiscale.
ALTER TABLE appointments
    ADD COLUMN citizen_name text
        CHECK (citizen_name IS NULL OR length(citizen_name) BETWEEN 1 AND 120);
