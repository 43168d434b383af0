-- scripts/prelude/helpers.lua: the db methods for online schema changes:
-- sync and cut-over, indexes, NOT NULL, foreign keys, columns.  Written only
-- in terms of other db methods (exec, query, value, ddl, backfill,
-- transaction, quote_ident, quote_literal), so the same code runs for real
-- and in plan's dry run (where a lookup returns nil: the plan shows the path
-- that does the most).  Each helper is resumable: it looks at what is
-- already there and does only the rest.  Identifiers are quoted by libpq
-- (db:quote_ident), values passed as query parameters.

local C, P = ...
local output, D = P.output, P.db
local H = {}

-- db:sync{name =, table =, set =, reverse_set = | into =, columns =, select =,
-- key =, reverse =, reverse_columns =, reverse_select =, reverse_key =}:
-- creates the sync (or keeps the identical one an earlier attempt made);
-- returns its name.  Undo it in the phase's down with db:sync_drop(name).
local SYNC_OPTIONS = {
  name = true, table = true, set = true, reverse_set = true, into = true, columns = true,
  select = true, key = true, reverse = true, reverse_columns = true, reverse_select = true,
  reverse_key = true, new_version = true, old_version = true,
}
function H.sync(db, opts)
  opts = D.check_options(opts, SYNC_OPTIONS, "db:sync")
  local where = D.where()
  D.required(opts, "table", "db:sync")
  if (opts.set == nil) == (opts.into == nil) then
    error("db:sync: give exactly one of 'set' (columns of one table) and 'into' (another table)", 2)
  end
  local mig, phase = C.current()
  local name = opts.name or ((mig or "plan") .. "." .. (phase or "plan")):gsub("[^%w_.:-]", "_")
  if #name > 48 then
    error("db:sync: the default name '" .. name .. "' is longer than 48 characters; give 'name'", 2)
  end
  local c = D.call("SELECT shift.sync_create")
  c.arg(nil, name)
  c.arg("relation", opts.table, "pg_catalog.regclass")
  c.arg("set", opts.set)
  c.arg("reverse_set", opts.reverse_set)
  c.arg('"into"', opts.into, "pg_catalog.regclass")
  c.arg("columns", D.list_option(opts.columns, "db:sync", "columns"), "pg_catalog.text[]")
  c.arg('"select"', opts.select)
  c.arg("key", D.list_option(opts.key, "db:sync", "key"), "pg_catalog.text[]")
  if opts.reverse == false then c.literal("reverse => false") end
  c.arg("reverse_columns", D.list_option(opts.reverse_columns, "db:sync", "reverse_columns"), "pg_catalog.text[]")
  c.arg("reverse_select", opts.reverse_select)
  c.arg("reverse_key", D.list_option(opts.reverse_key, "db:sync", "reverse_key"), "pg_catalog.text[]")
  c.arg("new_version", opts.new_version)
  c.arg("old_version", opts.old_version)
  c.literal("if_exists => 'reuse'")
  c.arg("migration", mig)
  c.arg("phase", phase)
  local sql, params = c.sql()
  D.exec_at(db, where, sql, table.unpack(params))
  output.log("sync " .. name .. ": " .. (opts.into and (opts.table .. " -> " .. opts.into) or opts.set))
  return name
end

