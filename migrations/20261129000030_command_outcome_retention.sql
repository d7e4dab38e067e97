-- Kept booking-command outcomes are purged with the inbox rows they answer
-- for (cron job `retention`, INBOX_RETENTION_DAYS). Rows arrive in time
-- order, so a BRIN index finds the old ones at almost no cost to inserts.
CREATE INDEX appointment_command_outcomes_recorded_at
    ON appointment_command_outcomes USING brin (recorded_at);
