-- Issue 34: what the booking rules and the notifications of every mode need.

-- Where a citizen goes for an in-person appointment (the confirmation and
-- the reminder say it). Nullable: an office without one is still bookable,
-- and its notifications name the office alone. The addresses below are the
-- sample data's, like its calendars; operations set the real ones.
ALTER TABLE offices ADD COLUMN address text CHECK (length(address) BETWEEN 1 AND 300);
UPDATE offices SET address = seed.address
FROM (VALUES
    ('1900', 'Via Dante Alighieri 37, 26100 Cremona'),
    ('1901', 'Via Mercato 40, 26013 Crema CR'),
    ('2600', 'Viale Milano 31, 26900 Lodi'),
    ('2601', 'Viale Gorizia 10, 26845 Codogno LO'),
    ('4902', 'Via Benedetto Croce 2, 20162 Milano'),
    ('4903', 'Via Manfredo Camperio 6, 20123 Milano'),
    ('3400', 'Via Ippolito d''Aste 3, 16121 Genova'),
    ('3401', 'Via Fasce 15, 16039 Sestri Levante GE'),
    ('3402', 'Via Sestri 34, 16154 Genova'),
    ('7500', 'Via San Giuseppe 12, 89125 Reggio Calabria'),
    ('2300', 'Via Montesanto 51, 87100 Cosenza')
) AS seed (aoo, address)
WHERE offices.aoo = seed.aoo;

-- Cassetto topics (seed 001, "Comunicazione bidirezionale"): the matters of
-- contribution positions. A booking at a desk whose every topic is a
-- Cassetto topic concerns a Cassetto topic, whatever its channel: it is made
-- from the conversation about it, after the topic's `appointment_after_days`
-- or once the request was rejected.
ALTER TABLE ambiti ADD COLUMN cassetto boolean NOT NULL DEFAULT false;
UPDATE ambiti SET cassetto = true
WHERE code IN ('uniemens', 'versamenti', 'regolarita_contributiva', 'certificazioni');
