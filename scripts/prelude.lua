-- pgshift prelude: the Lua half of the runner, compiled into the binary.
--
-- It defines what a migration file sees (`migration { ... }`, `log(...)`) and
-- validates the file's shape before anything touches a database: every
-- mistake is reported as "file:line: what is wrong" with the line of the
-- offending `migration {` call or of the phase's own function.
--
-- The C side runs this chunk once with a table of C helpers as its argument
-- and keeps the module table it returns (see runner/script.c).

local C = ...
local M = {}

-- The keys a migration and a phase may have.  Anything else is a typo that
-- would otherwise be ignored silently.
local MIGRATION_KEYS = { name = "string", description = "string", phases = "table" }
local PHASE_KEYS = {
  name = "string", description = "string",
  up = "function", down = "function", verify = "function",
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return table.concat(keys, ", ")
end

-- What migration{} returned -> the validated migration it stands for.  The
-- file gets a copy: changing it afterwards changes nothing that runs.
local validated = setmetatable({}, { __mode = "k" })

-- error() at the line of the caller's `migration {` (level 3: the check
-- function, migration(), then the file), or at an explicit line when a
-- phase function tells us where the phase is.
local function fail(where, msg)
  if where.line then
    error(where.source .. ":" .. where.line .. ": " .. msg, 0)
  end
  error(msg, where.level)
end

-- Where a phase function was defined: its own file and line (it may come
-- from a helper module), or nil.
local function function_where(fn)
  if type(fn) == "function" then
    local info = debug.getinfo(fn, "S")
    if info.what == "Lua" and info.linedefined > 0 then
      return { source = info.short_src, line = info.linedefined }
    end
  end
  return nil
end

-- Validation reads tables raw: a metatable could make a table look valid to
-- pairs() and field reads and different to the code that runs it.
local function check_plain(t, what, where)
  if getmetatable(t) ~= nil then
    fail(where, what .. " must be a plain table (it has a metatable)")
  end
end

local function check_keys(t, allowed, what, where)
  for k, v in next, t do
    if type(k) ~= "string" then
      fail(where, what .. ": unexpected entry [" .. tostring(k) .. "] (keys must be names: "
        .. sorted_keys(allowed) .. ")")
    end
    local want = allowed[k]
    if not want then
      fail(where, what .. ": unknown key '" .. k .. "' (allowed: " .. sorted_keys(allowed) .. ")")
    end
    if type(v) ~= want then
      fail(where, what .. ": '" .. k .. "' must be a " .. want .. ", got " .. type(v))
    end
  end
end

-- A migration or phase name ends up in bookkeeping rows, log lines and
-- command lines: keep it printable and of sane length.
local function check_name(name, what, where)
  if name == nil then fail(where, what .. ": missing 'name'") end
  if #name == 0 or #name > 120 then
    fail(where, what .. ": 'name' must be 1 to 120 characters long")
  end
  if not name:match("^[%w_.%-]+$") then
    fail(where, what .. ": 'name' " .. string.format("%q", name)
      .. " may contain only letters, digits, '_', '.' and '-'")
  end
end

-- Phase groups made by helpers, and where in the user's file each was made.
local is_group = setmetatable({}, { __mode = "k" })
local group_where = setmetatable({}, { __mode = "k" })

-- While a file runs, C.tracked() gives the line it is executing: `return
-- migration { ... }` is a tail call, which leaves no frame for debug.getinfo
-- to find the caller in.
local loading = false

