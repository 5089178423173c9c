-- A source's media are listed in pages, newest first, resuming after (created_at, id): the
-- index holds the id too, so a page is one range scan however many media share a millisecond.
DROP INDEX media_source;
CREATE INDEX media_source ON media (source_type, source_id, created_at, id);
