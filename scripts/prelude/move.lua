-- scripts/prelude/move.lua: db:connect{...}, a second server in a
-- migration, and online.move_tables{...}, tables moved to another cluster
-- with PostgreSQL's logical replication, as phases (doc/move.md):
--   <name>-check      both sides' prerequisites (shift.move_check); refuses
--                     with every problem's advice
--   <name>-schema     the tables made on the target from the source's
--                     catalogs (shift.move_schema), recorded there
--   <name>-subscribe  a publication on the source, a subscription on the
--                     target that makes its slot and copies the rows
--   <name>-sync       waits for every table's initial copy, showing its
--                     progress, then the lag
--   <name>-validate   pgshift compare of each table at one WAL position
--   <name>-cutover    fences the application's writes on the source, waits
--                     for the target, carries the sequences, starts the way
--                     back (target -> source), lifts the fence on the
--                     target; its down is the way back
--   <name>-contract   drops the way back, the forward subscription, the
--                     publications and slots (and the source's tables)
--
-- Names of what a move makes on either server: "shift_move_" and the move's
-- name (lower case, letters, digits, _), the publication, the subscription
-- and its slot alike.  Each is recorded in shift.move_object on the server
-- it lives on (shift.move_record) so that cleanup finds it.

local C, P = ...
local output, D, loader, dry = P.output, P.db, P.loader, P.dry
local methods = D.methods
local N = {}

-- ---------------------------------------------------------------------------
-- db:connect
-- ---------------------------------------------------------------------------

local CONNECT_OPTIONS = { service = true, dsn = true }

-- A conninfo value as libpq reads it: 'a b' -> 'a b' in quotes, \ and ' escaped.
local function conninfo_value(v)
  return "'" .. tostring(v):gsub("[\\']", "\\%0") .. "'"
end
N.conninfo_value = conninfo_value

-- What a DSN names, for the plan and messages: service, host, port, dbname,
-- never anything else it holds (a password).
local function describe_dsn(dsn)
  if dsn:match("^%a+://") then
    local rest = dsn:gsub("^%a+://", ""):gsub("^[^@/]*@", "")   -- no user:password@
    return "target " .. rest:gsub("%?.*$", "")
  end
  local shown = {}
  for _, k in ipairs({ "service", "host", "port", "dbname" }) do
    local v = dsn:match("%f[%w]" .. k .. "%s*=%s*'([^']*)'") or dsn:match("%f[%w]" .. k .. "%s*=%s*([^%s']+)")
    if v then shown[#shown + 1] = k .. "=" .. v end
  end
  return "target " .. (#shown > 0 and table.concat(shown, " ") or "(the libpq environment)")
end

-- The connection string of what db:connect was given.
local function target_dsn(target, what)
  if type(target) == "string" then return target end
  if type(target) ~= "table" then
    error(what .. ": expected {service = ...}, {dsn = ...} or a connection string", 4)
  end
  D.check_options(target, CONNECT_OPTIONS, what, 5)
  if (target.service == nil) == (target.dsn == nil) then
    error(what .. ": give one of 'service' (a pg_service.conf entry) and 'dsn'", 4)
  end
  if target.service then return "service=" .. conninfo_value(target.service) end
  if type(target.dsn) ~= "string" then error(what .. ": 'dsn' must be a string", 4) end
  return target.dsn
end

-- A dry-run db for the target of the dry-run db `db`: its statements go
-- into db's record (and so into the plan), each marked with the server it
-- is for; placeholders and unchecked asserts count as db's.  Only its
-- transaction state is its own (another session).
local function dry_target(db, label)
  local parent = D.dry_state(db)
  local child = dry.new(parent.site, parent.migration, parent.phase)
  local st = D.dry_state(child)
  for k in pairs(st) do st[k] = nil end
  st.intx = false
  st.statements = setmetatable({}, {
    __len = function() return #parent.statements end,
    __index = parent.statements,
    __newindex = function(_, i, s)
      s.sql = "/* on " .. label .. " */ " .. s.sql
      parent.statements[i] = s
    end })
  setmetatable(st, { __index = parent, __newindex = parent })
  return child
end

-- db:connect{service = "name"} | db:connect{dsn = "..."} | db:connect("dsn")
-- -> a db on that server, with every method of db; closed when the run ends
-- (or by :close()).  Its SQL errors name the server; nothing shows the
-- connection string.  In a dry run, a dry-run db: nothing is connected.
function methods.connect(db, target)
  local dsn = target_dsn(target, "db:connect")
  local bad = D.zero_byte("the connection string", dsn)
  if bad then error(D.where() .. "db:connect: " .. bad, 0) end
  if D.is_dry(db) then return dry_target(db, describe_dsn(dsn)) end
  return C.connect(dsn)
end

-- ---------------------------------------------------------------------------
-- online.move_tables
-- ---------------------------------------------------------------------------

local MOVE_OPTIONS = { tables = true, target = true, name = true, source_conninfo = true,
                       sync_timeout = true, target_conninfo = true, app_roles = true, redirect = true,
                       catchup_timeout = true, drop_source = true, indexes = true }

-- The connection to the target, one per recipe and run.
local function target(r, db)
  if r.tgt_of ~= db then
    r.tgt, r.tgt_of = db:connect(r.target), db
  end
  return r.tgt
end

-- The move's name and the name of what it makes, from the migration's name
-- when none was given.
local function names(r, db)
  local mig, phase = D.current(db)
  local move = r.name or (mig or "move")
  move = move:lower():gsub("[^a-z0-9_]", "_"):sub(1, 48)
  return move, "shift_move_" .. move, mig, phase
end

-- What the move makes on conn (side "source" or "target"), recorded there
-- before it is made (a table or sequence once made, in the transaction that
-- makes it), and forgotten once dropped: shift.move_record, move_forget.
local function record(r, conn, side, kind, object)
  local move, _, mig, phase = names(r, conn)
  conn:exec("SELECT shift.move_record($1, $2, $3, $4, $5, $6)", move, kind, object, side, mig, phase)
end

local function forget(conn, kind, object)
  conn:exec("SELECT shift.move_forget($1, $2)", kind, object)
end

-- The tables as the source resolves them: schema-qualified and quoted.  A
-- name the source does not resolve is an error: it would otherwise reach
-- the publication, lock and drop statements as written.
local function source_tables(r, db)
  local rows = D.lookup(db, r.site, [[
SELECT u.t AS given, (SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.oid = pg_catalog.to_regclass(u.t)) AS name
  FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY u(t, i) ORDER BY u.i]],
    D.array_literal(r.tables))
  if #rows == 0 then return r.tables end        -- dry: as written, shown in the plan only
  local out = {}
  for i, row in ipairs(rows) do
    if row.name == nil then error(r.site .. "no table " .. row.given .. " on the source", 0) end
    out[i] = row.name
  end
  return out
end

-- ---- check

local function check_up(r, db)
  local tgt = target(r, db)
  local tables = source_tables(r, db)
  local arr = D.array_literal(tables)
  local lines = {}
  local function add(side, rows)
    for _, p in ipairs(rows) do
      lines[#lines + 1] = string.format("%s: %s is %s: %s", side, p.item, p.current, p.advice)
    end
  end
  local version = db:value("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_shift'")
  local tversion = tgt:value("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_shift'")
  if not D.is_dry(db) and tversion ~= version then
    lines[#lines + 1] = string.format("target: pg_shift is %s: CREATE EXTENSION pg_shift VERSION '%s' "
      .. "(or ALTER EXTENSION pg_shift UPDATE) on the target database", tversion and ("version " .. tversion)
      or "not installed", version)
    error(r.site .. "the move cannot start:\n  " .. table.concat(lines, "\n  "), 0)
  end
  add("source", D.query_at(db, r.site,
    "SELECT item, current, advice FROM shift.move_check('source', $1::pg_catalog.text[])", arr))
  add("target", D.query_at(tgt, r.site,
    "SELECT item, current, advice FROM shift.move_check('target', $1::pg_catalog.text[])", arr))
  if #lines > 0 then
    error(r.site .. "the move cannot start:\n  " .. table.concat(lines, "\n  "), 0)
  end
  local wl = tgt:value("SELECT pg_catalog.current_setting('wal_level')")
  if not D.is_dry(db) and wl ~= "logical" then
    output.log("note: target: wal_level is " .. tostring(wl) .. ": the cut-over's way back (a publication on the"
      .. " target) needs wal_level = logical there; set it and restart the target before the cutover phase")
  end
  output.log(string.format("prerequisites met on both sides for %d table%s", #tables,
    #tables == 1 and "" or "s"))
end

-- ---- schema

-- What this move recorded on the target, of kind: object (the name
-- recorded), relation (its quoted name while what is there is the one the
-- move made: the same OID and owner; else nil) and present.
local function recorded(tgt, move, kind)
  if D.is_dry(tgt) then return {} end
  -- only this role's records: another role may record any name under this
  -- move's name, and what is read here is dropped
  return tgt:query("SELECT object, relation, present FROM shift.move_objects WHERE move = $1 AND kind = $2"
    .. " AND side = 'target' AND owner = CURRENT_USER ORDER BY created_at, object", move, kind)
end

-- The quoted name of a table or sequence this move recorded (o, a row of
-- recorded()) while it is still the one the move made; nil, with a warning
-- when something else is at its name now (dropped and made again outside
-- the move: not the move's to drop or empty).
local function still_ours(o, doing)
  if o.relation then return o.relation end
  if o.present then
    output.log("warning: " .. o.object .. " on the target is not the one this move made (dropped and made"
      .. " again, or given to another role, since): not " .. doing)
  end
  return nil
end

-- The statements that make the moved tables on the target (the source's
-- shift.move_schema), and a predicate telling which of them wait for the
-- end of the initial copy: with indexes = "after_copy", the secondary
-- indexes (those of no constraint), but an index that is a table's replica
-- identity (the apply worker finds rows by it, and the schema names it).
-- The copy then writes no index but the keys', and each secondary index is
-- built once, from the copied rows, at the end of the sync phase.
local function schema_statements(r, db)
  local tables = D.array_literal(source_tables(r, db))
  local stmts = D.query_at(db, r.site, "SELECT kind, object, statement FROM shift.move_schema($1::pg_catalog.text[])"
    .. " ORDER BY ordinal", tables)
  local replident = {}
  if r.opts.indexes == "after_copy" then
    for _, x in ipairs(D.lookup(db, r.site, "SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS def"
        .. " FROM pg_catalog.pg_index i WHERE i.indisreplident AND i.indrelid OPERATOR(pg_catalog.=) ANY"
        .. " (SELECT pg_catalog.to_regclass(t)::pg_catalog.oid FROM pg_catalog.unnest($1::pg_catalog.text[]) t)",
        tables)) do
      replident[x.def] = true
    end
  end
  return stmts, function(st)
    return r.opts.indexes == "after_copy" and st.kind == "index" and not replident[st.statement]
  end
end

local function schema_up(r, db)
  local tgt = target(r, db)
  local move = names(r, db)
  local stmts, after_copy = schema_statements(r, db)
  -- made by this move before (a run stopped half way) and still what it
  -- made: made again; there beforehand: kept, its statements skipped, if
  -- shift.move_target_table says so (an empty plain table of this role's
  -- own with nothing that runs code), else refused
  local ours = {}
  for _, k in ipairs({ "table", "sequence" }) do
    for _, o in ipairs(recorded(tgt, move, k)) do ours[o.object] = still_ours(o, "made again") end
  end
  local keep, made, deferred = {}, 0, 0
  tgt:transaction(function(tx)
    -- the statements name what is not in pg_catalog with its schema: no
    -- object a role puts in a schema of the session's path can capture a
    -- type, function or operator they use
    tx:exec("SET LOCAL search_path = pg_catalog, pg_temp")
    for _, s in ipairs(stmts) do
      local new = s.kind == "table" or s.kind == "sequence"
      if new then
        local exists = tx:value("SELECT pg_catalog.to_regclass($1) IS NOT NULL", s.object)
        if exists and ours[s.object] then
          tx:exec("DROP " .. (s.kind == "table" and "TABLE " or "SEQUENCE ") .. ours[s.object] .. " CASCADE")
        elseif exists and s.kind == "table" then
          local k = D.query_at(tx, r.site, "SELECT decision, current, advice FROM shift.move_target_table($1)",
            s.object)[1]
          if k.decision ~= "keep" then
            error(string.format("%starget: table %s %s: %s", r.site, s.object, k.current, k.advice), 0)
          end
          keep[s.object] = true
          output.log(s.object .. " exists on the target (empty): kept as it is")
        elseif exists then
          -- a sequence the tables' defaults use: kept only if this role's own
          if not tx:value("SELECT c.relkind = 'S' AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles"
              .. " WHERE rolname = current_user) FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
              s.object) then
            error(string.format("%starget: %s exists and is not a sequence of role %s's own: drop or rename it on"
              .. " the target, or let the move make it", r.site, s.object, tx:value("SELECT current_user")), 0)
          end
          keep[s.object] = true
          output.log(s.object .. " exists on the target: kept as it is")
        end
      end
      if keep[s.object] then
        -- the table was there: nothing of it is made
      elseif after_copy(s) then
        deferred = deferred + 1
      else
        D.exec_at(tx, r.site, s.statement)
        -- recorded once made (the record checks it is the caller's), in
        -- the same transaction: never one without the other
        if new then record(r, tx, "target", s.kind, s.object) end
        if s.kind == "table" then made = made + 1 end
      end
    end
  end)
  output.log(string.format("%d table%s made on the target%s", made, made == 1 and "" or "s",
    deferred == 0 and "" or string.format("; %d secondary index%s made after the initial copy (indexes = \"after_copy\")",
      deferred, deferred == 1 and "" or "es")))
end

local function schema_down(r, db)
  local tgt = target(r, db)
  local move = names(r, db)
  tgt:transaction(function(tx)
    for _, k in ipairs({ "table", "sequence" }) do
      for _, o in ipairs(recorded(tx, move, k)) do
        -- the name as the server quotes it, and only while it is what the move made
        local rel = still_ours(o, "dropped")
        if rel then tx:exec("DROP " .. (k == "table" and "TABLE " or "SEQUENCE ") .. rel .. " CASCADE") end
        forget(tx, k, o.object)
      end
    end
    if D.is_dry(tx) then
      tx:exec("-- DROP TABLE / DROP SEQUENCE ... CASCADE of what shift.move_objects lists for this move")
    end
  end)
end

-- ---- subscribe

-- The connection string one server uses to reach the other: given, or the
-- other's host (its socket directory), port, database and user.
local function conninfo_of(r, db, given)
  if given then return given end
  local s = D.lookup(db, r.site, [[
SELECT coalesce(pg_catalog.host(pg_catalog.inet_server_addr()),
                pg_catalog.btrim(pg_catalog.split_part(pg_catalog.current_setting('unix_socket_directories'), ',', 1))) AS host,
       pg_catalog.current_setting('port') AS port, pg_catalog.current_database() AS dbname,
       current_user AS "user"]])[1]
  if not s then return "host=<the other's host> port=<port> dbname=<database> user=<user>" end
  return string.format("host=%s port=%s dbname=%s user=%s", conninfo_value(s.host), conninfo_value(s.port),
    conninfo_value(s.dbname), conninfo_value(s.user))
end
local function source_conninfo(r, db) return conninfo_of(r, db, r.opts.source_conninfo) end

local function subscribe_up(r, db)
  local tgt = target(r, db)
  local _, obj = names(r, db)
  local tables = source_tables(r, db)        -- quoted by the server (as written, dry)
  -- the source: recorded, then made
  record(r, db, "source", "publication", obj)
  record(r, db, "source", "slot", obj)
  if D.is_dry(db) or not db:value("SELECT true FROM pg_catalog.pg_publication WHERE pubname = $1", obj) then
    D.exec_at(db, r.site, "CREATE PUBLICATION " .. D.qi(db, obj) .. " FOR TABLE " .. table.concat(tables, ", "))
  end
  -- the target: recorded, then made, unless a run before made it
  record(r, tgt, "target", "subscription", obj)
  if not D.is_dry(tgt) and tgt:value("SELECT true FROM pg_catalog.pg_subscription WHERE subname = $1"
      .. " AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())", obj) then
    output.log("subscription " .. obj .. " exists already on the target")
    return
  end
  -- a slot of that name without its subscription: left by a run that stopped
  local stale = db:value("SELECT NOT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", obj)
  if stale == true then
    output.log("dropping slot " .. obj .. ", left on the source without its subscription")
    db:exec("SELECT pg_catalog.pg_drop_replication_slot($1)", obj)
  end
  -- CREATE SUBSCRIPTION connects to the source and makes the slot there; it
  -- cannot run in a transaction block
  D.exec_at(tgt, r.site, "CREATE SUBSCRIPTION " .. D.qi(tgt, obj) .. " CONNECTION "
    .. tgt:quote_literal(source_conninfo(r, db)) .. " PUBLICATION " .. D.qi(tgt, obj)
    .. " WITH (copy_data = true, create_slot = true, slot_name = " .. tgt:quote_literal(obj) .. ")")
  output.log(string.format("publication %s on the source, subscription %s (and its slot) on the target: "
    .. "copying %d table%s", obj, obj, #tables, #tables == 1 and "" or "s"))
end

-- DROP PUBLICATION name on conn, its tables taken out of it first: a writer
-- whose backend rebuilds a table's list of publications while the
-- publication is dropped fails with "cache lookup failed for publication"
-- (PostgreSQL 15; seen by 77's application once), where one that finds a
-- publication without the table does not.
local function drop_publication(conn, name)
  if not D.is_dry(conn) then
    local l = {}
    for i, x in ipairs(conn:query("SELECT pg_catalog.format('%I.%I', schemaname, tablename) AS t"
        .. " FROM pg_catalog.pg_publication_tables WHERE pubname = $1", name)) do
      l[i] = x.t
    end
    if #l > 0 then
      conn:exec("ALTER PUBLICATION " .. D.qi(conn, name) .. " DROP TABLE " .. table.concat(l, ", "))
    end
  end
  conn:exec("DROP PUBLICATION IF EXISTS " .. D.qi(conn, name))
end

local function subscribe_down(r, db)
  local tgt = target(r, db)
  local move, obj = names(r, db)
  local dry_run = D.is_dry(db)
  -- the subscription first: dropping it drops its slot on the source
  if dry_run or tgt:value("SELECT true FROM pg_catalog.pg_subscription WHERE subname = $1"
      .. " AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())", obj) then
    local ok, err = pcall(tgt.exec, tgt, "DROP SUBSCRIPTION IF EXISTS " .. D.qi(tgt, obj))
    if not ok then
      -- the source cannot be reached: detach the slot, drop the subscription,
      -- and drop the slot on the source below
      output.log("DROP SUBSCRIPTION " .. obj .. " failed (" .. tostring(type(err) == "table" and err.message or err)
        .. "): detaching its slot and dropping it")
      tgt:exec("ALTER SUBSCRIPTION " .. D.qi(tgt, obj) .. " DISABLE")
      tgt:exec("ALTER SUBSCRIPTION " .. D.qi(tgt, obj) .. " SET (slot_name = NONE)")
      tgt:exec("DROP SUBSCRIPTION " .. D.qi(tgt, obj))
    end
  end
  forget(tgt, "subscription", obj)
  -- the rows it copied into the tables the move made go with it: a
  -- subscription made again copies them again (a table that was there
  -- before, empty, keeps them: the next copy would fail on their keys)
  local copied = {}
  for _, o in ipairs(recorded(tgt, names(r, db), "table")) do
    local rel = still_ours(o, "emptied")
    if rel then copied[#copied + 1] = rel end
  end
  if #copied > 0 then D.exec_at(tgt, r.site, "TRUNCATE " .. table.concat(copied, ", ")) end
  if dry_run then tgt:exec("-- TRUNCATE of the tables shift.move_objects lists for this move") end
  -- a slot left behind (the subscription gone, or detached): dropped by
  -- name, once its walsender has let go of it
  if not dry_run then
    for _ = 1, 100 do
      local active = db:value("SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", obj)
      if active == nil then break end
      if active == false then
        output.log("dropping slot " .. obj .. " left on the source")
        db:exec("SELECT pg_catalog.pg_drop_replication_slot($1)", obj)
        break
      end
      C.sleep(0.1)
    end
  else
    db:exec("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots"
      .. " WHERE slot_name = $1 AND NOT active", obj)
  end
  drop_publication(db, obj)
  forget(db, "slot", obj)
  forget(db, "publication", obj)
end

-- ---- sync

local STATES = { i = "initializing", d = "copying", f = "copied", s = "synchronized", r = "ready" }

local function bytes_text(n)
  n = n or 0
  if n >= 1 << 30 then return string.format("%.1f GB", n / (1 << 30)) end
  if n >= 1 << 20 then return string.format("%.1f MB", n / (1 << 20)) end
  if n >= 1 << 10 then return string.format("%.0f kB", n / (1 << 10)) end
  return string.format("%d B", n)
end

local SYNC_SQL = [[
SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS tbl, r.srsubstate::pg_catalog.text AS state,
       p.tuples_processed AS rows, p.bytes_processed AS bytes
  FROM pg_catalog.pg_subscription s
  JOIN pg_catalog.pg_subscription_rel r ON r.srsubid = s.oid
  JOIN pg_catalog.pg_class c ON c.oid = r.srrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_progress_copy p ON p.relid = r.srrelid AND p.datid = s.subdbid
 WHERE s.subname = $1
   AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
 ORDER BY 1]]

local LAG_SQL_SOURCE = [[
SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::pg_catalog.int8 AS bytes
  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1]]

local LAG_SQL_TARGET = [[
SELECT pg_catalog.date_part('epoch', pg_catalog.now() - s.last_msg_send_time) AS seconds
  FROM pg_catalog.pg_stat_subscription s WHERE s.subname = $1 AND s.relid IS NULL]]

-- What the target is, for messages: never its password.
local function target_label(r)
  return describe_dsn(target_dsn(r.target, "online.move_tables"))
end

-- tgt:method(...), a lost connection to the target (the server stopped or
-- restarted, the network between cut) said as such, with what to do.
local function at_target(r, tgt, method, ...)
  local ok, res = pcall(tgt[method], tgt, ...)
  if ok then return res end
  if pcall(tgt.value, tgt, "SELECT 1") then error(res, 0) end
  error(string.format("%sthe %s cannot be reached (%s): the subscription copies and applies again once it is"
    .. " back; start it (or mend the network), then run again", r.site, target_label(r),
    tostring(type(res) == "table" and res.message or res):gsub("%s+$", "")), 0)
end

local ERRORS_SQL = [[
SELECT apply_error_count AS apply, sync_error_count AS sync
  FROM pg_catalog.pg_stat_subscription_stats WHERE subname = $1]]

-- How often the subscription's workers failed on the target so far.
local function sub_errors(r, tgt, obj)
  local e = at_target(r, tgt, "query", ERRORS_SQL, obj)[1] or {}
  return { apply = tonumber(e.apply) or 0, sync = tonumber(e.sync) or 0 }
end

-- Refuses to wait on once the subscription's workers failed twice since
-- `since` (sub_errors): a failed worker starts again after
-- wal_retrieve_retry_interval, and fails again on a conflict it cannot get
-- past (a key the target has already); one failure can be a server gone
-- away for a moment.
local function check_errors(r, tgt, obj, since)
  local now = sub_errors(r, tgt, obj)
  local n = now.apply - since.apply + now.sync - since.sync
  if n >= 2 then
    error(string.format("%ssubscription %s on the target failed to apply the source's changes %d times while this"
      .. " phase waited (pg_stat_subscription_stats: apply_error_count %d, sync_error_count %d): a conflict, such"
      .. " as a row on the target with a key the source writes; the target's server log names the table and the"
      .. " key: remove the conflicting row on the target, then run again", r.site, obj, n, now.apply, now.sync), 0)
  end
end

-- Waits, up to timeout seconds, until the target has applied what the
-- source wrote so far (the subscription's slot confirmed past the source's
-- WAL position now), failing on the subscription's repeated errors (since:
-- sub_errors).  False on timeout.
local function wait_level(r, db, tgt, obj, since, timeout)
  local lsn = db:value("SELECT pg_catalog.pg_current_wal_lsn()::pg_catalog.text")
  local t0 = os.time()
  while true do
    local done = db:value("SELECT confirmed_flush_lsn >= $2::pg_catalog.pg_lsn FROM pg_catalog.pg_replication_slots"
      .. " WHERE slot_name = $1", obj, lsn)
    if done == nil then
      error(r.site .. "replication slot " .. obj .. " is missing on the source: roll the move back to its schema"
        .. " phase (pgshift rollback --to <name>-schema) and run again", 0)
    end
    if done then return true end
    check_errors(r, tgt, obj, since)
    if os.time() - t0 > timeout then return false end
    C.sleep(0.1)
  end
end

-- indexes = "after_copy": each secondary index the schema phase left out,
-- built on the target now that every table is copied (IF NOT EXISTS: a run
-- stopped half way made some; each is its own transaction, so none is left
-- half built).  A plain CREATE INDEX: it holds the apply worker's writes to
-- its table while it builds (the lag grows, then shrinks); the target is not
-- live yet.
local function build_indexes(r, db, tgt)
  local stmts, after_copy = schema_statements(r, db)
  if D.is_dry(db) then
    tgt:exec("-- CREATE INDEX IF NOT EXISTS ... of each secondary index shift.move_schema gives (indexes = \"after_copy\")")
    return
  end
  -- only on the tables this move made (a table that was there is kept as it is)
  local ours = {}
  for _, o in ipairs(recorded(tgt, names(r, db), "table")) do
    ours[o.object] = still_ours(o, "given its indexes") ~= nil
  end
  local n = 0
  local clock = "SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())"
  for _, s in ipairs(stmts) do
    if after_copy(s) and ours[s.object] then
      -- pg_get_indexdef: CREATE [UNIQUE] INDEX name ON ...
      local kind, rest = "INDEX", s.statement:match("^CREATE INDEX (.*)$")
      if not rest then kind, rest = "UNIQUE INDEX", s.statement:match("^CREATE UNIQUE INDEX (.*)$") end
      if not rest then error(r.site .. "unexpected index definition from shift.move_schema: " .. s.statement, 0) end
      local name = rest:match("^(.-) ON ") or "?"
      if tgt:value("SELECT true FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid"
          .. " WHERE i.indrelid = pg_catalog.to_regclass($1) AND pg_catalog.quote_ident(c.relname) = $2",
          s.object, name) then
        output.log(string.format("index %s of %s exists already on the target", name, s.object))
      else
        local t0 = tgt:value(clock)
        tgt:transaction(function(tx)
          -- under the schema phase's search_path: no object of a schema on
          -- the session's path can capture what the definition uses
          tx:exec("SET LOCAL search_path = pg_catalog, pg_temp")
          D.exec_at(tx, r.site, "CREATE " .. kind .. " IF NOT EXISTS " .. rest)
        end)
        n = n + 1
        output.log(string.format("index %s of %s built on the target in %.1f s", name, s.object,
          tgt:value(clock) - t0))
      end
    end
  end
  if n > 0 then
    output.log(string.format("%d secondary index%s built after the initial copy", n, n == 1 and "" or "es"))
  end
end

local function sync_up(r, db)
  local tgt = target(r, db)
  local _, obj = names(r, db)
  if D.is_dry(db) then
    tgt:query(SYNC_SQL, obj)
    if r.opts.indexes == "after_copy" then build_indexes(r, db, tgt) end
    db:value(LAG_SQL_SOURCE, obj)
    tgt:value(LAG_SQL_TARGET, obj)
    return
  end
  local timeout = r.opts.sync_timeout or 3600
  local seen, last_print = {}, -1
  local t0 = os.time()
  local since = sub_errors(r, tgt, obj)
  while true do
    local rows = at_target(r, tgt, "query", SYNC_SQL, obj)
    if #rows == 0 then
      error(r.site .. "subscription " .. obj .. " has no tables on the target: run the subscribe phase", 0)
    end
    local ready, now = 0, os.time()
    for _, t in ipairs(rows) do
      local s = seen[t.tbl] or { state = nil, rows = 0, at = now }
      if t.state == "r" then ready = ready + 1 end
      local changed = s.state ~= t.state
      if changed or (now ~= last_print and t.state ~= "r") then
        local copied = ""
        if t.rows then
          local rate = (now > s.at) and (t.rows - s.rows) / (now - s.at) or 0
          copied = string.format(", %d rows (%s) copied, %.0f rows/s", t.rows, bytes_text(t.bytes), rate)
          s.rows, s.at = t.rows, now
        end
        output.log(string.format("sync %s: %s (%s)%s", t.tbl, STATES[t.state] or t.state, t.state, copied))
      end
      s.state = t.state
      seen[t.tbl] = s
    end
    last_print = now
    if ready == #rows then break end
    check_errors(r, tgt, obj, since)
    if now - t0 > timeout then
      error(string.format("%s%d of %d tables ready after %d s (sync_timeout): the copy goes on; run again to "
        .. "wait more", r.site, ready, #rows, now - t0), 0)
    end
    C.sleep(0.25)
  end
  if r.opts.indexes == "after_copy" then build_indexes(r, db, tgt) end
  -- the changes made during the copy (and the index builds), applied
  if not wait_level(r, db, tgt, obj, since, math.max(1, timeout - (os.time() - t0))) then
    error(string.format("%severy table is copied, but the target has not applied the source's changes after %d s"
      .. " (sync_timeout): run again to wait more", r.site, os.time() - t0), 0)
  end
  local lag = db:value(LAG_SQL_SOURCE, obj)
  local secs = at_target(r, tgt, "value", LAG_SQL_TARGET, obj)
  output.log(string.format("every table ready in %d s; lag %s behind the source%s", os.time() - t0,
    bytes_text(lag), secs and string.format(", last message %.1f s ago", secs) or ""))
end

-- ---- validate

local function validate_up(r, db)
  local tgt = target(r, db)
  local _, obj = names(r, db)
  local tables = source_tables(r, db)
  if D.is_dry(db) then
    for _, t in ipairs(tables) do
      tgt:value("-- pgshift compare of " .. t .. " with the source at one WAL position")
    end
    return
  end
  -- a target that fails to apply is said so, not compared (the compare
  -- waits for it a minute, then finds rows missing)
  wait_level(r, db, tgt, obj, sub_errors(r, tgt, obj), 60)
  local bad = {}
  for _, t in ipairs(tables) do
    local rc = C.compare(db, tgt, t, output.settings.quiet or output.settings.format == "json")
    if rc ~= 0 then bad[#bad + 1] = t .. (rc == 1 and " differs" or " could not be compared") end
  end
  if #bad > 0 then
    error(r.site .. "the target is not equal to the source: " .. table.concat(bad, ", ")
      .. " (see the compare above); the move's phases before stay as they are", 0)
  end
  output.log(string.format("%d table%s equal on both sides", #tables, #tables == 1 and "" or "s"))
end

-- ---- cutover, its way back, and the contract
--
-- The fence: the application roles' write privileges (INSERT, UPDATE,
-- DELETE, TRUNCATE) on the moved tables are revoked on the live side, in a
-- transaction that then takes EXCLUSIVE locks on them, so that it commits
-- once every write already under way has committed; from then on those
-- roles' writes fail with insufficient_privilege (42501) and the
-- application retries them on the other side.  The lift is the GRANT on the
-- side made live.  A lock alone would hold the writers and then let them
-- write on the side that is no longer live (doc/move.md).

-- The reverse direction's name: the forward one's and "_rev" (63 bytes at most).
local function rev_name(obj) return obj .. "_rev" end

local SUB_SQL = "SELECT subenabled FROM pg_catalog.pg_subscription WHERE subname = $1"
  .. " AND subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"

-- true (enabled), false (disabled) or nil (absent): subscription name on conn
local function sub_state(conn, name)
  if D.is_dry(conn) then return nil end
  return conn:value(SUB_SQL, name)
end

local function elapsed_check(r, t0, timeout, what)
  if os.time() - t0 > timeout then
    error(string.format("%s%s after %d s (catchup_timeout)", r.site, what, os.time() - t0), 0)
  end
end

-- Waits until slot on conn has been confirmed by its subscriber up to lsn.
local function wait_confirmed(r, conn, slot, lsn, where)
  if D.is_dry(conn) then return end
  local t0, timeout = os.time(), r.opts.catchup_timeout or 60
  while true do
    local done = conn:value("SELECT confirmed_flush_lsn >= $2::pg_catalog.pg_lsn FROM pg_catalog.pg_replication_slots"
      .. " WHERE slot_name = $1", slot, lsn)
    if done == nil then error(r.site .. "replication slot " .. slot .. " is missing on the " .. where, 0) end
    if done then return end
    elapsed_check(r, t0, timeout, "the " .. (where == "source" and "target" or "source")
      .. " has not applied the " .. where .. "'s WAL up to " .. lsn)
    C.sleep(0.005)
  end
end

-- Disables subscription name on conn and waits until its worker has gone:
-- stopped at once (a disabled subscription's worker notices only when it
-- next wakes, up to a second later; it has nothing to apply, the other side
-- being fenced and caught up), and not started again.
local function stop_sub(r, conn, name)
  conn:exec("ALTER SUBSCRIPTION " .. D.qi(conn, name) .. " DISABLE")
  if D.is_dry(conn) then return end
  conn:exec("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_subscription"
    .. " WHERE subname = $1 AND pid IS NOT NULL", name)
  local t0 = os.time()
  while conn:value("SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL",
      name) ~= 0 do
    elapsed_check(r, t0, r.opts.catchup_timeout or 60, "the apply worker of subscription " .. name .. " is still running")
    C.sleep(0.005)
  end
end

-- Moves slot (made on conn, inactive) past everything conn wrote so far,
-- after flushing it: what the other direction applied there is never sent back.
local function skip_to_now(conn, slot)
  conn:transaction(function(tx)
    tx:exec("SET LOCAL synchronous_commit = on")
    tx:value("SELECT pg_catalog.pg_current_xact_id()")
  end)
  conn:exec("SELECT pg_catalog.pg_replication_slot_advance($1, pg_catalog.pg_current_wal_flush_lsn())", slot)
end

-- The sequences the moved tables own (serial and identity columns), with
-- their current value on conn.
local SEQ_SQL = [[
SELECT pg_catalog.format('%I.%I', n.nspname, s.relname) AS seq, q.last_value, q.increment_by
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_catalog.pg_sequences q ON q.schemaname = n.nspname AND q.sequencename = s.relname
 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.deptype IN ('a', 'i')
   AND d.refobjid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.regclass[])
 ORDER BY 1]]

-- Sets every sequence the tables own on to, past its value on from.
local function carry_sequences(r, from, to, tables)
  local arr = D.array_literal(tables)
  local rows = D.query_at(from, r.site, SEQ_SQL, arr)
  local n = 0
  for _, s in ipairs(rows) do
    if s.last_value then
      local op = tonumber(s.increment_by) < 0 and "LEAST" or "GREATEST"
      D.exec_at(to, r.site, "SELECT pg_catalog.setval($1::pg_catalog.regclass, " .. op
        .. "($2::pg_catalog.int8, (SELECT last_value FROM pg_catalog.pg_sequences"
        .. " WHERE pg_catalog.format('%I.%I', schemaname, sequencename) = $1::pg_catalog.text)))", s.seq, s.last_value)
      n = n + 1
    end
  end
  if D.is_dry(from) then
    D.exec_at(to, r.site, "-- SELECT pg_catalog.setval(seq, <its last_value on the other side>) for each sequence the tables own")
  end
  return n
end

-- A fence begins on the source (shift.move_fence_begin): the privileges it
-- moves are recorded there as rows (relation, role, privilege), read from
-- the catalog ('forward': the application roles', app_roles or every role
-- but the owner that may write a moved table) or from the last forward fence
-- ('back').  Returns the fence's id (nil, dry).
local function fence_begin(r, db, move, direction, tables)
  local row = D.query_at(db, r.site, "SELECT shift.move_fence_begin($1, $2, $3::pg_catalog.text[],"
    .. " $4::pg_catalog.text[]) AS id", move, direction, D.array_literal(tables),
    r.opts.app_roles and D.array_literal(r.opts.app_roles) or nil)[1]
  return row and row.id
end

-- What the dry run shows for each action of a fence.
local DRY_FENCE = {
  ["revoke writes"] = "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE <each moved table> FROM <each application role>",
  ["grant writes"] = "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON TABLE <each moved table> TO <each application role>",
  ["grant all"] = "GRANT <its privileges> ON TABLE <each moved table> (and SEQUENCE <each it owns>) TO <each application role>",
}

-- The statements of fence id (on db, the source) for action ('revoke
-- writes', 'grant writes', 'grant all'): built there from the fence's rows,
-- every name quoted (shift.move_fence_statements); run on either side.
local function fence_statements(db, id, action)
  if D.is_dry(db) then return { DRY_FENCE[action] } end
  local out = {}
  for _, row in ipairs(db:query("SELECT s FROM shift.move_fence_statements($1, $2) AS s", id, action)) do
    out[#out + 1] = row.s
  end
  return out
end

local function clock(db)
  return D.is_dry(db) and "now" or db:value("SELECT pg_catalog.clock_timestamp()::pg_catalog.text")
end

-- The fence on conn: the write privileges of fence id (recorded on db, the
-- source) revoked, the writes under way drained, in one short transaction
-- (lock_timeout 5s, the whole of it tried again on a lock timeout or
-- deadlock); returns the WAL position after them and the fence's start on
-- the source's clock.
local function fence(r, conn, db, id, tables)
  local revoke = fence_statements(db, id, "revoke writes")
  local lsn, t0
  D.short_transaction(conn, r.site, { lock_timeout = "5s" }, function(tx)
    for _, sql in ipairs(revoke) do tx:exec(sql) end
    t0 = clock(db)
    D.exec_at(tx, r.site, "LOCK TABLE " .. table.concat(tables, ", ") .. " IN EXCLUSIVE MODE")
    lsn = tx:value("SELECT pg_catalog.pg_current_wal_insert_lsn()::pg_catalog.text")
  end)
  return lsn or "0/0", t0
end

-- The lift on conn: every privilege of fence id (all = true) or the write
-- ones granted.
local function lift(conn, db, id, all)
  local grant = fence_statements(db, id, all and "grant all" or "grant writes")
  conn:transaction(function(tx)
    for _, sql in ipairs(grant) do tx:exec(sql) end
  end)
end


local function ms_since(db, t)
  if D.is_dry(db) then return 0 end
  return tonumber(db:value("SELECT 1000 * pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()"
    .. " - $1::pg_catalog.timestamptz)", t))
end

-- The latest fence of the move recorded on the source.
local function last_fence(db, move)
  if D.is_dry(db) then return nil end
  -- only this role's fences: their privileges are granted and revoked
  return db:query("SELECT id, direction, fence_ms, started_at::pg_catalog.text FROM shift.move_fences"
    .. " WHERE move = $1"
    .. " AND owner = CURRENT_USER ORDER BY id DESC LIMIT 1", move)[1]
end

local function run_redirect(r, db, tgt, live)
  if not r.opts.redirect then return end
  local ok, err = pcall(r.opts.redirect, db, tgt, live)
  if not ok and D.is_dry(db) and loader.sandbox_refusal(err) then
    -- the plan shows what the hook sent before the review's sandbox
    -- refused it something (an os.execute, say) and goes on; any other
    -- error fails the plan, as it fails the run
    db:exec("-- the redirect hook (live = " .. live .. ") stopped in the plan: "
      .. tostring(err):gsub("\n", " "))
    return
  end
  if not ok then
    error(r.site .. "the redirect hook failed (" .. tostring(type(err) == "table" and err.message or err)
      .. "): the fence is lifted by the phase's down", 0)
  end
end

-- Drops subscription name on conn (and so its slot on the other side),
-- detaching the slot when the other side cannot be reached, then a slot of
-- that name left on other; forgets both records.
local function drop_sub(conn, other, name)
  if D.is_dry(conn) or sub_state(conn, name) ~= nil then
    local ok = pcall(conn.exec, conn, "DROP SUBSCRIPTION IF EXISTS " .. D.qi(conn, name))
    if not ok then
      conn:exec("ALTER SUBSCRIPTION " .. D.qi(conn, name) .. " DISABLE")
      conn:exec("ALTER SUBSCRIPTION " .. D.qi(conn, name) .. " SET (slot_name = NONE)")
      conn:exec("DROP SUBSCRIPTION " .. D.qi(conn, name))
    end
  end
  forget(conn, "subscription", name)
  if D.is_dry(other) then
    other:exec("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots"
      .. " WHERE slot_name = $1 AND NOT active", name)
  else
    for _ = 1, 100 do
      local active = other:value("SELECT active FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", name)
      if active == nil then break end
      if active == false then
        other:exec("SELECT pg_catalog.pg_drop_replication_slot($1)", name)
        break
      end
      C.sleep(0.1)
    end
  end
  forget(other, "slot", name)
end

-- Makes, unless there, a slot name on pub_db and a disabled subscription
-- name on sub_db reading it (copy_data = false), publication pub: recorded
-- first on each side.
local function prepare_sub(r, pub_db, pub_side, sub_db, sub_side, name, pub, conninfo)
  record(r, pub_db, pub_side, "slot", name)
  record(r, sub_db, sub_side, "subscription", name)
  if sub_state(sub_db, name) ~= nil then return end
  if D.is_dry(pub_db) or not pub_db:value("SELECT true FROM pg_catalog.pg_replication_slots WHERE slot_name = $1", name) then
    pub_db:exec("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", name)
  end
  D.exec_at(sub_db, r.site, "CREATE SUBSCRIPTION " .. D.qi(sub_db, name) .. " CONNECTION "
    .. sub_db:quote_literal(conninfo) .. " PUBLICATION " .. D.qi(sub_db, pub)
    .. " WITH (copy_data = false, create_slot = false, enabled = false, slot_name = "
    .. sub_db:quote_literal(name) .. ")")
end

local function check_logical(r, db, tgt)
  if D.is_dry(tgt) then return end
  if not db:value("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user") then
    error(r.site .. "source: role " .. db:value("SELECT current_user") .. " is not a superuser: the way back"
      .. " (a subscription on the source) needs one on PostgreSQL 15; run the cut-over as one", 0)
  end
  local wl = tgt:value("SELECT pg_catalog.current_setting('wal_level')")
  if wl ~= "logical" then
    error(r.site .. "target: wal_level is " .. wl .. ": the way back (a publication on the target) needs"
      .. " wal_level = logical there; set it in postgresql.conf and restart the target, then run again", 0)
  end
end

-- The fence's outcome, printed and recorded.
local function fence_done(r, db, move, direction, t0, lsn, live)
  local ms = ms_since(db, t0)
  db:exec("SELECT shift.move_fence_end($1, $2, $3, $4::pg_catalog.pg_lsn)", move, direction, ms, lsn)
  output.log(string.format("fence held %.1f ms: writes to the moved tables are on the %s now (WAL %s)",
    ms, live, lsn or "position not known: the run that fenced stopped"))
end

-- What the cut-over phases work with: the target's connection, the move's
-- name, the forward direction's name and the way back's.
local function cutover_names(r, db)
  local move, obj = names(r, db)
  return target(r, db), move, obj, rev_name(obj)
end

-- The way back's subscription (on the source) and publication (on the target) dropped.
local function drop_way_back(db, tgt, rev)
  drop_sub(db, tgt, rev)
  drop_publication(tgt, rev)
  forget(tgt, "publication", rev)
end

local function cutover_up(r, db)
  local tgt, move, obj, rev = cutover_names(r, db)
  local tables = source_tables(r, db)
  check_logical(r, db, tgt)
  -- a fence begun by a run that stopped (killed, its server gone): the
  -- source may be fenced already; its privileges are the recorded ones
  -- (shift.move_fence_begin returns that fence), and the fence is timed
  -- from when it began
  local f = last_fence(db, move)
  local open = f and f.direction == "forward" and f.fence_ms == nil
  if sub_state(db, rev) == true then
    if not open then
      output.log("the target is live already (subscription " .. rev .. " on the source is enabled)")
      return
    end
    -- that run stopped after enabling the way back, before the lift
    output.log("resuming the cut-over begun at " .. f.started_at .. ": the way back is enabled, the fence not yet"
      .. " lifted")
    run_redirect(r, db, tgt, "target")
    lift(tgt, db, f.id, true)
    fence_done(r, db, move, "forward", f.started_at, nil, "target")
    drop_sub(tgt, db, obj)
    return
  end
  local fwd = sub_state(tgt, obj)
  if not D.is_dry(tgt) and fwd == nil then
    error(r.site .. "subscription " .. obj .. " is missing on the target: run the subscribe phase first", 0)
  end
  -- the privileges to move, recorded (an error if no application role
  -- writes the tables: nothing to fence)
  local id = fence_begin(r, db, move, "forward", tables)
  if fwd == false then
    -- stopped by that run: it must bring the target level again
    tgt:exec("ALTER SUBSCRIPTION " .. D.qi(tgt, obj) .. " ENABLE")
  end
  -- the way back, ready before the fence: a publication on the target, its
  -- slot, a disabled subscription on the source (no copy)
  record(r, tgt, "target", "publication", rev)
  if D.is_dry(tgt) or not tgt:value("SELECT true FROM pg_catalog.pg_publication WHERE pubname = $1", rev) then
    D.exec_at(tgt, r.site, "CREATE PUBLICATION " .. D.qi(tgt, rev) .. " FOR TABLE " .. table.concat(tables, ", "))
  end
  prepare_sub(r, tgt, "target", db, "source", rev, rev, conninfo_of(r, tgt, r.opts.target_conninfo))
  -- the fence
  local lsn, t0 = fence(r, db, db, id, tables)
  if open then t0 = f.started_at end
  wait_confirmed(r, db, obj, lsn, "source")            -- the target applied everything
  stop_sub(r, tgt, obj)                                  -- nothing more comes forward
  skip_to_now(tgt, rev)                                  -- nor goes back of what came forward
  local nseq = carry_sequences(r, db, tgt, tables)
  db:exec("ALTER SUBSCRIPTION " .. D.qi(db, rev) .. " ENABLE")
  run_redirect(r, db, tgt, "target")
  lift(tgt, db, id, true)
  fence_done(r, db, move, "forward", t0, lsn, "target")
  output.log(string.format("%d sequence%s set past the source's; the target's writes flow back to the source"
    .. " (subscription %s)", nseq, nseq == 1 and "" or "s", rev))
  -- the forward subscription is done: dropped with its slot (it would hold WAL)
  drop_sub(tgt, db, obj)
end

-- Whether the lift on the target happened: a role fence id (recorded on
-- db) took a write privilege from has it on the target.
local function lifted(tgt, db, id)
  for _, g in ipairs(db:query("SELECT name, grantee, privilege FROM shift.move_fence_grants"
      .. " WHERE fence = $1 AND write AND grantee <> 'public' AND name IS NOT NULL", id)) do
    if tgt:value("SELECT pg_catalog.has_table_privilege(r.oid, $2::pg_catalog.regclass, $3)"
        .. " FROM pg_catalog.pg_roles r WHERE r.rolname = $1", g.grantee, g.name, g.privilege) then
      return true
    end
  end
  return false
end

-- The way back (the down of a cut-over that made the target live), or the
-- clean-up of one that failed before.
local function cutover_down(r, db)
  local tgt, move, obj, rev = cutover_names(r, db)
  local tables = source_tables(r, db)
  local f = last_fence(db, move)
  local rev_on = sub_state(db, rev)
  -- the target is live once its fence lifted (or a way back began)
  local live = D.is_dry(db) or (rev_on ~= nil and f ~= nil and (f.direction == "back" and f.fence_ms == nil
    or f.direction == "forward" and (f.fence_ms ~= nil and f.fence_ms > 0 or lifted(tgt, db, f.id))))
  if live then
    -- the forward direction made again (disabled), the target fenced, the
    -- source brought level, the forward direction enabled, the source lifted
    prepare_sub(r, db, "source", tgt, "target", obj, obj, source_conninfo(r, db))
    local id = fence_begin(r, db, move, "back", tables)
    local lsn, t0 = fence(r, tgt, db, id, tables)
    if D.is_dry(db) or rev_on then
      wait_confirmed(r, tgt, rev, lsn, "target")
      stop_sub(r, db, rev)
    end
    if D.is_dry(tgt) or sub_state(tgt, obj) == false then skip_to_now(db, obj) end
    local nseq = carry_sequences(r, tgt, db, tables)
    tgt:exec("ALTER SUBSCRIPTION " .. D.qi(tgt, obj) .. " ENABLE")
    run_redirect(r, db, tgt, "source")
    lift(db, db, id, false)
    fence_done(r, db, move, "back", t0, lsn, "source")
    output.log(string.format("%d sequence%s set past the target's; the source's writes flow to the target again",
      nseq, nseq == 1 and "" or "s"))
  end
  -- the reverse direction goes
  drop_way_back(db, tgt, rev)
  if not live then
    -- a cut-over that stopped before the target was live: nothing was
    -- written there; the forward subscription enabled again, the source's
    -- privileges given back
    if sub_state(tgt, obj) == false then
      tgt:exec("ALTER SUBSCRIPTION " .. D.qi(tgt, obj) .. " ENABLE")
    end
    if f and f.fence_ms == nil then
      lift(db, db, f.id, false)
      db:exec("SELECT shift.move_fence_end($1, $2, 0, NULL)", move, f.direction)
      output.log("the fence is lifted: writes go to the source")
    end
  end
end

local function contract_up(r, db)
  local tgt, move, obj, rev = cutover_names(r, db)
  -- live: the last fence lifted on the target (a contract that stopped
  -- part way may have dropped the way back already)
  local f = last_fence(db, move)
  if not D.is_dry(db) and not (f and f.direction == "forward" and f.fence_ms and f.fence_ms > 0) then
    error(r.site .. "the target is not live (its last fence did not lift there): run the cutover phase first", 0)
  end
  local tables = source_tables(r, db)
  drop_way_back(db, tgt, rev)
  drop_sub(tgt, db, obj)
  drop_publication(db, obj)
  forget(db, "publication", obj)
  -- anything else recorded for this move on either side: slots by name
  for _, side in ipairs({ { db, "source" }, { tgt, "target" } }) do
    local conn = side[1]
    if not D.is_dry(conn) then
      for _, o in ipairs(conn:query("SELECT kind, object FROM shift.move_objects WHERE move = $1"
          .. " AND kind IN ('slot', 'publication', 'subscription') AND owner = CURRENT_USER", move)) do
        if o.kind == "slot" then
          conn:exec("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots"
            .. " WHERE slot_name = $1 AND NOT active", o.object)
        elseif o.kind == "publication" then
          drop_publication(conn, o.object)
        else
          conn:exec("DROP SUBSCRIPTION IF EXISTS " .. D.qi(conn, o.object))
        end
        forget(conn, o.kind, o.object)
      end
    end
  end
  -- the target's tables are the application's now: no longer the move's to drop
  for _, k in ipairs({ "table", "sequence" }) do
    for _, o in ipairs(recorded(tgt, move, k)) do forget(tgt, k, o.object) end
  end
  if r.opts.drop_source then
    db:transaction(function(tx)
      D.exec_at(tx, r.site, "DROP TABLE " .. table.concat(tables, ", "))
    end)
    output.log("the source's tables are dropped: " .. table.concat(tables, ", "))
  else
    output.log("the source's tables stay (read-only for the application roles): drop them when you no longer"
      .. " need them, or give drop_source = true")
  end
  output.log("no publication, subscription or slot of move " .. move .. " is left on either side")
end

-- ---- pgshift status

-- Lines warning of each slot a move made on this server that is inactive
-- and holds WAL back (it grows until the disk is full), "" if none.
function N.slot_warnings(db)
  local ok, rows = pcall(db.query, db, "SELECT move, migration, slot, wal_held_bytes FROM shift.move_status"
    .. " WHERE inactive_holding_wal ORDER BY move")
  if not ok then return "" end
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = string.format("warning: replication slot %s of move %s (migration %s) is inactive and holds"
      .. " %s of WAL: roll the migration back, or SELECT pg_drop_replication_slot('%s');", r.slot, r.move,
      r.migration or "?", bytes_text(r.wal_held_bytes), r.slot)
  end
  return #out > 0 and (table.concat(out, "\n") .. "\n") or ""
end

-- online.move_tables{tables = {...}, target = {service = ...} | {dsn = ...} | "dsn",
-- name =, source_conninfo =, sync_timeout =, target_conninfo =, app_roles =,
-- redirect =, catchup_timeout =, drop_source =} -> its phases.
function N.move_tables(opts)
  local info = debug.getinfo(2, "Sl")
  opts = D.check_options(opts, MOVE_OPTIONS, "online.move_tables")
  if type(opts.tables) ~= "table" or #opts.tables == 0 then
    error("online.move_tables: 'tables' must be a non-empty list of table names", 2)
  end
  for _, t in ipairs(opts.tables) do
    if type(t) ~= "string" then error("online.move_tables: 'tables' must be a list of table names", 2) end
  end
  target_dsn(opts.target, "online.move_tables")
  if opts.name ~= nil and (type(opts.name) ~= "string" or not opts.name:match("^[a-z0-9_]+$") or #opts.name > 48) then
    error("online.move_tables: 'name' must be up to 48 lower-case letters, digits or '_'"
      .. " (it names a replication slot)", 2)
  end
  local sc = opts.source_conninfo
  if sc ~= nil and (type(sc) ~= "string" or sc:lower():match("%f[%w]password%s*=") or sc:match("^%a+://[^/@]*:[^/@]*@")) then
    error("online.move_tables: 'source_conninfo' must be a connection string without a password:"
      .. " the target server keeps it in pg_subscription; give its OS user a passfile (~/.pgpass or passfile=)"
      .. " or a service (service=)", 2)
  end
  local tc = opts.target_conninfo
  if tc ~= nil and (type(tc) ~= "string" or tc:lower():match("%f[%w]password%s*=") or tc:match("^%a+://[^/@]*:[^/@]*@")) then
    error("online.move_tables: 'target_conninfo' must be a connection string without a password:"
      .. " the source server keeps it in pg_subscription; give its OS user a passfile (~/.pgpass or passfile=)"
      .. " or a service (service=)", 2)
  end
  if opts.app_roles ~= nil then
    if type(opts.app_roles) ~= "table" or #opts.app_roles == 0 then
      error("online.move_tables: 'app_roles' must be a non-empty list of role names", 2)
    end
    for _, a in ipairs(opts.app_roles) do
      if type(a) ~= "string" then error("online.move_tables: 'app_roles' must be a list of role names", 2) end
    end
  end
  if opts.redirect ~= nil and type(opts.redirect) ~= "function" then
    error("online.move_tables: 'redirect' must be a function(db, target, live)", 2)
  end
  if opts.catchup_timeout ~= nil and (type(opts.catchup_timeout) ~= "number" or opts.catchup_timeout <= 0) then
    error("online.move_tables: 'catchup_timeout' must be a positive number of seconds", 2)
  end
  if opts.drop_source ~= nil and type(opts.drop_source) ~= "boolean" then
    error("online.move_tables: 'drop_source' must be true or false", 2)
  end
  if opts.indexes ~= nil and opts.indexes ~= "before_copy" and opts.indexes ~= "after_copy" then
    error("online.move_tables: 'indexes' must be \"after_copy\" (the default) or \"before_copy\"", 2)
  end
  -- the default: the copy writes only the keys' indexes, each secondary
  -- index is built once from the copied rows (test/bench/move_copy.sh:
  -- 1.6x pg_dump | psql, against 0.7x with every index made first)
  opts.indexes = opts.indexes or "after_copy"
  local r = { opts = opts, tables = opts.tables, target = opts.target, name = opts.name,
              site = (info and info.currentline and info.currentline > 0)
                and (info.short_src .. ":" .. info.currentline .. ": ") or "" }
  local function step(fn) return function(db) return fn(r, db) end end
  local noop = function() end
  local prefix = opts.name or "move"
  local list = table.concat(opts.tables, ", ")
  return loader.group({
    { name = prefix .. "-check", description = "prerequisites of moving " .. list .. " on both servers",
      up = step(check_up), down = noop },
    { name = prefix .. "-schema", description = "make " .. list .. " on the target from the source's definitions",
      up = step(schema_up), down = step(schema_down) },
    { name = prefix .. "-subscribe", description = "publication on the source, subscription (and its slot) on the target",
      up = step(subscribe_up), down = step(subscribe_down) },
    { name = prefix .. "-sync", description = "wait for the initial copy of every table, then show the lag",
      up = step(sync_up), down = noop },
    { name = prefix .. "-validate", description = "pgshift compare of every table at one WAL position",
      up = step(validate_up), down = noop },
    { name = prefix .. "-cutover", description = "fence writes on the source, bring the target level, carry the"
      .. " sequences, start the way back, lift the fence on the target",
      up = step(cutover_up), down = step(cutover_down) },
    { name = prefix .. "-contract", description = "drop the way back, the forward subscription, the publications"
      .. " and the slots" .. (opts.drop_source and ", and the source's tables" or ""),
      up = step(contract_up) },
  }, info.short_src, info.currentline)
end

return N
