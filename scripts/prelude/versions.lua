-- scripts/prelude/versions.lua: version schemas from a migration file
-- (doc/versions.md).  db:create_version makes a version's schema and its
-- views (shift.version_create, shift.version_view) and db:drop_version
-- removes them (shift.version_drop); each in one short transaction, retried
-- on lock timeouts and deadlocks like db:ddl, and resumable: what an
-- earlier attempt made is kept as it is.  Also what online.rename_column
-- and online.rename_table (online.lua) build on: the select list of a
-- version that sees a table's columns under other names.
--
-- Written only in terms of other db methods, so plan's dry run shows the
-- statements as they would run.

local C, P = ...
local output, D = P.output, P.db
local V = {}

-- Runs fn(tx) in one transaction with a short lock_timeout, the whole
-- transaction retried on lock timeouts and deadlocks (inside a transaction
-- already: once, as it is).
local function short_transaction(db, where, opts, fn)
  if db:in_transaction() then return fn(db) end
  local lock_timeout = D.timeout_text(opts.lock_timeout or "2s", "lock_timeout")
  D.retrying(where, { retries = opts.retries or 5, backoff = 0.5, max_backoff = 30 }, function()
    return pcall(db.transaction, db, function(tx)
      tx:exec("SET LOCAL lock_timeout = " .. tx:quote_literal(lock_timeout))
      fn(tx)
    end)
  end)
end
V.short_transaction = short_transaction

-- The tables option: {["orders"] = {columns = "...", view = "..."} or "columns"}
-- (or a list of such tables with table =) -> a list {table, columns, view} in
-- a stable order.
local function table_list(tables, what)
  if type(tables) ~= "table" or next(tables) == nil then
    error(what .. ": 'tables' must be a table of {[table] = {columns =, view =}}", 3)
  end
  local list = {}
  for k, v in pairs(tables) do
    local t = type(k) == "string" and k or (type(v) == "table" and v.table)
    if type(t) ~= "string" then error(what .. ": every entry of 'tables' needs its table's name", 3) end
    if type(v) == "string" then v = { columns = v } end
    if v == true then v = {} end
    if type(v) ~= "table" then error(what .. ": tables[" .. t .. "] must be a table or a select list", 3) end
    v = D.check_options(v, { table = true, columns = true, view = true }, what .. " tables[" .. t .. "]", 4)
    list[#list + 1] = { table = t, columns = v.columns or "*", view = v.view }
  end
  table.sort(list, function(a, b) return a.table < b.table end)
  return list
end

-- db:create_version{version =, tables = {[table] = {columns = "id, rating AS
-- score, price * 100 AS cents", view = "name"}, ...}, lock_timeout =,
-- retries =}: the version's schema (made, or an empty one adopted) and one
-- view per table (columns default '*', view default the table's name).
-- Undo it in the phase's down with db:drop_version{version =, migration = true}.
local CREATE_OPTIONS = { version = true, tables = true, lock_timeout = true, retries = true }
function V.create_version(db, opts)
  opts = D.check_options(opts, CREATE_OPTIONS, "db:create_version")
  local where = D.where()
  local version = D.required(opts, "version", "db:create_version")
  local tables = table_list(opts.tables, "db:create_version")
  local mig, phase = D.current(db)
  short_transaction(db, where, opts, function(tx)
    D.exec_at(tx, where, "SELECT shift.version_create($1, if_exists => 'reuse', migration => $2, phase => $3)",
      version, mig, phase)
    for _, t in ipairs(tables) do
      local c = D.call("SELECT shift.version_view")
      c.arg(nil, version)
      c.arg(nil, t.table, "pg_catalog.regclass")
      c.arg("columns", t.columns)
      c.arg("view_name", t.view)
      c.literal("if_exists => 'reuse'")
      c.arg("migration", mig)
      c.arg("phase", phase)
      local sql, params = c.sql()
      D.exec_at(tx, where, sql, table.unpack(params))
    end
  end)
  local names = {}
  for i, t in ipairs(tables) do names[i] = t.view or D.bare_name(t.table) end
  output.log("version " .. version .. ": " .. table.concat(names, ", "))
  return version
end

-- db:drop_version{version =, migration = true | "name", force =, lock_timeout =,
-- retries =}: drops the version's views (with migration, only those that
-- migration made: true is the one running) and its schema if pg_shift made
-- it and it is empty.  A version sessions visibly use is refused unless
-- force = true (shift.version_drop).  Nothing to drop is not an error.
local DROP_OPTIONS = { version = true, migration = true, force = true, lock_timeout = true, retries = true }
function V.drop_version(db, opts)
  opts = D.check_options(opts, DROP_OPTIONS, "db:drop_version")
  local where = D.where()
  local version = D.required(opts, "version", "db:drop_version")
  local mig = opts.migration
  if mig == true then mig = D.current(db) or "plan" end
  if mig ~= nil and type(mig) ~= "string" then
    error("db:drop_version: 'migration' must be true (this migration) or a migration's name", 2)
  end
  local c = D.call("SELECT shift.version_drop")
  c.arg(nil, version)
  if opts.force then c.literal("force => true") end
  c.literal("if_exists => true")
  c.arg("migration", mig)
  local sql, params = c.sql()
  short_transaction(db, where, opts, function(tx) D.exec_at(tx, where, sql, table.unpack(params)) end)
  output.log("version " .. version .. " dropped" .. (mig and (" (what " .. mig .. " made)") or ""))
end

-- V.renamed_columns(db, where, tbl, names) -> the select list of a view of
-- tbl showing every column, those physically named as a key of names under
-- the name it maps to ({rating = "score", score = "score"}: whichever of the
-- two the table has now, shown as score), and without those mapped to false.  The dry run has no catalog: a
-- note says what it would be.
function V.renamed_columns(db, where, tbl, names, note)
  local rows = D.lookup(db, where, [[
SELECT a.attname FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum]], tbl)
  if #rows == 0 then return "/* " .. note .. " */ *" end
  local items = {}
  for _, r in ipairs(rows) do
    local show = names[r.attname]
    if show ~= false then     -- false: the version does not see it
      items[#items + 1] = D.qi(db, r.attname) .. (show and show ~= r.attname and (" AS " .. D.qi(db, show)) or "")
    end
  end
  return table.concat(items, ", ")
end

for k, f in pairs({ create_version = V.create_version, drop_version = V.drop_version }) do
  D.methods[k] = f
end

return V
