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

-- Marks tables made by migration{} so that the loader can tell them from
-- anything else a file might return.
local is_migration = setmetatable({}, { __mode = "k" })

-- error() at the line of the caller's `migration {` (level 3: the check
-- function, migration(), then the file), or at an explicit line when a
-- phase function tells us where the phase is.
local function fail(where, msg)
  if where.line then
    error(where.source .. ":" .. where.line .. ": " .. msg, 0)
  end
  error(msg, where.level)
end

local function function_line(fn)
  if type(fn) == "function" then
    local info = debug.getinfo(fn, "S")
    if info.what == "Lua" and info.linedefined > 0 then return info.linedefined end
  end
  return nil
end

local function check_keys(t, allowed, what, where)
  for k, v in pairs(t) do
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

-- While a file runs, the line it is executing: `return migration { ... }` is
-- a tail call, which leaves no frame for debug.getinfo to find the caller in.
local loading = nil

-- migration { name = ..., phases = { ... } } -> the validated migration.
function M.migration(spec)
  local where = { level = 3 }
  if loading and loading.line then
    where = { source = loading.short_src, line = loading.line }
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
  check_keys(spec, MIGRATION_KEYS, "migration", where)
  check_name(spec.name, "migration", where)
  local label = "migration '" .. spec.name .. "'"
  local phases = spec.phases
  if phases == nil or next(phases) == nil then
    fail(where, label .. ": 'phases' must list at least one phase")
  end
  local n = #phases
  for k in pairs(phases) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      fail(where, label .. ": 'phases' must be a list { {...}, {...} }, found key ["
        .. tostring(k) .. "]")
    end
  end

  local seen = {}
  local out = { name = spec.name, description = spec.description, phases = {},
                source = where.source, line = where.line }
  for i = 1, n do
    local p = phases[i]
    local pw = where
    if type(p) ~= "table" then
      fail(pw, label .. ": phase " .. i .. " must be a table, got " .. type(p))
    end
    -- Point at the phase's own code when it has some.
    local line = function_line(p.up) or function_line(p.down) or function_line(p.verify)
    if line and where.source then pw = { source = where.source, line = line } end
    local plabel = label .. ": phase " .. i .. (type(p.name) == "string" and (" '" .. p.name .. "'") or "")
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
                      down = p.down, verify = p.verify, line = line or where.line }
  end
  is_migration[out] = true
  return out
end

-- log(...): a progress line from a migration, indented under its phase.
function M.log(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  C.log(table.concat(parts, " ", 1, parts.n))
end

-- Loads a migration file: runs it in its own environment (globals it sets
-- stay in it) and checks that it returned migration { ... }.
function M.load(path)
  local env = setmetatable({ migration = M.migration, log = M.log }, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then error(err, 0) end
  local state = { source = "@" .. path }
  loading = state
  debug.sethook(function(_, line)
    local info = debug.getinfo(2, "S")
    if info.source == state.source then
      state.short_src, state.line = info.short_src, line
    end
  end, "l")
  -- Removes the hook however the chunk ends, error included.
  local _ <close> = setmetatable({}, { __close = function()
    debug.sethook()
    loading = nil
  end })
  local result = chunk()
  if not is_migration[result] then
    error(path .. ": the file must end with 'return migration { ... }' (it returned "
      .. (result == nil and "nothing" or ("a " .. type(result))) .. ")", 0)
  end
  return result
end

return M
