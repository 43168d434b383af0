-- scripts/prelude/dry.lua: the dry-run db of `pgshift plan` and `pgshift
-- lint`, which records what a phase would send instead of sending it.
--
-- It has every method of the real db (db.lua's D.methods, looked up when
-- called, so a method added anywhere is there too) except the ones that
-- send SQL, which are the C db's: exec, query and value record the
-- statement and answer 0, no rows and the placeholder ? (below),
-- in_transaction follows the BEGIN, COMMIT and ROLLBACK recorded, close
-- does nothing.  A new C method that sends SQL needs a primitive here;
-- everything written in Lua on top of the primitives runs dry as it is.
--
-- The placeholder stands for the value only the database has.  It prints
-- as "?", concatenates as "?" and arithmetic on it gives the placeholder
-- again, so a check's message can be built (bad .. " rows differ"); what
-- would need the value itself (a comparison, a length, a field) stops the
-- dry run, saying so, rather than guess a branch.  A bad == 0 is false, as
-- Lua compares a table with a number without asking it: the assert and
-- error of the migration file's environment (Y.assert, Y.error) leave a
-- failed check to the real run, noted in the plan, when it involves a
-- placeholder: the value asserted or the message is one, or the message
-- was made from one (see derived); any other failed check fails the dry
-- run at its line, as it would fail the real run.

local C, P = ...
local output, db = P.output, P.db
local settings = output.settings
local Y = {}

-- ---------------------------------------------------------------------------
-- The placeholder
-- ---------------------------------------------------------------------------

-- one table per answer: code under review may rawset one, never another
local Unknown = { __name = "dry-run value", __metatable = "dry-run value" }
local placeholders = setmetatable({}, { __mode = "k" })
local function unknown()
  local v = setmetatable({}, Unknown)
  placeholders[v] = true
  return v
end
Y.placeholder = unknown

-- The text made from placeholders.  A string cannot carry a mark, so the
-- strings a placeholder turned into (by concatenation or tostring) are
-- kept: a message is made from a placeholder when it contains one of them,
-- since joining more text around a string keeps it whole ("a" .. n .. "b"
-- concatenates n .. "b" through the placeholder, then "a" .. "?b" as plain
-- strings).  Past RENDERED_MAX strings or RENDERED_BYTES bytes kept (a loop
-- building SQL from a placeholder), none more is kept and any text with a
-- "?" counts.
local RENDERED_MAX, RENDERED_BYTES = 4096, 1 << 20
local rendered, nrendered, nbytes, overflow = {}, 0, 0, false
local function render(s)
  if not overflow and not rendered[s] then
    if nrendered < RENDERED_MAX and nbytes + #s <= RENDERED_BYTES then
      nrendered, nbytes = nrendered + 1, nbytes + #s
      rendered[s] = true
    else
      overflow = true
    end
  end
  return s
end

-- Is v a placeholder, or text made from one?
local function derived(v)
  if placeholders[v] then return true end
  if type(v) ~= "string" or not v:find("?", 1, true) then return false end
  if overflow or rendered[v] then return true end
  for s in pairs(rendered) do
    if v:find(s, 1, true) then return true end
  end
  return false
end

Unknown.__tostring = function() return render("?") end
Unknown.__concat = function(a, b) return render(tostring(a) .. tostring(b)) end
for _, op in ipairs({ "add", "sub", "mul", "div", "mod", "pow", "unm", "idiv", "band", "bor",
                      "bxor", "shl", "shr", "bnot" }) do
  Unknown["__" .. op] = unknown
end
local function needs_value(what)
  return function()
    error("the dry run has no value for this " .. what .. ": db:value answers ? in a dry run;"
      .. " a real run decides", 2)
  end
end
-- __eq runs for two different placeholders (a ~= b): only their values can
-- tell; a placeholder and a number are unequal without asking (n == 0)
Unknown.__lt, Unknown.__le = needs_value("comparison"), needs_value("comparison")
Unknown.__eq = needs_value("comparison")
Unknown.__len = needs_value("length")
Unknown.__index, Unknown.__newindex = needs_value("field"), needs_value("field")
Unknown.__call = needs_value("call")

