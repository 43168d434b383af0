-- users_email_lower: add a lower-cased copy of users.email without a long lock.
--
--   expand    add the nullable column (a catalog-only change, under a short lock_timeout)
--   backfill  fill it in key-ordered batches of 5 000 rows, one transaction each,
--             so no batch holds row locks for long and progress survives a crash
--   validate  prove every row agrees before anything relies on the column
--
-- Run it:  pgshift --dsn 'dbname=app' run scripts/examples/users_email_lower.lua
-- The table it expects: users(id bigint primary key, email text).

local BATCH = 5000

return migration {
  name = "users_email_lower",
  description = "add users.email_lower = lower(email) for case-insensitive lookups",
  phases = {
    { name = "expand",
      up = function(db)
        -- Never queue behind a long transaction while holding up every writer.
        db:exec("SET lock_timeout = '5s'")
        db:exec("ALTER TABLE users ADD COLUMN IF NOT EXISTS email_lower text")
      end,
      down = function(db)
        db:exec("ALTER TABLE users DROP COLUMN IF EXISTS email_lower")
      end },

    { name = "backfill",
      up = function(db)
        local total = db:value("SELECT count(*) FROM users")
        local last, done = nil, 0
        while true do
          -- The batch's upper key, found on the primary key index alone.
          local hi = db:value([[SELECT id FROM users WHERE $1::bigint IS NULL OR id > $1
                                ORDER BY id OFFSET $2 LIMIT 1]], last, BATCH - 1)
          local n = db:exec([[UPDATE users SET email_lower = lower(email)
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
      end },

    { name = "validate",
      up = function(db)
        local bad = db:value("SELECT count(*) FROM users WHERE email_lower IS DISTINCT FROM lower(email)")
        assert(bad == 0, bad .. " rows differ")
        log("every row has email_lower = lower(email)")
      end },
  },
}
