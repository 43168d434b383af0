-- compare_queries (sql/checksum.sql): shadow reads, the rows of two queries
-- compared as shift.compare compares two tables; what it refuses.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;
\set SHOW_CONTEXT never
\set VERBOSITY default
CREATE SCHEMA cq_v1;
CREATE SCHEMA cq_v2;
CREATE TABLE cq_v1.orders (id int PRIMARY KEY, price numeric(10, 2), status text);
CREATE TABLE cq_v2.orders (id int PRIMARY KEY, cents bigint, state text);
INSERT INTO cq_v1.orders SELECT g, g * 1.5, CASE WHEN g % 2 = 0 THEN 'paid' ELSE 'open' END FROM generate_series(1, 1000) g;
INSERT INTO cq_v2.orders SELECT id, (price * 100)::bigint, status FROM cq_v1.orders;

-- the old release's query against the old shape, the new one's against the new: equal
SELECT count(*) AS differences FROM shift.compare_queries(
  'SELECT id, price, status FROM cq_v1.orders WHERE status = ''paid''',
  'SELECT id, cents / 100.0 AS price, state AS status FROM cq_v2.orders WHERE state = ''paid''',
  key => '{id}');
-- a row the new query gets wrong, one it misses, one it adds
UPDATE cq_v2.orders SET cents = cents + 1 WHERE id = 10;
UPDATE cq_v2.orders SET state = 'open' WHERE id = 12;
UPDATE cq_v2.orders SET state = 'paid' WHERE id = 13;
SELECT kind, key, columns FROM shift.compare_queries(
  'SELECT id, price, status FROM cq_v1.orders WHERE status = ''paid''',
  'SELECT id, cents / 100.0 AS price, state AS status FROM cq_v2.orders WHERE state = ''paid''',
  key => '{id}') ORDER BY key;
-- without a key: multisets of rows (a duplicate counts)
SELECT kind, columns FROM shift.compare_queries('VALUES (1), (1), (2)', 'VALUES (1), (2)');
-- unqualified names resolve under the caller's search_path
SET search_path = cq_v1, public;
SELECT count(*) AS differences FROM shift.compare_queries('TABLE orders', 'SELECT * FROM cq_v1.orders', key => '{id}');
RESET search_path;
-- the temporary views are gone
SELECT count(*) AS views_left FROM pg_class WHERE relname LIKE 'pgshift_%_query';

-- refusals
SELECT * FROM shift.compare_queries('SELECT 1 AS a; DROP TABLE cq_v1.orders', 'SELECT 1 AS a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT 1 AS a', 'DELETE FROM cq_v1.orders RETURNING id');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT 1 AS a INTO cq_x', 'SELECT 1 AS a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT $1 AS a', 'SELECT 1 AS a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT FROM WHERE', 'SELECT 1 AS a');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT 1 AS a', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM shift.compare_queries('SELECT 1 AS a', 'SELECT 1 AS b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT to_regclass('cq_v1.orders') IS NOT NULL AS orders_still_there, to_regclass('cq_x') AS no_table;
SELECT count(*) AS views_left FROM pg_class WHERE relname LIKE 'pgshift_%_query';
DROP SCHEMA cq_v1, cq_v2 CASCADE;
