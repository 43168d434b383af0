-- scripts/prelude/online.lua: online.change_column_type{...}, a column's
-- type changed without a table rewrite under ACCESS EXCLUSIVE, as five
-- phases:
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
--
-- Each phase is a small function of the recipe `r` (what one call asked
-- for) and the db; like the helpers, they use only db methods, so plan's
-- dry run shows them as they would run.

local C, P = ...
local output, D, loader = P.output, P.db, P.loader
local N = {}

local CHANGE_TYPE_OPTIONS = {
  table = true, column = true, type = true, using = true, reverse_using = true, name = true,
  lock_timeout = true, retries = true, backfill = true,
}

-- The swap's renames are safe: both names exist throughout, kept equal by the sync.
local SWAP_ALLOW = " /* shift:allow rename-column: both columns stay, kept equal by a sync */"

local expand_template = D.expand_template

local short_transaction = D.short_transaction

-- A column's type, NOT NULL, default, and what the swap cannot carry (nil:
-- no such column, or a dry run).
local function inspect(r, db, column)
  return D.lookup(db, r.site, [[
SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity <> '' AS identity,
       (SELECT pg_catalog.string_agg(c.relname, ', ') FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey::int2[])) AS indexes,
       (SELECT pg_catalog.string_agg(k.conname, ', ') FROM pg_catalog.pg_constraint k
         WHERE k.conrelid = a.attrelid AND a.attnum = ANY (k.conkey)) AS constraints
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname = $2 AND NOT a.attisdropped]], r.tbl, column)[1]
end

-- The conversion back to the old type (held by old_column).
local function reverse_using(r, db, old_column)
  if r.opts.reverse_using then return r.opts.reverse_using end
  local col = inspect(r, db, old_column)
  return "$new::" .. (col and col.type or "<the type of " .. r.col .. ">")
end

-- The sync's two assignments.  Before the swap, writers write col (old type)
-- and new follows; after it, writers write col (new type) and old follows;
-- either way the other column is computed from the live one.
local function sync_args(r, db, rev, swapped)
  if swapped then
    return { name = r.name, table = r.tbl,
             set = D.qi(db, r.old) .. " = " .. expand_template(db, rev, r.old, r.col),
             reverse_set = D.qi(db, r.col) .. " = " .. expand_template(db, r.using, r.old, r.col) }
  end
  return { name = r.name, table = r.tbl,
           set = D.qi(db, r.new) .. " = " .. expand_template(db, r.using, r.col, r.new),
           reverse_set = D.qi(db, r.col) .. " = " .. expand_template(db, rev, r.col, r.new) }
end

-- The one swap, both ways, in one short transaction: col goes aside (to
-- `aside`), `incoming` becomes col, col's default (as `live` had it before)
-- moves with the name, and the sync is made again the other way round
-- (`after`).  The swap up is (old, new); its undo is (new, old).
local function swap(r, db, aside, incoming, live, default_note, after)
  local t = D.table_name(db, r.site, r.tbl)
  short_transaction(db, r.site, r.opts, function(tx)
    local function alter(what) tx:exec("ALTER TABLE " .. t .. " " .. what) end
    alter("RENAME COLUMN " .. D.qi(tx, r.col) .. " TO " .. D.qi(tx, aside) .. SWAP_ALLOW)
    alter("RENAME COLUMN " .. D.qi(tx, incoming) .. " TO " .. D.qi(tx, r.col) .. SWAP_ALLOW)
    if live == nil or live.default then
      alter("ALTER COLUMN " .. D.qi(tx, aside) .. " DROP DEFAULT")
      alter("ALTER COLUMN " .. D.qi(tx, r.col) .. " SET DEFAULT "
        .. (live and live.default or default_note))
    end
    tx:exec("SELECT shift.sync_drop($1, if_exists => true)", r.name)
    tx:exec("SELECT shift.sync_create($1, $2::pg_catalog.regclass, set => $3, reverse_set => $4)",
      r.name, r.tbl, after.set, after.reverse_set)
  end)
