-- scripts/prelude/dry.lua: the dry-run db of `pgshift plan` and `pgshift
-- lint`, which records what a phase would send instead of sending it.
--
-- It has every method of the real db (db.lua's D.methods, looked up when
-- called, so a method added anywhere is there too) except the ones that
-- send SQL, which are the C db's: exec, query and value record the
-- statement and answer nothing (0, no rows, nil), in_transaction follows
-- the BEGIN, COMMIT and ROLLBACK recorded, close does nothing.  A new C
-- method that sends SQL needs a primitive here; everything written in Lua
-- on top of the primitives runs dry as it is.

local C, P = ...
local output, db = P.output, P.db
local Y = {}

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
    return answer()
  end
end

local PRIMITIVES = {
  exec = primitive("exec", function() return 0 end),
  query = primitive("query", function() return {} end),
  value = primitive("value", function() return nil end),
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
  return d
end

-- The statements d recorded, in order.
function Y.statements(d)
  return output.array(db.dry_state(d).statements)
end

return Y
