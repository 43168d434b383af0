-- scripts/prelude/loader.lua: what a migration file sees while it loads
-- (`migration { ... }`, `log(...)`, `online`), the validation of its shape,
-- and the loading itself, in a sandbox for plan and lint.
--
-- Every mistake in a file's shape is reported before anything touches a
-- database, as "file:line: what is wrong", with the line of the offending
-- `migration {` call or of the phase's own function.

local C, P = ...
local output = P.output
local settings = output.settings
local L = {}

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

-- fn, run with `site` ("file:line: ") as the place its errors and statements
-- are reported at when no line of a migration file is on the stack (C.site;
-- see pgs_push_where): a phase a helper made runs only the prelude's code.
local function at_site(site, fn)
  if type(fn) ~= "function" then return fn end
  return function(...)
    local previous = C.site(site)
    -- restored however fn ends; an error is reported (msghandler) before this runs
    local _ <close> = setmetatable({}, { __close = function() C.site(previous) end })
    return fn(...)
  end
end

-- L.group(phases, source, line): phases (a list) made by a helper such as
-- online.change_column_type, called at source:line of the migration file;
-- migration{} takes the list for its phases, in order.  Their errors point
-- at that call.
function L.group(phases, source, line)
  is_group[phases] = true
  local site = (source and line) and (source .. ":" .. line .. ": ") or nil
  for _, p in ipairs(phases) do
    group_where[p] = { source = source, line = line }
    if site then
      for _, k in ipairs({ "up", "down", "verify" }) do p[k] = at_site(site, p[k]) end
    end
  end
  return phases
end

-- While a file runs, C.tracked() gives the line it is executing: `return
-- migration { ... }` is a tail call, which leaves no frame for debug.getinfo
-- to find the caller in.
local loading = false

-- migration { name = ..., phases = { ... } } -> the validated migration.
function L.migration(spec)
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
                      down = p.down, verify = p.verify, source = pw.source, line = pw.line }
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

-- A name the sandbox does not offer: using it says why.  The message is
-- the sandbox's refusal, recognized by L.sandbox_refusal.
local SANDBOX_REFUSAL = " is not available in pgshift plan and lint: they review the file in a sandbox"
local function unavailable(name)
  return name .. SANDBOX_REFUSAL .. " (run, rollback and verify give it all of Lua)"
end

-- L.sandbox_refusal(err) -> whether err (an error value) is the sandbox's
-- refusal of a name it does not offer (os.execute, io.open, require, ...),
-- and no other error.
function L.sandbox_refusal(err)
  return type(err) == "string" and err:find(SANDBOX_REFUSAL, 1, true) ~= nil
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
function L.load(path)
  if P.decl.handles(path) then return P.decl.load(path) end  -- FILE.json, FILE.yaml (decl.lua)
  local env
  if settings.sandbox then
    env = sandbox_env()
  else
    env = setmetatable({}, { __index = _G })
  end
  env.migration, env.log = L.migration, output.log
  -- a check on a value a dry run does not have is left to the real run (dry.lua)
  env.assert = function(...) return P.dry.assert(...) end
  env.error = function(...) return P.dry.error(...) end
  -- online.lua is loaded after this module: looked up when a file loads
  env.online = { change_column_type = P.online.change_column_type, move_tables = P.move.move_tables,
                 rename_column = P.online.rename_column, rename_table = P.online.rename_table,
                 alter_column = P.alter.alter_column, add_column = P.alter.add_column,
                 drop_column = P.alter.drop_column }
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


-- L.phases_json(mig): the migration's phases as shift.migration_begin takes them.
function L.phases_json(mig)
  local out = output.array()
  for i, p in ipairs(mig.phases) do
    out[i] = { name = p.name, reversible = p.down ~= nil, has_verify = p.verify ~= nil }
  end
  return output.json(out)
end

return L
