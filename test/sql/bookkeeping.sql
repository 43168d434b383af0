-- bookkeeping: migration/phase/event tables, the state functions and their
-- refusals, drift, lease takeover, views and privileges.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never

-- A helper view of the phases, without timestamps.
CREATE TEMP VIEW ph AS
  SELECT migration, ordinal, name, status, reversible, needs_cleanup, attempts,
         rows_affected, error_message, error_sqlstate
    FROM shift.phase ORDER BY migration, ordinal;
CREATE TEMP VIEW ev AS
  SELECT kind, phase, message, detail ? 'seconds' AS timed FROM shift.event ORDER BY id;

-- ---- begin needs the advisory lock, held by the work session
SELECT * FROM shift.migration_begin('m1', repeat('a', 64),
  '[{"name":"expand","reversible":true},{"name":"backfill","reversible":false,"has_verify":true},{"name":"contract","reversible":true}]',
  'run', 12345, '0.1.0', 'host1', 4242, '/m1.lua');
SELECT shift.try_lock('m1');
SELECT shift.try_lock('m1') AS reentrant;  -- advisory locks nest within a session
SELECT shift.unlock('m1');
SELECT * FROM shift.migration_begin('m1', repeat('a', 64),
  '[{"name":"expand","reversible":true},{"name":"backfill","reversible":false,"has_verify":true},{"name":"contract","reversible":true}]',
  'run', pg_backend_pid(), '0.1.0', 'host1', 4242, '/m1.lua');
SELECT name, status, operation, nphases, lease_host, lease_runner_pid,
       lease_control_pid = pg_backend_pid() AS leased_here FROM shift.migration;
SELECT pid = pg_backend_pid() AS holder_is_us, lease_host, lease_runner_pid FROM shift.lock_holder('m1');

-- ---- bad arguments
SELECT count(*) AS phases FROM shift.migration_begin('m1', repeat('a', 64), '[]', 'run', pg_backend_pid());
SELECT shift.migration_begin('m1', repeat('a', 64), '{"name":"x"}', 'run', pg_backend_pid());
SELECT shift.migration_begin('m1', repeat('a', 64), '[{"name":"a","reversible":true},{"name":"a","reversible":true}]', 'run', pg_backend_pid());
SELECT shift.migration_begin('m1', repeat('a', 64), '[{"name":"a"}]', 'run', pg_backend_pid());
SELECT shift.migration_begin('m1', repeat('a', 64), '[{"name":"a","reversible":true}]', 'fly', pg_backend_pid());
SELECT shift.try_lock('bad name!');
SELECT shift.migration_begin('bad name!', repeat('a', 64), '[{"name":"a","reversible":true}]', 'run', pg_backend_pid());
SELECT shift.unlock('bad name!');
SELECT shift.migration_begin('m1', repeat('a', 64), '[{"name":"drop table x;","reversible":true}]', 'run', pg_backend_pid());

-- ---- impossible transitions during a run
SELECT shift.phase_done('m1', 'expand');                 -- finishing a phase that never started
SELECT shift.phase_start('m1', 'backfill');              -- phase 2 before phase 1 is done
SELECT shift.phase_start('m1', 'nope');                  -- no such phase
SELECT shift.phase_start('nope', 'expand');              -- no such migration
SELECT shift.phase_rollback_start('m1', 'expand');       -- rollback during a run
SELECT shift.phase_cleaned('m1', 'expand');              -- nothing to clean
SELECT shift.log_event('m1', NULL, 'phase_done', 'sneaky');  -- state kinds are not free-form

-- ---- the happy path: expand done, backfill fails, is retried, done
SELECT shift.phase_start('m1', 'expand');
SELECT shift.phase_start('m1', 'expand');                -- already running
SELECT shift.migration_end('m1');                        -- cannot end mid-phase
SELECT shift.heartbeat('m1');
SELECT shift.phase_done('m1', 'expand', 0);
SELECT shift.phase_start('m1', 'backfill');
SELECT shift.phase_failed('m1', 'backfill', 'relation "x" does not exist', '42P01');
SELECT shift.phase_failed('m1', 'backfill', 'again');    -- not running any more
SELECT * FROM ph;
SELECT shift.log_event('m1', 'backfill', 'retry', 'lock timeout, retrying in 200 ms', '55P03');
SELECT shift.phase_start('m1', 'backfill');
SELECT shift.phase_done('m1', 'backfill', 12345);
SELECT shift.migration_end('m1');
SELECT * FROM ph;
SELECT migration, status, operation, phases_done, nphases, phase, last_error FROM shift.status;

