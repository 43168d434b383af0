-- payments_account_fk: make payments.account_id NOT NULL and a foreign key to
-- accounts(id) on a big, busy table -- without a long lock and with a way
-- back at every step.
--
-- ALTER TABLE ... SET NOT NULL and ADD FOREIGN KEY, written plainly, scan the
-- whole table under a lock that stops the writes (ACCESS EXCLUSIVE and SHARE
-- ROW EXCLUSIVE on both tables) for as long as the scan takes.  Instead each
-- constraint is added NOT VALID (a catalog change: a moment's lock, taken with
-- a short lock_timeout and retried), which already holds for every new write,
-- and then validated by a scan that lets reads and writes go on.
--
--   index        CREATE INDEX CONCURRENTLY on account_id (writes go on); with
--                it a DELETE or key UPDATE on accounts does not scan payments
--                to check the foreign key
--   backfill     the rows with no account get the designated 'unknown' account
--                (id 0, created if missing), in key order, in batches of
--                ~200 ms, each committed with its checkpoint (a crash loses
--                nothing; the rows fixed already are skipped by the condition)
--   not_null     CHECK (account_id IS NOT NULL) NOT VALID, VALIDATE, SET NOT
--                NULL (which trusts the validated check instead of scanning
--                under its lock), then the check goes
--   foreign_key  FOREIGN KEY ... NOT VALID, then VALIDATE
--
-- The application must have stopped writing NULL account_ids before the
-- backfill (or the column gets a default): a NULL written after the backfill
-- makes not_null's VALIDATE fail, and a payment whose account does not exist
-- makes foreign_key's VALIDATE fail; both say so and change nothing, so fix
-- the rows and run again.
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/payments_account_fk.lua
-- Review:    pgshift plan --format markdown scripts/examples/payments_account_fk.lua
-- Undo:      pgshift rollback scripts/examples/payments_account_fk.lua [--to PHASE]
--            (the backfilled rows keep the 'unknown' account: which rows had
--            none is not kept)
-- Expects:   payments(id bigserial primary key, account_id bigint, amount numeric(12,2),
--                     created_at timestamptz), accounts(id bigint primary key, name text)

-- the account that payments without one are given
local UNKNOWN = 0

return migration {
  name = "payments_account_fk",
  description = "payments.account_id NOT NULL and REFERENCES accounts (id), online",
  phases = {
    { name = "index",
      description = "index account_id without blocking writes (the foreign key's checks from accounts use it)",
      up = function(db)
        db:create_index { name = "payments_account_id_idx", table = "payments", columns = { "account_id" } }
      end,
      down = function(db)
        db:drop_index { name = "payments_account_id_idx", table = "payments" }
      end },

    { name = "backfill",
      description = "give the payments without an account the 'unknown' account, in batches of about 200 ms",
      up = function(db)
        -- Idempotent: a run that resumes after a crash finds the account there.
        db:exec("INSERT INTO accounts (id, name) VALUES ($1, 'unknown') ON CONFLICT (id) DO NOTHING", UNKNOWN)
        db:backfill { table = "payments", set = "account_id = " .. UNKNOWN, where = "account_id IS NULL" }
      end,
      -- Nothing to undo: which rows had no account is not kept, and a row
      -- with the 'unknown' account is as good as one with none.
      down = function(db) end },

    { name = "not_null",
      description = "NOT NULL through a validated CHECK: no scan under ACCESS EXCLUSIVE",
      up = function(db)
        db:add_not_null { table = "payments", column = "account_id" }
      end,
      down = function(db)
        db:drop_not_null { table = "payments", column = "account_id" }
      end },

    { name = "foreign_key",
      description = "REFERENCES accounts (id): NOT VALID (a moment's lock), then VALIDATE while writes go on",
      up = function(db)
        db:add_foreign_key { name = "payments_account_id_fkey", table = "payments", columns = { "account_id" },
                             references = "accounts", ref_columns = { "id" } }
      end,
      down = function(db)
        db:drop_constraint { table = "payments", name = "payments_account_id_fkey" }
      end },
  },
}
