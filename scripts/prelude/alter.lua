-- scripts/prelude/alter.lua: online.alter_column{...}, any change of one
-- column as the phases that make it without blocking writers, with old and
-- new application versions side by side.
--
-- What the change needs decides its shape:
--   metadata only (comment, a default, dropping NOT NULL, a wider varchar,
--   a rename alone): one phase, <id>-alter, with its down; no column copied.
--   data (a type, up/down, NOT NULL, a check, a uniqueness, a reference):
--   <id>-expand    <column>__new with the new type, default and rules (NOT
--                  VALID), a two-way sync that knows the writer's version,
--                  the old version's view (the table without <column>__new)
--   <id>-backfill  <column>__new filled from <column> by up, in batches
--   <id>-validate  the rules validated, NOT NULL online, unique and the
--                  column's indexes built CONCURRENTLY on <column>__new;
--                  then the new version's view (<column>__new under the
--                  final name): every row has its new value, so the new
--                  release may start
--   <id>-contract  the sync, the old version and <column> dropped,
--                  <column>__new takes the final name (no way back)
-- A writer through the old version (its search_path or pg_shift.version)
-- writes <column>, and up computes <column>__new; a writer through the new
-- version writes <column>__new (seen under the new name), and down computes
-- <column>.  So each version's rules apply to its own writers only, and a
-- rollback before the contract leaves <column> as the old version wrote it.
--
-- Expressions: up is written over the old column as $old (and other
-- columns by name), down over the new one as $new; check is written over
-- the column's final name (or $new).

local C, P = ...
local output, D, loader = P.output, P.db, P.loader
local A = {}

local OPTIONS = {
  table = true, column = true, name = true, type = true, up = true, down = true,
  nullable = true, default = true, check = true, unique = true, references = true,
  comment = true, old_version = true, new_version = true, id = true, indexes = true, volatile = true,
  constraints = true, lock_timeout = true, retries = true, backfill = true,
}

local ALLOW = " /* shift:allow rename-column: the versions' views follow the column */"

-- s (an expression, a CHECK constraint's definition or a CREATE INDEX
-- statement) with every reference to column old made a reference to new,
-- as the server's parser reads it (shift.rename_column_refs): a
-- type, function, schema or access method spelled like the column stays.
-- The dry run has no server: it shows s as it is.
local function rename_refs(r, db, s, old, new)
  local row = D.lookup(db, r.site, "SELECT shift.rename_column_refs($1, $2, $3) AS s", s, old, new)[1]
  return row and row.s or s
end

-- The rows of a catalog query whose pg_get_*def or regclass text is spliced
-- into statements, read under search_path pg_catalog, pg_temp: that text
-- then names everything but pg_catalog's objects with its schema, so no
-- schema of the session's search_path can capture a name in a copy.  $1 is
-- the table's OID; the other parameters follow.  (The dry run: no rows.)
local function pinned_query(r, db, sql, ...)
  if D.is_dry(db) then return {} end
  local args, rows = table.pack(...), nil
  local function run(tx)
    local oid = D.query_at(tx, r.site, "SELECT $1::pg_catalog.regclass::pg_catalog.oid AS oid", r.tbl)[1].oid
    local was = tx:value("SELECT pg_catalog.current_setting('search_path')")
    tx:value("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")
    rows = D.query_at(tx, r.site, sql, oid, table.unpack(args, 1, args.n))
    tx:value("SELECT pg_catalog.set_config('search_path', $1, true)", was)
  end
  if db:in_transaction() then run(db) else db:transaction(run) end
  return rows or {}
end

local expand_template = D.expand_template

-- The column as the catalogs have it (nil in a dry run or if absent).
local function inspect(r, db, column)
  return pinned_query(r, db, [[
SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity <> '' AS identity,
       a.attgenerated <> '' AS generated, pg_catalog.col_description(a.attrelid, a.attnum) AS comment,
       (SELECT pg_catalog.string_agg(k.conrelid::pg_catalog.regclass || '.' || k.conname, ', ')
          FROM pg_catalog.pg_constraint k
         WHERE k.confrelid = a.attrelid AND k.contype = 'f' AND a.attnum = ANY (k.confkey)) AS referenced_by
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attname = $2 AND NOT a.attisdropped]], column)[1]
end

-- Is the column's type -> opts.type a change PostgreSQL 15 makes in the
-- catalog only (ATColumnChangeRequiresRewrite says no rewrite, and no scan)?
-- The cases it knows: varchar(n) to a longer varchar or to text, and the
-- same for varbit; numeric(p, s) to numeric(q >= p, s).  Anything else is
-- treated as data.
local function metadata_type(r, col)
  local want = r.opts.type:lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  local have = col.type:lower()
  local function len(t, names)
    for _, n in ipairs(names) do
      if t == n then return math.huge end
      local m = t:match("^" .. n:gsub("%-", "%%-") .. " ?%((%d+)%)$")
      if m then return tonumber(m) end
    end
  end
  local varchar = { "character varying", "varchar" }
  local hv, wv = len(have, varchar), len(want, varchar)
  if hv and (wv and wv >= hv or (want == "text" and true)) then return true end
  local bits = { "bit varying", "varbit" }
  local hb, wb = len(have, bits), len(want, bits)
  if hb and wb and wb >= hb then return true end
  local hp, hs = have:match("^numeric%((%d+),(%d+)%)$")
  local wp, ws = want:gsub(" ", ""):match("^numeric%((%d+),(%d+)%)$")
  if hp and wp and hs == ws and tonumber(wp) >= tonumber(hp) then return true end
  return want == have
end

-- ---- the metadata-only change: one phase and its exact inverse

