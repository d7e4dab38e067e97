-- The inbox is purged by age (cron job `inbox-retention`). Rows arrive in
-- time order, so a BRIN index finds the old ones at almost no cost to the
-- intake's inserts.
CREATE INDEX inbox_received_at ON inbox USING brin (received_at);
