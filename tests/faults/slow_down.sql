-- The fault tests' slow-down (tests/faults, tests/deploy): every batch marker's
-- insert sleeps faults_delay(stage).seconds, so a run lasts long enough for a
-- fault to land in it. Read from stdin by psql; starts with no delay.
CREATE TABLE faults_delay (stage text PRIMARY KEY, seconds float8 NOT NULL);
INSERT INTO faults_delay VALUES ('allocate', 0), ('formula', 0);
CREATE FUNCTION faults_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(coalesce((SELECT seconds FROM faults_delay WHERE stage = NEW.stage), 0));
    RETURN NEW;
END $$;
CREATE TRIGGER faults_slow BEFORE INSERT ON batch_marker FOR EACH ROW EXECUTE FUNCTION faults_slow();
