-- scripts/prelude/db.lua: the db methods written in Lua, and what every db
-- method shares.
--
-- The methods go into one list, D.methods: the method table of the C db
-- (runner/luadb.c: exec, query, value, in_transaction, close, quote_ident,
-- quote_literal), to which this module adds transaction, ddl, backfill,
-- checksum and compare, and helpers.lua the rest.  The dry-run db of plan
-- and lint (dry.lua) is made from the same list, so a method is written
-- once: one that only calls other methods runs dry as it is; one that must
-- not send what it would send for real (db:ddl's settings, db:backfill's
-- polling) records instead, where it checks D.is_dry(db).
--
-- Shared here: where an error is reported (the migration file's line that
-- called the method), option checks, the one retry loop (db:ddl and the
-- online recipes' short transactions), the one builder of named-argument
-- calls to the extension's functions, and the record of a dry run.

local C, P = ...
local output = P.output
local D = {}

local methods = C.db_methods
D.methods = methods

-- ---------------------------------------------------------------------------
-- Where, and what was given
-- ---------------------------------------------------------------------------

-- "file:line: " of the innermost line of a migration file running: the
-- call that led into the method, even through a helper or a pcall ("" if
-- none: a phase made by a helper runs the prelude's code).  Errors about
-- SQL are reported there.
D.where = C.where

-- What db:exec would refuse: a zero byte (PostgreSQL would see only the text
-- before it); nil if the string is fine.
function D.zero_byte(what, s)
  local at = type(s) == "string" and s:find("\0", 1, true)
  if at then
    return string.format("%s contains a zero byte (at byte %d), which PostgreSQL text cannot hold;"
      .. " nothing was sent", what, at)
  end
end

-- The options table of a method.  Errors point at the method's caller:
-- level 3 from the method itself, one more for each function in between.
function D.check_options(opts, allowed, what, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", level or 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (allowed: %s)", what, tostring(k),
        table.concat(names, ", ")), level or 3)
    end
  end
  return opts
end

function D.required(opts, key, what, kind, level)
  if type(opts[key]) ~= (kind or "string") then
    error(what .. ": '" .. key .. "' is required", level or 3)
  end
  return opts[key]
end

-- A recipe's options: only those allowed, the required ones strings;
-- errors name the line that called the recipe.
function D.recipe_options(opts, allowed, what, required)
  opts = D.check_options(opts, allowed, what, 4)
  for _, k in ipairs(required) do D.required(opts, k, what, "string", 4) end
  return opts
end

-- A lock_timeout as SET takes it: milliseconds, or a duration such as '2s'.
function D.timeout_text(v, what)
  if math.type(v) == "integer" and v >= 0 then return v .. "ms" end
  if type(v) == "string" and v:match("^%s*%d+%.?%d*%s*%a*%s*$") then return v end
  error("db:ddl: '" .. what .. "' must be milliseconds or a duration such as '2s'", 4)
end

-- ---------------------------------------------------------------------------
-- Running SQL on behalf of the migration's call at `where`: an SQL error is
-- reported at that line, not at the prelude's.
-- ---------------------------------------------------------------------------

local function attributed(where, ok, res)
  if ok then return res end
  if type(res) == "table" and res.sqlstate ~= nil then res.where = where end
  error(res, 0)
end

function D.exec_at(db, where, sql, ...)
  return attributed(where, pcall(db.exec, db, sql, ...))
end

function D.query_at(db, where, sql, ...)
  return attributed(where, pcall(db.query, db, sql, ...))
end

function D.ddl_at(db, where, sql, opts)
  return attributed(where, pcall(db.ddl, db, sql, opts))
end

-- A catalog lookup: the dry run answers nothing and records nothing (a plan
-- shows what changes, and takes the path that changes the most).
function D.lookup(db, where, sql, ...)
  if D.is_dry(db) then return {} end
  return D.query_at(db, where, sql, ...)
end

-- The table's schema-qualified, quoted name as the server resolves it.
function D.table_name(db, where, t)
  local r = D.lookup(db, where, "SELECT $1::pg_catalog.regclass::pg_catalog.text AS t", t)[1]
  return r and r.t or t           -- the dry run has no answer: the name as written
end

-- "s.\"T\"" -> "T": a table's name without its schema or quotes, for the
-- default names of what a helper makes.
function D.bare_name(tbl)
  return (tbl:match("[^.]*$"):gsub('"', ''))
end

-- An identifier quoted by libpq (db:quote_ident).
function D.qi(db, name)
  return db:quote_ident(tostring(name))
end

-- An expression template with $old and $new replaced by the quoted column
-- names old and new (the online recipes' up/down, using/reverse_using).
function D.expand_template(db, t, old, new)
  return (t:gsub("%$old", function() return D.qi(db, old) end)
           :gsub("%$new", function() return D.qi(db, new) end))
end

-- A quoted column list from a Lua list of names.
function D.column_list(db, cols, what, name)
  if type(cols) ~= "table" or #cols == 0 then
    error(what .. ": '" .. name .. "' must be a non-empty list of column names", 3)
  end
  local out = {}
  for i, c in ipairs(cols) do out[i] = D.qi(db, c) end
  return table.concat(out, ", ")
end

-- ---------------------------------------------------------------------------
-- Calls of the extension's functions, and their results
-- ---------------------------------------------------------------------------

-- D.call(prefix): a call of an extension function with named arguments,
-- built up by c.arg(name, value, cast) (a value given becomes a query
-- parameter, with its cast; nil leaves the argument to its default; name
-- nil: positional) and c.literal(text); c.sql() -> the SQL text
-- (prefix .. "(" .. arguments .. ")") and the list of parameters.
function D.call(prefix)
  local args, params, c = {}, {}, {}
  function c.arg(name, value, cast)
    if value == nil then return end
    params[#params + 1] = value
    local p = "$" .. #params .. (cast and ("::" .. cast) or "")
    args[#args + 1] = name and (name .. " => " .. p) or p
  end
  function c.literal(text) args[#args + 1] = text end
  function c.sql() return prefix .. "(" .. table.concat(args, ", ") .. ")", params end
  return c
end

-- {"a", "b"} -> '{"a","b"}', an array literal whatever the strings hold (a
-- query parameter's value, never SQL text); n: elements 1..n, nil as NULL.
function D.array_literal(list, n)
  local parts = {}
  for i = 1, n or #list do
    local v = list[i]
    parts[i] = v == nil and "NULL" or ('"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"')
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- A list option as an array literal (nil if not given); called by the method.
function D.list_option(v, what, name)
  if v == nil then return nil end
  if type(v) ~= "table" then error(what .. ": '" .. name .. "' must be a list", 3) end
  return D.array_literal(v)
end

-- '{a,"b c",NULL}' -> {"a", "b c", nil}: a one-dimensional text[] as PostgreSQL prints it
function D.parse_text_array(text)
  local out, i, n = output.array(), 2, 0
  if text == nil or text == "{}" then return out end
  while i <= #text do
    local c = text:sub(i, i)
    local v
    if c == '"' then
      local buf = {}
      i = i + 1
      while true do
        c = text:sub(i, i)
        if c == "\\" then buf[#buf + 1] = text:sub(i + 1, i + 1); i = i + 2
        elseif c == '"' then i = i + 1; break
        else buf[#buf + 1] = c; i = i + 1 end
      end
      v = table.concat(buf)
    else
      local j = text:find("[,}]", i)
      v = text:sub(i, j - 1)
      if v == "NULL" then v = nil end
      i = j
    end
    n = n + 1
    out[n] = v
    i = i + 1                     -- the ',' or '}'
  end
  return out
end

-- ---------------------------------------------------------------------------
-- Retrying what a lock timeout or a deadlock stopped
-- ---------------------------------------------------------------------------

-- Lock errors worth another try: lock_not_available (lock_timeout) and
-- deadlock_detected (we were the victim).
local RETRYABLE = { ["55P03"] = true, ["40P01"] = true }

-- D.retrying(where, policy, attempt) -> what attempt returned: runs attempt()
-- (which returns pcall's two results) until it succeeds, fails otherwise
-- than on a lock, or policy.retries retries are spent (then its error is
-- raised at where).  Before each retry it waits a jittered delay that
-- doubles from policy.backoff up to policy.max_backoff seconds, and logs
-- and records why.
function D.retrying(where, policy, attempt)
  local n = 0
  while true do
    local ok, res = attempt()
    if ok then return res end
    -- a statement's error, or the failure db:transaction re-raises for one
    local err = type(res) == "table" and (res.sqlstate and res or res.sqlerror)
    local state = type(err) == "table" and err.sqlstate
    if not (RETRYABLE[state] and n < policy.retries) then
      if type(res) == "table" and res.sqlstate then res.where = where end
      error(res, 0)
    end
    n = n + 1
    local delay = math.min(policy.max_backoff, policy.backoff * 2 ^ (n - 1)) * (0.5 + math.random() / 2)
    local msg = string.format("%s (SQLSTATE %s); retry %d of %d in %.1f s", err.message, state,
      n, policy.retries, delay)
    output.log(msg)
    C.event("retry", msg, state)
    C.sleep(delay)
  end
end

-- ---------------------------------------------------------------------------
-- The record of a dry run
-- ---------------------------------------------------------------------------

-- A dry-run db (dry.lua) sends nothing; it records what it would send.  The
-- record is kept here, out of reach of the code under review (plan and lint
-- run a file that need not be trusted: it must not be able to change what
-- the reviewer is shown).
local dry_state = setmetatable({}, { __mode = "k" })

-- site: "file:line: " a statement is attributed to when no line of a
-- migration file is running (a phase made by a helper runs the prelude's
-- code); migration, phase: the names a run would be in (see D.current).
function D.start_dry(db, site, migration, phase)
  dry_state[db] = { statements = {}, intx = false, site = site or "",
                    migration = migration, phase = phase, backfills = { n = 0 } }
end

function D.is_dry(db) return dry_state[db] ~= nil end

-- D.current(db) -> the migration and phase db runs for: a run's (C.current),
-- or those a dry run stands for (nil outside either).
function D.current(db)
  local state = dry_state[db]
  if state then return state.migration, state.phase end
  return C.current()
end

function D.dry_state(db) return dry_state[db] end

-- D.record(db, kind, sql, ...) -> the statement recorded: its SQL, its
-- parameters as the plan shows them, and where: the innermost line of a
-- migration file running (the user's call, even through a helper).
function D.record(db, kind, sql, ...)
  local state = dry_state[db]
  local params = table.pack(...)
  local shown = {}
  for i = 1, params.n do
    local v = params[i]
    shown[i] = v == nil and "NULL" or (type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  local where = C.where()
  local st = { kind = kind, sql = sql, params = output.array(shown),
               where = where ~= "" and where or state.site }
  state.statements[#state.statements + 1] = st
  return st
end

-- D.dry_send(db, kind, where, sql, ...): what a dry-run db does instead of
-- sending sql: refuses what the C db would (a zero byte: the error names
-- where, the migration's call), then records it.
function D.dry_send(db, kind, where, sql, ...)
  local params = table.pack(...)
  local bad = D.zero_byte("the SQL text", sql)
  for i = 1, params.n do bad = bad or D.zero_byte("parameter $" .. i, params[i]) end
  if bad then error(where .. "db:" .. kind .. ": " .. bad, 0) end
  return D.record(db, kind, sql, ...)
end

-- ---------------------------------------------------------------------------
-- db:transaction, db:ddl
-- ---------------------------------------------------------------------------

-- db:transaction(fn): runs fn(db) between BEGIN and COMMIT; an error rolls
-- back and propagates.  Returns what fn returns.
function methods.transaction(db, fn)
  if type(fn) ~= "function" then error("db:transaction: expected a function", 2) end
  if db:in_transaction() then
    error("db:transaction: already in a transaction (transactions do not nest)", 2)
  end
  local where = D.where()
  D.exec_at(db, where, "BEGIN")
  local res = table.pack(xpcall(fn, C.msghandler, db))
  if res[1] then
    D.exec_at(db, where, "COMMIT")
    return table.unpack(res, 2, res.n)
  end
  pcall(db.exec, db, "ROLLBACK")
  error(res[2], 0)
end

local DDL_OPTIONS = { lock_timeout = true, retries = true, backoff = true, max_backoff = true }

-- db:ddl(sql, {lock_timeout = '2s', retries = 5, backoff = 0.5, max_backoff = 30}):
-- runs DDL with a short lock_timeout so that it never queues for long in
-- front of other sessions, and retries lock timeouts and deadlocks with
-- jittered exponential backoff, logging each retry.  Inside db:transaction it
-- runs once (an aborted transaction cannot retry).  Dry, it records the
-- statement with its lock_timeout and retries.
function methods.ddl(db, sql, opts)
  if type(sql) ~= "string" then error("db:ddl: expected an SQL string", 2) end
  local bad = D.zero_byte("the SQL text", sql)
  if bad then error(D.where() .. "db:ddl: " .. bad, 0) end
  opts = D.check_options(opts, DDL_OPTIONS, "db:ddl")
  local where = D.where()
  local lock_timeout = D.timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  local policy = { retries = opts.retries or 5, backoff = opts.backoff or 0.5,
                   max_backoff = opts.max_backoff or 30 }
  if math.type(policy.retries) ~= "integer" or policy.retries < 0 then
    error("db:ddl: 'retries' must be a whole number >= 0", 2)
  end
  if D.is_dry(db) then
    local st = D.record(db, "ddl", sql)
    st.lock_timeout, st.retries = lock_timeout, policy.retries
    return
  end
  local old = db:value("SELECT pg_catalog.current_setting('lock_timeout')")
  if db:in_transaction() then
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, true)", lock_timeout)
    local n = D.exec_at(db, where, sql)
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, true)", old)
    return n
  end
  return D.retrying(where, policy, function()
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, false)", lock_timeout)
    local ok, res = pcall(db.exec, db, sql)
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, false)", old)
    return ok, res
  end)
end

-- ---------------------------------------------------------------------------
-- db:backfill
-- ---------------------------------------------------------------------------

local BACKFILL_OPTIONS = {
  name = true, table = true, set = true, where = true, into = true, columns = true,
  select = true, on_conflict = true, key = true, key_columns = true, batch_min = true, batch_max = true,
  target_ms = true, sleep_ratio = true, lock_timeout_ms = true, max_retries = true,
  max_lag = true, throttle_query = true,
}
-- the options in the order shift.backfill_create's call names them
local BACKFILL_ORDER = { "set", "where", "into", "columns", "select", "on_conflict", "key",
                         "key_columns", "batch_min", "batch_max", "target_ms", "sleep_ratio", "lock_timeout_ms",
                         "max_retries", "max_lag", "throttle_query" }
local BACKFILL_CASTS = {
  table = "pg_catalog.regclass", into = "pg_catalog.regclass", key = "pg_catalog.regclass",
  columns = "pg_catalog.text[]", key_columns = "pg_catalog.text[]", batch_min = "pg_catalog.int4", batch_max = "pg_catalog.int4",
  target_ms = "pg_catalog.int4", sleep_ratio = "pg_catalog.float8",
  lock_timeout_ms = "pg_catalog.int4", max_retries = "pg_catalog.int4",
  max_lag = "pg_catalog.interval",
}
-- option -> the argument name of shift.backfill_create (some are SQL keywords)
local BACKFILL_ARGS = { where = '"where"', into = '"into"', select = '"select"' }

-- Backfills a phase makes are named after it: "migration:phase", then ":2",
-- ...  A dry run counts in its own record, from 1 for each step it runs,
-- as a run does for the phase it runs.
local backfill_seq = { phase = nil, n = 0 }

local function backfill_name(db, opts)
  if opts.name then return opts.name end
  local mig, phase = D.current(db)
  local seq = D.is_dry(db) and dry_state[db].backfills or backfill_seq
  local key = (mig or "?") .. ":" .. (phase or "?")
  if seq.phase ~= key then seq.phase, seq.n = key, 0 end
  seq.n = seq.n + 1
  return key .. (seq.n > 1 and (":" .. seq.n) or "")
end

-- The shift.backfill_create call for opts: only the options given, as parameters.
local function backfill_create_sql(db, opts, name)
  local mig, phase = D.current(db)
  local c = D.call("SELECT shift.backfill_create")
  c.arg(nil, name)
  c.arg("relation", opts.table, BACKFILL_CASTS.table)
  for _, k in ipairs(BACKFILL_ORDER) do
    local v = opts[k]
    if (k == "columns" or k == "key_columns") and v ~= nil then v = D.array_literal(v) end
    if k == "max_lag" and v == false then
      c.literal("max_lag => NULL")
    else
      c.arg(BACKFILL_ARGS[k] or k, v, BACKFILL_CASTS[k])
    end
  end
  c.literal("if_exists => 'reuse'")
  c.arg("migration", mig)
  c.arg("phase", phase)
  return c.sql()
end

local function check_backfill_options(opts)
  opts = D.check_options(opts, BACKFILL_OPTIONS, "db:backfill", 4)
  if type(opts.table) ~= "string" then
    error("db:backfill: 'table' (the table to walk) is required", 3)
  end
  if (opts.set == nil) == (opts.into == nil) then
    error("db:backfill: give exactly one of 'set' (update in place) and 'into' (copy)", 3)
  end
  if opts.columns ~= nil and type(opts.columns) ~= "table" then
    error("db:backfill: 'columns' must be a list of column names", 3)
  end
  if opts.key_columns ~= nil and type(opts.key_columns) ~= "table" then
    error("db:backfill: 'key_columns' must be a list of column names", 3)
  end
  return opts
end

-- A job an operator paused or cancelled stops the phase as an interruption
-- (SQLSTATE 57014): nothing is undone, and the next run goes on from the
-- checkpoint once the job may run again.
local function operator_stop(db, where, name, state)
  local lit = db:quote_literal(name)
  if state == "paused" then
    return C.sqlerror("backfill job '" .. name .. "' is paused", "57014",
      "Resume it with SELECT shift.backfill_resume(" .. lit .. "); the next run goes on from its checkpoint.",
      where)
  end
  return C.sqlerror("backfill job '" .. name .. "' was cancelled", "57014",
    "To start it over (the rows it did are done again): SELECT shift.backfill_drop(" .. lit
      .. "), then run again; or roll the migration back.", where)
end

local function stopped_by_operator(st)
  return type(st) == "table" and (st.state == "paused" or st.state == "cancelled")
end

-- db:backfill{table =, set = | into =, ...} -> rows written.  Creates the job
-- (or reuses the identical one a previous attempt made) and runs it to the end
-- with CALL shift.backfill_run, which commits after every batch.  Interrupted
-- (Ctrl-C, a lost runner or session), it goes on from its checkpoint on the
-- next run; paused or cancelled by an operator, see operator_stop.  Dry, it
-- records the two calls.
function methods.backfill(db, opts)
  opts = check_backfill_options(opts)
  local where = D.where()
  local name = backfill_name(db, opts)
  local sql, params = backfill_create_sql(db, opts, name)
  if D.is_dry(db) then
    D.dry_send(db, "value", where, sql, table.unpack(params))
    D.dry_send(db, "exec", where, "CALL shift.backfill_run($1)", name)
    return 0
  end
  D.exec_at(db, where, sql, table.unpack(params))
  local function state()
    return db:query("SELECT state, rows_done, keys_done, batches FROM shift.backfill_progress"
      .. " WHERE name = $1", name)[1]
  end
  local st = state()
  if stopped_by_operator(st) then error(operator_stop(db, where, name, st.state), 0) end
  local before = st.rows_done
  C.backfill_watch(name)
  local ok, err = pcall(D.exec_at, db, where, "CALL shift.backfill_run($1)", name)
  if not ok then
    -- paused or cancelled meanwhile: the operator's stop, not the phase's failure
    local now = db:in_transaction() and nil or select(2, pcall(state))
    if stopped_by_operator(now) then error(operator_stop(db, where, name, now.state), 0) end
    error(err, 0)
  end
  C.backfill_watch(nil)
  st = state()
  C.add_rows(st.rows_done - before)
  if stopped_by_operator(st) then
    error(operator_stop(db, where, name, st.state), 0)
  elseif st.state ~= "done" then
    error(where .. "backfill job '" .. name .. "' stopped in state " .. st.state, 0)
  end
  -- the phase's "done in ..., N rows" counts this run's rows: say them the
  -- same way, and the job's total beside them when an earlier run wrote some
  local this_run = st.rows_done - before
  output.log(string.format("backfill %s: %d rows written%s, %d keys walked in %d batches", name,
    this_run, before > 0 and string.format(" by this run (%d in all)", st.rows_done) or "",
    st.keys_done, st.batches))
  return this_run
end

-- ---------------------------------------------------------------------------
-- db:checksum and db:compare: the extension's chunk checksums, for validate
-- phases
-- ---------------------------------------------------------------------------

local CHECKSUM_OPTIONS = { table = true, columns = true }
local COMPARE_OPTIONS = {
  source = true, target = true, columns = true, target_columns = true, key = true,
  target_key = true, buckets = true, limit = true,
}

-- db:checksum{table =, columns =} -> {rows =, checksum =}
function methods.checksum(db, opts)
  opts = D.check_options(opts, CHECKSUM_OPTIONS, "db:checksum")
  if type(opts.table) ~= "string" then error("db:checksum: 'table' is required", 2) end
  local rows = D.query_at(db, D.where(),
    "SELECT rows, checksum FROM shift.table_checksum($1::pg_catalog.regclass, $2::pg_catalog.text[])",
    opts.table, D.list_option(opts.columns, "db:checksum", "columns"))
  local r = rows[1] or { rows = 0, checksum = "" }   -- a dry run has no answer
  return { rows = r.rows, checksum = r.checksum }
end

local COMPARE_SQL = "SELECT kind, key::pg_catalog.text AS key, columns::pg_catalog.text AS columns"
  .. " FROM shift.compare($1::pg_catalog.regclass, $2::pg_catalog.regclass, $3::pg_catalog.text[],"
  .. " $4::pg_catalog.text[], $5::pg_catalog.text[], $6::pg_catalog.text[], $7::pg_catalog.int4)"

local function compare_result(rows, limit, source, target)
  local r = { missing_in_target = 0, missing_in_source = 0, different = 0, differences = output.array() }
  for _, row in ipairs(rows) do
    r[row.kind] = r[row.kind] + 1
    if #r.differences < limit then
      r.differences[#r.differences + 1] = { kind = row.kind, key = D.parse_text_array(row.key),
        columns = D.parse_text_array(row.columns) }
    end
  end
  local total = r.missing_in_target + r.missing_in_source + r.different
  r.equal = total == 0
  r.summary = total == 0 and (source .. " and " .. target .. " are equal") or string.format(
    "%d difference(s): %d missing in target, %d missing in source, %d different", total,
    r.missing_in_target, r.missing_in_source, r.different)
  return r
end

-- db:compare{source =, target =, columns =, target_columns =, key =, target_key =,
-- buckets =, limit =} -> {equal =, missing_in_target =, missing_in_source =,
-- different =, differences = {{kind =, key = {...}, columns = {...}}, ...}, summary =}
function methods.compare(db, opts)
  opts = D.check_options(opts, COMPARE_OPTIONS, "db:compare")
  if type(opts.source) ~= "string" or type(opts.target) ~= "string" then
    error("db:compare: 'source' and 'target' (two tables) are required", 2)
  end
  local rows = D.query_at(db, D.where(), COMPARE_SQL, opts.source, opts.target,
    D.list_option(opts.columns, "db:compare", "columns"),
    D.list_option(opts.target_columns, "db:compare", "target_columns"),
    D.list_option(opts.key, "db:compare", "key"),
    D.list_option(opts.target_key, "db:compare", "target_key"), opts.buckets)
  local r = compare_result(rows, opts.limit or 100, opts.source, opts.target)
  output.log("compare " .. opts.source .. " -> " .. opts.target .. ": " .. r.summary)
  return r
end

local COMPARE_QUERIES_OPTIONS = { source = true, target = true, key = true, target_key = true,
                                  buckets = true, limit = true }

-- db:compare_queries{source =, target =, key =, target_key =, buckets =, limit =}
-- -> what db:compare returns, for the rows two queries return (shadow
-- reads: the old release's query against the old schema, the new one's
-- against the new; shift.compare_queries).
function methods.compare_queries(db, opts)
  opts = D.check_options(opts, COMPARE_QUERIES_OPTIONS, "db:compare_queries")
  if type(opts.source) ~= "string" or type(opts.target) ~= "string" then
    error("db:compare_queries: 'source' and 'target' (two queries) are required", 2)
  end
  local rows = D.query_at(db, D.where(), "SELECT kind, key::pg_catalog.text AS key,"
    .. " columns::pg_catalog.text AS columns FROM shift.compare_queries($1, $2, $3::pg_catalog.text[],"
    .. " $4::pg_catalog.text[], $5::pg_catalog.int4)", opts.source, opts.target,
    D.list_option(opts.key, "db:compare_queries", "key"),
    D.list_option(opts.target_key, "db:compare_queries", "target_key"), opts.buckets)
  local r = compare_result(rows, opts.limit or 100, "the source query", "the target query")
  output.log("compare_queries: " .. r.summary)
  return r
end

-- D.short_transaction(db, where, opts, fn): fn(tx) in one transaction with a
-- short lock_timeout (opts.lock_timeout, default 2s), the whole transaction
-- retried on lock timeouts and deadlocks like db:ddl (opts.retries, 5);
-- inside a transaction already, fn(db) once, as it is.  The online recipes'
-- swaps and contracts, and db:create_version/drop_version, run in it.
function D.short_transaction(db, where, opts, fn)
  if db:in_transaction() then return fn(db) end
  local lock_timeout = D.timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  D.retrying(where, { retries = opts.retries or 5, backoff = 0.5, max_backoff = 30 }, function()
    return pcall(db.transaction, db, function(tx)
      tx:exec("SET LOCAL lock_timeout = " .. tx:quote_literal(lock_timeout))
      fn(tx)
    end)
  end)
end

-- ---------------------------------------------------------------------------
-- What a phase remembers for its down
-- ---------------------------------------------------------------------------

-- db:remember(key, value): the running phase keeps value (a string, or nil
-- to forget) under key, in its row of shift.phase, for its down: what an
-- in-place change found before it changed it.  It commits with the
-- statement (or the db:transaction) it is sent in.
function methods.remember(db, key, value)
  local mig, phase = C.current()
  if type(key) ~= "string" then error("db:remember: the key must be a string", 2) end
  if value ~= nil and type(value) ~= "string" then
    error("db:remember: the value must be a string or nil (got a " .. type(value) .. ")", 2)
  end
  if mig == nil then error("db:remember: only a running phase remembers", 2) end
  D.exec_at(db, D.where(), "SELECT shift.phase_memo($1, $2, pg_catalog.jsonb_build_object($3::pg_catalog.text, $4::pg_catalog.text))",
    mig, phase, key, value)
end

-- db:recall(key) -> the string the phase's up remembered under key (nil if
-- none).  Only what the same role remembered: refuses otherwise, since the
-- down may build SQL from it.
function methods.recall(db, key)
  local mig, phase = C.current()
  if type(key) ~= "string" then error("db:recall: the key must be a string", 2) end
  if mig == nil or D.is_dry(db) then return nil end
  local row = D.query_at(db, D.where(), [[
SELECT p.memo ->> $3 AS value, p.memo_by, p.memo_by OPERATOR(pg_catalog.=) CURRENT_USER AS mine
  FROM shift.phase_status p
 WHERE p.migration OPERATOR(pg_catalog.=) $1 AND p.name OPERATOR(pg_catalog.=) $2]], mig, phase, key)[1]
  if row == nil or row.value == nil then return nil end
  if not row.mine then
    error(D.where() .. "db:recall: what phase " .. phase .. " remembered was written by role "
      .. tostring(row.memo_by) .. "; roll it back as that role", 0)
  end
  return row.value
end

return D
