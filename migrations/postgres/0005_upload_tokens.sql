-- A job uploaded with an upload token records the token's id: that token may read its status.
ALTER TABLE jobs ADD COLUMN token_id TEXT;
-- Single-use upload tokens already used, kept until they expire (the tidy step removes them):
-- a token used a second time finds its id here and is refused.
CREATE TABLE spent_tokens (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