-- ---- calls without the lease
SELECT shift.phase_start('m1', 'contract');
SELECT shift.heartbeat('m1');

-- ---- rollback: reverse order, points of no return
SELECT shift.migration_begin('m1', repeat('a', 64),
  '[{"name":"expand","reversible":true},{"name":"backfill","reversible":false,"has_verify":true},{"name":"contract","reversible":true}]',
  'rollback', pg_backend_pid());
SELECT shift.phase_start('m1', 'contract');              -- no run during a rollback
SELECT shift.phase_rollback_start('m1', 'contract');     -- never ran
SELECT shift.phase_rollback_start('m1', 'backfill');     -- a point of no return
SELECT shift.phase_rollback_start('m1', 'expand');       -- backfill is still done after it
SELECT shift.phase_rolled_back('m1', 'expand');          -- not rolling back
SELECT shift.migration_end('m1');

-- ---- run to the end, then roll the last phase back, and fail a rollback
SELECT count(*) AS phases FROM shift.migration_begin('m1', repeat('a', 64),
  '[{"name":"expand","reversible":true},{"name":"backfill","reversible":false,"has_verify":true},{"name":"contract","reversible":true}]',
  'run', pg_backend_pid());
SELECT shift.phase_start('m1', 'contract');
SELECT shift.phase_done('m1', 'contract');
SELECT shift.migration_end('m1');
SELECT count(*) AS phases FROM shift.migration_begin('m1', repeat('a', 64),
  '[{"name":"expand","reversible":true},{"name":"backfill","reversible":false,"has_verify":true},{"name":"contract","reversible":true}]',
  'rollback', pg_backend_pid());
SELECT shift.phase_rollback_start('m1', 'contract');
SELECT shift.phase_rollback_failed('m1', 'contract', 'column "y" does not exist', '42703');
SELECT shift.phase_rollback_start('m1', 'contract');     -- a failed rollback can be retried
SELECT shift.phase_rolled_back('m1', 'contract');
SELECT shift.migration_end('m1');
SELECT * FROM ph;

-- ---- drift: a completed migration run with another script is refused
SELECT shift.try_lock('m2');
SELECT count(*) AS phases FROM shift.migration_begin('m2', repeat('b', 64), '[{"name":"only","reversible":true}]',
                             'run', pg_backend_pid());
SELECT shift.phase_start('m2', 'only');
SELECT shift.phase_done('m2', 'only');
SELECT shift.migration_end('m2');
SELECT count(*) AS phases FROM shift.migration_begin('m2', repeat('c', 64), '[{"name":"only","reversible":true}]',
                             'run', pg_backend_pid());
SELECT status FROM shift.migration WHERE name = 'm2';    -- untouched by the refusal
SELECT * FROM shift.migration_begin('m2', repeat('c', 64),
  '[{"name":"only","reversible":true},{"name":"more","reversible":true}]',
  'run', pg_backend_pid(), allow_drift => true);
SELECT shift.migration_end('m2');

-- a migration not yet complete may change, but started phases keep name and place
SELECT * FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"renamed","reversible":true},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());
SELECT * FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":false},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());
SELECT shift.migration_end('m2');

-- ---- takeover: a lease whose sessions are gone
SELECT shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":false},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());
SELECT shift.phase_start('m2', 'extra');
-- the runner dies: simulate a lease recorded by a session that no longer exists
UPDATE shift.migration SET lease_control_pid = 999999, lease_work_pid = 999998,
       lease_runner_pid = 777, lease_host = 'gone-host' WHERE name = 'm2';
SELECT * FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":false},{"name":"more","reversible":true}]',
  'run', pg_backend_pid(), host => 'host2');
SELECT name, status, needs_cleanup, error_message FROM shift.phase WHERE migration = 'm2' ORDER BY ordinal;
SELECT shift.migration_end('m2');

-- an interrupted phase is resumed as it is (its down does not run first);
-- a phase that failed on its own starts again only once its down ran
SELECT count(*) AS phases FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":true},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());
SELECT shift.phase_start('m2', 'extra');
SELECT shift.phase_failed('m2', 'extra', 'canceled by the user', '57014', interrupted => true);
SELECT name, status, needs_cleanup FROM shift.phase WHERE migration = 'm2' AND name = 'extra';
SELECT shift.phase_cleaned('m2', 'extra');
SELECT shift.phase_start('m2', 'extra');
SELECT shift.phase_failed('m2', 'extra', 'division by zero', '22012');
SELECT shift.phase_start('m2', 'extra');
SELECT shift.phase_cleaned('m2', 'extra');
SELECT shift.phase_start('m2', 'extra');
SELECT shift.phase_done('m2', 'extra');
SELECT shift.migration_end('m2');

