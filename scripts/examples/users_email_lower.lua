-- users_email_lower: add a lower-cased copy of users.email, fill it without a
-- long lock, and index it, with a way back at every step.
--
--   expand    add the nullable column (catalog-only, under a short lock_timeout,
--             retried if another session holds the table)
--   backfill  fill it with the extension's batched backfill: key order,
--             batches sized to ~200 ms, each committed with its checkpoint;
--             its verify gate proves every row agrees before the next phase
--   index     build the index CONCURRENTLY, so writes go on meanwhile
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/users_email_lower.lua
-- Review:    pgshift plan --format markdown scripts/examples/users_email_lower.lua
-- Undo:      pgshift rollback scripts/examples/users_email_lower.lua [--to PHASE]
-- Expects:   users(id bigint primary key, email text)

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
      description = "fill email_lower in key order, in batches sized to take about 200 ms each",
      up = function(db)
        -- The extension walks the primary key from the start to the largest key
        -- it finds now; each batch commits with its checkpoint, so a crash or
        -- Ctrl-C loses nothing and the next run goes on where this one stopped.
        -- Rows inserted from now on need the application (or a trigger) to set
        -- email_lower themselves.
        db:backfill { table = "users", set = "email_lower = lower(email)",
                      where = "email_lower IS DISTINCT FROM lower(email)" }
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