end

-- ---- the phases

local function expand_up(r, db)
  local col = inspect(r, db, r.col)
  local what = r.site .. r.tbl .. "." .. r.col
  if col then
    if col.identity then error(what .. " is an identity column: change its type through a new table", 0) end
    if col.indexes then error(what .. " is in index(es) " .. col.indexes
      .. ": change its type through a new table (db:sync{into =}, db:cutover)", 0) end
    if col.constraints then error(what .. " is in constraint(s) " .. col.constraints
      .. ": change its type through a new table (db:sync{into =}, db:cutover)", 0) end
  end
  db:add_column{ table = r.tbl, column = r.new, type = r.typ, lock_timeout = r.opts.lock_timeout }
  db:sync(sync_args(r, db, reverse_using(r, db, r.col), false))
end

local function expand_down(r, db)
  db:sync_drop(r.name)
  db:drop_column{ table = r.tbl, column = r.new, lock_timeout = r.opts.lock_timeout }
end

local function backfill_up(r, db)
  local e = expand_template(db, r.using, r.col, r.new)
  local bf = { table = r.tbl, set = D.qi(db, r.new) .. " = " .. e,
               where = D.qi(db, r.new) .. " IS DISTINCT FROM (" .. e .. ")" }
  for k, v in pairs(r.opts.backfill or {}) do bf[k] = v end
  db:backfill(bf)
end

local function validate_up(r, db)
  local bad = db:value("SELECT count(*) FROM " .. D.table_name(db, r.site, r.tbl) .. " WHERE "
    .. D.qi(db, r.new) .. " IS DISTINCT FROM (" .. expand_template(db, r.using, r.col, r.new) .. ")")
  if bad and not D.is_dry(db) and bad > 0 then   -- dry: the count is a placeholder
    error(r.site .. bad .. " rows of " .. r.tbl .. " have " .. r.new .. " disagreeing with " .. r.col, 0)
  end
  local col = inspect(r, db, r.col)
  if col == nil or col.notnull then
    db:add_not_null{ table = r.tbl, column = r.new, lock_timeout = r.opts.lock_timeout }
  end
  -- the default moves at the swap: a default on the new side while the
  -- two-way sync runs would look like a new-version write and win
end

local function validate_down(r, db)
  db:drop_not_null{ table = r.tbl, column = r.new, lock_timeout = r.opts.lock_timeout }
end

local function swap_up(r, db)
  if inspect(r, db, r.old) and not inspect(r, db, r.new) then
    output.log(r.tbl .. "." .. r.col .. " is swapped already")
    return
  end
  -- looked up before the renames, while col still has the old type
  local live = inspect(r, db, r.col)
  swap(r, db, r.old, r.new, live, "/* the default of " .. r.col .. ", if it has one */ NULL",
    sync_args(r, db, reverse_using(r, db, r.col), true))
end

local function swap_down(r, db)
  if not D.is_dry(db) and not inspect(r, db, r.old) then
    output.log(r.tbl .. "." .. r.col .. " was not swapped: nothing to undo")
    return
  end
  local live = inspect(r, db, r.col)
  swap(r, db, r.new, r.old, live, "/* the default, if it has one */ NULL",
    sync_args(r, db, reverse_using(r, db, r.old), false))
end

-- The sync and the old column go together: between the two, the
-- application's inserts (which no longer write the old column) would meet
-- its NOT NULL with no sync to fill it.
local function contract_up(r, db)
  local t = D.table_name(db, r.site, r.tbl)
  short_transaction(db, r.site, r.opts, function(tx)
    tx:exec("SELECT shift.sync_drop($1, if_exists => true)", r.name)
    tx:exec("ALTER TABLE " .. t .. " DROP COLUMN IF EXISTS " .. D.qi(tx, r.old))
  end)
end