-- migration { name = ..., phases = { ... } } -> the validated migration.
function M.migration(spec)
  local where = { level = 3 }
  local src, line
  if loading then src, line = C.tracked() end
  if line then
    where = { source = src, line = line }
  else
    local info = debug.getinfo(2, "Sl")
    if info and info.currentline and info.currentline > 0 then
      where = { source = info.short_src, line = info.currentline }
    end
  end
  if type(spec) ~= "table" then
    fail(where, "migration: expected a table (migration { name = ..., phases = { ... } }), got "
      .. type(spec))
  end
  check_plain(spec, "migration", where)
  check_keys(spec, MIGRATION_KEYS, "migration", where)
  check_name(rawget(spec, "name"), "migration", where)
  local label = "migration '" .. rawget(spec, "name") .. "'"
  local phases = rawget(spec, "phases")
  if phases == nil or next(phases) == nil then
    fail(where, label .. ": 'phases' must list at least one phase")
  end
  check_plain(phases, label .. ": 'phases'", where)
  local n = rawlen(phases)
  for k in next, phases do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      fail(where, label .. ": 'phases' must be a list { {...}, {...} }, found key ["
        .. tostring(k) .. "]")
    end
  end

  -- A group of phases made by a helper (online.change_column_type{...})
  -- stands for its phases, in order.
  local flat = {}
  for i = 1, n do
    local p = rawget(phases, i)
    if type(p) == "table" and is_group[p] then
      for _, q in ipairs(p) do flat[#flat + 1] = q end
    else
      flat[#flat + 1] = p
    end
  end
  phases, n = flat, #flat

  local seen = {}
  local out = { name = rawget(spec, "name"), description = rawget(spec, "description"),
                phases = {}, source = where.source, line = where.line }
  for i = 1, n do
    local p = rawget(phases, i)
    local pw = where
    if type(p) ~= "table" then
      fail(pw, label .. ": phase " .. i .. " must be a table, got " .. type(p))
    end
    -- Point at the phase's own code when it has some (a helper's phase: at the helper's call).
    pw = group_where[p] or function_where(rawget(p, "up")) or function_where(rawget(p, "down"))
         or function_where(rawget(p, "verify")) or where
    local pname = rawget(p, "name")
    local plabel = label .. ": phase " .. i .. (type(pname) == "string" and (" '" .. pname .. "'") or "")
    check_plain(p, plabel, pw)
    check_keys(p, PHASE_KEYS, plabel, pw)
    check_name(p.name, plabel, pw)
    if seen[p.name] then
      fail(pw, plabel .. ": duplicate phase name (phase " .. seen[p.name] .. " has it too)")
    end
    seen[p.name] = i
    if p.up == nil then
      fail(pw, plabel .. ": missing 'up' function")
    end
    out.phases[i] = { name = p.name, description = p.description, up = p.up,
                      down = p.down, verify = p.verify, line = pw.line }
  end
  local copy = { name = out.name, description = out.description, phases = {} }
  for i, p in ipairs(out.phases) do
    copy.phases[i] = { name = p.name, description = p.description, up = p.up,
                       down = p.down, verify = p.verify }
  end
  validated[copy] = out
  return copy
end

-- ---------------------------------------------------------------------------
-- Output: every progress line and every --json event goes through M.emit.
-- ---------------------------------------------------------------------------

-- sandbox: the file is under review (plan, lint), see M.load.
local settings = { format = "text", quiet = false, dry_run = false, sandbox = false }

function M.configure(opts)
  for k, v in pairs(opts) do settings[k] = v end
end

-- JSON text of a Lua value.  Tables made with M.array() are arrays; other
-- tables are objects with sorted keys (stable output); nil and NaN are null.
-- Strings are always valid JSON whatever bytes they hold (C.json_string:
-- controls escaped, bytes that are not UTF-8 become U+FFFD).
local array_mt = { __name = "json array" }
function M.array(t) return setmetatable(t or {}, array_mt) end

local function json(v, out)
  local t = type(v)
  if v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    elseif math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then
    out[#out + 1] = C.json_string(v)
  elseif t == "table" then
    if getmetatable(v) == array_mt or (next(v) ~= nil and rawlen(v) > 0 and next(v, rawlen(v)) == nil) then
      out[#out + 1] = "["
      for i = 1, rawlen(v) do
        if i > 1 then out[#out + 1] = "," end
        json(v[i], out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        json(tostring(k), out)
        out[#out + 1] = ":"
        json(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else
    json(tostring(v), out)
  end
end
function M.json(v)
  local out = {}
  json(v, out)
  return table.concat(out)
end

-- M.phases_json(mig): the migration's phases as shift.migration_begin takes them.
function M.phases_json(mig)
  local out = M.array()
  for i, p in ipairs(mig.phases) do
    out[i] = { name = p.name, reversible = p.down ~= nil, has_verify = p.verify ~= nil }
  end
  return M.json(out)
end

local function duration(ms)
  if ms == nil then return "?" end
  if ms < 1000 then return string.format("%.0f ms", ms) end
  if ms < 60000 then return string.format("%.2f s", ms / 1000) end
  return string.format("%d min %02d s", ms // 60000, (ms // 1000) % 60)
end
M.duration = duration

local STEP_LABEL = { up = "", down = " (down)", verify = " (verify)",
                     cleanup = " (down of the failed attempt)" }

-- The text form of each event (nil: nothing on stdout in text mode).
local TEXT = {
  start = function(e)
    return string.format("==> %s migration %s (%s): %d phase%s on %s", e.operation, e.migration,
      e.file, e.phases, e.phases == 1 and "" or "s", e.target)
  end,
  phase_start = function(e)
    return string.format("--> [%d/%d] %s%s", e.ordinal, e.phases, e.phase, STEP_LABEL[e.step] or "")
  end,
  phase_skip = function(e)
    return string.format("--> [%d/%d] %s: %s", e.ordinal, e.phases, e.phase, e.reason)
  end,
  phase_done = function(e)
    local rows = (e.rows and e.rows > 0) and string.format(", %d row%s", e.rows, e.rows == 1 and "" or "s") or ""
    return string.format("    %s in %s%s", e.result or "done", duration(e.ms), rows)
  end,
  log = function(e) return "    " .. e.message end,
  progress = function(e)
    local eta = e.eta_seconds and e.eta_seconds >= 0
      and string.format("ETA %d:%02d", e.eta_seconds // 60, e.eta_seconds % 60) or "ETA ?"
    return string.format("    backfill %s: %.1f %% (%d of %d keys, %d rows, %.0f keys/s, %s)%s",
      e.job, e.percent, e.keys, e.total, e.rows, e.rate, eta,
      e.waiting and ("; waiting: " .. e.waiting) or "")
  end,
  note = function(e) return "    note: " .. e.message end,
  finish = function(e)
    return string.format("==> %s of migration %s %s after %s: status %s, %d of %d phases done",
      e.operation, e.migration, e.exit == 0 and "finished" or "stopped", duration(e.ms),
      e.status, e.done, e.phases)
  end,
}

-- M.emit{event = "...", ...}: one progress event, as a text line or a JSON line.
function M.emit(e)
  if e.ms then e.ms = math.floor(e.ms + 0.5) end
  if settings.format == "json" then
    e.time = os.date("!%Y-%m-%dT%H:%M:%SZ")
    C.write(M.json(e) .. "\n")
  elseif not settings.quiet then
    local render = TEXT[e.event]
    local line = render and render(e)
    if line then C.write(line .. "\n") end
  end
end

-- log(...): a progress line from a migration, indented under its phase.
function M.log(...)
  -- plan and lint: the file's code runs, prints nothing
  if settings.dry_run or settings.sandbox then return end
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  M.emit { event = "log", message = table.concat(parts, " ", 1, parts.n) }
end

-- ---------------------------------------------------------------------------
-- db methods written in Lua (added to the C db's method table, and shared
-- with the dry-run db of `plan`).
-- ---------------------------------------------------------------------------

-- "file:line: " of the code that called the function calling this one.
local function caller_where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if info and info.currentline and info.currentline > 0 then
    return info.short_src .. ":" .. info.currentline .. ": "
  end
  return ""
end

-- What db:exec would refuse: a zero byte (PostgreSQL would see only the text
-- before it); nil if the string is fine.
local function zero_byte(what, s)
  local at = type(s) == "string" and s:find("\0", 1, true)
  if at then
    return string.format("%s contains a zero byte (at byte %d), which PostgreSQL text cannot hold;"
      .. " nothing was sent", what, at)
  end
end

-- Runs db:exec, attributing an SQL error to `where` (the user's call).
local function exec_at(db, where, sql, ...)
  local ok, n = pcall(db.exec, db, sql, ...)
  if ok then return n end
  if type(n) == "table" and n.sqlstate ~= nil then n.where = where end
  error(n, 0)
end

local function check_options(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (allowed: %s)", what, tostring(k),
        table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local db_methods = C.db_methods

-- db:transaction(fn): runs fn(db) between BEGIN and COMMIT; an error rolls
-- back and propagates.  Returns what fn returns.
function db_methods.transaction(db, fn)
  if type(fn) ~= "function" then error("db:transaction: expected a function", 2) end
  if db:in_transaction() then
    error("db:transaction: already in a transaction (transactions do not nest)", 2)
  end
  local where = caller_where(2)
  exec_at(db, where, "BEGIN")
  local res = table.pack(xpcall(fn, C.msghandler, db))
  if res[1] then
    exec_at(db, where, "COMMIT")
    return table.unpack(res, 2, res.n)
  end
  pcall(db.exec, db, "ROLLBACK")
  error(res[2], 0)
end

-- Lock errors worth another try: lock_not_available (lock_timeout) and
-- deadlock_detected (we were the victim).
local RETRYABLE = { ["55P03"] = true, ["40P01"] = true }
local DDL_OPTIONS = { lock_timeout = true, retries = true, backoff = true, max_backoff = true }

local function timeout_text(v, what)
  if math.type(v) == "integer" and v >= 0 then return v .. "ms" end
  if type(v) == "string" and v:match("^%s*%d+%.?%d*%s*%a*%s*$") then return v end
  error("db:ddl: '" .. what .. "' must be milliseconds or a duration such as '2s'", 4)
end

-- db:ddl(sql, {lock_timeout = '2s', retries = 5, backoff = 0.5, max_backoff = 30}):
-- runs DDL with a short lock_timeout so that it never queues for long in
-- front of other sessions, and retries lock timeouts and deadlocks with
-- jittered exponential backoff, logging each retry.  Inside db:transaction it
-- runs once (an aborted transaction cannot retry).
function db_methods.ddl(db, sql, opts)
  if type(sql) ~= "string" then error("db:ddl: expected an SQL string", 2) end
  local bad = zero_byte("the SQL text", sql)
  if bad then error(caller_where(2) .. "db:ddl: " .. bad, 0) end
  opts = check_options(opts, DDL_OPTIONS, "db:ddl")
  local where = caller_where(2)
  local lock_timeout = timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  local retries = opts.retries or 5
  local backoff = opts.backoff or 0.5
  local max_backoff = opts.max_backoff or 30
  if math.type(retries) ~= "integer" or retries < 0 then
    error("db:ddl: 'retries' must be a whole number >= 0", 2)
  end
  local old = db:value("SELECT pg_catalog.current_setting('lock_timeout')")
  if db:in_transaction() then
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, true)", lock_timeout)
    local n = exec_at(db, where, sql)
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, true)", old)
    return n
  end
  local attempt = 0
  while true do
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, false)", lock_timeout)
    local ok, res = pcall(db.exec, db, sql)
    db:value("SELECT pg_catalog.set_config('lock_timeout', $1, false)", old)
    if ok then return res end
    local state = type(res) == "table" and res.sqlstate
    if not (RETRYABLE[state] and attempt < retries) then
      if type(res) == "table" and state then res.where = where end
      error(res, 0)
    end
    attempt = attempt + 1
    local delay = math.min(max_backoff, backoff * 2 ^ (attempt - 1)) * (0.5 + math.random() / 2)
    local msg = string.format("%s (SQLSTATE %s); retry %d of %d in %.1f s", res.message, state,
      attempt, retries, delay)
    M.log(msg)
    C.event("retry", msg, state)
    C.sleep(delay)
  end
end

-- db:backfill{...}: a batched, resumable backfill run by the extension.
local BACKFILL_OPTIONS = {
  name = true, table = true, set = true, where = true, into = true, columns = true,
  select = true, on_conflict = true, key = true, batch_min = true, batch_max = true,
  target_ms = true, sleep_ratio = true, lock_timeout_ms = true, max_retries = true,
  max_lag = true, throttle_query = true,
}
local BACKFILL_CASTS = {
  table = "pg_catalog.regclass", into = "pg_catalog.regclass", key = "pg_catalog.regclass",
  columns = "pg_catalog.text[]", batch_min = "pg_catalog.int4", batch_max = "pg_catalog.int4",
  target_ms = "pg_catalog.int4", sleep_ratio = "pg_catalog.float8",
  lock_timeout_ms = "pg_catalog.int4", max_retries = "pg_catalog.int4",
  max_lag = "pg_catalog.interval",
}
-- option -> the argument name of shift.backfill_create (some are SQL keywords)
local BACKFILL_ARGS = { where = '"where"', into = '"into"', select = '"select"' }

-- {"a", "b"} -> '{"a","b"}', an array literal whatever the strings hold
local function array_literal(list)
  local parts = {}
  for i, v in ipairs(list) do
    parts[i] = '"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"'
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Backfills a phase makes are named after it: "migration:phase", then ":2", ...
local backfill_seq = { phase = nil, n = 0 }

local function backfill_name(opts)
  if opts.name then return opts.name end
  local mig, phase = C.current()
  local key = (mig or "plan") .. ":" .. (phase or "plan")
  if backfill_seq.phase ~= key then backfill_seq.phase, backfill_seq.n = key, 0 end
  backfill_seq.n = backfill_seq.n + 1
  return key .. (backfill_seq.n > 1 and (":" .. backfill_seq.n) or "")
end

-- The shift.backfill_create call for opts: only the options given, as parameters.
local function backfill_create_sql(opts, name)
  local mig, phase = C.current()
  local args, params = { "$1" }, { name }
  local function add(arg, value, cast)
    if value == nil then return end
    params[#params + 1] = value
    args[#args + 1] = arg .. " => $" .. #params .. (cast and ("::" .. cast) or "")
  end
  add("relation", opts.table, BACKFILL_CASTS.table)
  for _, k in ipairs({ "set", "where", "into", "columns", "select", "on_conflict", "key",
                       "batch_min", "batch_max", "target_ms", "sleep_ratio", "lock_timeout_ms",
                       "max_retries", "max_lag", "throttle_query" }) do
    local v = opts[k]
    if k == "columns" and v ~= nil then v = array_literal(v) end
    if k == "max_lag" and v == false then
      args[#args + 1] = "max_lag => NULL"
    else
      add(BACKFILL_ARGS[k] or k, v, BACKFILL_CASTS[k])
    end
  end
  args[#args + 1] = "if_exists => 'reuse'"
  add("migration", mig)
  add("phase", phase)
  return "SELECT shift.backfill_create(" .. table.concat(args, ", ") .. ")", params
end

local function check_backfill_options(opts)
  opts = check_options(opts, BACKFILL_OPTIONS, "db:backfill")
  if type(opts.table) ~= "string" then
    error("db:backfill: 'table' (the table to walk) is required", 3)
  end
  if (opts.set == nil) == (opts.into == nil) then
    error("db:backfill: give exactly one of 'set' (update in place) and 'into' (copy)", 3)
  end
  if opts.columns ~= nil and type(opts.columns) ~= "table" then
    error("db:backfill: 'columns' must be a list of column names", 3)
  end
  return opts
end

-- db:backfill{table =, set = | into =, ...} -> rows written.  Creates the job
-- (or reuses the identical one a previous attempt made) and runs it to the end
-- with CALL shift.backfill_run, which commits after every batch.  Interrupted
-- (Ctrl-C, a lost runner or session), it goes on from its checkpoint on the
-- next run.  A job an operator paused or cancelled stops the phase as an
-- interruption too (SQLSTATE 57014): nothing is undone, and the next run goes
-- on from the checkpoint once the job may run again.
local function operator_stop(where, name, state)
  if state == "paused" then
    return C.sqlerror("backfill job '" .. name .. "' is paused", "57014",
      "Resume it with SELECT shift.backfill_resume('" .. name .. "'); the next run goes on from its checkpoint.",
      where)
  end
  return C.sqlerror("backfill job '" .. name .. "' was cancelled", "57014",
    "To start it over (the rows it did are done again): SELECT shift.backfill_drop('" .. name
      .. "'), then run again; or roll the migration back.", where)
end
function db_methods.backfill(db, opts)
  opts = check_backfill_options(opts)
  local where = caller_where(2)
  local name = backfill_name(opts)
  local sql, params = backfill_create_sql(opts, name)
  exec_at(db, where, sql, table.unpack(params))
  local function state()
    return db:query("SELECT state, rows_done, keys_done, batches FROM shift.backfill_progress"
      .. " WHERE name = $1", name)[1]
  end
  local st = state()
  if st.state == "paused" or st.state == "cancelled" then error(operator_stop(where, name, st.state), 0) end
  local before = st.rows_done
  C.backfill_watch(name)
  local ok, err = pcall(exec_at, db, where, "CALL shift.backfill_run($1)", name)
  if not ok then
    -- paused or cancelled meanwhile: the operator's stop, not the phase's failure
    local now = db:in_transaction() and nil or select(2, pcall(state))
    if type(now) == "table" and (now.state == "paused" or now.state == "cancelled") then
      error(operator_stop(where, name, now.state), 0)
    end
    error(err, 0)
  end
  C.backfill_watch(nil)
  st = state()
  C.add_rows(st.rows_done - before)
  if st.state == "paused" or st.state == "cancelled" then
    error(operator_stop(where, name, st.state), 0)
  elseif st.state ~= "done" then
    error(where .. "backfill job '" .. name .. "' stopped in state " .. st.state, 0)
  end
  M.log(string.format("backfill %s: %d rows written, %d keys walked in %d batches", name,
    st.rows_done, st.keys_done, st.batches))
  return st.rows_done
end

-- db:checksum{...} and db:compare{...}: the extension's chunk checksums, for
-- validate phases.
local CHECKSUM_OPTIONS = { table = true, columns = true }
local COMPARE_OPTIONS = {
  source = true, target = true, columns = true, target_columns = true, key = true,
  target_key = true, buckets = true, limit = true,
}

-- '{a,"b c",NULL}' -> {"a", "b c", nil}: a one-dimensional text[] as PostgreSQL prints it
local function parse_text_array(text)
  local out, i, n = M.array(), 2, 0
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

local function list_option(v, what, name)
  if v == nil then return nil end
  if type(v) ~= "table" then error(what .. ": '" .. name .. "' must be a list", 4) end
  return array_literal(v)
end

local function checksum_call(opts)
  opts = check_options(opts, CHECKSUM_OPTIONS, "db:checksum")
  if type(opts.table) ~= "string" then error("db:checksum: 'table' is required", 3) end
  return "SELECT rows, checksum FROM shift.table_checksum($1::pg_catalog.regclass, $2::pg_catalog.text[])",
    { opts.table, list_option(opts.columns, "db:checksum", "columns") }
end

-- db:checksum{table =, columns =} -> {rows =, checksum =}
function db_methods.checksum(db, opts)
  local sql, params = checksum_call(opts)
  local where = caller_where(2)
  local ok, rows = pcall(db.query, db, sql, params[1], params[2])
  if not ok then
    if type(rows) == "table" and rows.sqlstate then rows.where = where end
    error(rows, 0)
  end
  return { rows = rows[1].rows, checksum = rows[1].checksum }
end

local function compare_call(opts)
  opts = check_options(opts, COMPARE_OPTIONS, "db:compare")
  if type(opts.source) ~= "string" or type(opts.target) ~= "string" then
    error("db:compare: 'source' and 'target' (two tables) are required", 3)
  end
  local sql = "SELECT kind, key::pg_catalog.text AS key, columns::pg_catalog.text AS columns"
    .. " FROM shift.compare($1::pg_catalog.regclass, $2::pg_catalog.regclass, $3::pg_catalog.text[],"
    .. " $4::pg_catalog.text[], $5::pg_catalog.text[], $6::pg_catalog.text[], $7::pg_catalog.int4)"
  return sql, { opts.source, opts.target, list_option(opts.columns, "db:compare", "columns"),
    list_option(opts.target_columns, "db:compare", "target_columns"),
    list_option(opts.key, "db:compare", "key"), list_option(opts.target_key, "db:compare", "target_key"),
    opts.buckets }, opts.limit or 100
end

local function compare_result(rows, limit, source, target)
  local r = { missing_in_target = 0, missing_in_source = 0, different = 0, differences = M.array() }
  for _, row in ipairs(rows) do
    r[row.kind] = r[row.kind] + 1
    if #r.differences < limit then
      r.differences[#r.differences + 1] = { kind = row.kind, key = parse_text_array(row.key),
        columns = parse_text_array(row.columns) }
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
function db_methods.compare(db, opts)
  local sql, params, limit = compare_call(opts)
  local where = caller_where(2)
  local ok, rows = pcall(db.query, db, sql, table.unpack(params, 1, 7))
  if not ok then
    if type(rows) == "table" and rows.sqlstate then rows.where = where end
    error(rows, 0)
  end
  local r = compare_result(rows, limit, opts.source, opts.target)
  M.log("compare " .. opts.source .. " -> " .. opts.target .. ": " .. r.summary)
  return r
end

-- ---------------------------------------------------------------------------
-- The dry-run db of `pgshift plan`: records what a phase would send.
-- ---------------------------------------------------------------------------

-- A dry-run db is an empty table; what it recorded is kept here, out of
-- reach of the code under review (plan and lint run a file that need not be
-- trusted: it must not be able to change what the reviewer is shown), and
-- its metatable is hidden from getmetatable().
local Dry = { __name = "dry-run db", __metatable = "dry-run db" }
Dry.__index = Dry
local dry_state = setmetatable({}, { __mode = "k" })

function M.dry_db()
  local db = setmetatable({}, Dry)
  dry_state[db] = { statements = {}, intx = false }
  return db
end

local function is_dry(db) return dry_state[db] ~= nil end

local function record(self, kind, sql, ...)
  local state = dry_state[self]
  if not state then error("db:" .. kind .. ": expected a db (call it as db:" .. kind .. "(...))", 3) end
  if type(sql) ~= "string" then error("db:" .. kind .. ": expected an SQL string", 3) end
  local params = table.pack(...)
  local bad = zero_byte("the SQL text", sql)
  for i = 1, params.n do bad = bad or zero_byte("parameter $" .. i, params[i]) end
  if bad then error(caller_where(3) .. "db:" .. kind .. ": " .. bad, 0) end
  local shown = {}
  for i = 1, params.n do
    local v = params[i]
    shown[i] = v == nil and "NULL" or (type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  state.statements[#state.statements + 1] = { kind = kind, sql = sql, params = M.array(shown),
                                              where = caller_where(3) }
  return state.statements[#state.statements]
end

function Dry:exec(sql, ...) record(self, "exec", sql, ...) return 0 end
function Dry:query(sql, ...) record(self, "query", sql, ...) return {} end
function Dry:value(sql, ...) record(self, "value", sql, ...) return nil end
function Dry:in_transaction() return dry_state[self] ~= nil and dry_state[self].intx end
function Dry:ddl(sql, opts)
  opts = check_options(opts, DDL_OPTIONS, "db:ddl")
  local st = record(self, "ddl", sql)
  st.lock_timeout = timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  st.retries = opts.retries or 5
end
function Dry:transaction(fn)
  record(self, "exec", "BEGIN")
  dry_state[self].intx = true
  local res = table.pack(pcall(fn, self))
  dry_state[self].intx = false
  record(self, "exec", res[1] and "COMMIT" or "ROLLBACK")
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end
function Dry:backfill(opts)
  opts = check_backfill_options(opts)
  local name = backfill_name(opts)
  local sql, params = backfill_create_sql(opts, name)
  record(self, "value", sql, table.unpack(params))
  record(self, "exec", "CALL shift.backfill_run($1)", name)
  return 0
end
function Dry:checksum(opts)
  local sql, params = checksum_call(opts)
  record(self, "query", sql, params[1], params[2])
  return { rows = 0, checksum = "" }
end
function Dry:compare(opts)
  local sql, params, limit = compare_call(opts)
  record(self, "query", sql, table.unpack(params, 1, 7))
  return compare_result({}, limit, opts.source, opts.target)
end
function Dry:close() end

-- ---------------------------------------------------------------------------
-- Sync, cut-over and the online forms of risky DDL.  Written only in terms of
-- db:exec/query/value/ddl/backfill/transaction, so the same code runs for
-- real and in plan's dry run (where a lookup returns nil: the plan shows the
-- path that does the most).  Each helper is resumable: it looks at what is
-- already there and does only the rest.
-- ---------------------------------------------------------------------------

local helpers = {}

local function qi(name)
  return '"' .. tostring(name):gsub('"', '""') .. '"'
end

-- A string literal (standard_conforming_strings is on in every supported server).
local function ql(s)
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end

-- A quoted column list from a Lua list of names.
local function column_list(cols, what, name)
  if type(cols) ~= "table" or #cols == 0 then
    error(what .. ": '" .. name .. "' must be a non-empty list of column names", 3)
  end
  local out = {}
  for i, c in ipairs(cols) do out[i] = qi(c) end
  return table.concat(out, ", ")
end

local function required(opts, key, what, kind)
  if type(opts[key]) ~= (kind or "string") then
    error(what .. ": '" .. key .. "' is required", 3)
  end
  return opts[key]
end

-- Runs a query, attributing an SQL error to the user's call.
local function run_query(db, where, sql, ...)
  local ok, rows = pcall(db.query, db, sql, ...)
  if ok then return rows end
  if type(rows) == "table" and rows.sqlstate ~= nil then rows.where = where end
  error(rows, 0)
end

-- A catalog lookup: the dry run answers nothing and records nothing (a plan
-- shows what changes, and takes the path that changes the most).
local function query_at(db, where, sql, ...)
  if is_dry(db) then return {} end
  return run_query(db, where, sql, ...)
end

local function ddl_at(db, where, sql, opts)
  local ok, res = pcall(db.ddl, db, sql, opts)
  if ok then return res end
  if type(res) == "table" and res.sqlstate ~= nil then res.where = where end
  error(res, 0)
end

-- The table's schema-qualified, quoted name as the server resolves it.
local function table_name(db, where, t)
  local r = query_at(db, where, "SELECT $1::pg_catalog.regclass::pg_catalog.text AS t", t)[1]
  return r and r.t or t           -- the dry run has no answer: the name as written
end

-- db:sync{name =, table =, set =, reverse_set = | into =, columns =, select =,
-- key =, reverse =, reverse_columns =, reverse_select =, reverse_key =}:
-- creates the sync (or keeps the identical one an earlier attempt made);
-- returns its name.  Undo it in the phase's down with db:sync_drop(name).
local SYNC_OPTIONS = {
  name = true, table = true, set = true, reverse_set = true, into = true, columns = true,
  select = true, key = true, reverse = true, reverse_columns = true, reverse_select = true,
  reverse_key = true,
}
function helpers.sync(db, opts)
  opts = check_options(opts, SYNC_OPTIONS, "db:sync")
  local where = caller_where(2)
  required(opts, "table", "db:sync")
  if (opts.set == nil) == (opts.into == nil) then
    error("db:sync: give exactly one of 'set' (columns of one table) and 'into' (another table)", 2)
  end
  local mig, phase = C.current()
  local name = opts.name or ((mig or "plan") .. "." .. (phase or "plan")):gsub("[^%w_.:-]", "_")
  if #name > 48 then
    error("db:sync: the default name '" .. name .. "' is longer than 48 characters; give 'name'", 2)
  end
  local args, params = { "$1", "relation => $2::pg_catalog.regclass" }, { name, opts.table }
  local function add(arg, value, cast)
    if value == nil then return end
    params[#params + 1] = value
    args[#args + 1] = arg .. " => $" .. #params .. (cast and ("::" .. cast) or "")
  end
  add("set", opts.set)
  add("reverse_set", opts.reverse_set)
  add('"into"', opts.into, "pg_catalog.regclass")
  add("columns", list_option(opts.columns, "db:sync", "columns"), "pg_catalog.text[]")
  add('"select"', opts.select)
  add("key", list_option(opts.key, "db:sync", "key"), "pg_catalog.text[]")
  if opts.reverse == false then args[#args + 1] = "reverse => false" end
  add("reverse_columns", list_option(opts.reverse_columns, "db:sync", "reverse_columns"), "pg_catalog.text[]")
  add("reverse_select", opts.reverse_select)
  add("reverse_key", list_option(opts.reverse_key, "db:sync", "reverse_key"), "pg_catalog.text[]")
  args[#args + 1] = "if_exists => 'reuse'"
  add("migration", mig)
  add("phase", phase)
  exec_at(db, where, "SELECT shift.sync_create(" .. table.concat(args, ", ") .. ")", table.unpack(params))
  M.log("sync " .. name .. ": " .. (opts.into and (opts.table .. " -> " .. opts.into) or opts.set))
  return name
end

-- db:sync_drop(name): drops the sync if it exists.
function helpers.sync_drop(db, name)
  if type(name) ~= "string" then error("db:sync_drop: expected the sync's name", 2) end
  -- it locks both tables: a short lock_timeout, and lock timeouts and
  -- deadlocks retried, as for any DDL on a busy table
  ddl_at(db, caller_where(2), "SELECT shift.sync_drop(" .. ql(name) .. ", if_exists => true)")
end

-- db:cutover{sync =, archive =, check =, check_rows =, lock_timeout =, retries =,
-- backoff =, max_backoff =, max_xact_age =} (and db:cutover_revert{...}):
-- shift.cutover in its own short transaction, then the re-pointed foreign
-- keys validated (that scan takes no lock that blocks writes).
local CUTOVER_OPTIONS = {
  sync = true, archive = true, check = true, check_rows = true, lock_timeout = true,
  retries = true, backoff = true, max_backoff = true, max_xact_age = true,
}
local function cutover(db, opts, revert, where)
  local what = revert and "db:cutover_revert" or "db:cutover"
  opts = check_options(opts, CUTOVER_OPTIONS, what)
  required(opts, "sync", what)
  if revert and opts.archive ~= nil then error(what .. ": 'archive' applies to db:cutover", 3) end
  if db:in_transaction() then
    error(what .. ": must run outside db:transaction (it is its own short transaction)", 3)
  end
  -- resumable: a cut-over that committed before its phase was recorded as
  -- done (a runner killed at that moment) is not done twice, nor a revert
  local function validate_pending()
    -- the re-pointed foreign keys left NOT VALID by the swap (this one, or
    -- one whose runner died before it got here): validating blocks no writes
    -- (built by the extension from the catalog, never from stored text)
    for _, p in ipairs(query_at(db, where, "SELECT s AS stmt FROM shift.cutover_pending($1) s", opts.sync)) do
      ddl_at(db, where, p.stmt, { lock_timeout = opts.lock_timeout or "2s" })
      M.log("validated: " .. p.stmt)
    end
  end
  local state = query_at(db, where, "SELECT direction FROM shift.sync_status WHERE name = $1", opts.sync)[1]
  if state and state.direction == (revert and "forward" or "reverse") then
    M.log(string.format("sync %s is %s: nothing to %s", opts.sync,
      revert and "not cut over" or "cut over already", revert and "revert" or "do"))
    validate_pending()
    return nil
  end
  local args, params = { "$1" }, { opts.sync }
  local function add(arg, value, cast)
    if value == nil then return end
    params[#params + 1] = value
    args[#args + 1] = arg .. " => $" .. #params .. (cast and ("::" .. cast) or "")
  end
  if not revert then add("archive", opts.archive) end
  add('"check"', opts.check)
  add("check_rows", opts.check_rows, "pg_catalog.int4")
  add("lock_timeout", opts.lock_timeout ~= nil and timeout_text(opts.lock_timeout, "lock_timeout") or nil)
  add("retries", opts.retries, "pg_catalog.int4")
  add("backoff", opts.backoff, "pg_catalog.float8")
  add("max_backoff", opts.max_backoff, "pg_catalog.float8")
  add("max_xact_age", opts.max_xact_age, "pg_catalog.interval")
  local rows = run_query(db, where, "SELECT * FROM shift." .. (revert and "cutover_revert" or "cutover")
    .. "(" .. table.concat(args, ", ") .. ")", table.unpack(params))
  local r = rows[1]
  if r == nil then return nil end
  M.log(string.format("%s %s: %s is live, %s archived; %d attempt(s), locks held %.1f ms",
    revert and "cut-over reverted" or "cut over", opts.sync, r.live, r.archived, r.attempts, r.locked_ms))
  validate_pending()
  return { attempts = r.attempts, lock_wait_ms = r.lock_wait_ms, locked_ms = r.locked_ms,
           live = r.live, archived = r.archived, views = parse_text_array(r.views),
           foreign_keys = parse_text_array(r.foreign_keys), sequences = parse_text_array(r.sequences) }
end
function helpers.cutover(db, opts) return cutover(db, opts, false, caller_where(2)) end
function helpers.cutover_revert(db, opts) return cutover(db, opts, true, caller_where(2)) end

-- db:create_index{name =, table =, columns = {...} | expressions = {...},
-- unique =, using =, include = {...}, where =, lock_timeout =}: CREATE INDEX
-- CONCURRENTLY, after dropping an invalid index of that name left by a
-- failed attempt; an index of that name that is valid is kept.  It never
-- blocks writes, so by default it waits as long as it must (lock_timeout 0).
local INDEX_OPTIONS = {
  name = true, table = true, columns = true, expressions = true, unique = true, using = true,
  include = true, where = true, lock_timeout = true,
}
-- The index's state: nil (absent), true (valid), false (invalid).
local function index_state(db, where, tbl, name)
  local rows = query_at(db, where, [[
SELECT i.indisvalid AS valid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = $2 AND c.relnamespace = (SELECT t.relnamespace FROM pg_catalog.pg_class t
                                             WHERE t.oid = $1::pg_catalog.regclass)]], tbl, name)
  if rows[1] == nil then return nil end
  return rows[1].valid, rows[1].qname
end
function helpers.create_index(db, opts)
  opts = check_options(opts, INDEX_OPTIONS, "db:create_index")
  local where = caller_where(2)
  local name = required(opts, "name", "db:create_index")
  local tbl = required(opts, "table", "db:create_index")
  if (opts.columns == nil) == (opts.expressions == nil) then
    error("db:create_index: give exactly one of 'columns' (names) and 'expressions' (SQL)", 2)
  end
  if db:in_transaction() then
    error("db:create_index: CREATE INDEX CONCURRENTLY cannot run inside db:transaction", 2)
  end
  local keys
  if opts.columns then keys = column_list(opts.columns, "db:create_index", "columns")
  else
    local parts = {}
    for i, e in ipairs(opts.expressions) do parts[i] = "(" .. e .. ")" end
    keys = table.concat(parts, ", ")
  end
  local lt = { lock_timeout = opts.lock_timeout or 0 }
  local valid, qname = index_state(db, where, tbl, name)
  if valid == true then
    M.log("index " .. name .. " exists and is valid: kept")
    return false
  elseif valid == false then
    M.log("index " .. name .. " is an invalid leftover of a failed build: dropping it")
    ddl_at(db, where, "DROP INDEX CONCURRENTLY IF EXISTS " .. qname, lt)
  end
  local sql = "CREATE " .. (opts.unique and "UNIQUE " or "") .. "INDEX CONCURRENTLY " .. qi(name)
    .. " ON " .. table_name(db, where, tbl) .. (opts.using and (" USING " .. opts.using) or "")
    .. " (" .. keys .. ")"
    .. (opts.include and (" INCLUDE (" .. column_list(opts.include, "db:create_index", "include") .. ")") or "")
    .. (opts.where and (" WHERE " .. opts.where) or "")
  ddl_at(db, where, sql, lt)
  return true
end

-- db:drop_index{name =, table =}: DROP INDEX CONCURRENTLY IF EXISTS.
function helpers.drop_index(db, opts)
  opts = check_options(opts, { name = true, table = true, lock_timeout = true }, "db:drop_index")
  local where = caller_where(2)
  local name = required(opts, "name", "db:drop_index")
  local _, qname = index_state(db, where, required(opts, "table", "db:drop_index"), name)
  if qname == nil and not is_dry(db) then return false end
  ddl_at(db, where, "DROP INDEX CONCURRENTLY IF EXISTS " .. (qname or qi(name)),
    { lock_timeout = opts.lock_timeout or 0 })
  return true
end

-- A constraint's state on a table: nil (absent), true (validated), false (NOT VALID).
local function constraint_state(db, where, tbl, name)
  local rows = query_at(db, where, "SELECT convalidated FROM pg_catalog.pg_constraint"
    .. " WHERE conrelid = $1::pg_catalog.regclass AND conname = $2", tbl, name)
  if rows[1] == nil then return nil end
  return rows[1].convalidated
end

-- db:add_not_null{table =, column =, constraint =, lock_timeout =}: SET NOT NULL
-- without a long lock: CHECK (col IS NOT NULL) NOT VALID (a moment's lock),
-- VALIDATE (a scan that lets writes go on), SET NOT NULL (which trusts the
-- validated check instead of scanning), then the check goes.
local NOT_NULL_OPTIONS = { table = true, column = true, constraint = true, lock_timeout = true }
function helpers.add_not_null(db, opts)
  opts = check_options(opts, NOT_NULL_OPTIONS, "db:add_not_null")
  local where = caller_where(2)
  local tbl = required(opts, "table", "db:add_not_null")
  local col = required(opts, "column", "db:add_not_null")
  local con = opts.constraint or (tbl:match("[^.]*$"):gsub('"', '') .. "_" .. col .. "_not_null")
  local lt = { lock_timeout = opts.lock_timeout }
  local t = table_name(db, where, tbl)
  local nn = query_at(db, where, "SELECT attnotnull FROM pg_catalog.pg_attribute"
    .. " WHERE attrelid = $1::pg_catalog.regclass AND attname = $2 AND NOT attisdropped", tbl, col)[1]
  if nn and nn.attnotnull then
    M.log(t .. "." .. col .. " is NOT NULL already")
  else
    local state = constraint_state(db, where, tbl, con)
    if state == nil then
      ddl_at(db, where, "ALTER TABLE " .. t .. " ADD CONSTRAINT " .. qi(con) .. " CHECK (" .. qi(col)
        .. " IS NOT NULL) NOT VALID", lt)
    end
    if state ~= true then
      ddl_at(db, where, "ALTER TABLE " .. t .. " VALIDATE CONSTRAINT " .. qi(con), lt)
    end
    ddl_at(db, where, "ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(col) .. " SET NOT NULL", lt)
  end
  ddl_at(db, where, "ALTER TABLE " .. t .. " DROP CONSTRAINT IF EXISTS " .. qi(con), lt)
end

-- db:drop_not_null{table =, column =}: the way back.
function helpers.drop_not_null(db, opts)
  opts = check_options(opts, NOT_NULL_OPTIONS, "db:drop_not_null")
  local where = caller_where(2)
  local tbl = required(opts, "table", "db:drop_not_null")
  local col = required(opts, "column", "db:drop_not_null")
  local con = opts.constraint or (tbl:match("[^.]*$"):gsub('"', '') .. "_" .. col .. "_not_null")
  local t = table_name(db, where, tbl)
  ddl_at(db, where, "ALTER TABLE " .. t .. " DROP CONSTRAINT IF EXISTS " .. qi(con), { lock_timeout = opts.lock_timeout })
  ddl_at(db, where, "ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(col) .. " DROP NOT NULL", { lock_timeout = opts.lock_timeout })
end

-- db:add_foreign_key{table =, columns = {...}, references =, ref_columns = {...},
-- name =, on_delete =, on_update =, lock_timeout =}: ADD CONSTRAINT ... NOT
-- VALID (a moment's lock on both tables), then VALIDATE (a scan that lets
-- writes go on).
local FK_OPTIONS = {
  table = true, columns = true, references = true, ref_columns = true, name = true,
  on_delete = true, on_update = true, lock_timeout = true,
}
local FK_ACTIONS = { ["no action"] = true, restrict = true, cascade = true, ["set null"] = true,
                     ["set default"] = true }
function helpers.add_foreign_key(db, opts)
  opts = check_options(opts, FK_OPTIONS, "db:add_foreign_key")
  local where = caller_where(2)
  local tbl = required(opts, "table", "db:add_foreign_key")
  local ref = required(opts, "references", "db:add_foreign_key")
  local cols = column_list(opts.columns, "db:add_foreign_key", "columns")
  local name = opts.name or (tbl:match("[^.]*$"):gsub('"', '') .. "_" .. table.concat(opts.columns, "_") .. "_fkey")
  for _, k in ipairs({ "on_delete", "on_update" }) do
    if opts[k] ~= nil and not FK_ACTIONS[tostring(opts[k]):lower()] then
      error("db:add_foreign_key: '" .. k .. "' must be one of no action, restrict, cascade, set null, set default", 2)
    end
  end
  local lt = { lock_timeout = opts.lock_timeout }
  local t = table_name(db, where, tbl)
  local state = constraint_state(db, where, tbl, name)
  if state == nil then
    ddl_at(db, where, "ALTER TABLE " .. t .. " ADD CONSTRAINT " .. qi(name) .. " FOREIGN KEY (" .. cols
      .. ") REFERENCES " .. table_name(db, where, ref)
      .. (opts.ref_columns and (" (" .. column_list(opts.ref_columns, "db:add_foreign_key", "ref_columns") .. ")") or "")
      .. (opts.on_delete and (" ON DELETE " .. opts.on_delete:upper()) or "")
      .. (opts.on_update and (" ON UPDATE " .. opts.on_update:upper()) or "")
      .. " NOT VALID", lt)
  end
  if state ~= true then
    ddl_at(db, where, "ALTER TABLE " .. t .. " VALIDATE CONSTRAINT " .. qi(name), lt)
  end
  return name
end

-- ALTER TABLE ... DROP <kind> IF EXISTS <name>, as a helper taking {table =, <key> =}.
local function dropper(what, kind, key)
  return function(db, opts)
    opts = check_options(opts, { table = true, [key] = true, lock_timeout = true }, what)
    local where = caller_where(2)
    local t = table_name(db, where, required(opts, "table", what))
    ddl_at(db, where, "ALTER TABLE " .. t .. " DROP " .. kind .. " IF EXISTS " .. qi(required(opts, key, what)),
      { lock_timeout = opts.lock_timeout })
  end
end

-- db:drop_constraint{table =, name =}: ALTER TABLE ... DROP CONSTRAINT IF EXISTS.
helpers.drop_constraint = dropper("db:drop_constraint", "CONSTRAINT", "name")

-- db:add_column{table =, column =, type =, default =, not_null =, lock_timeout =,
-- backfill = {...}}: ADD COLUMN.  A default that would rewrite the table (a
-- volatile one, say clock_timestamp() or gen_random_uuid()) is not given to
-- ADD COLUMN: the column is added bare, the default set for new rows, the
-- existing rows backfilled in batches, then NOT NULL added online if asked.
-- The server's lint decides which defaults rewrite.
local ADD_COLUMN_OPTIONS = {
  table = true, column = true, type = true, default = true, not_null = true, lock_timeout = true,
  backfill = true,
}
function helpers.add_column(db, opts)
  opts = check_options(opts, ADD_COLUMN_OPTIONS, "db:add_column")
  local where = caller_where(2)
  local tbl = required(opts, "table", "db:add_column")
  local col = required(opts, "column", "db:add_column")
  local typ = required(opts, "type", "db:add_column")
  local lt = { lock_timeout = opts.lock_timeout }
  local t = table_name(db, where, tbl)
  local add = "ALTER TABLE " .. t .. " ADD COLUMN IF NOT EXISTS " .. qi(col) .. " " .. typ
  if opts.default == nil then
    ddl_at(db, where, add, lt)
  else
    local rewrites = query_at(db, where, "SELECT 1 FROM shift.lint($1, '1s') WHERE rule = 'add-column-rewrite'",
      add .. " DEFAULT " .. opts.default)
    if #rewrites == 0 and not is_dry(db) then
      ddl_at(db, where, add .. " DEFAULT " .. opts.default .. (opts.not_null and " NOT NULL" or ""), lt)
      return
    end
    -- the online route (and the plan's: it cannot ask the server)
    ddl_at(db, where, add, lt)
    ddl_at(db, where, "ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(col) .. " SET DEFAULT " .. opts.default, lt)
    local bf = { table = tbl, set = qi(col) .. " = " .. opts.default, where = qi(col) .. " IS NULL" }
    for k, v in pairs(opts.backfill or {}) do bf[k] = v end
    db:backfill(bf)
  end
  if opts.not_null then helpers.add_not_null(db, { table = tbl, column = col, lock_timeout = opts.lock_timeout }) end
end

-- db:drop_column{table =, column =}: ALTER TABLE ... DROP COLUMN IF EXISTS.
helpers.drop_column = dropper("db:drop_column", "COLUMN", "column")

for k, f in pairs(helpers) do
  db_methods[k] = f
  Dry[k] = f
end

-- ---------------------------------------------------------------------------
-- online.change_column_type{...}: a column's type changed without a table
-- rewrite under ACCESS EXCLUSIVE, as five phases:
--   <name>-expand    add <column>__new of the new type, a two-way column sync
--   <name>-backfill  fill it in batches (rows already equal are skipped)
--   <name>-validate  prove every row agrees; copy NOT NULL (online) and the default
--   <name>-swap      rename <column> -> <column>__old, <column>__new -> <column>
--                    and turn the sync around, in one short transaction
--   <name>-contract  drop the sync and <column>__old (the point of no return)
-- using / reverse_using are the conversions, with $old and $new standing for
-- the two columns (defaults: "$old::<type>" and "$new::<old type>").  A
-- column in an index, a constraint or an identity is refused: change it
-- through a new table (db:sync{into =}, db:cutover) instead.
-- ---------------------------------------------------------------------------

M.online = {}

local CHANGE_TYPE_OPTIONS = {
  table = true, column = true, type = true, using = true, reverse_using = true, name = true,
  lock_timeout = true, retries = true, backfill = true,
}

-- The swap's renames are safe: both names exist throughout, kept equal by the sync.
local SWAP_ALLOW = " /* shift:allow rename-column: both columns stay, kept equal by a sync */"

-- template with $old and $new replaced by quoted column names
local function expand_template(t, old, new)
  return (t:gsub("%$old", function() return qi(old) end):gsub("%$new", function() return qi(new) end))
end

-- Runs fn(db) in a transaction with a short lock_timeout, the whole
-- transaction retried on lock timeouts and deadlocks like db:ddl.
local function short_transaction(db, where, opts, fn)
  local lock_timeout = timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  local retries = opts.retries or 5
  local attempt = 0
  while true do
    local ok, err = pcall(db.transaction, db, function(tx)
      tx:exec("SET LOCAL lock_timeout = '" .. lock_timeout .. "'")
      fn(tx)
    end)
    if ok then return end
    local state = type(err) == "table" and err.sqlstate
    if not (RETRYABLE[state] and attempt < retries) then
      if type(err) == "table" and state then err.where = where end
      error(err, 0)
    end
    attempt = attempt + 1
    local delay = math.min(30, 0.5 * 2 ^ (attempt - 1)) * (0.5 + math.random() / 2)
    local msg = string.format("%s (SQLSTATE %s); retry %d of %d in %.1f s", err.message, state,
      attempt, retries, delay)
    M.log(msg)
    C.event("retry", msg, state)
    C.sleep(delay)
  end
end

function M.online.change_column_type(opts)
  local info = debug.getinfo(2, "Sl")
  -- errors of the phases point at the helper's call in the migration file
  local site = (info and info.currentline and info.currentline > 0)
    and (info.short_src .. ":" .. info.currentline .. ": ") or ""
  opts = check_options(opts, CHANGE_TYPE_OPTIONS, "online.change_column_type")
  for _, k in ipairs({ "table", "column", "type" }) do
    if type(opts[k]) ~= "string" then error("online.change_column_type: '" .. k .. "' is required", 2) end
  end
  local tbl, col, typ = opts.table, opts.column, opts.type
  local old, new = col .. "__old", col .. "__new"
  local name = opts.name or (tbl:match("[^.]*$"):gsub('"', '') .. "_" .. col .. "_type")
  if not name:match("^[%w_.%-]+$") or #name > 48 then
    error("online.change_column_type: 'name' must be up to 48 letters, digits, '_', '.' or '-' (got "
      .. string.format("%q", name) .. ")", 2)
  end
  local using = opts.using or ("$old::" .. typ)
  local lt = { lock_timeout = opts.lock_timeout, retries = opts.retries }

  -- a column's type, NOT NULL, default, and what the swap cannot carry
  local function inspect(db, where, column)
    return query_at(db, where, [[
SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity <> '' AS identity,
       (SELECT pg_catalog.string_agg(c.relname, ', ') FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey::int2[])) AS indexes,
       (SELECT pg_catalog.string_agg(k.conname, ', ') FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = a.attrelid AND a.attnum = ANY (k.conkey)) AS constraints
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname = $2 AND NOT a.attisdropped]], tbl, column)[1]
  end
  -- the conversion back to the old type (held by old_column)
  local function reverse_using(db, where, old_column)
    if opts.reverse_using then return opts.reverse_using end
    local r = inspect(db, where, old_column)
    return "$new::" .. (r and r.type or "<the type of " .. col .. ">")
  end
  -- The sync's two assignments.  Before the swap, writers write col (old
  -- type) and new follows; after it, writers write col (new type) and old
  -- follows; either way the other column is computed from the live one.
  local function sync_args(rev, swapped)
    if swapped then
      return { name = name, table = tbl, set = qi(old) .. " = " .. expand_template(rev, old, col),
               reverse_set = qi(col) .. " = " .. expand_template(using, old, col) }
    end
    return { name = name, table = tbl, set = qi(new) .. " = " .. expand_template(using, col, new),
             reverse_set = qi(col) .. " = " .. expand_template(rev, col, new) }
  end
  local function resync(tx, a)
    tx:exec("SELECT shift.sync_drop($1, if_exists => true)", name)
    tx:exec("SELECT shift.sync_create($1, $2::pg_catalog.regclass, set => $3, reverse_set => $4)",
      name, tbl, a.set, a.reverse_set)
  end

  local phases = {
    { name = name .. "-expand",
      description = "add " .. new .. " " .. typ .. " next to " .. col .. ", kept equal to it both ways",
      up = function(db)
        local where = site
        local r = inspect(db, where, col)
        if r then
          if r.identity then error(where .. tbl .. "." .. col .. " is an identity column: change its type through a new table", 0) end
          if r.indexes then error(where .. tbl .. "." .. col .. " is in index(es) " .. r.indexes
            .. ": change its type through a new table (db:sync{into =}, db:cutover)", 0) end
          if r.constraints then error(where .. tbl .. "." .. col .. " is in constraint(s) " .. r.constraints
            .. ": change its type through a new table (db:sync{into =}, db:cutover)", 0) end
        end
        db:add_column{ table = tbl, column = new, type = typ, lock_timeout = opts.lock_timeout }
        db:sync(sync_args(reverse_using(db, where, col), false))
      end,
      down = function(db)
        db:sync_drop(name)
        db:drop_column{ table = tbl, column = new, lock_timeout = opts.lock_timeout }
      end },
    { name = name .. "-backfill",
      description = "fill " .. new .. " from " .. col .. " in batches",
      up = function(db)
        local e = expand_template(using, col, new)
        local bf = { table = tbl, set = qi(new) .. " = " .. e, where = qi(new) .. " IS DISTINCT FROM (" .. e .. ")" }
        for k, v in pairs(opts.backfill or {}) do bf[k] = v end
        db:backfill(bf)
      end,
      down = function(db) end },
    { name = name .. "-validate",
      description = "every row agrees; " .. new .. " gets " .. col .. "'s NOT NULL",
      up = function(db)
        local where = site
        local bad = db:value("SELECT count(*) FROM " .. table_name(db, where, tbl) .. " WHERE "
          .. qi(new) .. " IS DISTINCT FROM (" .. expand_template(using, col, new) .. ")")
        if bad and bad > 0 then error(where .. bad .. " rows of " .. tbl .. " have " .. new .. " disagreeing with " .. col, 0) end
        local r = inspect(db, where, col)
        if r == nil or r.notnull then db:add_not_null{ table = tbl, column = new, lock_timeout = opts.lock_timeout } end
        -- the default moves at the swap: a default on the new side while the
        -- two-way sync runs would look like a new-version write and win
      end,
      down = function(db)
        db:drop_not_null{ table = tbl, column = new, lock_timeout = opts.lock_timeout }
      end },
    { name = name .. "-swap",
      description = col .. " becomes the " .. typ .. " column, in one short transaction; the old one stays as " .. old,
      up = function(db)
        local where = site
        local t = table_name(db, where, tbl)
        if inspect(db, where, old) and not inspect(db, where, new) then
          M.log(tbl .. "." .. col .. " is swapped already")
          return
        end
        -- looked up before the renames, while col still has the old type
        local r = inspect(db, where, col)
        local after = sync_args(reverse_using(db, where, col), true)
        short_transaction(db, where, opts, function(tx)
          tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. qi(col) .. " TO " .. qi(old) .. SWAP_ALLOW)
          tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. qi(new) .. " TO " .. qi(col) .. SWAP_ALLOW)
          if r == nil or r.default then
            tx:exec("ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(old) .. " DROP DEFAULT")
            tx:exec("ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(col) .. " SET DEFAULT "
              .. (r and r.default or ("/* the default of " .. col .. ", if it has one */ NULL")))
          end
          resync(tx, after)
        end)
      end,
      down = function(db)
        local where = site
        local t = table_name(db, where, tbl)
        if not is_dry(db) and not inspect(db, where, old) then
          M.log(tbl .. "." .. col .. " was not swapped: nothing to undo")
          return
        end
        local r = inspect(db, where, col)
        local before = sync_args(reverse_using(db, where, old), false)
        short_transaction(db, where, opts, function(tx)
          tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. qi(col) .. " TO " .. qi(new) .. SWAP_ALLOW)
          tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. qi(old) .. " TO " .. qi(col) .. SWAP_ALLOW)
          if r == nil or r.default then
            tx:exec("ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(new) .. " DROP DEFAULT")
            tx:exec("ALTER TABLE " .. t .. " ALTER COLUMN " .. qi(col) .. " SET DEFAULT "
              .. (r and r.default or ("/* the default, if it has one */ NULL")))
          end
          resync(tx, before)
        end)
      end },
    { name = name .. "-contract",
      description = "drop the sync and " .. old .. " in one short transaction (no way back)",
      up = function(db)
        -- together: between the two, the application's inserts (which no
        -- longer write the old column) would meet its NOT NULL with no sync
        -- to fill it
        local where = site
        local t = table_name(db, where, tbl)
        short_transaction(db, where, opts, function(tx)
          tx:exec("SELECT shift.sync_drop($1, if_exists => true)", name)
          tx:exec("ALTER TABLE " .. t .. " DROP COLUMN IF EXISTS " .. qi(old))
        end)
      end },
  }
  is_group[phases] = true
  for _, p in ipairs(phases) do
    group_where[p] = { source = info.short_src, line = info.currentline }
  end
  return phases
end

-- ---------------------------------------------------------------------------
-- pgshift plan: dry-run every phase function and describe the migration.
-- ---------------------------------------------------------------------------

-- Runs fn against a fresh dry-run db: the statements it would send, and the
-- error that stopped it, if any (a value a real query would have returned is
-- nil in a dry run, so code that needs one stops there).
local function dry_run(fn)
  if fn == nil then return nil end
  local db = M.dry_db()
  settings.dry_run = true
  local ok, err = xpcall(fn, C.msghandler, db)
  settings.dry_run = false
  return { statements = M.array(dry_state[db].statements), stopped = (not ok) and err.message or nil }
end

-- M.plan(migration, info) -> the plan as a table.  info: file, sha256, and
-- (connected) state = { [phase name] = {status =, needs_cleanup =} }, status.
function M.plan(mig, info)
  local plan = { migration = mig.name, description = mig.description, file = info.file,
                 sha256 = info.sha256, state = info.status, phases = M.array(),
                 points_of_no_return = M.array() }
  for i, p in ipairs(mig.phases) do
    local st = info.state and info.state[p.name]
    local ph = { ordinal = i, name = p.name, description = p.description,
                 reversible = p.down ~= nil, state = st and st.status or nil,
                 up = dry_run(p.up), down = dry_run(p.down), verify = dry_run(p.verify) }
    plan.phases[i] = ph
    if not ph.reversible then plan.points_of_no_return[#plan.points_of_no_return + 1] = p.name end
  end
  if info.lint_db then M.lint_plan(plan, info.lint_db)
  elseif info.offline then plan.lint = { skipped = "offline" } end
  return plan
end

-- SQL as written in a Lua long string: continuation lines carry the Lua
-- code's indentation; remove what they have in common.
local function dedent(sql)
  sql = sql:gsub("^%s*\n", ""):gsub("%s+$", "")
  local lines, min = {}, nil
  for line in (sql .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = line
    if line:match("%S") then
      local n = #line:match("^ *")
      min = (min == nil or n < min) and n or min
    end
  end
  for i = 1, #lines do lines[i] = (i > 1 and "  " or "") .. lines[i]:sub((min or 0) + 1) end
  return table.concat(lines, "\n")
end

local function sql_lines(step, indent, out)
  if step == nil then return end
  for _, st in ipairs(step.statements) do
    local text = dedent(st.sql)
    local notes = {}
    if #st.params > 0 then
      local ps = {}
      for i, v in ipairs(st.params) do ps[i] = "$" .. i .. " = " .. v end
      notes[#notes + 1] = table.concat(ps, ", ")
    end
    if st.kind == "ddl" then
      notes[#notes + 1] = string.format("lock_timeout %s, up to %d retries", st.lock_timeout, st.retries)
    end
    if not text:match(";$") then text = text .. ";" end
    if #notes > 0 then text = text .. "  -- " .. table.concat(notes, "; ") end
    for line in (text .. "\n"):gmatch("(.-)\n") do out[#out + 1] = indent .. line end
    for _, line in ipairs(M.lint_notes(st)) do out[#out + 1] = indent .. line end
  end
  if #step.statements == 0 then out[#out + 1] = indent .. "-- (no SQL)" end
  if step.stopped then
    out[#out + 1] = indent .. "-- the dry run stopped here: " .. step.stopped
  end
end

local function plan_text(plan)
  local out = {}
  out[#out + 1] = string.format("Plan for migration %s (%s)", plan.migration, plan.file)
  out[#out + 1] = string.format("  script sha256 %s, %d phases, state: %s", plan.sha256,
    #plan.phases, plan.state or "unknown (offline)")
  if plan.description then out[#out + 1] = "  " .. plan.description end
  if #plan.points_of_no_return > 0 then
    out[#out + 1] = "  points of no return: " .. table.concat(plan.points_of_no_return, ", ")
  end
  if plan.lint then out[#out + 1] = "  lint: " .. M.lint_summary(plan) end
  for _, ph in ipairs(plan.phases) do
    out[#out + 1] = ""
    out[#out + 1] = string.format("[%d/%d] %s%s%s", ph.ordinal, #plan.phases, ph.name,
      ph.reversible and "" or "  (POINT OF NO RETURN: no down)",
      ph.state and ("  [" .. ph.state .. "]") or "")
    if ph.description then out[#out + 1] = "  " .. ph.description end
    out[#out + 1] = "  up:"
    sql_lines(ph.up, "    ", out)
    if ph.verify then
      out[#out + 1] = "  verify:"
      sql_lines(ph.verify, "    ", out)
    end
    if ph.down then
      out[#out + 1] = "  down:"
      sql_lines(ph.down, "    ", out)
    else
      out[#out + 1] = "  down: none; a rollback cannot go back past this phase"
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local function md_sql(step, out)
  local lines = {}
  sql_lines(step, "", lines)
  out[#out + 1] = "```sql"
  for _, l in ipairs(lines) do out[#out + 1] = l end
  out[#out + 1] = "```"
end

local function plan_markdown(plan)
  local out = {}
  local n = #plan.phases
  out[#out + 1] = "# Migration plan: " .. plan.migration
  out[#out + 1] = ""
  out[#out + 1] = "## Overview"
  out[#out + 1] = ""
  if plan.description then out[#out + 1] = plan.description; out[#out + 1] = "" end
  out[#out + 1] = "| | |"
  out[#out + 1] = "|---|---|"
  out[#out + 1] = "| Migration | `" .. plan.migration .. "` |"
  out[#out + 1] = "| File | `" .. plan.file .. "` |"
  out[#out + 1] = "| Script SHA-256 | `" .. plan.sha256 .. "` |"
  out[#out + 1] = "| Phases | " .. n .. " |"
  out[#out + 1] = "| Points of no return | " .. (#plan.points_of_no_return > 0
    and ("`" .. table.concat(plan.points_of_no_return, "`, `") .. "`") or "none") .. " |"
  out[#out + 1] = "| State in the database | " .. (plan.state or "not checked (offline)") .. " |"
  if plan.lint then out[#out + 1] = "| Lint | " .. M.lint_summary(plan) .. " |" end
  out[#out + 1] = ""
  out[#out + 1] = "## Phases"
  for _, ph in ipairs(plan.phases) do
    out[#out + 1] = ""
    out[#out + 1] = string.format("### %d. %s", ph.ordinal, ph.name)
    out[#out + 1] = ""
    out[#out + 1] = "**Goal:** " .. (ph.description or "(no description)")
    if ph.state then out[#out + 1] = ""; out[#out + 1] = "**State:** " .. ph.state end
    out[#out + 1] = ""
    out[#out + 1] = "**Steps:**"
    out[#out + 1] = ""
    md_sql(ph.up, out)
    out[#out + 1] = ""
    if ph.down then
      out[#out + 1] = "**Rollback:**"
      out[#out + 1] = ""
      md_sql(ph.down, out)
    else
      out[#out + 1] = "**Rollback:** none. This phase is a point of no return: once it is done, "
        .. "`pgshift rollback` can return to it but not past it."
    end
    if ph.verify then
      out[#out + 1] = ""
      out[#out + 1] = "**Verify gate** (runs after the steps; a failure runs the rollback):"
      out[#out + 1] = ""
      md_sql(ph.verify, out)
    end
  end
  out[#out + 1] = ""
  out[#out + 1] = "## Validation"
  out[#out + 1] = ""
  local gates = {}
  for _, ph in ipairs(plan.phases) do
    if ph.verify then gates[#gates + 1] = "`" .. ph.name .. "`" end
  end
  if #gates > 0 then
    out[#out + 1] = "- Verify gates run after phases " .. table.concat(gates, ", ")
      .. "; `pgshift verify " .. plan.file .. "` re-runs them at any time."
  else
    out[#out + 1] = "- No phase has a verify gate; validation is whatever the phases themselves check."
  end
  out[#out + 1] = "- Every step and its outcome is recorded in `shift.event` (`SELECT * FROM shift.history`)."
  out[#out + 1] = ""
  out[#out + 1] = "## Success criteria"
  out[#out + 1] = ""
  out[#out + 1] = "- `pgshift run " .. plan.file .. "` exits 0."
  out[#out + 1] = "- `SELECT status, phase FROM shift.status WHERE migration = '" .. plan.migration
    .. "'` shows `done`, " .. n .. " of " .. n .. "."
  if #gates > 0 then out[#out + 1] = "- `pgshift verify " .. plan.file .. "` exits 0." end
  out[#out + 1] = ""
  out[#out + 1] = "## Rollback"
  out[#out + 1] = ""
  out[#out + 1] = "- A phase that fails runs its own rollback at once; earlier phases stay done."
  out[#out + 1] = "- `pgshift rollback " .. plan.file .. " [--to PHASE]` undoes completed phases, last first."
  if #plan.points_of_no_return > 0 then
    out[#out + 1] = "- Rollback stops at the points of no return: `"
      .. table.concat(plan.points_of_no_return, "`, `") .. "`."
  end
  out[#out + 1] = ""
  out[#out + 1] = "## Sign-off"
  out[#out + 1] = ""
  out[#out + 1] = "- [ ] Reviewed by: ____________________  Date: __________"
  return table.concat(out, "\n") .. "\n"
end

function M.render_plan(plan, format)
  if format == "json" then return M.json(plan) .. "\n" end
  if format == "markdown" then return plan_markdown(plan) end
  return plan_text(plan)
end

-- ---------------------------------------------------------------------------
-- pgshift status
-- ---------------------------------------------------------------------------

local STATUS_SQL = [[
SELECT s.migration, s.status, s.operation, s.phases_done, s.nphases, s.phase,
       to_char(s.started_at, 'YYYY-MM-DD HH24:MI:SS') AS started,
       to_char(s.finished_at, 'YYYY-MM-DD HH24:MI:SS') AS finished,
       date_trunc('second', s.elapsed)::text AS elapsed,
       s.last_error, s.last_error_sqlstate, s.last_error_phase,
       s.lease_host, s.lease_runner_pid, s.lease_work_pid,
       date_trunc('second', s.heartbeat_age)::text AS heartbeat_age,
       s.applied_by::text AS applied_by, s.runner_version, s.script_sha256, s.script_path,
       s.runner_alive
  FROM shift.status s
 WHERE $1::text IS NULL OR s.migration = $1
 ORDER BY s.started_at NULLS FIRST, s.migration]]

local PHASES_SQL = [[
SELECT p.ordinal, p.name, p.status, p.reversible, p.needs_cleanup, p.attempts,
       date_trunc('milliseconds', p.duration)::text AS duration, p.rows_affected,
       p.error_message, p.error_sqlstate
  FROM shift.phase p WHERE p.migration = $1 ORDER BY p.ordinal]]

local function pad(s, n) s = tostring(s or ""); return s .. string.rep(" ", n - #s) end

-- M.status(db, name, format) -> text; nil and a message when name is unknown.
function M.status(db, name, format)
  local rows = db:query(STATUS_SQL, name)
  if name and #rows == 0 then return nil, "no migration named '" .. name .. "' has run in this database" end
  if name then rows[1].phases = M.array(db:query(PHASES_SQL, name)) end
  if format == "json" then return M.json(M.array(rows)) .. "\n" end
  local out = {}
  if #rows == 0 then return "no migrations have run in this database\n" end
  if not name then
    local w = { 9, 6, 5 }
    for _, r in ipairs(rows) do
      w[1] = math.max(w[1], #r.migration); w[2] = math.max(w[2], #r.status); w[3] = math.max(w[3], #r.phase)
    end
    out[#out + 1] = pad("MIGRATION", w[1] + 2) .. pad("STATUS", w[2] + 2) .. pad("PHASE", w[3] + 2)
      .. pad("STARTED", 21) .. pad("ELAPSED", 10) .. "LAST ERROR"
    for _, r in ipairs(rows) do
      local err = r.last_error and (r.last_error_phase .. ": " .. r.last_error) or ""
      out[#out + 1] = (pad(r.migration, w[1] + 2) .. pad(r.status, w[2] + 2) .. pad(r.phase, w[3] + 2)
        .. pad(r.started, 21) .. pad(r.elapsed, 10) .. err):gsub("%s+$", "")
    end
    return table.concat(out, "\n") .. "\n"
  end
  local r = rows[1]
  out[#out + 1] = string.format("migration %s: %s, phase %s", r.migration, r.status, r.phase)
  out[#out + 1] = string.format("  script %s (sha256 %s)", r.script_path or "?", r.script_sha256)
  out[#out + 1] = string.format("  last %s by %s with pgshift %s: started %s, %s %s",
    r.operation or "run", r.applied_by, r.runner_version or "?", r.started or "-",
    r.finished and ("finished " .. r.finished .. ",") or "still running,", r.elapsed or "")
  if r.lease_work_pid and r.runner_alive then
    out[#out + 1] = string.format("  running now: pgshift pid %s on %s, session %s, last heartbeat %s ago",
      tostring(r.lease_runner_pid), r.lease_host or "?", tostring(r.lease_work_pid), r.heartbeat_age or "?")
  elseif r.lease_work_pid then
    out[#out + 1] = string.format("  its runner is gone: pgshift pid %s on %s stopped without finishing"
      .. " (last heartbeat %s ago); pgshift run resumes it", tostring(r.lease_runner_pid),
      r.lease_host or "?", r.heartbeat_age or "?")
  end
  out[#out + 1] = "  phases:"
  for _, p in ipairs(r.phases) do
    local extra = {}
    if p.duration then extra[#extra + 1] = p.duration end
    if p.rows_affected then extra[#extra + 1] = p.rows_affected .. " rows" end
    if not p.reversible then extra[#extra + 1] = "no down" end
    if p.status == "interrupted" then
      extra[#extra + 1] = "interrupted: a run resumes it, a rollback runs its down"
    elseif p.needs_cleanup then
      extra[#extra + 1] = "needs its down before a retry"
    end
    if p.error_message then
      extra[#extra + 1] = "error: " .. p.error_message .. (p.error_sqlstate and (" (" .. p.error_sqlstate .. ")") or "")
    end
    out[#out + 1] = string.format("    %2d %s %s %s", p.ordinal, pad(p.name, 20), pad(p.status, 12),
      table.concat(extra, ", ")):gsub("%s+$", "")
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---------------------------------------------------------------------------
-- Loading a migration file.  run, rollback and verify trust the file: it
-- sees all of Lua, like a Makefile sees the shell.  plan and lint review a
-- file that need not be trusted: it runs in a sandbox environment with the
-- pure libraries (copies, so that it cannot change the ones the runner
-- uses), os.time/date/clock/difftime, text-only load, and nothing that
-- reaches files, processes, the environment, the debug library or the
-- runner's own tables.  script.c hides the strings' metatable, removes
-- string.dump and bounds instructions, memory and CPU time.
-- ---------------------------------------------------------------------------

local function copy_table(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A name the sandbox does not offer: using it says why.
local function unavailable(name)
  return name .. " is not available in pgshift plan and lint: they review the file in a sandbox"
    .. " (run, rollback and verify give it all of Lua)"
end
local function blocked_function(name)
  return function() error(unavailable(name), 2) end
end
-- t (a new table by default) whose other fields say they are unavailable
local function blocked_library(name, t)
  return setmetatable(t or {}, {
    __index = function(_, k) error(unavailable(name .. "." .. tostring(k)), 2) end,
    __newindex = function(_, k) error(unavailable(name .. "." .. tostring(k)), 2) end,
    __metatable = false,
  })
end

local SANDBOX_BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget",
  "rawlen", "rawset", "select", "tonumber", "tostring", "type", "xpcall",
  "_VERSION",
}

local function sandbox_env()
  local env = {}
  for _, k in ipairs(SANDBOX_BASE) do env[k] = _G[k] end
  for _, k in ipairs({ "string", "table", "math", "utf8", "coroutine" }) do
    env[k] = copy_table(_G[k])
  end
  env.string.dump = nil
  -- os.getenv answers nil: the reviewer's environment stays private
  env.os = blocked_library("os", { time = os.time, date = os.date, clock = os.clock,
                                   difftime = os.difftime, getenv = function() return nil end })
  -- text chunks only, in this environment unless another is given
  local real_load = load
  env.load = function(chunk, name, _, ...)
    if select("#", ...) > 0 then return real_load(chunk, name, "t", ...) end
    return real_load(chunk, name, "t", env)
  end
  env.print = function() end             -- like log(): plan prints nothing of the file's
  -- a finalizer runs with hooks off, where the instruction limit cannot stop it
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error(unavailable("a __gc metamethod (finalizer)"), 2)
    end
    return setmetatable(t, mt)
  end
  for _, k in ipairs({ "io", "debug", "package" }) do env[k] = blocked_library(k) end
  for _, k in ipairs({ "require", "dofile", "loadfile", "collectgarbage", "warn" }) do
    env[k] = blocked_function(k)
  end
  env._G = env
  return env
end

-- Loads a migration file: runs it in its own environment (globals it sets
-- stay in it) and checks that it returned migration { ... }.
function M.load(path)
  local env
  if settings.sandbox then
    env = sandbox_env()
  else
    env = setmetatable({}, { __index = _G })
  end
  env.migration, env.log = M.migration, M.log
  env.online = { change_column_type = M.online.change_column_type }
  local chunk, err = loadfile(path, "t", env)
  if not chunk then error(err, 0) end
  loading = true
  C.track("@" .. path)
  -- Stops following the file however the chunk ends, error included.
  local _ <close> = setmetatable({}, { __close = function()
    C.track()
    loading = false
  end })
  local result = chunk()
  local mig = validated[result]
  if not mig then
    error(path .. ": the file must end with 'return migration { ... }' (it returned "
      .. (result == nil and "nothing" or ("a " .. type(result))) .. ")", 0)
  end
  return mig
end


-- ===========================================================================
-- Lint: `pgshift lint` and the findings `pgshift plan` shows.  The plan's
-- dry run gives the statements each phase would send; shift.lint_script on
-- the server lints them with PostgreSQL's own parser, each recorded
-- statement as one part (db:ddl's with its lock_timeout in force).
-- Contexts: the up steps of all phases in phase order, so that NOT VALID in
-- one phase and VALIDATE in a later one are seen together; each down and
-- verify after the ups up to its own phase, reporting only its own
-- statements.  Findings are attached to the recorded statements.
-- ===========================================================================

local SEVERITIES = { "LOW", "MEDIUM", "HIGH", "CRITICAL" }
local SEVERITY_RANK = { LOW = 1, MEDIUM = 2, HIGH = 3, CRITICAL = 4 }


-- a text[] or int4[] literal of list[1..n]; nil elements are NULL
local function array_text(list, n)
  local parts = {}
  for i = 1, n do
    local v = list[i]
    parts[i] = v == nil and "NULL" or ('"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"')
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local LINT_SQL = "SELECT part, statement, line, severity, rule, lock, object, message, hint"
  .. " FROM shift.lint_script($1::pg_catalog.text[], $2::pg_catalog.text[], $3::pg_catalog.int4[])"
  .. " ORDER BY part, statement"

-- Lints one context: a list of {phase =, step =, report =}; attaches the
-- findings of the reported steps to their statements.
local function lint_context(db, context)
  local parts, timeouts, phases, owners = {}, {}, {}, {}
  for _, c in ipairs(context) do
    local step = c.phase[c.step]
    for i, st in ipairs(step and step.statements or {}) do
      local n = #owners + 1
      parts[n] = st.sql
      timeouts[n] = st.kind == "ddl" and st.lock_timeout or nil
      phases[n] = c.phase.ordinal
      owners[n] = { phase = c.phase, step = c.step, index = i, statement = st, report = c.report }
    end
  end
  if #owners == 0 then return end
  local rows = db:query(LINT_SQL, array_text(parts, #owners), array_text(timeouts, #owners),
    array_text(phases, #owners))
  for _, r in ipairs(rows) do
    local o = owners[r.part]
    if o and o.report then
      local st = o.statement
      st.findings = st.findings or M.array()
      st.findings[#st.findings + 1] = {
        phase = o.phase.name, ordinal = o.phase.ordinal, step = o.step, statement = o.index,
        where = st.where ~= "" and st.where:gsub(":%s*$", "") or nil, line = r.line,
        severity = r.severity, rule = r.rule, lock = r.lock, object = r.object,
        message = r.message, hint = r.hint, sql = st.sql }
    end
  end
end

-- M.lint_plan(plan, db): lints the plan's steps; plan.lint says what was done.
function M.lint_plan(plan, db)
  local ups = {}
  for _, ph in ipairs(plan.phases) do ups[#ups + 1] = { phase = ph, step = "up", report = true } end
  lint_context(db, ups)
  for i, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "verify", "down" }) do
      if ph[step] then
        local context = {}
        for j = 1, i do context[j] = { phase = plan.phases[j], step = "up", report = false } end
        context[#context + 1] = { phase = ph, step = step, report = true }
        lint_context(db, context)
      end
    end
  end
  local counts, total = {}, 0
  for _, f in ipairs(M.lint_findings(plan)) do
    counts[f.severity] = (counts[f.severity] or 0) + 1
    total = total + 1
  end
  plan.lint = { findings = total, counts = counts }
end

-- Every finding of a linted plan, in phase order: up, verify, down.
function M.lint_findings(plan)
  local out = M.array()
  for _, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "up", "verify", "down" }) do
      for _, st in ipairs(ph[step] and ph[step].statements or {}) do
        for _, f in ipairs(st.findings or {}) do out[#out + 1] = f end
      end
    end
  end
  return out
end

-- "3 findings: 1 CRITICAL, 2 HIGH" / "no findings" / "skipped (offline)"
function M.lint_summary(plan)
  local l = plan.lint
  if l == nil then return nil end
  if l.skipped then return "skipped (" .. l.skipped .. ")" end
  if l.findings == 0 then return "no findings" end
  local parts = {}
  for i = #SEVERITIES, 1, -1 do
    local n = l.counts[SEVERITIES[i]]
    if n then parts[#parts + 1] = n .. " " .. SEVERITIES[i] end
  end
  return string.format("%d finding%s: %s", l.findings, l.findings == 1 and "" or "s",
    table.concat(parts, ", "))
end

-- The comment lines plan shows under a statement with findings.
function M.lint_notes(st)
  local out = {}
  for _, f in ipairs(st.findings or {}) do
    out[#out + 1] = string.format("-- lint %s %s: %s", f.severity, f.rule, f.message)
    if f.hint then out[#out + 1] = "--   hint: " .. f.hint end
  end
  return out
end

local function first_line(sql)
  local text = dedent(sql)
  local line = text:match("^[^\n]*")
  return line .. (#line < #text and " ..." or "")
end

-- M.lint_report(mig, db, info) -> text, exit code.  info: file, sha256,
-- fail_on (a severity), format ("text" or "json").
function M.lint_report(mig, db, info)
  local plan = M.plan(mig, { file = info.file, sha256 = info.sha256, lint_db = db })
  local findings = M.lint_findings(plan)
  local fail_rank = SEVERITY_RANK[info.fail_on]
  local failing = 0
  for _, f in ipairs(findings) do
    if SEVERITY_RANK[f.severity] >= fail_rank then failing = failing + 1 end
  end
  local stopped = M.array()
  for _, ph in ipairs(plan.phases) do
    for _, step in ipairs({ "up", "verify", "down" }) do
      if ph[step] and ph[step].stopped then
        stopped[#stopped + 1] = { phase = ph.name, step = step, reason = ph[step].stopped }
      end
    end
  end
  local rc = failing > 0 and 1 or 0
  if info.format == "json" then
    return M.json({ migration = plan.migration, file = plan.file, fail_on = info.fail_on,
      failed = failing > 0, failing = failing, counts = plan.lint.counts, findings = findings,
      not_linted = stopped }) .. "\n", rc
  end
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = string.format("%s: phase '%s' (%s), statement %d: %s %s: %s", plan.file,
      f.phase, f.step, f.statement, f.severity, f.rule, f.message)
    out[#out + 1] = "    " .. (f.where and (f.where .. ": ") or "")
      .. first_line(f.sql) .. (f.line > 1 and string.format("  (line %d)", f.line) or "")
    if f.hint then out[#out + 1] = "    hint: " .. f.hint end
  end
  for _, s in ipairs(stopped) do
    out[#out + 1] = string.format("%s: phase '%s' (%s): not linted past this point: the dry run stopped: %s",
      plan.file, s.phase, s.step, s.reason)
  end
  out[#out + 1] = string.format("lint of migration %s: %s; %d at or above %s", plan.migration,
    M.lint_summary(plan), failing, info.fail_on)
  return table.concat(out, "\n") .. "\n", rc
end

return M
