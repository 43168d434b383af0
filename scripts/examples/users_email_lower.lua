-- users_email_lower: add a lower-cased copy of users.email, fill it without a
-- long lock, and index it, with a way back at every step.
--
--   expand    add the nullable column (catalog-only, under a short lock_timeout,
--             retried if another session holds the table)
--   backfill  fill it in key-ordered batches of 5 000 rows, each its own
--             transaction, so no batch holds row locks for long; its verify
--             gate proves every row agrees before the next phase starts
--   index     build the index CONCURRENTLY, so writes go on meanwhile
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/users_email_lower.lua
-- Review:    pgshift plan --format markdown scripts/examples/users_email_lower.lua
-- Undo:      pgshift rollback scripts/examples/users_email_lower.lua [--to PHASE]
-- Expects:   users(id bigint primary key, email text)

local BATCH = 5000

return migration {
  name = "users_email_lower",
  description = "add users.email_lower = lower(email), indexed, for case-insensitive lookups",
  phases = {
    { name = "expand",
      description = "add the column; a catalog-only change that takes a brief ACCESS EXCLUSIVE lock",
      up = function(db)
        db:ddl("ALTER TABLE users ADD COLUMN IF NOT EXISTS email_lower text", { lock_timeout = "2s" })
      end,
      down = function(db)
        db:ddl("ALTER TABLE users DROP COLUMN IF EXISTS email_lower")
      end },

    { name = "backfill",
      description = "fill email_lower in batches of " .. BATCH .. " rows in key order",
      up = function(db)
        local total = db:value("SELECT count(*) FROM users")
        local last, done = nil, 0
        while true do
          -- The batch's upper key, found on the primary key index alone.
          local hi = db:value([[
            SELECT id FROM users WHERE $1::bigint IS NULL OR id > $1
            ORDER BY id OFFSET $2 LIMIT 1]], last, BATCH - 1)
          local n = db:exec([[
            UPDATE users SET email_lower = lower(email)
             WHERE ($1::bigint IS NULL OR id > $1) AND ($2::bigint IS NULL OR id <= $2)
               AND email_lower IS DISTINCT FROM lower(email)]], last, hi)
          done = done + n
          if hi == nil then break end
          last = hi
          if done // 50000 > (done - n) // 50000 then
            log(string.format("%d of %d rows (%.0f %%)", done, total, 100 * done / math.max(total, 1)))
          end
        end
        log(string.format("%d rows updated", done))
      end,
      -- Nothing to undo here: the column's values go with the column (expand's down).
      down = function(db) end,
      verify = function(db)
        local bad = db:value("SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)")
        assert(bad == 0, tostring(bad) .. " rows have email_lower <> lower(email)")
      end },

    { name = "index",
      description = "index email_lower without blocking writes",
      up = function(db)
        -- A failed CONCURRENTLY build leaves an INVALID index behind: drop it first.
        db:exec("DROP INDEX CONCURRENTLY IF EXISTS users_email_lower_idx")
        db:ddl("CREATE INDEX CONCURRENTLY users_email_lower_idx ON users (email_lower)")
      end,
      down = function(db)
        db:exec("DROP INDEX CONCURRENTLY IF EXISTS users_email_lower_idx")
      end },
  },
}
