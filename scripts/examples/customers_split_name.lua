-- customers_split_name: split customers.full_name into first_name and
-- last_name while two versions of the application write at once -- the old
-- one writing full_name, the new one writing first_name and last_name -- and
-- then drop full_name, without a long lock and with a way back until the
-- column is gone.
--
--   expand    add the two nullable columns (catalog only: a moment's lock,
--             taken with a short lock_timeout and retried if the table is busy)
--   sync      a two-way C trigger: a write of full_name fills first_name and
--             last_name (the first word, and the rest); a write of only the
--             new columns fills full_name from them.  Both versions of the
--             application can run side by side from here on
--   backfill  split the rows that exist, in key order, in batches of ~200 ms,
--             each committed with its checkpoint (a crash loses nothing; rows
--             split already are skipped by the condition)
--   validate  not one row may disagree
--   not_null  first_name and last_name NOT NULL, online (a NOT VALID check,
--             validated without blocking writes, then SET NOT NULL)
--   contract  once only the new version writes: drop full_name's NOT NULL, the
--             sync, then full_name.
--             This is the one step without a way back (the column's data goes)
--
-- A name without a space splits into (name, ''), and ('Ann', '') joins back
-- as 'Ann'; a name with several spaces keeps all but the first in last_name,
-- so the split and the join undo each other.
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/customers_split_name.lua --to not_null
-- Review:    pgshift plan --format markdown scripts/examples/customers_split_name.lua
-- Undo:      pgshift rollback scripts/examples/customers_split_name.lua [--to PHASE]
-- Expects:   customers(id bigint primary key, full_name text not null)

local FIRST = "split_part(full_name, ' ', 1)"
local LAST = "substr(full_name, length(split_part(full_name, ' ', 1)) + 2)"
local SPLIT = "first_name = " .. FIRST .. ", last_name = " .. LAST
local JOIN = "full_name = concat_ws(' ', first_name, nullif(last_name, ''))"
local DISAGREE = "first_name IS DISTINCT FROM " .. FIRST .. " OR last_name IS DISTINCT FROM " .. LAST

return migration {
  name = "customers_split_name",
  description = "split customers.full_name into first_name and last_name, then drop it",
  phases = {
    { name = "expand",
      description = "add the two columns; catalog-only changes with a brief ACCESS EXCLUSIVE lock",
      up = function(db)
        db:add_column { table = "customers", column = "first_name", type = "text" }
        db:add_column { table = "customers", column = "last_name", type = "text" }
      end,
      down = function(db)
        db:drop_column { table = "customers", column = "last_name" }
        db:drop_column { table = "customers", column = "first_name" }
      end },

    { name = "sync",
      description = "keep full_name and first_name/last_name equal on every write, both ways",
      up = function(db)
        db:sync { name = "customers_split_name", table = "customers", set = SPLIT, reverse_set = JOIN }
      end,
      down = function(db) db:sync_drop "customers_split_name" end },

    { name = "backfill",
      description = "split the rows that exist now, in batches of about 200 ms",
      up = function(db)
        db:backfill { table = "customers", set = SPLIT, where = DISAGREE }
      end,
      -- Nothing to undo: the values go with the columns (expand's down).
      down = function(db) end },

    { name = "validate",
      description = "prove every row agrees",
      up = function(db)
        local bad = db:value("SELECT count(*) FROM customers WHERE " .. DISAGREE)
        if bad ~= 0 then error(bad .. " customers have first_name/last_name that disagree with full_name") end
      end,
      down = function(db) end },

    { name = "not_null",
      description = "first_name and last_name NOT NULL, validated without blocking writes",
      up = function(db)
        db:add_not_null { table = "customers", column = "first_name" }
        db:add_not_null { table = "customers", column = "last_name" }
      end,
      down = function(db)
        db:drop_not_null { table = "customers", column = "last_name" }
        db:drop_not_null { table = "customers", column = "first_name" }
      end },

    { name = "contract",
      description = "only the new application writes now: full_name loses NOT NULL, then the sync and full_name go (no way back)",
      up = function(db)
        -- full_name stops being NOT NULL first: the new application does not
        -- write it, and once the sync is gone nothing else fills it.  Each
        -- step is safe on its own, so a contract interrupted between two of
        -- them simply runs again.
        db:drop_not_null { table = "customers", column = "full_name" }
        db:sync_drop "customers_split_name"
        db:drop_column { table = "customers", column = "full_name" }
      end },
  },
}
