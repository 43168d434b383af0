-- scripts/prelude/engines.lua: a table moved from MySQL/MariaDB (or any
-- foreign table) into PostgreSQL, with a way back (doc/foreign.md).
--
--   db:mysql            runs a script with the MySQL command-line client
--   db:capture          defines a change capture (sql/capture.sql)
--   db:capture_drain    applies a capture's changelog until caught up
--   db:mysql_cutover    fences the MySQL table, drains, compares, sets the
--                       sequences, prepares the way back, opens PostgreSQL
--   db:mysql_cutback    the way back: fences PostgreSQL, carries its
--                       changes to MySQL, compares, opens MySQL again
--
-- The way back is a second capture, in the other direction: triggers on
-- the PostgreSQL table log each key written (shift.capture_log_create) and
-- the capture re-reads those rows and writes them to the foreign table.
-- Replayed rather than mirrored in the application's transaction, because
-- mysql_fdw (2.8, Debian 12's) commits each remote write at once: a
-- mirrored write of a transaction that then rolled back would stay in
-- MySQL, and MySQL being down would stop PostgreSQL's writes.

local C, P = ...
local output, D = P.output, P.db
local E = {}
local methods = D.methods

-- ---------------------------------------------------------------------------
-- db:mysql
-- ---------------------------------------------------------------------------

local MYSQL_OPTIONS = { sql = true, defaults_file = true, client = true }

local function read_file(name)
  local f = io.open(name, "r")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return text
end

-- Runs script with the client; -> what it printed (--batch, no column names).
local function run_client(where, script, defaults_file, client)
  client = client or "mariadb"
  if not client:match("^[%w_./-]+$") or not defaults_file:match("^[%w_./@:+-]+$") then
    error(where .. "db:mysql: the client and defaults_file must be plain paths", 0)
  end
  local input, errfile = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(script)
  f:close()
  local p = io.popen(string.format("%s --defaults-extra-file=%s --batch --skip-column-names <%s 2>%s",
                                   client, defaults_file, input, errfile), "r")
  if not p then
    os.remove(input); os.remove(errfile)
    error(where .. "db:mysql: cannot start " .. client, 0)
  end
  local out = p:read("a")
  local ok, _, code = p:close()
  local msg = read_file(errfile)
  os.remove(input); os.remove(errfile)
  if not ok then
    error(string.format("%sdb:mysql: %s exited %s: %s", where, client, tostring(code),
                        (msg:gsub("%s+$", ""))), 0)
  end
  return out
end

-- db:mysql{sql =, defaults_file =, client = "mariadb"} -> what the client
-- printed.  Runs a script with the MySQL/MariaDB command-line client.  The
-- connection (host, port, user, password, database) comes from
-- defaults_file, a client option file ([client] section) that only its
-- owner can read: nothing of it is on a command line.  An error stops the
-- script and the phase, with the client's message.  Dry, it records the
-- script and returns "".
function methods.mysql(db, opts)
  opts = D.check_options(opts, MYSQL_OPTIONS, "db:mysql", 3)
  D.required(opts, "defaults_file", "db:mysql")
  if D.is_dry(db) and type(opts.sql) ~= "string" then
    -- a script the extension prints (a dry run has no answer): what the run would read
    D.record(db, "exec", "-- db:mysql, the MySQL client runs the script of the statement above")
    return ""
  end
  D.required(opts, "sql", "db:mysql")
  if D.is_dry(db) then
    D.record(db, "exec", "-- db:mysql, the MySQL client runs:\n" .. opts.sql)
    return ""
  end
  return run_client(D.where(), opts.sql, opts.defaults_file, opts.client)
end

-- ---------------------------------------------------------------------------
-- db:capture, db:capture_drain
-- ---------------------------------------------------------------------------

-- Fences the PostgreSQL table against every role but the runner's, once the
-- transactions writing it have ended (db:ddl: short lock waits, retried).
local function fence_pg(db, where, rel, why)
  local q = function(v) return D.is_dry(db) and ("'" .. v .. "'") or db:quote_literal(v) end
  D.ddl_at(db, where, string.format("SELECT shift.fence_writes(%s::pg_catalog.regclass, %s)", q(rel),
    q(string.format("writes to %s are fenced by pg_shift: %s", rel, why))))
end

local CAPTURE_OPTIONS = {
  name = true, changelog = true, source = true, into = true, key_columns = true, columns = true,
  select = true, backfill = true, batch_size = true, gap_timeout = true,
}

-- db:capture{name =, changelog =, source =, into =, key_columns =, select =,
-- columns =, backfill =, batch_size =, gap_timeout =} -> name.  Defines the
-- capture (the identical one a previous attempt made is kept).  Make it in
-- the phase that installs the changelog's triggers, before the backfill it
-- names starts: the extension refuses a backfill that has fixed its bound.
-- A PostgreSQL table it keeps current is fenced (shift.fence_writes): only
-- the migration's role writes it until db:mysql_cutover opens it, so the
-- application never writes both sides.  db:capture_drop lifts the fence.
local function define_capture(db, where, opts, fence)
  local mig, phase = D.current(db)
  local c = D.call("SELECT shift.capture_create")
  c.arg(nil, opts.name)
  c.arg("changelog", opts.changelog, "pg_catalog.regclass")
  c.arg("source", opts.source, "pg_catalog.regclass")
  c.arg('"into"', opts.into, "pg_catalog.regclass")
  c.arg("key_columns", D.array_literal(opts.key_columns), "pg_catalog.text[]")
  if opts.columns ~= nil then c.arg("columns", D.array_literal(opts.columns), "pg_catalog.text[]") end
  c.arg('"select"', opts.select, "pg_catalog.text")
  c.arg("backfill", opts.backfill, "pg_catalog.text")
  c.arg("batch_size", opts.batch_size, "pg_catalog.int4")
  c.arg("gap_timeout", opts.gap_timeout, "pg_catalog.interval")
  c.literal("if_exists => 'reuse'")
  c.arg("migration", mig)
  c.arg("phase", phase)
  local sql, params = c.sql()
  if D.is_dry(db) then
    D.dry_send(db, "value", where, sql, table.unpack(params))
  else
    D.exec_at(db, where, sql, table.unpack(params))
  end
  if fence then
    fence_pg(db, where, opts.into, "the application writes the capture's source until the cut-over")
  end
  return opts.name
end

function methods.capture(db, opts)
  opts = D.check_options(opts, CAPTURE_OPTIONS, "db:capture", 3)
  for _, k in ipairs({ "name", "changelog", "source", "into" }) do D.required(opts, k, "db:capture") end
  if type(opts.key_columns) ~= "table" or #opts.key_columns == 0 then
    error("db:capture: 'key_columns' must be a non-empty list of column names", 2)
  end
  local where = D.where()
  -- a foreign table (the way back) is not PostgreSQL's to fence
  local kind = D.lookup(db, where, "SELECT relkind::pg_catalog.text AS k FROM pg_catalog.pg_class"
                        .. " WHERE oid = $1::pg_catalog.regclass", opts.into)[1]
  return define_capture(db, where, opts, not (kind and kind.k == "f"))
end

-- db:capture_drop{name =}: drops the capture and lifts the fence db:capture
-- put on its table.
function methods.capture_drop(db, opts)
  opts = D.check_options(opts, { name = true }, "db:capture_drop", 3)
  D.required(opts, "name", "db:capture_drop")
  local where = D.where()
  local row = D.lookup(db, where, "SELECT into_relation::pg_catalog.text AS t FROM shift.capture_progress"
                       .. " WHERE name = $1", opts.name)[1]
  D.exec_at(db, where, "SELECT shift.capture_drop($1)", opts.name)
  if row then D.exec_at(db, where, "SELECT shift.unfence_writes($1::pg_catalog.regclass)", row.t) end
end

-- Drains capture name at where: CALL shift.capture_run until the changelog
-- is caught up, committing after every batch (killed, the next run goes on
-- from the checkpoint); -> the changes applied.
local function drain(db, where, name)
  if D.is_dry(db) then
    D.dry_send(db, "exec", where, "CALL shift.capture_run($1)", name)
    return 0
  end
  local function changes()
    return D.query_at(db, where, "SELECT changes FROM shift.capture_progress WHERE name = $1",
                      name)[1].changes
  end
  local before = changes()
  D.exec_at(db, where, "CALL shift.capture_run($1)", name)
  local st = D.query_at(db, where, "SELECT changes, last_seq, open_gaps FROM shift.capture_progress"
                        .. " WHERE name = $1", name)[1]
  output.log(string.format("capture %s: %d changes applied, checkpoint at seq %d, %d open gaps",
    name, st.changes - before, st.last_seq, st.open_gaps))
  return st.changes - before
end

-- db:capture_drain{name =} -> changes applied.
function methods.capture_drain(db, opts)
  opts = D.check_options(opts, { name = true }, "db:capture_drain", 3)
  D.required(opts, "name", "db:capture_drain")
  return drain(db, D.where(), opts.name)
end

-- ---------------------------------------------------------------------------
-- db:mysql_cutover, db:mysql_cutback
-- ---------------------------------------------------------------------------

local CUTOVER_OPTIONS = {
  capture = true, defaults_file = true, client = true, back_select = true, back_name = true, back_table = true,
  mysql_table = true, database = true, exempt_user = true, lock_wait_timeout = true,
}

-- What a cut-over needs to know of capture name: its tables and key, the
-- MySQL table (the foreign table's table_name and dbname options, unless
-- given), and the account the foreign table connects as (its user
-- mapping's username, unless given), which the MySQL fence lets through.
local CUTOVER_SQL = [[
SELECT c.source::pg_catalog.text AS source, c.into_relation::pg_catalog.text AS into,
       c.key_columns::pg_catalog.text AS key_columns,
       (SELECT o.option_value FROM pg_catalog.pg_foreign_table f, pg_catalog.pg_options_to_table(f.ftoptions) o
         WHERE f.ftrelid = c.source AND o.option_name = 'table_name') AS table_name,
       (SELECT k.relname FROM pg_catalog.pg_class k WHERE k.oid = c.source) AS relname,
       (SELECT o.option_value FROM pg_catalog.pg_foreign_table f, pg_catalog.pg_options_to_table(f.ftoptions) o
         WHERE f.ftrelid = c.source AND o.option_name = 'dbname') AS dbname,
       (SELECT o.option_value
          FROM pg_catalog.pg_foreign_table f
          JOIN pg_catalog.pg_user_mappings um ON um.srvid = f.ftserver
          CROSS JOIN LATERAL pg_catalog.pg_options_to_table(um.umoptions) o
         WHERE f.ftrelid = c.source AND o.option_name = 'username'
           AND (um.umuser = 0 OR um.usename = CURRENT_USER)
         ORDER BY um.umuser DESC LIMIT 1) AS username
  FROM shift.capture_progress c WHERE c.name = $1]]

local function cutover_plan(db, where, opts, what)
  opts = D.check_options(opts, CUTOVER_OPTIONS, what, 4)
  D.required(opts, "capture", what, nil, 4)
  D.required(opts, "defaults_file", what, nil, 4)
  local r = {
    name = opts.capture, back = opts.back_name or (opts.capture .. ":back"), opts = opts,
    source = opts.capture, into = opts.capture, key_columns = "{}",
    mysql_table = opts.mysql_table or "<the MySQL table>", database = opts.database,
    exempt = opts.exempt_user or "<the foreign table's user>",
  }
  if D.is_dry(db) then return r end
  local row = D.query_at(db, where, CUTOVER_SQL, opts.capture)[1]
  if not row then error(string.format("%s%s: capture \"%s\" does not exist", where, what, opts.capture), 0) end
  r.source, r.into, r.key_columns = row.source, row.into, row.key_columns
  r.mysql_table = opts.mysql_table or row.table_name or row.relname
  r.database = opts.database or row.dbname
  r.exempt = opts.exempt_user or row.username
  if not r.exempt then
    error(string.format("%s%s: no username in the user mapping of %s: give exempt_user, the MySQL account"
      .. " that writes PostgreSQL's changes back", where, what, r.source), 0)
  end
  return r
end

local function mysql_script(db, where, r, action)
  local c = D.call("SELECT shift.mysql_fence_sql")
  c.arg(nil, r.mysql_table)
  c.arg("action", action)
  if action == "fence" then c.arg("exempt_user", r.exempt) end
  c.arg("database", r.database)
  c.arg("lock_wait_timeout", r.opts.lock_wait_timeout, "pg_catalog.int4")
  local sql, params = c.sql()
  if D.is_dry(db) then return "-- " .. sql end
  return D.query_at(db, where, sql .. " AS s", table.unpack(params))[1].s
end

local function mysql_run(db, r, script)
  return methods.mysql(db, { sql = script, defaults_file = r.opts.defaults_file, client = r.opts.client })
end

-- The value v of sql's one row at where (dry: recorded, nil).
local function value(db, where, sql, ...)
  if D.is_dry(db) then
    D.dry_send(db, "value", where, sql, ...)
    return nil
  end
  return D.query_at(db, where, sql, ...)[1].v
end

-- MySQL's next AUTO_INCREMENT value of r's table, or nil (none), from the
-- output of shift.mysql_next_id_sql's script (the table options follow the
-- columns: the last " ENGINE=... AUTO_INCREMENT=n" is the table's).
local function next_auto_increment(db, where, r)
  local out = mysql_run(db, r, value(db, where, "SELECT shift.mysql_next_id_sql($1, $2) AS v",
                                     r.mysql_table, r.database))
  local n
  for v in out:gmatch(" ENGINE=[%w_]+ AUTO_INCREMENT=(%d+)") do n = v end
  return n and math.tointeger(tonumber(n)) or nil
end

-- Where the way back of r stands: "made" (its capture exists: the table was
-- cut over), "dropped" (the forward capture is paused, the way back gone),
-- or "none" (never cut over).  A dry run takes the path of a first cut-over.
local function way_back_state(db, where, r)
  if D.is_dry(db) then return "none" end
  local row = D.query_at(db, where, "SELECT (SELECT pg_catalog.count(*) FROM shift.capture_progress WHERE name = $2) AS back,"
    .. " (SELECT paused FROM shift.capture_progress WHERE name = $1) AS paused", r.name, r.back)[1]
  if row.back > 0 then return "made" end
  return row.paused and "dropped" or "none"
end

-- Drains capture name once its source is fenced, forgets the gaps still
-- open (rolled back: nothing is in flight any more) and compares; an
-- error if a row differs.
local function drain_and_compare(db, where, what, name, fenced)
  drain(db, where, name)
  local forgotten = value(db, where, "SELECT shift.capture_forget_gaps($1) AS v", name)
  local differ = value(db, where, "SELECT pg_catalog.count(*) AS v FROM shift.capture_compare($1)", name)
  if differ and differ ~= 0 then
    error(string.format("%s%s: %d rows differ after capture %s was drained (SELECT * FROM"
      .. " shift.capture_compare('%s') lists them); %s stays fenced", where, what, differ, name, name, fenced), 0)
  end
  if not D.is_dry(db) then
    output.log(string.format("capture %s: drained, %d gaps of rolled-back changes forgotten, 0 rows differ",
      name, forgotten))
  end
end

-- db:mysql_cutover{capture =, defaults_file =, back_select =, back_table =,
-- client =, mysql_table =, database =, exempt_user =, back_name =,
-- lock_wait_timeout =}
--
-- The switch of capture's table from MySQL to PostgreSQL:
--   0. fences the PostgreSQL table (every role but the runner's): the
--      application writes it only once step 5 opens it;
--   1. fences the MySQL table: every account but exempt_user is refused,
--      once the transactions writing it have ended;
--   2. drains the capture and forgets its remaining gaps; compares the
--      MySQL table (through the capture's select) with the PostgreSQL one:
--      a difference stops here, MySQL fenced (roll the phase back);
--   3. sets the PostgreSQL table's sequences past its largest keys and
--      MySQL's AUTO_INCREMENT;
--   4. prepares the way back: a changelog on the PostgreSQL table and a
--      capture (back_name, default CAPTURE:back) that writes its changes
--      to the MySQL table through back_select (PostgreSQL -> MySQL types),
--      into back_table (default: the capture's source), a foreign table of
--      the same MySQL table whose columns may be declared for writing
--      (mysql_fdw 2.8 drops the fraction of a timestamp it writes: a
--      DATETIME(6) column declared text, written as to_char(...));
--   5. pauses the capture (MySQL's changelog now logs the way back's own
--      writes) and lifts the fence on the PostgreSQL table.
-- Run again after a failure, each step keeps what an earlier attempt did;
-- a table whose way back exists was cut over already and is only opened.
function methods.mysql_cutover(db, opts)
  local where, what = D.where(), "db:mysql_cutover"
  local r = cutover_plan(db, where, opts, what)
  if way_back_state(db, where, r) == "made" then
    -- cut over by an earlier attempt (killed before its phase was recorded
    -- done, or a table before the one that failed): the application may be
    -- writing PostgreSQL already, so nothing is drained again
    value(db, where, "SELECT shift.capture_pause($1) AS v", r.name)
    value(db, where, "SELECT shift.unfence_writes($1::pg_catalog.regclass) AS v", r.into)
    output.log(string.format("cut-over %s: done by an earlier attempt; %s is open for writes", r.name, r.into))
    return
  end
  fence_pg(db, where, r.into, "the application writes MySQL until the cut-over is done")
  mysql_run(db, r, mysql_script(db, where, r, "fence"))
  output.log(string.format("cut-over %s: MySQL table %s fenced (only %s writes it)", r.name, r.mysql_table, r.exempt))
  drain_and_compare(db, where, what, r.name, "the MySQL table")
  local floor = not D.is_dry(db) and next_auto_increment(db, where, r) or nil
  floor = floor and floor - 1
  if D.is_dry(db) then
    D.dry_send(db, "query", where, "SELECT * FROM shift.capture_sequences($1, floor => <MySQL's AUTO_INCREMENT - 1>)", r.name)
  else
    for _, s in ipairs(D.query_at(db, where, "SELECT sequence::pg_catalog.text AS seq, value FROM"
                                  .. " shift.capture_sequences($1, floor => $2::pg_catalog.int8)", r.name, floor)) do
      output.log(string.format("cut-over %s: sequence %s set to %s", r.name, s.seq, tostring(s.value)))
    end
  end
  local log = value(db, where, "SELECT shift.capture_log_create($1::pg_catalog.regclass, $2::pg_catalog.text[])"
                    .. "::pg_catalog.text AS v", r.into, r.key_columns) or (r.into .. "_pgshift_log")
  local keys = {}
  for _, k in ipairs(D.lookup(db, where, "SELECT k FROM shift.capture_progress c,"
                              .. " pg_catalog.unnest(c.key_columns) WITH ORDINALITY u(k, o) WHERE c.name = $1"
                              .. " ORDER BY u.o", r.name)) do
    keys[#keys + 1] = k.k
  end
  define_capture(db, where, { name = r.back, changelog = log, source = r.into, into = r.opts.back_table or r.source,
                               key_columns = #keys > 0 and keys or { "<key>" }, select = r.opts.back_select }, false)
  -- from here MySQL's changelog logs the way back's writes: the forward
  -- capture must not apply them over PostgreSQL's newer rows
  value(db, where, "SELECT shift.capture_pause($1) AS v", r.name)
  value(db, where, "SELECT shift.unfence_writes($1::pg_catalog.regclass) AS v", r.into)
  output.log(string.format("cut-over %s: %s is open for writes; the way back is capture %s", r.name, r.into, r.back))
end

-- db:mysql_cutback{...}: the same options; the way back, for the cut-over
-- phase's down:
--   1. fences the PostgreSQL table (every role but the runner's), once the
--      transactions writing it have ended (db:ddl: short lock waits, retried);
--   2. drains the way back's capture into the MySQL table and compares: a
--      difference stops here, both tables fenced;
--   3. drops the way back (its capture, the changelog and its triggers) and
--      resumes the forward capture;
--   4. lifts the MySQL fence.
-- A paused capture whose way back is gone is refused: MySQL stays fenced.
-- The forward capture goes on from its checkpoint: what the way back wrote
-- to MySQL is logged there too, and applying it again changes nothing.
function methods.mysql_cutback(db, opts)
  local where, what = D.where(), "db:mysql_cutback"
  local r = cutover_plan(db, where, opts, what)
  local state = way_back_state(db, where, r)
  if state == "dropped" then
    error(string.format("%s%s: capture %s is paused but its way back %s is gone: PostgreSQL's writes since the"
      .. " cut-over may not be in MySQL, which stays fenced (carry them over, then shift.capture_pause('%s', false))",
      where, what, r.name, r.back, r.name), 0)
  end
  fence_pg(db, where, r.into, "the application writes MySQL again (the cut-over was rolled back)")
  output.log(string.format("cut-back %s: %s fenced", r.name, r.into))
  if state == "made" then
    drain_and_compare(db, where, what, r.back, string.format("%s (and the MySQL table)", r.into))
  end
  -- one transaction: killed between dropping the way back and resuming the
  -- forward capture, a rerun would find the state it refuses ("dropped")
  db:transaction(function()
    if state == "made" then value(db, where, "SELECT shift.capture_drop($1) AS v", r.back) end
    value(db, where, "SELECT shift.capture_log_drop($1::pg_catalog.regclass) AS v", r.into)
    value(db, where, "SELECT shift.capture_pause($1, false) AS v", r.name)
  end)
  mysql_run(db, r, mysql_script(db, where, r, "unfence"))
  output.log(string.format("cut-back %s: MySQL table %s open for writes again", r.name, r.mysql_table))
end

return E
