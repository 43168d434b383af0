-- scripts/prelude/decl.lua: declarative migration files, FILE.json and
-- FILE.yaml (or .yml), a document of operations that other tools can write:
--
--   { "name": "orders_v2", "description": "...",
--     "operations": [ { "alter_column": { "table": "orders", ... } }, ... ] }
--
-- runner/decl.c reads the document (libyaml, for both kinds) into plain Lua
-- data with the line:column of every value; it is validated here against
-- doc/migration.schema.json, the published schema, which the binary embeds
-- (so the two cannot drift: the schema is the validator's only table of
-- operations and options); then each operation becomes the phases of the
-- recipe it names (online.alter_column, db:create_index, ...), and the
-- whole a migration{} as loader.lua checks it.  Errors read
-- "file:line:column: operations[2].alter_column.type: what is wrong".
--
-- Operation i (counted from 1) makes phases named "<i>-<operation>-<what>",
-- e.g. "3-create_index-orders_email": the same document gives the same
-- names on every run, which is how the engine knows its phases.

local C, P = ...
local loader, D = P.loader, P.db
local M = {}

local schema = C.decl_schema()
local defs = schema["$defs"]

function M.handles(path)
  return path:match("%.json$") ~= nil or path:match("%.ya?ml$") ~= nil
end

