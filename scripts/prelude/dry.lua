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
-- Lua compares a table with a number without asking it: the assert of the
-- migration file's environment (Y.assert) leaves a failed check to the
-- real run, noted in the plan, once the dry run has answered a placeholder.

local C, P = ...
local output, db = P.output, P.db
local settings = output.settings
local Y = {}

-- ---------------------------------------------------------------------------
-- The placeholder
-- ---------------------------------------------------------------------------

-- one table per answer: code under review may rawset one, never another
local Unknown = { __name = "dry-run value", __metatable = "dry-run value" }
local function unknown() return setmetatable({}, Unknown) end
Y.placeholder = unknown

Unknown.__tostring = function() return "?" end
Unknown.__concat = function(a, b) return tostring(a) .. tostring(b) end
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
Unknown.__lt, Unknown.__le = needs_value("comparison"), needs_value("comparison")
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
  value = primitive("value", function(state)
    state.placeholders = state.placeholders + 1
    return unknown()
  end),
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
  state.placeholders, state.unchecked = 0, {}
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

-- Y.assert(v, message, ...): the migration file's assert.  Outside a dry
-- run, or before the dry run has answered a placeholder, Lua's own; after,
-- a failed check is noted (the message as the file built it) and the code
-- goes on: only the real run can tell whether it holds.
function Y.assert(v, ...)
  if v then return v, ... end
  local state = settings.dry_run and current and db.dry_state(current)
  if not (state and state.placeholders > 0) then
    -- as Lua's assert raises it, at the file's line (level 2: env.assert
    -- tail-calls this function)
    if select("#", ...) == 0 then error("assertion failed!", 2) end
    error((...), 2)
  end
  local msg = select("#", ...) > 0 and (...) or "assertion failed!"
  state.unchecked[#state.unchecked + 1] = { where = C.where(), message = tostring(msg),
                                            after = #state.statements, kind = "assert" }
  return v, ...
end

-- Y.error(message, level): the migration file's error, the same way: once
-- the dry run has answered a placeholder, the branch that raises may be one
-- only the placeholder took ("if refs then error(...) end" takes it, since
-- a placeholder is true), so the error is noted and the code goes on.
function Y.error(msg, level)
  local state = settings.dry_run and current and db.dry_state(current)
  if not (state and state.placeholders > 0) then
    -- as Lua's error raises it: level 1 (the default) is the file's line,
    -- one above this function (env.error tail-calls it)
    level = level == nil and 1 or level
    error(msg, level > 0 and level + 1 or level)
  end
  state.unchecked[#state.unchecked + 1] = { where = C.where(), message = tostring(msg),
                                            after = #state.statements, kind = "error" }
end

return Y
