-- psql: what \df, \dv and \dt show of pg_shift, and shift_monitor, the role
-- that reads every migration's status and runs nothing.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never

-- every function, procedure, table and view of schema shift whose name does
-- not start with "_" has a comment (none listed), and each function's
-- comment names it with its arguments
SELECT 'routine' AS kind, p.oid::regprocedure::text AS name
  FROM pg_proc p
 WHERE p.pronamespace = 'shift'::regnamespace AND p.proname !~ '^_'
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'relation', c.oid::regclass::text
  FROM pg_class c
 WHERE c.relnamespace = 'shift'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL
ORDER BY 1, 2;
SELECT p.proname
  FROM pg_proc p
 WHERE p.pronamespace = 'shift'::regnamespace AND p.proname !~ '^_' AND p.prorettype <> 'trigger'::regtype
   AND obj_description(p.oid, 'pg_proc') !~ ('^(CALL )?' || p.proname || '\(')
   AND obj_description(p.oid, 'pg_proc') !~* ('^[a-z]')
ORDER BY 1;

-- a migration and a backfill job of the superuser, a migration of an operator
CREATE ROLE regress_mon IN ROLE shift_monitor;
CREATE ROLE regress_mon_op IN ROLE shift_operator;
CREATE ROLE regress_mon_nobody;

-- what \df shift.* lists to an ordinary role (no grants): the public API
-- only, no internal "_" function, each with its comment
SET ROLE regress_mon_nobody;
SELECT count(*) >= 40 AS routines_listed FROM pg_proc p WHERE p.pronamespace = 'shift'::regnamespace;
SELECT p.proname AS internal_or_without_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'shift'::regnamespace
   AND (p.proname ~ '^_' OR obj_description(p.oid, 'pg_proc') IS NULL)
 ORDER BY 1;
RESET ROLE;
CREATE TABLE mon_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO mon_t (id) SELECT g FROM generate_series(1, 5) g;
SELECT shift.try_lock('mon_su');
SELECT count(*) FROM shift.migration_begin('mon_su', repeat('a', 64), '[{"name": "one", "reversible": true}]',
                                           'run', pg_backend_pid());
SELECT shift.backfill_create('mon_su:bump', 'mon_t', set => 'n = n + 1');
SELECT shift.migration_end('mon_su');
SELECT shift.unlock('mon_su');
SET ROLE regress_mon_op;
SELECT shift.try_lock('mon_op');
SELECT count(*) FROM shift.migration_begin('mon_op', repeat('b', 64), '[{"name": "one", "reversible": true}]',
                                           'run', pg_backend_pid());
SELECT shift.migration_end('mon_op');
SELECT shift.unlock('mon_op');
-- the operator sees its own migration only
SELECT migration, status FROM shift.status WHERE migration LIKE 'mon%' ORDER BY 1;
RESET ROLE;

-- the monitor sees both migrations, their events and the job's progress
SET ROLE regress_mon;
SELECT migration, status FROM shift.status WHERE migration LIKE 'mon%' ORDER BY 1;
SELECT migration, count(*) > 0 AS has_events FROM shift.history WHERE migration LIKE 'mon%' GROUP BY 1 ORDER BY 1;
SELECT name, state FROM shift.backfill_progress WHERE name = 'mon_su:bump';
SELECT count(*) FROM shift.lease WHERE migration LIKE 'mon%';
SELECT count(*) FROM shift.phase_status WHERE migration LIKE 'mon%';
-- and changes nothing
SELECT shift.backfill_pause('mon_su:bump');
CALL shift.backfill_run('mon_su:bump');
SELECT shift.try_lock('mon_su');
UPDATE shift.migration SET status = 'done' WHERE name = 'mon_su';
DELETE FROM shift.event;
RESET ROLE;
SELECT state, n FROM shift.backfill, (SELECT sum(n) AS n FROM mon_t) t WHERE name = 'mon_su:bump';

-- a role with nothing sees nothing
SET ROLE regress_mon_nobody;
SELECT count(*) FROM shift.status;
RESET ROLE;

SELECT shift.backfill_drop('mon_su:bump');
DROP TABLE mon_t;
DROP ROLE regress_mon, regress_mon_op, regress_mon_nobody;