-- ---- validation against the schema (the subset of JSON Schema it uses:
-- type, enum, properties, required, additionalProperties, items, min/max
-- Items, Properties, Length, minimum, $ref to #/$defs/...)

local function resolve(s)
  while s["$ref"] do
    local name = s["$ref"]:match("^#/%$defs/(.+)$")
    s = assert(name and defs[name], "schema: unknown $ref " .. tostring(s["$ref"]))
  end
  return s
end

local function sorted(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function join(path, k)
  if type(k) == "number" then return path .. "[" .. (k - 1) .. "]" end
  return path == "" and k or (path .. "." .. k)
end

-- A document's validator: fail(at, path, msg) raises "file:at: path: msg".
local function validator(file, marks, kinds, keymarks)
  local function fail(at, path, msg)
    error(file .. ":" .. (at or "1:1") .. ": " .. (path ~= "" and (path .. ": ") or "") .. msg, 0)
  end
  local function jtype(v)
    local t = type(v)
    if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
    if t == "table" then return kinds[v] end
    return t
  end
  local function shown(v)
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) == "table" then return "an " .. jtype(v) end
    return tostring(v)
  end
  local function check(v, s, path, at)
    s = resolve(s)
    local t = jtype(v)
    if s.type then
      local types = type(s.type) == "table" and s.type or { s.type }
      local ok = false
      for _, want in ipairs(types) do ok = ok or want == t or (want == "number" and t == "integer") end
      if not ok then
        fail(at, path, "must be " .. (#types > 1 and "one of: " or (types[1]:match("^[aeiou]") and "an " or "a "))
          .. table.concat(types, ", ")
          .. ", got " .. t .. (type(v) ~= "table" and (" " .. shown(v)) or ""))
      end
    end
    if s.enum then
      local ok = false
      for _, e in ipairs(s.enum) do ok = ok or e == v end
      if not ok then
        local names = {}
        for i, e in ipairs(s.enum) do names[i] = shown(e) end
        fail(at, path, "must be one of " .. table.concat(names, ", ") .. ", got " .. shown(v))
      end
    end
    if t == "string" then
      local n = utf8.len(v) or #v
      if s.minLength and n < s.minLength then fail(at, path, "must not be empty") end
      if s.maxLength and n > s.maxLength then
        fail(at, path, "must be at most " .. s.maxLength .. " characters long")
      end
    elseif (t == "integer" or t == "number") and s.minimum and v < s.minimum then
      fail(at, path, "must be at least " .. s.minimum)
    elseif t == "array" then
      if s.minItems and #v < s.minItems then
        fail(at, path, "must hold at least " .. s.minItems .. " item" .. (s.minItems > 1 and "s" or ""))
      end
      if s.maxItems and #v > s.maxItems then fail(at, path, "must hold at most " .. s.maxItems .. " items") end
      if s.items then
        for i = 1, #v do check(v[i], s.items, join(path, i), marks[v][i]) end
      end
    elseif t == "object" then
      local keys = sorted(v)
      local props = s.properties or {}
      local what = s.title or "key"
      if s.additionalProperties == false then
        for _, k in ipairs(keys) do
          if not props[k] then
 
            fail(keymarks[v][k], join(path, k), "unknown " .. what .. " '" .. k .. "' (allowed: "
              .. table.concat(sorted(props), ", ") .. ")")
          end
        end
      end
      if s.minProperties and #keys < s.minProperties or s.maxProperties and #keys > s.maxProperties then
        fail(at, path, (s.minProperties == 1 and s.maxProperties == 1)
          and ("must hold exactly one key, the " .. what .. " (one of: " .. table.concat(sorted(props), ", ")
               .. "), found " .. (#keys == 0 and "none" or table.concat(keys, ", ")))
          or ("has " .. #keys .. " keys"))
      end
      for _, k in ipairs(s.required or {}) do
        if v[k] == nil then fail(at, path, "missing '" .. k .. "'") end
      end
      for _, k in ipairs(keys) do
        local sub = props[k] or (type(s.additionalProperties) == "table" and s.additionalProperties)
        if sub then check(v[k], sub, join(path, k), marks[v][k]) end
      end
    end
  end
  return check, fail
end

-- ---- operations -> phases

-- callers(file, lines) -> t: t[line](f, opts) calls f(opts) as if from
-- file:line, so that a recipe's errors and the sites of its statements point
-- at the operation in the document.  One chunk for all the lines (sorted),
-- as long as the document: its line numbers are the document's.
local function callers(file, lines)
  local parts, at = { "local t = {} " }, 1
  for _, l in ipairs(lines) do
    parts[#parts + 1] = string.rep("\n", l - at)
    parts[#parts + 1] = "t[" .. l .. "] = function(f, o) local r = f(o) return r end "
    at = l
  end
  parts[#parts + 1] = "return t"
  return assert(load(table.concat(parts), "@" .. file, "t", {}))()
end

-- A phase-name part from the document's names: only the characters phase
-- names may hold, and short enough.
local function part(s, max)
  return (s:gsub("[^%w_.%-]", "_"):sub(1, max))
end

-- A copy of t (plain data: recipes check their options themselves).
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end

-- Each builder: (options, ctx) -> a list of phases; ctx = { n, file, line,
-- path, fail(key, msg) }.
local B = {}

local function recipe(fn, idkey, default_id)
  return function(o, ctx)
    local opts = copy(o)
    if opts[idkey] == nil then opts[idkey] = part(default_id(o, ctx), 48) end
    return ctx.call[ctx.line](fn, opts)
  end
end

local function prefix(ctx, op) return ctx.n .. "-" .. op .. "-" end

B.alter_column = recipe(function(o) return P.alter.alter_column(o) end, "id",
  function(o, ctx) return prefix(ctx, "alter_column") .. D.bare_name(o.table) .. "_" .. o.column end)
B.add_column = recipe(function(o) return P.alter.add_column(o) end, "id",
  function(o, ctx) return prefix(ctx, "add_column") .. D.bare_name(o.table) .. "_" .. o.column end)
B.drop_column = recipe(function(o) return P.alter.drop_column(o) end, "id",
  function(o, ctx) return prefix(ctx, "drop_column") .. D.bare_name(o.table) .. "_" .. o.column end)
B.rename_column = recipe(function(o) return P.online.rename_column(o) end, "name",
  function(o, ctx) return prefix(ctx, "rename_column") .. D.bare_name(o.table) .. "_" .. o.from end)
B.rename_table = recipe(function(o) return P.online.rename_table(o) end, "name",
  function(o, ctx) return prefix(ctx, "rename_table") .. D.bare_name(o.table) end)

-- A phase of this module's own, grouped so that its errors point at the operation.
local function own(ctx, phase)
  phase.name = part(phase.name, 120)
  return loader.group({ phase }, ctx.file, ctx.line)
end

-- An index key object { column | expression, opclass, ... } -> db:create_index's { name, opclass = ... }
local function index_keys(list, kind, ctx)
  if list == nil then return nil end
  local field = kind == "columns" and "column" or "expression"
  local out = {}
  for i, k in ipairs(list) do
    if type(k) == "table" then
      for _, other in ipairs({ "column", "expression" }) do
        if k[other] ~= nil and other ~= field then
          ctx.fail(kind, "entry " .. (i - 1) .. ": '" .. other .. "' belongs in "
            .. (other == "column" and "columns" or "expressions") .. ", not in " .. kind)
        end
      end
      if type(k[field]) ~= "string" then ctx.fail(kind, "entry " .. (i - 1) .. ": missing '" .. field .. "'") end
      out[i] = { k[field], opclass = k.opclass, collate = k.collate, order = k.order, nulls = k.nulls }
    else
      out[i] = k
    end
  end
  return out
end

function B.create_index(o, ctx)
  if (o.columns == nil) == (o.expressions == nil) then
    ctx.fail(nil, "give exactly one of 'columns' and 'expressions'")
  end
  local opts = copy(o)
  opts.columns, opts.expressions = index_keys(o.columns, "columns", ctx), index_keys(o.expressions, "expressions", ctx)
  return own(ctx, {
    name = prefix(ctx, "create_index") .. o.name,
    description = "create index " .. o.name .. " on " .. o.table .. " concurrently",
    up = function(db) db:create_index(opts) end,
    down = function(db) db:drop_index{ name = o.name, table = o.table, lock_timeout = o.lock_timeout } end,
  })
end

-- create_constraint: which options each type takes.
local CONSTRAINT_OPTIONS = {
  check = { check = true }, not_null = { column = true }, unique = { columns = true },
  foreign_key = { columns = true, references = true, ref_columns = true, on_delete = true, on_update = true },
}
local CONSTRAINT_REQUIRED = {
  check = { "check" }, not_null = { "column" }, unique = { "columns" }, foreign_key = { "columns", "references" },
}

local function constraint_exists(db, o)
  return P.helpers.constraint_state(db, D.where(), o.table, o.name) ~= nil
end

function B.create_constraint(o, ctx)
  local allowed = CONSTRAINT_OPTIONS[o.type]
  for _, k in ipairs({ "check", "column", "columns", "references", "ref_columns", "on_delete", "on_update" }) do
    if o[k] ~= nil and not allowed[k] then ctx.fail(k, "not an option of type " .. o.type) end
  end
  for _, k in ipairs(CONSTRAINT_REQUIRED[o.type]) do
    if o[k] == nil then ctx.fail(nil, "missing '" .. k .. "' (type " .. o.type .. " needs it)") end
  end
  local lt = { lock_timeout = o.lock_timeout }
  local up, down
  if o.type == "check" then
    up = function(db)
      local t = D.table_name(db, D.where(), o.table)
      if not constraint_exists(db, o) then
        db:ddl("ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(db, o.name) .. " CHECK (" .. o.check
          .. ") NOT VALID", lt)
      end
      db:ddl("ALTER TABLE " .. t .. " VALIDATE CONSTRAINT " .. D.qi(db, o.name), lt)
    end
  elseif o.type == "foreign_key" then
    up = function(db)
      db:add_foreign_key{ table = o.table, name = o.name, columns = copy(o.columns), references = o.references,
                          ref_columns = o.ref_columns and copy(o.ref_columns), on_delete = o.on_delete,
                          on_update = o.on_update, lock_timeout = o.lock_timeout }
    end
  elseif o.type == "unique" then
    up = function(db)
      db:create_index{ name = o.name, table = o.table, columns = copy(o.columns), unique = true,
                       lock_timeout = o.lock_timeout }
      if not constraint_exists(db, o) then
        db:ddl("ALTER TABLE " .. D.table_name(db, D.where(), o.table) .. " ADD CONSTRAINT " .. D.qi(db, o.name)
          .. " UNIQUE USING INDEX " .. D.qi(db, o.name), lt)
      end
    end
  else
    up = function(db)
      db:add_not_null{ table = o.table, column = o.column, constraint = o.name, lock_timeout = o.lock_timeout }
    end
    down = function(db)
      db:drop_not_null{ table = o.table, column = o.column, constraint = o.name, lock_timeout = o.lock_timeout }
    end
  end
  down = down or function(db)
    db:drop_constraint{ table = o.table, name = o.name, lock_timeout = o.lock_timeout }
    if o.type == "unique" then db:drop_index{ table = o.table, name = o.name, lock_timeout = o.lock_timeout } end
  end
  return own(ctx, {
    name = prefix(ctx, "create_constraint") .. o.name,
    description = "add the " .. o.type:gsub("_", " ") .. " constraint " .. o.name .. " on " .. o.table
      .. " online (NOT VALID, then validated)",
    up = up, down = down,
  })
end

function B.drop_index(o, ctx)
  return own(ctx, {
    name = prefix(ctx, "drop_index") .. o.name,
    description = "drop index " .. o.name .. " concurrently (no way back)",
    up = function(db) db:drop_index{ name = o.name, table = o.table, lock_timeout = o.lock_timeout } end,
  })
end

function B.drop_constraint(o, ctx)
  return own(ctx, {
    name = prefix(ctx, "drop_constraint") .. o.name,
    description = "drop constraint " .. o.name .. " of " .. o.table .. " (no way back)",
    up = function(db) db:drop_constraint{ name = o.name, table = o.table, lock_timeout = o.lock_timeout } end,
  })
end

function B.drop_table(o, ctx)
  return own(ctx, {
    name = prefix(ctx, "drop_table") .. D.bare_name(o.table),
    description = "drop table " .. o.table .. " (no way back)",
    up = function(db)
      local t = D.table_name(db, D.where(), o.table)
      db:ddl("DROP TABLE IF EXISTS " .. t, { lock_timeout = o.lock_timeout })
    end,
  })
end

function B.sql(o, ctx)
  return own(ctx, {
    name = ctx.n .. "-sql",
    description = "SQL as written",
    up = function(db) db:exec(o.up) end,
    down = o.down and function(db) db:exec(o.down) end or nil,
  })
end

-- The schema's operations and the builders are the same set (checked when
-- the runner starts: a drift stops every command, and the tests).
do
  local ops = resolve(defs.operation).properties
  for op in pairs(ops) do
    if not B[op] then error("decl.lua: the schema's operation " .. op .. " has no builder", 0) end
  end
  for op in pairs(B) do
    if not ops[op] then error("decl.lua: operation " .. op .. " is not in the schema", 0) end
  end
end

-- Every option the schema gives a recipe's operation is one the recipe
-- takes: each recipe is called once with all of them (and dummy values),
-- and must not call one of them unknown (check_options runs first).
do
  local recipes = { alter_column = P.alter.alter_column, add_column = P.alter.add_column,
                    drop_column = P.alter.drop_column, rename_column = P.online.rename_column,
                    rename_table = P.online.rename_table }
  for op, fn in pairs(recipes) do
    local opts = {}
    for k in pairs(resolve(defs[op]).properties) do opts[k] = "x" end
    local ok, err = pcall(fn, opts)
    local unknown = not ok and tostring(err):match("unknown option '([^']*)'")
    if unknown then
      error("decl.lua: the schema gives " .. op .. " option " .. unknown .. ", which the recipe does not take", 0)
    end
  end
end

-- The list of the schema's operations (for doc and tests: pgshift names them
-- in the error for an unknown one).
M.operations = sorted(resolve(defs.operation).properties)

-- Builders read the document through this: an option the schema does not
-- have is a bug in this file, not in the document.
local function guarded(o, props, op)
  return setmetatable({}, { __index = function(_, k)
    if not props[k] then error("decl.lua: " .. op .. " reads '" .. tostring(k) .. "', which the schema lacks", 2) end
    return o[k]
  end, __pairs = function() return next, o, nil end })
end

-- M.load(path) -> the migration (as loader.migration returns it).
function M.load(path)
  local doc, marks, kinds, keymarks = C.decl_read(path)
  local check, fail = validator(path, marks, kinds, keymarks)
  check(doc, schema, "", marks[doc] and marks[doc][0])
  local line_of = function(mark) return tonumber(mark:match("^(%d+)")) end
  local lines, seen = {}, {}
  for i = 0, #doc.operations do
    local l = line_of(i == 0 and marks[doc][0] or marks[doc.operations][i])
    if not seen[l] then seen[l] = true; lines[#lines + 1] = l end
  end
  table.sort(lines)
  local call = callers(path, lines)
  local phases = {}
  for i, item in ipairs(doc.operations) do
    local op, o = next(item)
    local opath = "operations[" .. (i - 1) .. "]." .. op
    local at = marks[doc.operations][i]   -- the operation's item: "- alter_column:"
    local ctx = { n = i, file = path, line = line_of(at), path = opath, call = call }
    ctx.fail = function(key, msg)
      fail(key and marks[o][key] or marks[item][op], key and (opath .. "." .. key) or opath, msg)
    end
    local props = resolve(defs[op]).properties
    phases[#phases + 1] = B[op](guarded(o, props, op), ctx)
  end
  return call[line_of(marks[doc][0])](loader.migration,
    { name = doc.name, description = doc.description, phases = phases })
end

return M