-- The dry-run db of the dry run going on (plan.lua runs one at a time).
local current = nil

-- BEGIN / COMMIT / ROLLBACK change what in_transaction answers, as on a server.
local function follow_transaction(state, sql)
  local word = sql:match("^%s*(%a+)%s*;?%s*$")
  word = word and word:upper()
  if word == "BEGIN" then state.intx = true
  elseif word == "COMMIT" or word == "ROLLBACK" then state.intx = false end
end

-- A primitive of kind (exec, query, value) answering what answer() returns.
local function primitive(kind, answer)
  return function(self, sql, ...)
    local state = db.dry_state(self)
    if not state then error("db:" .. kind .. ": expected a db (call it as db:" .. kind .. "(...))", 2) end
    if type(sql) ~= "string" then error("db:" .. kind .. ": expected an SQL string", 2) end
    db.dry_send(self, kind, db.where(), sql, ...)
    follow_transaction(state, sql)
    return answer(state)
  end
end

local PRIMITIVES = {
  exec = primitive("exec", function() return 0 end),
  query = primitive("query", function() return {} end),
  value = primitive("value", function() return unknown() end),
  in_transaction = function(self)
    local state = db.dry_state(self)
    return state ~= nil and state.intx
  end,
  close = function() end,
}

-- A dry-run db is an empty table; its metatable is hidden from getmetatable().
local Dry = { __name = "dry-run db", __metatable = "dry-run db" }
Dry.__index = function(_, k)
  local f = PRIMITIVES[k]
  if f == nil then f = db.methods[k] end
  return f
end

-- Y.new(site, migration, phase) -> a dry-run db; see db.start_dry.
function Y.new(site, migration, phase)
  local d = setmetatable({}, Dry)
  db.start_dry(d, site, migration, phase)
  local state = db.dry_state(d)
  state.unchecked = {}
  current = d
  return d
end

-- The statements d recorded, in order.
function Y.statements(d)
  return output.array(db.dry_state(d).statements)
end

-- The checks d left to the real run: {where =, message =, after = the
-- number of statements recorded before it}, or nil if none.
function Y.unchecked(d)
  local list = db.dry_state(d).unchecked
  return #list > 0 and output.array(list) or nil
end

-- The dry run's record if one is going on and it should note a failed
-- check whose message is msg instead of raising it: when msg involves a
-- placeholder (the condition cannot tell: n == 0 is a plain false).
local function leaves_to_real_run(msg)
  local state = settings.dry_run and current and db.dry_state(current)
  if state and derived(msg) then return state end
  return nil
end

-- Y.assert(v, message, ...): the migration file's assert.  Lua's own,
-- except in a dry run for a check that involves a placeholder (the message
-- is one or was made from one: bad .. " rows differ"): only the real run
-- can tell whether it holds, so the failed check is noted (the message as
-- the file built it) and the code goes on.
function Y.assert(v, ...)
  if v then return v, ... end
  local msg = select("#", ...) > 0 and (...) or "assertion failed!"
  local state = leaves_to_real_run(msg)
  if not state then
    -- as Lua's assert raises it, at the file's line (level 2: env.assert
    -- tail-calls this function)
    if select("#", ...) == 0 then error("assertion failed!", 2) end
    error((...), 2)
  end
  state.unchecked[#state.unchecked + 1] = { where = C.where(), message = tostring(msg),
                                            after = #state.statements, kind = "assert" }
  return v, ...
end

-- Y.error(message, level): the migration file's error, the same way: in a
-- dry run, an error whose message involves a placeholder may be raised on
-- a branch only the placeholder took ("if refs then error('referenced by '
-- .. refs) end" takes it, since a placeholder is true), so it is noted and
-- the code goes on; any other error is raised.
function Y.error(msg, level)
  local state = leaves_to_real_run(msg)
  if not state then
    -- as Lua's error raises it: level 1 (the default) is the file's line,
    -- one above this function (env.error tail-calls it)
    level = level == nil and 1 or level
    error(msg, level > 0 and level + 1 or level)
  end
  state.unchecked[#state.unchecked + 1] = { where = C.where(), message = tostring(msg),
                                            after = #state.statements, kind = "error" }
end

return Y