-- db:sync_drop(name): drops the sync if it exists.
function H.sync_drop(db, name)
  if type(name) ~= "string" then error("db:sync_drop: expected the sync's name", 2) end
  -- it locks both tables: a short lock_timeout, and lock timeouts and
  -- deadlocks retried, as for any DDL on a busy table
  D.ddl_at(db, D.where(), "SELECT shift.sync_drop(" .. db:quote_literal(name) .. ", if_exists => true)")
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
  -- db:cutover and db:cutover_revert tail-call this: level 3 is their caller
  opts = D.check_options(opts, CUTOVER_OPTIONS, what)
  D.required(opts, "sync", what)
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
    for _, p in ipairs(D.lookup(db, where, "SELECT s AS stmt FROM shift.cutover_pending($1) s", opts.sync)) do
      D.ddl_at(db, where, p.stmt, { lock_timeout = opts.lock_timeout or "2s" })
      output.log("validated: " .. p.stmt)
    end
  end
  local state = D.lookup(db, where, "SELECT direction FROM shift.sync_status WHERE name = $1", opts.sync)[1]
  if state and state.direction == (revert and "forward" or "reverse") then
    output.log(string.format("sync %s is %s: nothing to %s", opts.sync,
      revert and "not cut over" or "cut over already", revert and "revert" or "do"))
    validate_pending()
    return nil
  end
  local c = D.call("SELECT * FROM shift." .. (revert and "cutover_revert" or "cutover"))
  c.arg(nil, opts.sync)
  if not revert then c.arg("archive", opts.archive) end
  c.arg('"check"', opts.check)
  c.arg("check_rows", opts.check_rows, "pg_catalog.int4")
  c.arg("lock_timeout", opts.lock_timeout ~= nil and D.timeout_text(opts.lock_timeout, "lock_timeout") or nil)
  c.arg("retries", opts.retries, "pg_catalog.int4")
  c.arg("backoff", opts.backoff, "pg_catalog.float8")
  c.arg("max_backoff", opts.max_backoff, "pg_catalog.float8")
  c.arg("max_xact_age", opts.max_xact_age, "pg_catalog.interval")
  local sql, params = c.sql()
  local rows = D.query_at(db, where, sql, table.unpack(params))
  local r = rows[1]
  if r == nil then return nil end
  output.log(string.format("%s %s: %s is live, %s archived; %d attempt(s), locks held %.1f ms",
    revert and "cut-over reverted" or "cut over", opts.sync, r.live, r.archived, r.attempts, r.locked_ms))
  validate_pending()
  return { attempts = r.attempts, lock_wait_ms = r.lock_wait_ms, locked_ms = r.locked_ms,
           live = r.live, archived = r.archived, views = D.parse_text_array(r.views),
           foreign_keys = D.parse_text_array(r.foreign_keys), sequences = D.parse_text_array(r.sequences) }
end
function H.cutover(db, opts) return cutover(db, opts, false, D.where()) end
function H.cutover_revert(db, opts) return cutover(db, opts, true, D.where()) end

