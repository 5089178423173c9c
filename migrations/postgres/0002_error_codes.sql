-- A FAILED job carries a code from the contract (API.md §4a) beside its error sentence.
ALTER TABLE jobs ADD COLUMN error_code TEXT;
-- Jobs that failed before codes were recorded kept raw error text, which may hold paths or
-- decoder messages: they read as INTERNAL with its fixed sentence (the detail is in the logs).
UPDATE jobs SET error_code = 'INTERNAL',
                error = 'The image could not be processed because of an internal error.'
WHERE status = 'FAILED';