-- online.change_column_type{table =, column =, type =, using =, reverse_using =,
-- name =, lock_timeout =, retries =, backfill = {...}} -> its five phases.
function N.change_column_type(opts)
  local info = debug.getinfo(2, "Sl")
  opts = D.recipe_options(opts, CHANGE_TYPE_OPTIONS, "online.change_column_type", { "table", "column", "type" })
  -- what the phases use later, checked now: a mistake is the call's line
  for _, k in ipairs({ "using", "reverse_using" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error("online.change_column_type: '" .. k .. "' must be an SQL expression (a string), got a "
        .. type(opts[k]), 2)
    end
  end
  if opts.lock_timeout ~= nil and not pcall(D.timeout_text, opts.lock_timeout, "lock_timeout") then
    error("online.change_column_type: 'lock_timeout' must be milliseconds or a duration such as '2s'", 2)
  end
  if opts.retries ~= nil and not (math.type(opts.retries) == "integer" and opts.retries >= 0) then
    error("online.change_column_type: 'retries' must be a whole number >= 0", 2)
  end
  if opts.backfill ~= nil and type(opts.backfill) ~= "table" then
    error("online.change_column_type: 'backfill' must be a table of db:backfill options", 2)
  end
  local r = { opts = opts, tbl = opts.table, col = opts.column, typ = opts.type,
              old = opts.column .. "__old", new = opts.column .. "__new",
              using = opts.using or ("$old::" .. opts.type),
              -- errors of the phases point at the helper's call in the migration file
              site = (info and info.currentline and info.currentline > 0)
                and (info.short_src .. ":" .. info.currentline .. ": ") or "" }
  r.name = opts.name or (D.bare_name(r.tbl) .. "_" .. r.col .. "_type")
  if not r.name:match("^[%w_.%-]+$") or #r.name > 48 then
    error("online.change_column_type: 'name' must be up to 48 letters, digits, '_', '.' or '-' (got "
      .. string.format("%q", r.name) .. ")", 2)
  end
  local function step(fn) return function(db) return fn(r, db) end end
  local col, new, old, typ = r.col, r.new, r.old, r.typ
  return loader.group({
    { name = r.name .. "-expand",
      description = "add " .. new .. " " .. typ .. " next to " .. col .. ", kept equal to it both ways",
      up = step(expand_up), down = step(expand_down) },
    { name = r.name .. "-backfill",
      description = "fill " .. new .. " from " .. col .. " in batches",
      up = step(backfill_up), down = function(db) end },
    { name = r.name .. "-validate",
      description = "every row agrees; " .. new .. " gets " .. col .. "'s NOT NULL",
      up = step(validate_up), down = step(validate_down) },
    { name = r.name .. "-swap",
      description = col .. " becomes the " .. typ .. " column, in one short transaction; the old one stays as " .. old,
      up = step(swap_up), down = step(swap_down) },
    { name = r.name .. "-contract",
      description = "drop the sync and " .. old .. " in one short transaction (no way back)",
      up = step(contract_up) },
  }, info.short_src, info.currentline)
end

-- ---- renames through version schemas (doc/versions.md)
--
-- online.rename_column{table =, from =, to =, old_version =, new_version =,
-- name =, force =, lock_timeout =, retries =} and online.rename_table{table =,
-- to =, old_version =, new_version =, ...}: a rename that moves no data.
--   <name>-expand    the old version's view shows the old name, the new
--                    version's the new one, both over the same table
--   <name>-rename    ALTER TABLE ... RENAME, one short transaction: a view
--                    follows its table's columns and the table itself by
--                    number, so each version keeps its own name
--   <name>-contract  the old version's views go (what this migration made)
-- Each phase has its down: the rename back, the old version made again.
-- force passes force => true to shift.version_drop (a version that
-- sessions visibly use is otherwise refused).

local V = P.versions

local RENAME_COLUMN_OPTIONS = {
  table = true, from = true, to = true, old_version = true, new_version = true, name = true,
  force = true, lock_timeout = true, retries = true,
}
local RENAME_TABLE_OPTIONS = {
  table = true, to = true, old_version = true, new_version = true, name = true, force = true,
  lock_timeout = true, retries = true,
}

-- The rename: safe for the versions, which read through their views.
local function rename_allow(rule, r)
  return " /* shift:allow " .. rule .. ": version " .. r.old_version
    .. " reads it under its old name through its view */"
end

-- What a recipe's call asked, checked: the recipe `r` its phases share.
local function rename_recipe(opts, allowed, what, required, default_name)
  local info = debug.getinfo(3, "Sl")
  opts = D.check_options(opts, allowed, what, 4)
  for _, k in ipairs(required) do
    if type(opts[k]) ~= "string" then error(what .. ": '" .. k .. "' is required", 3) end
  end
  if opts.old_version == opts.new_version then
    error(what .. ": 'old_version' and 'new_version' must differ", 3)
  end
  local r = { opts = opts, tbl = opts.table, old_version = opts.old_version, new_version = opts.new_version,
              site = (info and info.currentline and info.currentline > 0)
                and (info.short_src .. ":" .. info.currentline .. ": ") or "",
              info = info }
  r.name = opts.name or default_name
  if not r.name:match("^[%w_.%-]+$") or #r.name > 48 then
    error(what .. ": 'name' must be up to 48 letters, digits, '_', '.' or '-' (got "
      .. string.format("%q", r.name) .. ")", 3)
  end
  return r
end

-- drops what this migration made in version v
local function drop_version(r, db, v)
  db:drop_version{ version = v, migration = true, force = r.opts.force,
                   lock_timeout = r.opts.lock_timeout, retries = r.opts.retries }
end

-- ---- rename_column

-- The column's name now: from, to, or nil (neither, or a dry run).
local function column_now(r, db)
  local row = D.lookup(db, r.site, [[
SELECT a.attname FROM pg_catalog.pg_attribute a
 WHERE a.attrelid = $1::pg_catalog.regclass AND a.attname IN ($2, $3) AND NOT a.attisdropped]],
    r.tbl, r.from, r.to)
  if #row > 1 then
    error(r.site .. r.tbl .. " has both " .. r.from .. " and " .. r.to .. ": rename which?", 0)
  end
  return row[1] and row[1].attname
end

-- The view of the table that version v sees: the column under `shown`.
local function column_version(r, db, v, shown)
  local cols = V.renamed_columns(db, r.site, r.tbl, { [r.from] = shown, [r.to] = shown },
    "every column of " .. r.tbl .. ", " .. r.from .. "/" .. r.to .. " shown as " .. shown)
  db:create_version{ version = v, tables = { [r.tbl] = { columns = cols } },
                     lock_timeout = r.opts.lock_timeout, retries = r.opts.retries }
end

local function rename_column_to(r, db, old, new)
  local now = column_now(r, db)
  if now == new then
    output.log(r.tbl .. "." .. new .. " has its name already")
    return
  end
  if now == nil and not D.is_dry(db) then
    error(r.site .. r.tbl .. " has no column " .. old, 0)
  end
  local t = D.table_name(db, r.site, r.tbl)
  short_transaction(db, r.site, r.opts, function(tx)
    tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. D.qi(tx, old) .. " TO " .. D.qi(tx, new)
      .. rename_allow("rename-column", r))
  end)
end

-- The three phases of a rename, column or table: expand (a version under
-- each name), rename, contract (the old name's version dropped).  how:
-- descriptions expand, rename, contract; version(db, v, new) makes version
-- v seeing the old name (new false) or the new one; rename_to(db, back).
local function rename_phases(r, how)
  return loader.group({
    { name = r.name .. "-expand", description = how.expand,
      up = function(db)
        how.version(db, r.old_version, false)
        how.version(db, r.new_version, true)
      end,
      down = function(db)
        drop_version(r, db, r.new_version)
        drop_version(r, db, r.old_version)
      end },
    { name = r.name .. "-rename", description = how.rename,
      up = function(db) how.rename_to(db, false) end,
      down = function(db) how.rename_to(db, true) end },
    { name = r.name .. "-contract", description = how.contract,
      up = function(db) drop_version(r, db, r.old_version) end,
      down = function(db) how.version(db, r.old_version, false) end },
  }, r.info.short_src, r.info.currentline)
end

function N.rename_column(opts)
  local r = rename_recipe(opts, RENAME_COLUMN_OPTIONS, "online.rename_column",
    { "table", "from", "to", "old_version", "new_version" },
    type(opts) == "table" and type(opts.table) == "string" and type(opts.from) == "string"
      and (D.bare_name(opts.table) .. "_" .. opts.from .. "_rename") or "rename")
  r.from, r.to = r.opts.from, r.opts.to
  return rename_phases(r, {
    expand = "version " .. r.old_version .. " sees " .. r.tbl .. "." .. r.from .. ", version "
      .. r.new_version .. " sees it as " .. r.to .. " (views, no data moved)",
    rename = "rename " .. r.tbl .. "." .. r.from .. " to " .. r.to .. " (both versions keep their names)",
    contract = "drop version " .. r.old_version .. "'s view of " .. r.tbl,
    version = function(db, v, new) column_version(r, db, v, new and r.to or r.from) end,
    rename_to = function(db, back)
      if back then rename_column_to(r, db, r.to, r.from) else rename_column_to(r, db, r.from, r.to) end
    end })
end

-- ---- rename_table

-- The table under whichever of its two names it has now (nil: neither, or a
-- dry run), and its new name, schema-qualified as the old one is (or in the
-- schema the old one resolves to).
local function table_now(r, db)
  local row = D.lookup(db, r.site, [[
SELECT coalesce(pg_catalog.to_regclass($1), pg_catalog.to_regclass($2))::pg_catalog.text AS t,
       pg_catalog.to_regclass($1) IS NOT NULL AS old_name]], r.tbl, r.new_qualified)[1]
  return row and row.t, row and row.old_name
end

local function table_version(r, db, v, view)
  local t = table_now(r, db)
  if t == nil and not D.is_dry(db) then error(r.site .. "no table " .. r.tbl .. " or " .. r.new_qualified, 0) end
  db:create_version{ version = v, tables = { [t or r.tbl] = { view = view } },
                     lock_timeout = r.opts.lock_timeout, retries = r.opts.retries }
end

local function rename_table_to(r, db, back)
  local t, old_name = table_now(r, db)
  if t and old_name == back then
    output.log(r.tbl .. " has its name already")
    return
  end
  if t == nil and not D.is_dry(db) then error(r.site .. "no table " .. r.tbl .. " or " .. r.new_qualified, 0) end
  short_transaction(db, r.site, r.opts, function(tx)
    tx:exec("ALTER TABLE " .. (t or (back and r.new_qualified or r.tbl)) .. " RENAME TO "
      .. D.qi(tx, back and r.old_bare or r.to) .. rename_allow("rename-table", r))
  end)
end

function N.rename_table(opts)
  local r = rename_recipe(opts, RENAME_TABLE_OPTIONS, "online.rename_table",
    { "table", "to", "old_version", "new_version" },
    type(opts) == "table" and type(opts.table) == "string"
      and (D.bare_name(opts.table) .. "_rename") or "rename")
  r.to, r.old_bare = r.opts.to, D.bare_name(r.tbl)
  -- the new name in the old one's schema: "s.t" -> s."to"; "t" -> "to"
  local schema = r.tbl:match("^(.*)%.[^.]*$")
  local function quote(s) return '"' .. s:gsub('"', '""') .. '"' end
  r.new_qualified = (schema and (schema .. ".") or "") .. quote(r.to)
  return rename_phases(r, {
    expand = "version " .. r.old_version .. " sees " .. r.old_bare .. ", version " .. r.new_version
      .. " sees it as " .. r.to .. " (views, no data moved)",
    rename = "rename " .. r.tbl .. " to " .. r.to .. " (both versions keep their names)",
    contract = "drop version " .. r.old_version .. "'s view " .. r.old_bare,
    version = function(db, v, new) table_version(r, db, v, new and r.to or r.old_bare) end,
    rename_to = function(db, back) rename_table_to(r, db, back) end })
end

return N
