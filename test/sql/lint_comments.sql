-- lint: a statement's "shift:allow" comments are the comments PostgreSQL's
-- own scanner skips between its tokens (extension/lint_report.c), so text
-- that only looks like a comment, inside a literal or after a name holding
-- '$', is never read as one, and a real comment always is.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_shift;

-- an escaped quote does not end an E'' literal: the "comment" after it is
-- inside the literal, and allows nothing (the column is still dropped)
SELECT statement, rule FROM shift.lint($$
  ALTER TABLE t DROP COLUMN a, ALTER b SET DEFAULT E'it\'s -- shift:allow all';
  ALTER TABLE t DROP COLUMN c, ALTER d SET DEFAULT E'\\' /* shift:allow drop-column */;
  ALTER TABLE t DROP COLUMN e, ALTER f SET DEFAULT 'it''s -- shift:allow all'$$, '1s')
ORDER BY 1, 2;

-- a '$' inside a name does not open a dollar quote: the comments after
-- these names are comments, and allow what they say
SELECT statement, rule FROM shift.lint($$
  ALTER TABLE t DROP COLUMN a$b$ /* shift:allow drop-column */;
  ALTER TABLE t$1 DROP COLUMN x -- shift:allow drop-column
  ;
  ALTER TABLE t DROP COLUMN c$ /* shift:allow drop-column */;
  ALTER TABLE t DROP COLUMN d$d /* no comment allows this one */$$, '1s')
ORDER BY 1, 2;

-- a dollar-quote tag may hold any letter, not only an ASCII one: what the
-- quote holds is a literal, not a comment
SELECT statement, rule FROM shift.lint($q$
  ALTER TABLE t DROP COLUMN a, ALTER b SET DEFAULT $é$ /* shift:allow all */ $é$;
  ALTER TABLE t DROP COLUMN c, ALTER d SET DEFAULT $é$ x $é$ /* shift:allow all */$q$, '1s')
ORDER BY 1, 2;

-- dollar quotes, quoted names and nested comments as before: only the
-- comment outside them counts, whatever they hold
SELECT statement, rule FROM shift.lint($q$
  ALTER TABLE t DROP COLUMN a, ALTER b SET DEFAULT $x$ /* shift:allow all */ $x$;
  ALTER TABLE t DROP COLUMN "/* shift:allow drop-column */";
  ALTER TABLE t /* outer /* shift:allow drop-column */ still the outer comment */ DROP COLUMN c;
  ALTER TABLE t DROP COLUMN d /* shift:allow drop-column */; -- shift:allow all
  ALTER TABLE t DROP COLUMN e$q$, '1s')
ORDER BY 1, 2;
