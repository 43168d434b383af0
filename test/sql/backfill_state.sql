-- backfill_state: every state a job can be in, against every way of moving
-- it (shift.backfill_pause/resume/cancel, backfill_step, CALL backfill_run),
-- and the run lock that shift.backfill_progress and backfill_drop look for.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never

CREATE TABLE st (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO st SELECT g, 0 FROM generate_series(1, 10) g;
SELECT shift.backfill_create('st', 'st', set => 'n = n + 1', batch_min => 4, batch_max => 4,
                             max_lag => NULL);

-- Puts the job in a state, before (no upper key) or after its walk started.
CREATE FUNCTION put(s text, started bool) RETURNS void LANGUAGE sql AS $$
  UPDATE shift.backfill
     SET state = s, finished_at = NULL, last_key = NULL, last_key_text = NULL,
         upper_key = CASE WHEN started THEN ARRAY[int4send(10)] END,
         upper_key_text = CASE WHEN started THEN '10' END
   WHERE name = 'st'
$$;
-- Puts the job in state s, runs q, and says what q returned (or its error)
-- and where it left the job.
CREATE FUNCTION attempt(s text, started bool, q text, OUT result text, OUT to_state text,
                        OUT finished bool, OUT upper_key text, OUT last_key text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM put(s, started);
  BEGIN
    EXECUTE q INTO result;
  EXCEPTION WHEN OTHERS THEN
    result := 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
  END;
  SELECT b.state, b.finished_at IS NOT NULL, b.upper_key_text, b.last_key_text
    INTO to_state, finished, upper_key, last_key
    FROM shift.backfill b WHERE b.name = 'st';
END $$;

-- ---- pause, resume and cancel from every state, before and after the walk
-- started: the result or the error, the state it leaves, whether it
-- stamped finished_at
SELECT s AS from_state, started, m AS move, a.result, a.to_state, a.finished
  FROM unnest('{pending,active,paused,done,cancelled,failed}'::text[]) WITH ORDINALITY s(s, o),
       unnest('{f,t}'::bool[]) started,
       unnest('{pause,resume,cancel}'::text[]) WITH ORDINALITY m(m, mo),
       LATERAL attempt(s, started, format('SELECT shift.backfill_%s(''st'')', m)) a
 ORDER BY s.o, started, m.mo;

-- ---- one batch (backfill_step) from every state
SELECT s AS from_state, started, a.result AS "(keys,rows,done)", a.to_state, a.upper_key, a.last_key
  FROM unnest('{pending,active,paused,done,cancelled,failed}'::text[]) WITH ORDINALITY s(s, o),
       unnest('{f,t}'::bool[]) started,
       LATERAL attempt(s, started, 'SELECT row(k.*)::text FROM shift.backfill_step(''st'') k') a
 ORDER BY s.o, started;
-- a failed job whose walk had started goes on and is active again
SELECT put('pending', false);
SELECT * FROM shift.backfill_step('st');
UPDATE shift.backfill SET state = 'failed', last_error = 'boom' WHERE name = 'st';
SELECT * FROM shift.backfill_step('st');
SELECT state, last_key_text, last_error FROM shift.backfill WHERE name = 'st';
-- the last keys: done, and stays done
SELECT * FROM shift.backfill_step('st');
SELECT * FROM shift.backfill_step('st');
SELECT state, keys_done, finished_at IS NOT NULL AS finished FROM shift.backfill WHERE name = 'st';

-- ---- CALL backfill_run from every state
SELECT put('paused', true);
CALL shift.backfill_run('st');
SELECT put('cancelled', true);
CALL shift.backfill_run('st');
SELECT put('done', true);
CALL shift.backfill_run('st');
SELECT state FROM shift.backfill WHERE name = 'st';
UPDATE st SET n = 0;
SELECT put('failed', false);
CALL shift.backfill_run('st');
SELECT state, keys_done, upper_key_text, last_key_text FROM shift.backfill WHERE name = 'st';
SELECT n, count(*) FROM st GROUP BY n;
-- a run stops at the pause an operator makes while it runs (made here, to
-- be deterministic, by the batch of key 3 itself)
SELECT put('active', true);
UPDATE st SET n = 0;
SELECT shift.backfill_set('st', batch_min => 1, batch_max => 1);
CREATE TABLE pause_at (id int);
INSERT INTO pause_at VALUES (3);
CREATE FUNCTION pause_here(k int) RETURNS int LANGUAGE sql AS $$
  SELECT CASE WHEN pause_here.k IN (SELECT p.id FROM pause_at p)
              THEN (SELECT 0 FROM shift.backfill_pause('st')) ELSE 0 END
$$;
SELECT shift.backfill_drop('st');
SELECT shift.backfill_create('st', 'st', set => 'n = n + 1 + pause_here(id)', batch_min => 1, batch_max => 1,
                             max_lag => NULL);
CALL shift.backfill_run('st');
SELECT state, keys_done, last_key_text FROM shift.backfill WHERE name = 'st';
SELECT shift.backfill_resume('st');
DELETE FROM pause_at;
CALL shift.backfill_run('st');
SELECT state, keys_done FROM shift.backfill WHERE name = 'st';
SELECT n, count(*) FROM st GROUP BY n ORDER BY n;

-- ---- the run lock: (0x73686266 'shbf', hashtext(name)) as in 0.1.0, so a
-- run started before an upgrade and the new code agree; defined once
-- (shift_internal.backfill_lock_key), for names whose hash is positive and
-- negative; shift.backfill_progress shows its holder
SELECT shift.backfill_create('lock-a', 'st', set => 'n = n'), hashtext('lock-a') > 0 AS positive;
SELECT shift.backfill_create('lock-b', 'st', set => 'n = n'), hashtext('lock-b') > 0 AS positive;
SELECT n, k.key1 = 1936220774 AND k.key2 = hashtext(n) AS keys_of_0_1_0
  FROM unnest('{lock-a,lock-b}'::text[]) n, shift_internal.backfill_lock_key(n) k;
SELECT pg_advisory_lock(1936220774, hashtext('lock-a')), pg_advisory_lock(1936220774, hashtext('lock-b'));
SELECT name, state, running_pid = pg_backend_pid() AS this_session
  FROM shift.backfill_progress WHERE name LIKE 'lock-%' ORDER BY name;
SELECT pg_advisory_unlock(1936220774, hashtext('lock-a')), pg_advisory_unlock(1936220774, hashtext('lock-b'));
SELECT name, state, running_pid FROM shift.backfill_progress WHERE name LIKE 'lock-%' ORDER BY name;
-- any reader of the view may compute the key (the view runs as its reader)
CREATE ROLE regress_bf_state_op IN ROLE shift_operator;
GRANT SELECT, UPDATE ON st TO regress_bf_state_op;
SET ROLE regress_bf_state_op;
SELECT shift.backfill_create('lock-c', 'st', set => 'n = n');
SELECT pg_advisory_lock(k.key1, k.key2) FROM shift_internal.backfill_lock_key('lock-c') k;
SELECT name, state, running_pid = pg_backend_pid() AS this_session FROM shift.backfill_progress;
SELECT pg_advisory_unlock(k.key1, k.key2) FROM shift_internal.backfill_lock_key('lock-c') k;
RESET ROLE;

-- ---- a state the C code does not know is an internal error, never taken
-- for another (the table's CHECK keeps it out; dropped here to show it)
BEGIN;
ALTER TABLE shift.backfill DROP CONSTRAINT backfill_state_check;
UPDATE shift.backfill SET state = 'sleeping' WHERE name = 'lock-a';
SAVEPOINT s;
SELECT * FROM shift.backfill_step('lock-a');
ROLLBACK TO s;
DO $$
BEGIN
  PERFORM shift.backfill_step('lock-a');
  RAISE WARNING 'no error';
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'SQLSTATE %', SQLSTATE;
END $$;
ROLLBACK;
SELECT name, state, keys_done FROM shift.backfill WHERE name = 'lock-a';

DROP FUNCTION put(text, bool), attempt(text, bool, text);
DROP EXTENSION pg_shift;
DROP OWNED BY regress_bf_state_op;
DROP ROLE regress_bf_state_op;
