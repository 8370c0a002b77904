-- A send commits its message (and its idempotency key, and any worker job) to the outbox
-- before producing it, then produces it directly and deletes the row after the ack. The row
-- waits for the relay only past `not_before`, by when the direct attempt has ended one way or
-- the other: a process that died after the commit never loses the message, and one that died
-- after the ack leaves at most a repeat of the same event (same event and message id).
ALTER TABLE outbox ADD COLUMN not_before TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX outbox_due ON outbox (not_before, id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
