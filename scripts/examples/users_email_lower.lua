-- users_email_lower: add users.email_lower = lower(email), filled for every
-- existing row, kept right for every new write, and indexed -- without a long
-- lock and with a way back at every step.
--
--   expand    add the nullable column (catalog only: a moment's lock, taken
--             with a short lock_timeout and retried if the table is busy)
--   sync      a C trigger computes email_lower on every INSERT and UPDATE from
--             now on, whatever the application writes
--   backfill  fill the rows that exist, in key order, in batches of ~200 ms,
--             each committed with its checkpoint (a crash loses nothing)
--   validate  not one row may disagree
--   index     CREATE INDEX CONCURRENTLY (writes go on; an INVALID index left
--             by a failed build is dropped and built again)
--   contract  once the application writes email_lower itself: NOT NULL
--             (online), and the sync is dropped
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/users_email_lower.lua --to index
-- Review:    pgshift plan --format markdown scripts/examples/users_email_lower.lua
-- Undo:      pgshift rollback scripts/examples/users_email_lower.lua [--to PHASE]
-- Expects:   users(id bigint primary key, email text not null)

return migration {
  name = "users_email_lower",
  description = "add users.email_lower = lower(email), indexed, for case-insensitive lookups",
  phases = {
    { name = "expand",
      description = "add the column; a catalog-only change that takes a brief ACCESS EXCLUSIVE lock",
      up = function(db)
        db:add_column { table = "users", column = "email_lower", type = "text" }
      end,
      down = function(db)
        db:drop_column { table = "users", column = "email_lower" }
      end },

    { name = "sync",
      description = "compute email_lower on every write from now on",
      up = function(db)
        db:sync { name = "users_email_lower", table = "users", set = "email_lower = lower(email)" }
      end,
      down = function(db) db:sync_drop "users_email_lower" end },

    { name = "backfill",
      description = "fill the rows that exist now, in batches of about 200 ms",
      up = function(db)
        -- Rows the sync already wrote agree and are skipped by the condition.
        db:backfill { table = "users", set = "email_lower = lower(email)",
                      where = "email_lower IS DISTINCT FROM lower(email)" }
      end,
      -- Nothing to undo: the values go with the column (expand's down).
      down = function(db) end },

    { name = "validate",
      description = "prove every row agrees",
      up = function(db)
        local bad = db:value "SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)"
        if bad ~= 0 then error(bad .. " rows have email_lower <> lower(email)") end
      end,
      down = function(db) end },

    { name = "index",
      description = "index email_lower without blocking writes",
      up = function(db)
        db:create_index { name = "users_email_lower_idx", table = "users", columns = { "email_lower" } }
      end,
      down = function(db)
        db:drop_index { name = "users_email_lower_idx", table = "users" }
      end },

    { name = "contract",
      description = "the application writes email_lower itself now: make it NOT NULL, drop the sync",
      up = function(db)
        db:add_not_null { table = "users", column = "email_lower" }
        db:sync_drop "users_email_lower"
      end,
      down = function(db)
        db:sync { name = "users_email_lower", table = "users", set = "email_lower = lower(email)" }
        db:drop_not_null { table = "users", column = "email_lower" }
      end },
  },
}