local function meta_statements(r, db, col, inverse, live)
  local t = D.table_name(db, r.site, r.tbl)
  live = live or r.col
  local stmts = {}
  local function alter(what) stmts[#stmts + 1] = "ALTER TABLE " .. t .. " " .. what end
  local o = r.opts
  if o.type ~= nil then
    alter("ALTER COLUMN " .. D.qi(db, live) .. " TYPE " .. (inverse and col.type or o.type))
  end
  if o.default ~= nil then
    local d = inverse and col.default or (o.default ~= false and o.default or nil)
    alter("ALTER COLUMN " .. D.qi(db, live) .. (d and (" SET DEFAULT " .. d) or " DROP DEFAULT"))
  end
  if o.comment ~= nil then
    local c = inverse and col.comment or o.comment
    stmts[#stmts + 1] = "COMMENT ON COLUMN " .. t .. "." .. D.qi(db, live) .. " IS "
      .. (c and db:quote_literal(c) or "NULL")
  end
  if o.name ~= nil and o.name ~= r.col and live ~= (inverse and r.col or r.final) then
    alter("RENAME COLUMN " .. D.qi(db, live) .. " TO "
      .. D.qi(db, inverse and r.col or r.final) .. ALLOW)
  end
  return stmts
end

-- ---- the data change

local function sync_sql(r, db)
  if r.add then
    return { set = D.qi(db, r.new) .. " = " .. r.up }
  end
  return {
    set = D.qi(db, r.new) .. " = " .. expand_template(db, r.up, r.col, r.new),
    reverse_set = D.qi(db, r.col) .. " = " .. expand_template(db, r.down, r.col, r.new),
  }
end

-- The version schemas' views (db:create_version): the old version sees the
-- table without the new column; the new one sees the new column under the
-- final name, and not the old one.  Absent versions are skipped.
local function version_view(r, db, v, names, note)
  local cols = P.versions.renamed_columns(db, r.site, r.tbl, names, note)
  db:create_version{ version = v, tables = { [r.tbl] = { columns = cols } },
                     lock_timeout = r.opts.lock_timeout, retries = r.opts.retries }
end

local function old_version_up(r, db)
  if r.opts.old_version then
    -- (adding a column: r.new is the new column, under its final name)
    version_view(r, db, r.opts.old_version, { [r.new] = false },
      "every column of " .. r.tbl .. " but " .. r.new)
  end
end

local function new_version_up(r, db)
  if r.opts.new_version then
    local names = { [r.new] = r.final }
    if r.col then names[r.col] = false end
    version_view(r, db, r.opts.new_version, names,
      "every column of " .. r.tbl .. (r.col and (" but " .. r.col .. ", " .. r.new .. " shown as " .. r.final) or ""))
  end
end

local function versions_down(r, db)
  for _, v in ipairs({ r.opts.new_version, r.opts.old_version }) do
    if v then db:drop_version{ version = v, migration = true, lock_timeout = r.opts.lock_timeout } end
  end
end

-- The new rules' names (PostgreSQL's own for a column's constraint); each is
-- built on the new column as <name>__new, next to the old column's own
-- constraints (a table's constraint names are unique), and takes its name
-- at the contract.
local function check_name(r) return D.bare_name(r.tbl) .. "_" .. r.final .. "_check" end
local function fkey_name(r) return D.bare_name(r.tbl) .. "_" .. r.final .. "_fkey" end
local function unique_name(r) return D.bare_name(r.tbl) .. "_" .. r.final .. "_key" end
local NEW = "__new"

local function has_constraint(r, db, name)
  return P.helpers.constraint_state(db, r.site, r.tbl, name) ~= nil
end

local function references_sql(db, ref)
  if type(ref) == "string" then return ref end
  local s = D.table_name(db, "", ref.table)
  if ref.column then s = s .. " (" .. D.qi(db, ref.column) .. ")" end
  if ref.on_delete then s = s .. " ON DELETE " .. ref.on_delete end
  if ref.on_update then s = s .. " ON UPDATE " .. ref.on_update end
  return s
end

-- A CREATE INDEX statement rewritten to build `name` concurrently, if
-- absent: CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON ...
local function concurrent_create(db, stmt, name, what)
  local words, rest = {}, stmt
  local function take(pat)
    local m, after = rest:match("^%s*(" .. pat .. ")()")
    if m then rest = rest:sub(after) end
    return m
  end
  if not take("[Cc][Rr][Ee][Aa][Tt][Ee]") then error(what .. ": expected CREATE INDEX, got: " .. stmt, 0) end
  local unique = take("[Uu][Nn][Ii][Qq][Uu][Ee]")
  if not take("[Ii][Nn][Dd][Ee][Xx]") then error(what .. ": expected CREATE INDEX, got: " .. stmt, 0) end
  take("[Cc][Oo][Nn][Cc][Uu][Rr][Rr][Ee][Nn][Tt][Ll][Yy]")
  if take("[Ii][Ff]") then take("[Nn][Oo][Tt]"); take("[Ee][Xx][Ii][Ss][Tt][Ss]") end
  if not take("[Oo][Nn]%f[%s]") then
    if not (take('"[^"]*"') or take("[%w_]+")) or not take("[Oo][Nn]%f[%s]") then
      error(what .. ": expected CREATE INDEX [name] ON ..., got: " .. stmt, 0)
    end
  end
  return "CREATE " .. (unique and "UNIQUE " or "") .. "INDEX CONCURRENTLY IF NOT EXISTS "
    .. D.qi(db, name) .. " ON" .. rest
end

-- Does the CREATE INDEX statement stmt have a WHERE (a partial index)?  Read
-- from its words outside literals, quoted names and comments.
local function has_where(stmt)
  local i, n = 1, #stmt
  while i <= n do
    local c, two = stmt:sub(i, i), stmt:sub(i, i + 1)
    if c == "'" or c == '"' then
      local j = i + 1
      while j <= n and not (stmt:sub(j, j) == c and stmt:sub(j + 1, j + 1) ~= c) do
        j = j + (stmt:sub(j, j) == c and 2 or 1)
      end
      i = j + 1
    elseif two == "--" then
      i = (stmt:find("\n", i, true) or n) + 1
    elseif two == "/*" then
      i = (select(2, stmt:find("*/", i + 2, true)) or n) + 1
    elseif c:match("[%a_]") then
      local word = stmt:match("^[%w_$]+", i)
      if word:upper() == "WHERE" then return true end
      i = i + #word
    else
      i = i + 1
    end
  end
  return false
end

-- The indexes of the old column, each with the statement that builds its
-- copy on the new column: the one given in indexes = {name = "CREATE INDEX
-- ... ($new)"}, or the index's own with the column renamed when that is
-- sure to mean the same: the column only as a key (not in an expression or
-- the predicate), or the type unchanged.  ix.unique_key: the copy is a
-- uniqueness of the column alone (unique, not partial, the column its only
-- key column, whatever the index's name), which unique = true keeps and
-- unique = false drops.  A copy that is to become a PRIMARY KEY, a UNIQUE
-- constraint or the replica identity at the contract (no way back) must be
-- able to, without a scan under the contract's exclusive lock: refused
-- here otherwise (expand calls this before it changes anything).
local function index_copies(r, db)
  local rows = pinned_query(r, db, [[
SELECT c.relname AS name, pg_catalog.pg_get_indexdef(i.indexrelid) AS def,
       (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AS expressions,
       i.indisunique AND i.indpred IS NULL AND i.indnkeyatts OPERATOR(pg_catalog.=) 1
         AND i.indkey[0] OPERATOR(pg_catalog.=) a.attnum AS unique_key,
       i.indisreplident AS replident, i.indisclustered AS clustered,
       k.conname AS constraint, k.contype AS kind, k.condeferrable AS deferrable, k.condeferred AS deferred
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
  JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2
  LEFT JOIN pg_catalog.pg_constraint k
    ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = $1
   AND (a.attnum = ANY (i.indkey::pg_catalog.int2[])
        -- in an expression or the predicate: the index depends on the column
        OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
                      AND d.objid = i.indexrelid
                      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
                      AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum))
 ORDER BY 1]], r.col)
  local given = r.opts.indexes or {}
  local kept = {}
  for _, ix in ipairs(rows) do
    local what = r.site .. r.tbl .. "." .. r.col
    if ix.kind == "x" then
      error(what .. " is in exclusion constraint " .. ix.constraint
        .. ", which PostgreSQL cannot build without a long lock: change it through a new table"
        .. " (db:sync{into =}, db:cutover)", 0)
    end
    local g = given[ix.name]
    if g ~= nil and g ~= false and type(g) ~= "string" then
      error(r.site .. "indexes: " .. ix.name .. ' must be a statement ("CREATE INDEX ... ($new ...)") or false', 0)
    end
    local role = ix.kind == "p" and ("primary key " .. ix.constraint)
      or ix.kind == "u" and ("unique constraint " .. ix.constraint)
      or ix.replident and "the replica identity" or nil
    if ix.kind == "p" and r.opts.unique == false then
      error(what .. " is primary key " .. ix.constraint .. ": unique = false cannot drop it", 0)
    end
    if (ix.kind == "p" or ix.replident) and r.opts.nullable == true and g ~= false then
      error(what .. " is in " .. role .. ", whose columns are NOT NULL: with nullable = true its copy"
        .. " could become it only by a full scan under an exclusive lock at the contract;"
        .. " leave out nullable = true", 0)
    end
    -- not kept (it goes with the old column at the contract): given false,
    -- or the column's uniqueness with unique = false
    if g ~= false and not (r.opts.unique == false and ix.unique_key) then
      if g then
        ix.create = expand_template(db, g, r.col, r.new)
        local unique = ix.create:match("^%s*[Cc][Rr][Ee][Aa][Tt][Ee]%s+[Uu][Nn][Ii][Qq][Uu][Ee]%f[%s]") ~= nil
        local partial = has_where(ix.create)
        if role and (not unique or partial) then
          error(r.site .. "indexes: index " .. ix.name .. (ix.constraint and (" backs constraint " .. ix.constraint)
            or " is the replica identity") .. " (" .. role .. "), which its copy becomes at the contract: give"
            .. " a CREATE UNIQUE INDEX without WHERE (the copy given is "
            .. (not unique and "not UNIQUE" or "partial") .. ")", 0)
        end
        ix.unique_key = ix.unique_key and unique and not partial
      elseif ix.expressions and r.opts.type then
        error(r.site .. "index " .. ix.name .. " uses " .. r.tbl .. "." .. r.col
          .. " in an expression or its predicate, which the new type may not fit: give its copy as indexes = { "
          .. ix.name .. ' = "CREATE INDEX ... ($new ...)" }', 0)
      else
        ix.create = rename_refs(r, db, ix.def, r.col, r.new)
      end
      ix.copy = ix.name .. NEW
      ix.create = concurrent_create(db, ix.create, ix.copy, r.site .. "index " .. ix.name)
      kept[#kept + 1] = ix
    end
  end
  return kept
end

local ACTIONS = { a = "NO ACTION", r = "RESTRICT", c = "CASCADE", n = "SET NULL", d = "SET DEFAULT" }

-- A foreign key's definition with the new column in place of the old one,
-- built from the catalog (its column lists carry no positions a rename by
-- the parser could use); k has the query's fk_* columns.
local function foreign_key_sql(k)
  local s = "FOREIGN KEY (" .. k.fk_columns .. ") REFERENCES " .. k.fk_table .. " (" .. k.fk_refcolumns .. ")"
  if k.fk_match == "f" then s = s .. " MATCH FULL" elseif k.fk_match == "p" then s = s .. " MATCH PARTIAL" end
  if k.fk_update ~= "a" then s = s .. " ON UPDATE " .. ACTIONS[k.fk_update] end
  if k.fk_delete ~= "a" then
    s = s .. " ON DELETE " .. ACTIONS[k.fk_delete] .. (k.fk_setcolumns and (" (" .. k.fk_setcolumns .. ")") or "")
  end
  if k.deferrable then s = s .. " DEFERRABLE" end
  if k.deferred then s = s .. " INITIALLY DEFERRED" end
  return s
end

-- The old column's CHECK and FOREIGN KEY constraints (its UNIQUE ones come
-- with their indexes, index_copies), each with the definition its copy on
-- the new column gets: the one given in constraints = {name = "CHECK
-- ($new ...)"}, or its own with the column renamed (a foreign key's built
-- from the catalog); constraints = {name = false} drops it with the old
-- column.  A rule given as check = or references = replaces the old
-- column's constraint of its name.  Each copy is <name>__new until the
-- contract.
local function constraint_copies(r, db)
  if r.add then return {} end
  -- a list of k's columns (conkey, confkey, confdelsetcols of table rel),
  -- quoted, with the new column in place of the old one
  local function columns(list, rel)
    return "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(CASE WHEN x.attname OPERATOR(pg_catalog.=) $2"
      .. " AND " .. rel .. " OPERATOR(pg_catalog.=) k.conrelid THEN $3 ELSE x.attname::pg_catalog.text END), ', ' ORDER BY u.o)"
      .. " FROM pg_catalog.unnest(" .. list .. ") WITH ORDINALITY u(n, o)"
      .. " JOIN pg_catalog.pg_attribute x ON x.attrelid = " .. rel .. " AND x.attnum = u.n)"
  end
  local rows = pinned_query(r, db, [[
SELECT k.conname AS name, k.contype AS kind, pg_catalog.pg_get_constraintdef(k.oid) AS def,
       k.convalidated AS valid, k.condeferrable AS deferrable, k.condeferred AS deferred,
       ]] .. columns("k.conkey", "k.conrelid") .. [[ AS fk_columns,
       ]] .. columns("k.confkey", "k.confrelid") .. [[ AS fk_refcolumns,
       ]] .. columns("k.confdelsetcols", "k.conrelid") .. [[ AS fk_setcolumns,
       k.confrelid::pg_catalog.regclass::pg_catalog.text AS fk_table,
       k.confmatchtype AS fk_match, k.confupdtype AS fk_update, k.confdeltype AS fk_delete
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attname = $2
 WHERE k.conrelid = $1 AND a.attnum = ANY (k.conkey) AND k.contype IN ('c', 'f')
 ORDER BY 1]], r.col, r.new)
  local given, kept, known = r.opts.constraints or {}, {}, {}
  for _, k in ipairs(rows) do
    known[k.name] = true
    known[#known + 1] = k.name
    local replaced = (k.kind == "c" and r.opts.check and k.name == check_name(r))
      or (k.kind == "f" and r.opts.references and k.name == fkey_name(r))
    if given[k.name] == false or replaced then
      -- goes with the old column at the contract
    else
      if type(given[k.name]) == "string" then
        k.def = expand_template(db, given[k.name], r.col, r.new)
      elseif k.kind == "f" then
        k.def = foreign_key_sql(k)
      else
        k.def = rename_refs(r, db, k.def, r.col, r.new)
      end
      k.def = k.def:gsub("%s+NOT VALID%s*$", "")
      k.copy = k.name .. NEW
      kept[#kept + 1] = k
    end
  end
  for name, v in pairs(given) do
    if not known[name] and not D.is_dry(db) then
      error(r.site .. "constraints: " .. r.tbl .. "." .. r.col .. " has no CHECK or FOREIGN KEY constraint "
        .. tostring(name) .. " (" .. (#known > 0 and ("it has " .. table.concat(known, ", ")) or "it has none")
        .. ")", 0)
    end
    if v ~= false and type(v) ~= "string" then
      error(r.site .. "constraints: " .. name .. " must be a definition (\"CHECK ($new ...)\") or false", 0)
    end
  end
  return kept
end

-- Is unique = true kept by a copy of one of the old column's indexes (a
-- unique, non-partial index with the column as its only key column, of
-- whatever name)?
local function unique_kept(r, copies)
  for _, ix in ipairs(copies) do
    if ix.unique_key then return true end
  end
  return false
end

-- The sequences the old column owns (serial), by their qualified names, with
-- their types; widen: the new column's integer type, when it counts further
-- than the sequence's (nil before expand adds the column).
local function owned_sequences(r, db)
  return pinned_query(r, db, [[
SELECT s.oid::pg_catalog.regclass::pg_catalog.text AS name, pg_catalog.format_type(q.seqtypid, NULL) AS type,
       CASE WHEN (q.seqtypid = 'pg_catalog.int2'::pg_catalog.regtype::pg_catalog.oid
                  AND n.atttypid IN ('pg_catalog.int4'::pg_catalog.regtype::pg_catalog.oid,
                                     'pg_catalog.int8'::pg_catalog.regtype::pg_catalog.oid))
              OR (q.seqtypid = 'pg_catalog.int4'::pg_catalog.regtype::pg_catalog.oid
                  AND n.atttypid = 'pg_catalog.int8'::pg_catalog.regtype::pg_catalog.oid)
            THEN pg_catalog.format_type(n.atttypid, NULL) END AS widen
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_catalog.pg_attribute o ON o.attrelid = d.refobjid AND o.attnum = d.refobjsubid
  LEFT JOIN pg_catalog.pg_attribute n ON n.attrelid = d.refobjid AND n.attname = $3
 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid
   AND d.refobjid = $1 AND o.attname = $2 AND d.deptype = 'a'
 ORDER BY 1]], r.col, r.new)
end

-- A sequence the old column owns must fit the new type: a bigint sequence's
-- values may not fit an integer column.  Refused before expand changes
-- anything.
local function check_sequences(r, db)
  local rows = owned_sequences(r, db)
  if #rows == 0 or not r.opts.type then return end
  local RANK = { smallint = 1, integer = 2, bigint = 3 }
  local new = D.query_at(db, r.site, "SELECT pg_catalog.format_type($1::pg_catalog.regtype::pg_catalog.oid, NULL) AS t",
    r.opts.type)[1].t
  for _, sq in ipairs(rows) do
    if RANK[new] and RANK[sq.type] and RANK[new] < RANK[sq.type] then
      error(r.site .. "sequence " .. sq.name .. " of " .. r.tbl .. "." .. r.col .. " counts as " .. sq.type
        .. ", further than " .. new .. " holds: its next values may not fit " .. r.new
        .. "; keep a type as wide as the sequence's, or change the sequence first (ALTER SEQUENCE ... AS " .. new .. ")", 0)
    end
  end
end

local function expand_up(r, db)
  local col = not r.add and inspect(r, db, r.col) or nil
  local what = r.site .. r.tbl .. "." .. (r.col or r.new)
  if not r.add and not D.is_dry(db) and col == nil and inspect(r, db, r.new) == nil then
    error(what .. ": no such column", 0)
  end
  if col then
    if col.identity or col.generated then
      error(what .. " is an identity or generated column: change it through a new table (db:sync{into =})", 0)
    end
    if col.referenced_by then
      error(what .. " is referenced by " .. col.referenced_by
        .. ": change it through a new table (db:sync{into =}, db:cutover)", 0)
    end
  end
  -- what it cannot copy is refused now, before anything changes, not after the backfill
  if not r.add then
    index_copies(r, db)
    check_sequences(r, db)
  end
  local rules = constraint_copies(r, db)
  local t = D.table_name(db, r.site, r.tbl)
  if col and not r.opts.down then r.down = "$new::" .. col.type end
  if col and not r.opts.type then r.typ = col.type end
  db:add_column{ table = r.tbl, column = r.new, type = r.typ, lock_timeout = r.opts.lock_timeout }
  -- the new default: given, or the old one converted by up (never copied as text)
  local default = r.opts.default
  if default == nil and col and col.default then
    default = (r.up:gsub("%$old", function() return "(" .. col.default .. ")" end))
  end
  if default then
    db:ddl("ALTER TABLE " .. t .. " ALTER COLUMN " .. D.qi(db, r.new) .. " SET DEFAULT " .. default,
      { lock_timeout = r.opts.lock_timeout })
  end
  -- the new version's rules, on its column only, checked for new rows now
  -- and for the old ones by validate
  if r.opts.check and not has_constraint(r, db, check_name(r) .. NEW) then
    db:ddl("ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(db, check_name(r) .. NEW) .. " CHECK ("
      .. rename_refs(r, db, expand_template(db, r.opts.check, r.col or r.new, r.new), r.final, r.new) .. ") NOT VALID",
      { lock_timeout = r.opts.lock_timeout })
  end
  if r.opts.references and not has_constraint(r, db, fkey_name(r) .. NEW) then
    db:ddl("ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(db, fkey_name(r) .. NEW) .. " FOREIGN KEY ("
      .. D.qi(db, r.new) .. ") REFERENCES " .. references_sql(db, r.opts.references) .. " NOT VALID",
      { lock_timeout = r.opts.lock_timeout })
  end
  -- the old column's own rules, kept on the new one (checked for new rows
  -- now, for the old ones by validate)
  for _, k in ipairs(rules) do
    if not has_constraint(r, db, k.copy) then
      local ok, e = pcall(db.ddl, db, "ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(db, k.copy) .. " "
        .. k.def .. " NOT VALID", { lock_timeout = r.opts.lock_timeout })
      if not ok then
        if type(e) == "table" and e.message then
          e.message = "constraint " .. k.name .. " of " .. r.tbl .. "." .. r.col .. " copied onto " .. r.new
            .. " as " .. k.def .. ": " .. e.message
          e.hint = "Give the copy of " .. k.name .. " as constraints = { " .. k.name .. " = "
            .. (k.kind == "f" and '"FOREIGN KEY ($new) REFERENCES ..."' or '"CHECK (... $new ...)"')
            .. " } (over the new column, $new), or false to drop it with the old column."
          e.where = r.site
        end
        error(e, 0)
      end
    end
  end
  if r.opts.comment then
    db:exec("COMMENT ON COLUMN " .. t .. "." .. D.qi(db, r.new) .. " IS " .. db:quote_literal(r.opts.comment))
  end
  local s = sync_sql(r, db)
  -- the sync tells writers apart by their version: without a new version
  -- schema, no application writes as the new version yet (only through
  -- pg_shift.version = the id), so every write is converted by up
  db:sync{ name = r.id, table = r.tbl, set = s.set, reverse_set = s.reverse_set,
           new_version = r.opts.new_version or r.id, old_version = r.opts.old_version }
  old_version_up(r, db)
end

local function expand_down(r, db)
  versions_down(r, db)
  db:sync_drop(r.id)
  db:drop_column{ table = r.tbl, column = r.new, lock_timeout = r.opts.lock_timeout }
end

local function backfill_up(r, db)
  local e = r.add and r.up or expand_template(db, r.up, r.col, r.new)
  -- the rows already right are skipped (all of them, with a volatile up)
  local bf = { table = r.tbl, set = D.qi(db, r.new) .. " = " .. e }
  if not r.volatile then bf.where = D.qi(db, r.new) .. " IS DISTINCT FROM (" .. e .. ")" end
  for k, v in pairs(r.opts.backfill or {}) do bf[k] = v end
  db:backfill(bf)
end

local function validate_up(r, db)
  local t = D.table_name(db, r.site, r.tbl)
  if not r.volatile then
    local e = r.add and r.up or expand_template(db, r.up, r.col, r.new)
    local bad = db:value("SELECT count(*) FROM " .. t .. " WHERE "
      .. D.qi(db, r.new) .. " IS DISTINCT FROM (" .. e .. ")")
    if bad and not D.is_dry(db) and bad > 0 then
      error(r.site .. bad .. " rows of " .. r.tbl .. " have " .. r.new .. " disagreeing with up(" .. r.col .. ")", 0)
    end
  end
  local validate = {}
  if r.opts.check then validate[1] = check_name(r) .. NEW end
  if r.opts.references then validate[#validate + 1] = fkey_name(r) .. NEW end
  for _, k in ipairs(constraint_copies(r, db)) do
    if k.valid then validate[#validate + 1] = k.copy end  -- a NOT VALID one stays so
  end
  for _, name in ipairs(validate) do
    if P.helpers.constraint_state(db, r.site, r.tbl, name) ~= true then
      db:ddl("ALTER TABLE " .. t .. " VALIDATE CONSTRAINT " .. D.qi(db, name))
    end
  end
  -- NOT NULL: asked for, or kept from the old column unless nullable = true
  local col = not r.add and r.opts.nullable == nil and inspect(r, db, r.col) or nil
  if r.not_null or (col and col.notnull) then
    db:add_not_null{ table = r.tbl, column = r.new, lock_timeout = r.opts.lock_timeout }
  end
  local copies = r.add and {} or index_copies(r, db)
  if r.opts.unique and not unique_kept(r, copies) then
    db:create_index{ name = unique_name(r) .. NEW, table = r.tbl, columns = { r.new }, unique = true }
  end
  for _, ix in ipairs(copies) do
    local have = D.lookup(db, r.site, [[
SELECT i.indisvalid AS valid FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1::pg_catalog.regclass AND c.relname = $2]], r.tbl, ix.copy)[1]
    if have and not have.valid then db:drop_index{ name = ix.copy, table = r.tbl } end  -- a failed build's
    if not (have and have.valid) then db:exec(ix.create) end
    if ix.constraint or ix.replident then
      -- what expand read from the statement given, as built
      local built = D.lookup(db, r.site, [[
SELECT i.indisunique AND i.indpred IS NULL AS whole
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1::pg_catalog.regclass AND c.relname = $2]], r.tbl, ix.copy)[1]
      if built and not built.whole then
        error(r.site .. "indexes: the copy of index " .. ix.name .. ", " .. ix.copy .. ", is not unique or is partial:"
          .. " it could not become " .. (ix.constraint and ("constraint " .. ix.constraint) or "the replica identity")
          .. " at the contract", 0)
      end
    end
  end
  -- every row has its new value now, and the old version's writes keep it
  -- so: the new version may start
  new_version_up(r, db)
end

local function validate_down(r, db)
  if r.opts.new_version then
    db:drop_version{ version = r.opts.new_version, migration = true, lock_timeout = r.opts.lock_timeout }
  end
  for _, ix in ipairs(r.add and {} or index_copies(r, db)) do
    db:drop_index{ name = ix.copy, table = r.tbl }
  end
  if r.opts.unique then db:drop_index{ name = unique_name(r) .. NEW, table = r.tbl } end
  if r.not_null or r.opts.nullable == nil then db:drop_not_null{ table = r.tbl, column = r.new } end
end

-- One short transaction: the old version and the old column go, the new
-- column takes the final name, its indexes the old ones' names.
local function contract_up(r, db)
  local t = D.table_name(db, r.site, r.tbl)
  local copies = r.add and {} or index_copies(r, db)
  local renames = {}
  for _, k in ipairs(constraint_copies(r, db)) do renames[#renames + 1] = k.name end
  if r.opts.check then renames[#renames + 1] = check_name(r) end
  if r.opts.references then renames[#renames + 1] = fkey_name(r) end
  local owned = r.add and {} or owned_sequences(r, db)
  D.short_transaction(db, r.site, r.opts, function(tx)
    tx:exec("SELECT shift.sync_drop($1, if_exists => true)", r.id)
    if r.opts.old_version then
      tx:exec("SELECT shift.version_drop($1, if_exists => true, migration => $2)", r.opts.old_version,
        (D.current(tx)))
    end
    if not r.add then
      -- a sequence the old column owns (serial) would go with it: the new
      -- column owns it, and it counts as far as the new integer type does
      for _, sq in ipairs(owned) do
        tx:exec("ALTER SEQUENCE " .. sq.name .. " OWNED BY " .. t .. "." .. D.qi(tx, r.new)
          .. (sq.widen and (" AS " .. sq.widen) or ""))
      end
      tx:exec("ALTER TABLE " .. t .. " DROP COLUMN IF EXISTS " .. D.qi(tx, r.col))
      tx:exec("ALTER TABLE " .. t .. " RENAME COLUMN " .. D.qi(tx, r.new) .. " TO " .. D.qi(tx, r.final) .. ALLOW)
    end
    for _, name in ipairs(renames) do
      tx:exec("ALTER TABLE " .. t .. " RENAME CONSTRAINT " .. D.qi(tx, name .. NEW) .. " TO " .. D.qi(tx, name))
    end
    for _, ix in ipairs(copies) do
      if ix.constraint then
        -- a PRIMARY KEY or UNIQUE constraint again, not only its index (the
        -- new column is NOT NULL already: no scan)
        tx:exec("ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(tx, ix.constraint)
          .. (ix.kind == "p" and " PRIMARY KEY" or " UNIQUE") .. " USING INDEX "
          .. D.qi(tx, ix.copy) .. (ix.deferrable and " DEFERRABLE" or "")
          .. (ix.deferred and " INITIALLY DEFERRED" or ""))
      else
        tx:exec("ALTER INDEX IF EXISTS " .. D.table_name(tx, r.site, ix.copy)
          .. " RENAME TO " .. D.qi(tx, ix.name))
      end
    end
    if r.opts.unique and not unique_kept(r, copies) then
      local u = unique_name(r)
      tx:exec("ALTER TABLE " .. t .. " ADD CONSTRAINT " .. D.qi(tx, u) .. " UNIQUE USING INDEX "
        .. D.qi(tx, u .. NEW))
    end
    -- the old index's marks go to its copy (the old one went with the column)
    for _, ix in ipairs(copies) do
      local name = D.qi(tx, ix.constraint or ix.name)
      if ix.replident then tx:exec("ALTER TABLE " .. t .. " REPLICA IDENTITY USING INDEX " .. name) end
      if ix.clustered then tx:exec("ALTER TABLE " .. t .. " CLUSTER ON " .. name) end
    end
  end)
end

-- What every recipe of this file takes: the table, the column, its id
-- (the phases' prefix and the sync's name), where it was called.
local function setup(opts, info, what, suffix)
  local r = { opts = opts, tbl = opts.table, col = opts.column, final = opts.name or opts.column,
              site = (info and info.currentline and info.currentline > 0)
                and (info.short_src .. ":" .. info.currentline .. ": ") or "" }
  r.id = opts.id or (D.bare_name(r.tbl) .. "_" .. r.col .. suffix)
  if not r.id:match("^[%w_.%-]+$") or #r.id > 48 then
    error(what .. ": 'id' must be up to 48 letters, digits, '_', '.' or '-' (got "
      .. string.format("%q", r.id) .. ")", 3)
  end
  return r
end

-- The four phases of a change that moves data (alter_column, add_column).
local function data_phases(r, info, expand_what, contract_what)
  local step = function(fn) return function(db) return fn(r, db) end end
  return loader.group({
    { name = r.id .. "-expand", description = expand_what,
      up = step(expand_up), down = step(expand_down) },
    { name = r.id .. "-backfill",
      description = "fill " .. r.new .. " by up in batches (rows the new version wrote are its own)",
      up = step(backfill_up), down = function(db) end },
    { name = r.id .. "-validate",
      description = "the new rules validated online; indexes built concurrently on " .. r.new,
      up = step(validate_up), down = step(validate_down) },
    { name = r.id .. "-contract", description = contract_what, up = step(contract_up) },
  }, info.short_src, info.currentline)
end

-- online.alter_column{table =, column =, name =, type =, up =, down =,
-- nullable =, default =, check =, unique =, references =, comment =,
-- old_version =, new_version =, id =, lock_timeout =, retries =,
-- backfill = {...}} -> its phases.
function A.alter_column(opts)
  local info = debug.getinfo(2, "Sl")
  opts = D.recipe_options(opts, OPTIONS, "online.alter_column", { "table", "column" })
  local r = setup(opts, info, "online.alter_column", "_alter")
  r.new = r.col .. "__new"
  r.not_null = opts.nullable == false
  local data = opts.up ~= nil or opts.down ~= nil or opts.nullable == false or opts.check ~= nil
    or opts.unique ~= nil or opts.references ~= nil
  local step = function(fn) return function(db) return fn(r, db) end end
  if not data then
    -- metadata only, unless the server says the type change rewrites
    local phases = {
      { name = r.id .. "-alter",
        description = "change " .. r.tbl .. "." .. r.col .. " in the catalog only (no row is read or written)",
        up = function(db)
          local col = inspect(r, db, r.col)
          if opts.type and col and not metadata_type(r, col) then
            error(r.site .. r.tbl .. "." .. r.col .. ": a change to " .. opts.type
              .. " rewrites the table; give up = (and down =) to change it online", 0)
          end
          if col then
            -- what down puts back, kept before anything changes (a rerun
            -- after an interruption finds it kept already)
            if db:recall("type") == nil then
              db:remember("type", col.type)
              db:remember("default", col.default)
              db:remember("comment", col.comment)
              db:remember("notnull", tostring(col.notnull))
            end
          end
          if opts.nullable == true then db:drop_not_null{ table = r.tbl, column = r.col } end
          -- the old version's view sees the column as it is named now (a
          -- view keeps its columns' names through a rename, but forbids a
          -- change of type: it is made after the change, before the rename)
          local stmts = meta_statements(r, db, col, false)
          local rename = (opts.name and opts.name ~= r.col and #stmts > 0
            and stmts[#stmts]:find(" RENAME COLUMN ", 1, true)) and table.remove(stmts) or nil
          for _, s in ipairs(stmts) do db:ddl(s) end
          if opts.old_version then
            version_view(r, db, opts.old_version, {}, "every column of " .. r.tbl)
          end
          if rename then db:ddl(rename) end
          if opts.new_version then
            version_view(r, db, opts.new_version, {}, "every column of " .. r.tbl)
          end
        end,
        down = function(db)
          local before = { type = db:recall("type"), default = db:recall("default"),
                           comment = db:recall("comment"), notnull = db:recall("notnull") }
          if D.is_dry(db) then
            before = { type = "/* the type before */", default = "/* the default before */ NULL",
                       comment = "(the comment before)", notnull = "true" }
          elseif before.type == nil then
            output.log(r.tbl .. "." .. r.col .. ": the up changed nothing yet")
            return
          end
          versions_down(r, db)
          local live = inspect(r, db, r.final) and r.final or r.col
          for _, s in ipairs(meta_statements(r, db, before, true, live)) do db:ddl(s) end
          if opts.nullable == true and before.notnull == "true" then
            db:add_not_null{ table = r.tbl, column = r.col }
          end
        end },
    }
    if opts.old_version then
      -- the old version goes once no release uses it; its down shows the
      -- column to it again under the name it knew
      phases[#phases + 1] = {
        name = r.id .. "-contract",
        description = "drop version " .. opts.old_version .. " (its releases are gone)",
        up = function(db)
          db:drop_version{ version = opts.old_version, migration = true, lock_timeout = opts.lock_timeout }
        end,
        down = function(db)
          version_view(r, db, opts.old_version, { [r.final] = r.col }, "every column of " .. r.tbl
            .. ", " .. r.final .. " shown as " .. r.col)
        end }
    end
    return loader.group(phases, info.short_src, info.currentline)
  end
  r.typ = opts.type or "<the type of " .. r.col .. ">"
  r.up = opts.up or (opts.type and ("$old::" .. opts.type)) or "$old"
  -- down's default needs the old type: looked up when expand runs
  r.down = opts.down or "$new::<the type of " .. r.col .. ">"
  r.volatile = opts.volatile
  return data_phases(r, info,
    "add " .. r.new .. " (" .. r.final .. " of the new version) next to " .. r.col
      .. ", kept in step by the writer's version",
    "drop the sync, the old version and " .. r.col .. "; " .. r.new .. " becomes " .. r.final .. " (no way back)")
end

local ADD_OPTIONS = {
  table = true, column = true, type = true, up = true, default = true, nullable = true, check = true,
  unique = true, references = true, comment = true, old_version = true, new_version = true, id = true,
  lock_timeout = true, retries = true, backfill = true, volatile = true,
}

-- online.add_column{table =, column =, type =, up =, default =, nullable =,
-- check =, unique =, references =, comment =, old_version =, new_version =,
-- id =, ...} -> its phases: the column added (nullable, its rules NOT
-- VALID); the old version's writes (which do not know it) get up, an SQL
-- expression over the row's other columns; the new version's writes keep
-- what they wrote; existing rows are filled by up in batches; the rules
-- are validated; the contract drops the old version.
function A.add_column(opts)
  local info = debug.getinfo(2, "Sl")
  opts = D.recipe_options(opts, ADD_OPTIONS, "online.add_column", { "table", "column", "type", "up" })
  local r = setup(opts, info, "online.add_column", "_add")
  r.add, r.new, r.final, r.typ, r.up, r.col = true, opts.column, opts.column, opts.type, opts.up, nil
  r.not_null = opts.nullable == false
  r.volatile = opts.volatile
  return data_phases(r, info,
    "add " .. r.new .. " " .. r.typ .. "; the old version's writes get up, the new version's keep theirs",
    "drop the sync and the old version (no way back)")
end

local DROP_OPTIONS = {
  table = true, column = true, down = true, old_version = true, new_version = true, id = true,
  lock_timeout = true, retries = true,
}

-- online.drop_column{table =, column =, down =, old_version =, new_version =,
-- id =} -> two phases: <id>-expand shows the new version the table without
-- the column (the old version keeps it) and, given down (an expression
-- without columns: what the new version's inserts leave in it), makes it
-- the column's default meanwhile; <id>-contract drops the old version and
-- the column (no way back).
function A.drop_column(opts)
  local info = debug.getinfo(2, "Sl")
  opts = D.recipe_options(opts, DROP_OPTIONS, "online.drop_column", { "table", "column" })
  local r = setup(opts, info, "online.drop_column", "_drop")
  r.final = r.col
  local t
  return loader.group({
    { name = r.id .. "-expand",
      description = "the new version sees " .. r.tbl .. " without " .. r.col,
      up = function(db)
        t = D.table_name(db, r.site, r.tbl)
        if opts.down then
          local col = inspect(r, db, r.col)
          if col and db:recall("default") == nil then db:remember("default", col.default or "NULL") end
          db:ddl("ALTER TABLE " .. t .. " ALTER COLUMN " .. D.qi(db, r.col) .. " SET DEFAULT " .. opts.down)
        end
        if opts.old_version then version_view(r, db, opts.old_version, {}, "every column of " .. r.tbl) end
        if opts.new_version then
          version_view(r, db, opts.new_version, { [r.col] = false }, "every column of " .. r.tbl .. " but " .. r.col)
        end
      end,
      down = function(db)
        versions_down(r, db)
        local before = db:recall("default")
        if opts.down and (before or D.is_dry(db)) then
          t = D.table_name(db, r.site, r.tbl)
          db:ddl("ALTER TABLE " .. t .. " ALTER COLUMN " .. D.qi(db, r.col)
            .. ((before == nil or before == "NULL") and " DROP DEFAULT" or (" SET DEFAULT " .. before)))
        end
      end },
    { name = r.id .. "-contract",
      description = "drop the old version and " .. r.tbl .. "." .. r.col .. " (no way back)",
      up = function(db)
        if opts.old_version then
          db:drop_version{ version = opts.old_version, migration = true, lock_timeout = opts.lock_timeout }
        end
        db:drop_column{ table = r.tbl, column = r.col, lock_timeout = opts.lock_timeout }
      end },
  }, info.short_src, info.currentline)
end

return A
