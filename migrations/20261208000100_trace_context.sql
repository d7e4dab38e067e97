-- The W3C trace context of the transaction that wrote a row, carried to the
-- process that takes it later: the outbox relay (its event continues the
-- trace that caused it) and the email and SMS senders (a notification's
-- deliveries continue the trace of the event that planned it). NULL: rows
-- written before this migration, or by a writer with no trace; what is
-- made of them starts a new trace.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;
ALTER TABLE notifications ADD COLUMN traceparent text, ADD COLUMN tracestate text;
