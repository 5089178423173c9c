-- Tell every process whenever a job's status changes, with its id as the payload: a client
-- waiting on the job (`?wait`, server-sent events) is answered by whichever API process it
-- waits on, wherever the job ran. Named after the schema, as the channel of new jobs.
CREATE FUNCTION jobs_notify_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xip_' || md5(TG_TABLE_SCHEMA) || '_changed', NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_changed AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION jobs_notify_changed();
