-- The pending outbox index holds only the rows still waiting, as on PostgreSQL: marking a row
-- published removes its entry instead of moving it, and the index stays as small as the
-- backlog however long the outbox grows.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
