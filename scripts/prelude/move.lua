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
-- The cut-over (fence, sequences, way back) is the next step: not here.
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
                       sync_timeout = true }

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

-- The tables as the source resolves them: schema-qualified and quoted.
local function source_tables(r, db)
  local rows = D.lookup(db, r.site, [[
SELECT coalesce((SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = pg_catalog.to_regclass(u.t)), u.t) AS name
  FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY u(t, i) ORDER BY u.i]],
    D.array_literal(r.tables))
  if #rows == 0 then return r.tables end        -- dry: as written
  local out = {}
  for i, row in ipairs(rows) do out[i] = row.name end
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
  output.log(string.format("prerequisites met on both sides for %d table%s", #tables,
    #tables == 1 and "" or "s"))
end

-- ---- schema

-- What this move recorded on the target, of kind.
local function recorded(tgt, move, kind)
  if D.is_dry(tgt) then return {} end
  return tgt:query("SELECT object FROM shift.move_objects WHERE move = $1 AND kind = $2"
    .. " AND side = 'target' ORDER BY created_at, object", move, kind)
end

local function schema_up(r, db)
  local tgt = target(r, db)
  local move, _, mig, phase = names(r, db)
  local stmts = D.query_at(db, r.site, "SELECT kind, object, statement FROM shift.move_schema($1::pg_catalog.text[])"
    .. " ORDER BY ordinal", D.array_literal(source_tables(r, db)))
  -- made by this move before (a run stopped half way): made again; there
  -- beforehand (empty, as the check said): kept, its statements skipped
  local ours = {}
  for _, k in ipairs({ "table", "sequence" }) do
    for _, o in ipairs(recorded(tgt, move, k)) do ours[o.object] = true end
  end
  local keep, made = {}, 0
  tgt:transaction(function(tx)
    for _, s in ipairs(stmts) do
      if s.kind == "table" or s.kind == "sequence" then
        local exists = tx:value("SELECT pg_catalog.to_regclass($1) IS NOT NULL", s.object)
        if exists and ours[s.object] then
          tx:exec("DROP " .. (s.kind == "table" and "TABLE " or "SEQUENCE ") .. s.object .. " CASCADE")
        elseif exists then
          keep[s.object] = true
          output.log(s.object .. " exists on the target (empty): kept as it is")
        end
        if not keep[s.object] then
          tx:exec("SELECT shift.move_record($1, $2, $3, 'target', $4, $5)", move, s.kind, s.object, mig, phase)
        end
      end
      if not keep[s.object] then
        D.exec_at(tx, r.site, s.statement)
        if s.kind == "table" then made = made + 1 end
      end
    end
  end)
  output.log(string.format("%d table%s made on the target", made, made == 1 and "" or "s"))
end

local function schema_down(r, db)
  local tgt = target(r, db)
  local move = names(r, db)
  tgt:transaction(function(tx)
    for _, k in ipairs({ "table", "sequence" }) do
      for _, o in ipairs(recorded(tx, move, k)) do
        -- the name as the server quotes it, not as the record holds it
        local rel = tx:value("SELECT pg_catalog.to_regclass($1)::pg_catalog.text", o.object)
        if rel then tx:exec("DROP " .. (k == "table" and "TABLE " or "SEQUENCE ") .. rel .. " CASCADE") end
        tx:exec("SELECT shift.move_forget($1, $2)", k, o.object)
      end
    end
    if D.is_dry(tx) then
      tx:exec("-- DROP TABLE / DROP SEQUENCE ... CASCADE of what shift.move_objects lists for this move")
    end
  end)
end

-- ---- subscribe

-- The connection string the target server uses to reach the source: given,
-- or the source's host (its socket directory), port, database and user.
local function source_conninfo(r, db)
  if r.opts.source_conninfo then return r.opts.source_conninfo end
  local s = D.lookup(db, r.site, [[
SELECT coalesce(pg_catalog.host(pg_catalog.inet_server_addr()),
                pg_catalog.btrim(pg_catalog.split_part(pg_catalog.current_setting('unix_socket_directories'), ',', 1))) AS host,
       pg_catalog.current_setting('port') AS port, pg_catalog.current_database() AS dbname,
       current_user AS "user"]])[1]
  if not s then return "host=<the source's host> port=<port> dbname=<database> user=<user>" end
  return string.format("host=%s port=%s dbname=%s user=%s", conninfo_value(s.host), conninfo_value(s.port),
    conninfo_value(s.dbname), conninfo_value(s.user))
end

local function subscribe_up(r, db)
  local tgt = target(r, db)
  local move, obj, mig, phase = names(r, db)
  local tables = source_tables(r, db)        -- quoted by the server (as written, dry)
  -- the source: recorded, then made
  db:exec("SELECT shift.move_record($1, 'publication', $2, 'source', $3, $4)", move, obj, mig, phase)
  db:exec("SELECT shift.move_record($1, 'slot', $2, 'source', $3, $4)", move, obj, mig, phase)
  if D.is_dry(db) or not db:value("SELECT true FROM pg_catalog.pg_publication WHERE pubname = $1", obj) then
    D.exec_at(db, r.site, "CREATE PUBLICATION " .. D.qi(db, obj) .. " FOR TABLE " .. table.concat(tables, ", "))
  end
  -- the target: recorded, then made, unless a run before made it
  tgt:exec("SELECT shift.move_record($1, 'subscription', $2, 'target', $3, $4)", move, obj, mig, phase)
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
  tgt:exec("SELECT shift.move_forget('subscription', $1)", obj)
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
  db:exec("DROP PUBLICATION IF EXISTS " .. D.qi(db, obj))
  db:exec("SELECT shift.move_forget('slot', $1)", obj)
  db:exec("SELECT shift.move_forget('publication', $1)", obj)
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

local function sync_up(r, db)
  local tgt = target(r, db)
  local _, obj = names(r, db)
  if D.is_dry(db) then
    tgt:query(SYNC_SQL, obj)
    db:value(LAG_SQL_SOURCE, obj)
    tgt:value(LAG_SQL_TARGET, obj)
    return
  end
  local timeout = r.opts.sync_timeout or 3600
  local seen, last_print = {}, -1
  local t0 = os.time()
  while true do
    local rows = tgt:query(SYNC_SQL, obj)
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
    if now - t0 > timeout then
      error(string.format("%s%d of %d tables ready after %d s (sync_timeout): the copy goes on; run again to "
        .. "wait more", r.site, ready, #rows, now - t0), 0)
    end
    C.sleep(0.25)
  end
  local lag = db:value(LAG_SQL_SOURCE, obj)
  local secs = tgt:value(LAG_SQL_TARGET, obj)
  output.log(string.format("every table ready in %d s; lag %s behind the source%s", os.time() - t0,
    bytes_text(lag), secs and string.format(", last message %.1f s ago", secs) or ""))
end

-- ---- validate

local function validate_up(r, db)
  local tgt = target(r, db)
  local tables = source_tables(r, db)
  if D.is_dry(db) then
    for _, t in ipairs(tables) do
      tgt:value("-- pgshift compare of " .. t .. " with the source at one WAL position")
    end
    return
  end
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
-- name =, source_conninfo =, sync_timeout =} -> its phases.
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
  }, info.short_src, info.currentline)
end

return N