-- ---- drift is judged by the phases: a crashed run that left "running" still counts as complete
SELECT count(*) AS phases FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":true},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());
SELECT shift.phase_start('m2', 'more');
SELECT shift.phase_done('m2', 'more');
SELECT shift.migration_end('m2');
SELECT count(*) AS phases FROM shift.migration_begin('m2', repeat('d', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":true},{"name":"more","reversible":true}]',
  'verify', pg_backend_pid());
UPDATE shift.migration SET lease_control_pid = 999999 WHERE name = 'm2';   -- the verify crashed
SELECT shift.migration_begin('m2', repeat('f', 64),
  '[{"name":"only","reversible":true},{"name":"extra","reversible":true},{"name":"more","reversible":true}]',
  'run', pg_backend_pid());

-- ---- the event log is append-only and tells the whole story
UPDATE shift.event SET message = 'rewritten' WHERE id = 1;
DELETE FROM shift.event;
SELECT * FROM ev;
SELECT migration, status, phases_done, nphases, phase, last_error, last_error_phase
  FROM shift.status ORDER BY migration;

-- ---- privileges: nothing for PUBLIC, everything for shift_operator
CREATE ROLE regress_pgshift_plain;
CREATE ROLE regress_pgshift_operator IN ROLE shift_operator;
SET ROLE regress_pgshift_plain;
SELECT * FROM shift.missing_privileges();
SELECT * FROM shift.migration;
SELECT * FROM shift.status;
INSERT INTO shift.event (migration, kind) VALUES ('m1', 'error');
SELECT shift.try_lock('m3');
SELECT shift.migration_begin('m3', repeat('e', 64), '[{"name":"a","reversible":true}]', 'run', pg_backend_pid());
RESET ROLE;
SET ROLE regress_pgshift_operator;
SELECT count(*) AS missing FROM shift.missing_privileges();
SELECT shift.try_lock('m3');
SELECT count(*) AS phases FROM shift.migration_begin('m3', repeat('e', 64), '[{"name":"a","reversible":true}]', 'run', pg_backend_pid());
SELECT shift.phase_start('m3', 'a');
-- what a phase remembers for its down (db:remember): merged, recorded with
-- who wrote it, only a JSON object, only while the phase runs
SELECT shift.phase_memo('m3', 'a', '{"type": "text"}');
SELECT shift.phase_memo('m3', 'a', '{"default": null}');
SELECT shift.phase_memo('m3', 'a', '"text"');
SELECT shift.phase_memo('m3', 'a', jsonb_build_object('big', repeat('x', 70000)));
SELECT memo, memo_by FROM shift.phase_status WHERE migration = 'm3';
-- another role acting for the owner (a member of it) does not replace what
-- the owner remembered: the owner's rollback could then not recall it
RESET ROLE;
CREATE ROLE regress_pgshift_deputy IN ROLE regress_pgshift_operator;
SET ROLE regress_pgshift_deputy;
SELECT shift.phase_memo('m3', 'a', '{"type": "bigint"}');
RESET ROLE;
SET ROLE regress_pgshift_operator;
SELECT memo, memo_by FROM shift.phase_status WHERE migration = 'm3';
UPDATE shift.phase SET memo = '{"type": "DROP TABLE x"}' WHERE migration = 'm3';
SELECT shift.phase_done('m3', 'a');
SELECT shift.phase_memo('m3', 'a', '{"type": "int"}');
SELECT shift.migration_end('m3');
SELECT applied_by FROM shift.migration WHERE name = 'm3';
-- an operator writes no control table directly (only the owner of pg_shift
-- does, inside its functions); it records events through shift.log_event,
-- which says who and when
INSERT INTO shift.event (migration, kind, role, at) VALUES ('m3', 'error', 'postgres', '2020-01-01');
INSERT INTO shift.event (migration, kind, message) VALUES ('m3', 'error', 'by hand');
UPDATE shift.migration SET status = 'done' WHERE name = 'm3';
DELETE FROM shift.phase WHERE migration = 'm3';
SELECT role, message FROM shift.event WHERE migration = 'm3' AND kind = 'error';
RESET ROLE;
SELECT shift.unlock('m1'), shift.unlock('m2'), shift.unlock('m3');
DROP ROLE regress_pgshift_plain;
DROP ROLE regress_pgshift_deputy;
DROP ROLE regress_pgshift_operator;
DROP VIEW ph, ev;
DROP EXTENSION pg_shift;