-- db:create_index{name =, table =, columns = {...} | expressions = {...},
-- unique =, method =, include = {...}, with = {...}, where =, lock_timeout =}:
-- CREATE INDEX CONCURRENTLY, after dropping an invalid index of that name
-- left by a failed attempt; an index of that name that is valid is kept.  It
-- never blocks writes, so by default it waits as long as it must
-- (lock_timeout 0).  A key is a column name (or an expression's SQL), or a
-- table { "name", opclass =, collate =, order = "asc" | "desc",
-- nulls = "first" | "last" }; method is an index access method of pg_am
-- (`using` is its older name); with holds storage parameters
-- ({ fillfactor = 70 }).  Every name is quoted; opclass and collate may be
-- schema-qualified ("schema.name", or { "schema", "name" } when a name
-- holds a dot).
local INDEX_OPTIONS = {
  name = true, table = true, columns = true, expressions = true, unique = true, using = true,
  method = true, include = true, with = true, where = true, lock_timeout = true,
}
local KEY_OPTIONS = { opclass = true, collate = true, order = true, nulls = true }
local KEY_ORDER = { asc = "ASC", desc = "DESC" }
local KEY_NULLS = { first = "NULLS FIRST", last = "NULLS LAST" }

-- a value given, as an error message shows it
local function shown(v)
  return type(v) == "string" and string.format("%q", v) or (type(v) == "table" and "a table" or tostring(v))
end

-- The index's state: nil (absent), true (valid), false (invalid).
local function index_state(db, where, tbl, name)
  local rows = D.lookup(db, where, [[
SELECT i.indisvalid AS valid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS qname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = $2 AND c.relnamespace = (SELECT t.relnamespace FROM pg_catalog.pg_class t
                                             WHERE t.oid = $1::pg_catalog.regclass)]], tbl, name)
  if rows[1] == nil then return nil end
  return rows[1].valid, rows[1].qname
end

-- What db:create_index builds, checked and quoted; errors are raised at
-- `where`, the migration file's call, and name the option.
local function index_parts(db, where, opts)
  local function bad(msg) error(where .. "db:create_index: " .. msg, 0) end
  local function nonempty(v) return type(v) == "string" and v ~= "" end

  -- "name", "schema.name" or { "schema", "name" } -> the quoted, qualified name
  local function qualified(v, what)
    local parts
    if type(v) == "string" then
      parts = {}
      for part in (v .. "."):gmatch("(.-)%.") do parts[#parts + 1] = part end
    elseif type(v) == "table" and getmetatable(v) == nil then
      parts = {}
      for k, part in pairs(v) do
        if math.type(k) ~= "integer" or k < 1 or k > #v then parts = nil; break end
        parts[k] = part
      end
    end
    if parts == nil or #parts < 1 or #parts > 2 then
      bad(what .. " must be a name, \"schema.name\", or { \"schema\", \"name\" } (for a name"
        .. " holding a dot), got " .. (type(v) == "string" and string.format("%q", v) or ("a " .. type(v))))
    end
    for i, part in ipairs(parts) do
      if not nonempty(part) then bad(what .. ": each part of the name must be a non-empty string") end
      parts[i] = D.qi(db, part)
    end
    return table.concat(parts, ".")
  end

  -- a key: a column name or an expression, alone or { key, opclass =, ... }
  local function key(k, i, kind)
    local what = "'" .. kind .. "' entry " .. i
    local spec = k
    if type(k) == "table" then
      if getmetatable(k) ~= nil then bad(what .. " must be a plain table") end
      for o in pairs(k) do
        if o ~= 1 and not KEY_OPTIONS[o] then
          bad(string.format("%s: unknown key option '%s' (allowed: collate, nulls, opclass, order)",
            what, tostring(o)))
        end
      end
      k = k[1]
    end
    if not nonempty(k) then
      bad(what .. " must be " .. (kind == "columns" and "a column name" or "an SQL expression")
        .. " or { " .. (kind == "columns" and "\"column\"" or "\"expression\"")
        .. ", opclass =, collate =, order =, nulls = }")
    end
    local out = { kind == "columns" and D.qi(db, k) or ("(" .. k .. ")") }
    if type(spec) == "table" then
      if spec.collate ~= nil then out[#out + 1] = "COLLATE " .. qualified(spec.collate, what .. ": 'collate'") end
      if spec.opclass ~= nil then out[#out + 1] = qualified(spec.opclass, what .. ": 'opclass'") end
      if spec.order ~= nil then
        local o = type(spec.order) == "string" and KEY_ORDER[spec.order:lower()]
        if not o then bad(what .. ": 'order' must be \"asc\" or \"desc\", got " .. shown(spec.order)) end
        out[#out + 1] = o
      end
      if spec.nulls ~= nil then
        local n = type(spec.nulls) == "string" and KEY_NULLS[spec.nulls:lower()]
        if not n then bad(what .. ": 'nulls' must be \"first\" or \"last\", got " .. shown(spec.nulls)) end
        out[#out + 1] = n
      end
    end
    return table.concat(out, " ")
  end

  local parts = {}
  local kind = opts.columns ~= nil and "columns" or "expressions"
  local list = opts[kind]
  if type(list) ~= "table" or #list == 0 then
    bad("'" .. kind .. "' must be a non-empty list of "
      .. (kind == "columns" and "column names" or "SQL expressions") .. " (or key tables)")
  end
  local keys = {}
  for i, k in ipairs(list) do keys[i] = key(k, i, kind) end
  parts.keys = table.concat(keys, ", ")

  if opts.using ~= nil and opts.method ~= nil then bad("give 'method' only ('using' is its older name)") end
  local method = opts.method or opts.using
  if method ~= nil then
    local opt = opts.method ~= nil and "'method'" or "'using'"
    if not nonempty(method) then bad(opt .. " must be an index access method's name, got " .. shown(method)) end
    -- the methods this server has (a dry run cannot ask: a real run checks)
    local known = {}
    for _, r in ipairs(D.lookup(db, where, "SELECT amname FROM pg_catalog.pg_am WHERE amtype = 'i'"
        .. " ORDER BY amname")) do
      known[#known + 1] = r.amname
    end
    local found = #known == 0
    for _, m in ipairs(known) do found = found or m == method end
    if not found then
      bad(opt .. ": no index access method " .. string.format("%q", method) .. " on this server (it has: "
        .. table.concat(known, ", ") .. ")")
    end
    parts.method = " USING " .. D.qi(db, method)
  end

  if opts.with ~= nil then
    if type(opts.with) ~= "table" or getmetatable(opts.with) ~= nil then
      bad("'with' must be a table of storage parameters, such as { fillfactor = 70 }")
    end
    local names = {}
    for k, v in pairs(opts.with) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then
        bad("'with': a storage parameter's name must be an identifier (letters, digits, '_'), got "
          .. shown(k))
      end
      local tv = type(v)
      if not (tv == "boolean" or tv == "string" or (tv == "number" and v == v and v ~= math.huge
              and v ~= -math.huge)) then
        bad("'with': " .. k .. " must be a number, a boolean or a string, got " .. shown(v))
      end
      names[#names + 1] = k
    end
    if #names == 0 then bad("'with' is empty: leave it out, or give storage parameters") end
    table.sort(names)
    local items = {}
    for i, k in ipairs(names) do
      local v = opts.with[k]
      local text
      if type(v) == "boolean" then text = tostring(v)
      elseif math.type(v) == "integer" then text = tostring(v)
      elseif type(v) == "number" then
        text = string.format("%.15g", v)
        if tonumber(text) ~= v then text = string.format("%.17g", v) end
      else text = db:quote_literal(v) end
      items[i] = D.qi(db, k) .. " = " .. text
    end
    parts.with = " WITH (" .. table.concat(items, ", ") .. ")"
  end
  return parts
end

function H.create_index(db, opts)
  opts = D.check_options(opts, INDEX_OPTIONS, "db:create_index")
  local where = D.where()
  local name = D.required(opts, "name", "db:create_index")
  local tbl = D.required(opts, "table", "db:create_index")
  if (opts.columns == nil) == (opts.expressions == nil) then
    error("db:create_index: give exactly one of 'columns' (names) and 'expressions' (SQL)", 2)
  end
  if db:in_transaction() then
    error("db:create_index: CREATE INDEX CONCURRENTLY cannot run inside db:transaction", 2)
  end
  local parts = index_parts(db, where, opts)
  local lt = { lock_timeout = opts.lock_timeout or 0 }
  local valid, qname = index_state(db, where, tbl, name)
  if valid == true then
    output.log("index " .. name .. " exists and is valid: kept")
    return false
  elseif valid == false then
    output.log("index " .. name .. " is an invalid leftover of a failed build: dropping it")
    D.ddl_at(db, where, "DROP INDEX CONCURRENTLY IF EXISTS " .. qname, lt)
  end
  local sql = "CREATE " .. (opts.unique and "UNIQUE " or "") .. "INDEX CONCURRENTLY " .. D.qi(db, name)
    .. " ON " .. D.table_name(db, where, tbl) .. (parts.method or "")
    .. " (" .. parts.keys .. ")"
    .. (opts.include and (" INCLUDE (" .. D.column_list(db, opts.include, "db:create_index", "include") .. ")") or "")
    .. (parts.with or "")
    .. (opts.where and (" WHERE " .. opts.where) or "")
  D.ddl_at(db, where, sql, lt)
  return true
end

-- db:drop_index{name =, table =}: DROP INDEX CONCURRENTLY IF EXISTS.
function H.drop_index(db, opts)
  opts = D.check_options(opts, { name = true, table = true, lock_timeout = true }, "db:drop_index")
  local where = D.where()
  local name = D.required(opts, "name", "db:drop_index")
  local _, qname = index_state(db, where, D.required(opts, "table", "db:drop_index"), name)
  if qname == nil and not D.is_dry(db) then return false end
  D.ddl_at(db, where, "DROP INDEX CONCURRENTLY IF EXISTS " .. (qname or D.qi(db, name)),
    { lock_timeout = opts.lock_timeout or 0 })
  return true
end

-- A constraint's state on a table: nil (absent), true (validated), false (NOT VALID).
function H.constraint_state(db, where, tbl, name)
  local rows = D.lookup(db, where, "SELECT convalidated FROM pg_catalog.pg_constraint"
    .. " WHERE conrelid = $1::pg_catalog.regclass AND conname = $2", tbl, name)
  if rows[1] == nil then return nil end
  return rows[1].convalidated
end

-- db:add_not_null{table =, column =, constraint =, lock_timeout =}: SET NOT NULL
-- without a long lock: CHECK (col IS NOT NULL) NOT VALID (a moment's lock),
-- VALIDATE (a scan that lets writes go on), SET NOT NULL (which trusts the
-- validated check instead of scanning), then the check goes.
local NOT_NULL_OPTIONS = { table = true, column = true, constraint = true, lock_timeout = true }

-- What db:add_not_null and db:drop_not_null work on: the table (as given,
-- and as the server names it, n.t), the column and the CHECK's names (and
-- quoted: n.qcol, n.qcon), where the call is, its lock_timeout.  Errors
-- point at the method's caller.
local function not_null_target(db, opts, what)
  opts = D.check_options(opts, NOT_NULL_OPTIONS, what, 4)
  local n = { tbl = D.required(opts, "table", what, nil, 4),
              col = D.required(opts, "column", what, nil, 4),
              where = D.where(), lt = { lock_timeout = opts.lock_timeout } }
  n.con = opts.constraint or (D.bare_name(n.tbl) .. "_" .. n.col .. "_not_null")
  n.qcol, n.qcon = D.qi(db, n.col), D.qi(db, n.con)
  n.t = D.table_name(db, n.where, n.tbl)
  return n
end

function H.add_not_null(db, opts)
  local n = not_null_target(db, opts, "db:add_not_null")
  local function alter(what) D.ddl_at(db, n.where, "ALTER TABLE " .. n.t .. " " .. what, n.lt) end
  local nn = D.lookup(db, n.where, "SELECT attnotnull FROM pg_catalog.pg_attribute"
    .. " WHERE attrelid = $1::pg_catalog.regclass AND attname = $2 AND NOT attisdropped", n.tbl, n.col)[1]
  if nn and nn.attnotnull then
    output.log(n.t .. "." .. n.col .. " is NOT NULL already")
  else
    local state = H.constraint_state(db, n.where, n.tbl, n.con)
    if state == nil then
      alter("ADD CONSTRAINT " .. n.qcon .. " CHECK (" .. n.qcol .. " IS NOT NULL) NOT VALID")
    end
    if state ~= true then alter("VALIDATE CONSTRAINT " .. n.qcon) end
    alter("ALTER COLUMN " .. n.qcol .. " SET NOT NULL")
  end
  alter("DROP CONSTRAINT IF EXISTS " .. n.qcon)
end

-- db:drop_not_null{table =, column =}: the way back.
function H.drop_not_null(db, opts)
  local n = not_null_target(db, opts, "db:drop_not_null")
  D.ddl_at(db, n.where, "ALTER TABLE " .. n.t .. " DROP CONSTRAINT IF EXISTS " .. n.qcon, n.lt)
  D.ddl_at(db, n.where, "ALTER TABLE " .. n.t .. " ALTER COLUMN " .. n.qcol .. " DROP NOT NULL", n.lt)
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
function H.add_foreign_key(db, opts)
  opts = D.check_options(opts, FK_OPTIONS, "db:add_foreign_key")
  local where = D.where()
  local tbl = D.required(opts, "table", "db:add_foreign_key")
  local ref = D.required(opts, "references", "db:add_foreign_key")
  local cols = D.column_list(db, opts.columns, "db:add_foreign_key", "columns")
  local name = opts.name or (D.bare_name(tbl) .. "_" .. table.concat(opts.columns, "_") .. "_fkey")
  for _, k in ipairs({ "on_delete", "on_update" }) do
    if opts[k] ~= nil and not FK_ACTIONS[tostring(opts[k]):lower()] then
      error("db:add_foreign_key: '" .. k .. "' must be one of no action, restrict, cascade, set null, set default", 2)
    end
  end
  local lt = { lock_timeout = opts.lock_timeout }
  local t = D.table_name(db, where, tbl)
  local state = H.constraint_state(db, where, tbl, name)
  if state == nil then
    D.ddl_at(db, where, "ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(db, name) .. " FOREIGN KEY (" .. cols
      .. ") REFERENCES " .. D.table_name(db, where, ref)
      .. (opts.ref_columns and (" (" .. D.column_list(db, opts.ref_columns, "db:add_foreign_key", "ref_columns") .. ")") or "")
      .. (opts.on_delete and (" ON DELETE " .. opts.on_delete:upper()) or "")
      .. (opts.on_update and (" ON UPDATE " .. opts.on_update:upper()) or "")
      .. " NOT VALID", lt)
  end
  if state ~= true then
    D.ddl_at(db, where, "ALTER TABLE " .. t .. " VALIDATE CONSTRAINT " .. D.qi(db, name), lt)
  end
  return name
end

-- ALTER TABLE ... DROP <kind> IF EXISTS <name>, as a helper taking {table =, <key> =}.
local function dropper(what, kind, key)
  return function(db, opts)
    opts = D.check_options(opts, { table = true, [key] = true, lock_timeout = true }, what)
    local where = D.where()
    local t = D.table_name(db, where, D.required(opts, "table", what))
    D.ddl_at(db, where, "ALTER TABLE " .. t .. " DROP " .. kind .. " IF EXISTS " .. D.qi(db, D.required(opts, key, what)),
      { lock_timeout = opts.lock_timeout })
  end
end

-- db:drop_constraint{table =, name =}: ALTER TABLE ... DROP CONSTRAINT IF EXISTS.
H.drop_constraint = dropper("db:drop_constraint", "CONSTRAINT", "name")

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
function H.add_column(db, opts)
  opts = D.check_options(opts, ADD_COLUMN_OPTIONS, "db:add_column")
  local where = D.where()
  local tbl = D.required(opts, "table", "db:add_column")
  local col = D.required(opts, "column", "db:add_column")
  local typ = D.required(opts, "type", "db:add_column")
  local lt = { lock_timeout = opts.lock_timeout }
  local t = D.table_name(db, where, tbl)
  local add = "ALTER TABLE " .. t .. " ADD COLUMN IF NOT EXISTS " .. D.qi(db, col) .. " " .. typ
  if opts.default == nil then
    D.ddl_at(db, where, add, lt)
  else
    local rewrites = D.lookup(db, where, "SELECT 1 FROM shift.lint($1, '1s') WHERE rule = 'add-column-rewrite'",
      add .. " DEFAULT " .. opts.default)
    if #rewrites == 0 and not D.is_dry(db) then
      D.ddl_at(db, where, add .. " DEFAULT " .. opts.default .. (opts.not_null and " NOT NULL" or ""), lt)
      return
    end
    -- the online route (and the plan's: it cannot ask the server)
    D.ddl_at(db, where, add, lt)
    D.ddl_at(db, where, "ALTER TABLE " .. t .. " ALTER COLUMN " .. D.qi(db, col) .. " SET DEFAULT " .. opts.default, lt)
    local bf = { table = tbl, set = D.qi(db, col) .. " = " .. opts.default, where = D.qi(db, col) .. " IS NULL" }
    for k, v in pairs(opts.backfill or {}) do bf[k] = v end
    db:backfill(bf)
  end
  if opts.not_null then H.add_not_null(db, { table = tbl, column = col, lock_timeout = opts.lock_timeout }) end
end

-- db:drop_column{table =, column =}: ALTER TABLE ... DROP COLUMN IF EXISTS.
H.drop_column = dropper("db:drop_column", "COLUMN", "column")

for k, f in pairs(H) do D.methods[k] = f end

return H
