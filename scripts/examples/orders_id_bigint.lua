-- orders_id_bigint: change orders.id from integer to bigint before the sequence
-- runs out, on a table that order_lines references, without stopping writes.
--
-- Rewriting the column in place (ALTER TABLE ... TYPE bigint) holds an ACCESS
-- EXCLUSIVE lock for as long as it takes to rewrite the table and its
-- indexes.  Instead: build a bigint copy next to it, keep it current with a
-- sync, fill it in batches, prove it equal, and swap the two in one short
-- transaction.  After the swap the sync runs the other way, so the old table
-- stays current and the rollback loses nothing, until the contract phase.
--
--   expand    orders_v2 with a bigint key, the same columns and indexes (it is
--             empty, so building its indexes now costs nothing)
--   sync      every write to orders is mirrored into orders_v2 (a C trigger,
--             one set-wise statement per statement)
--   backfill  copy the existing rows in key order, in short batches (~50 ms),
--             each followed by a rest three times as long (the application
--             comes first), each committed with its checkpoint (a crash loses
--             nothing; rows the sync already wrote are left as they are)
--   validate  compare the two tables by chunk checksums: not a single row may
--             differ
--   cutover   in one short transaction (lock_timeout 1 s, retried): orders ->
--             orders_archive, orders_v2 -> orders; order_lines' foreign key,
--             the view, the sequence (made bigint), grants and owner follow;
--             the sync turns around and keeps orders_archive current
--   contract  stop the reverse sync and drop the archive: the point of no return
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/orders_id_bigint.lua --to cutover
-- Review:    pgshift plan --format markdown scripts/examples/orders_id_bigint.lua
-- Undo:      pgshift rollback scripts/examples/orders_id_bigint.lua [--to PHASE]  (any phase before contract)
-- Expects:   orders(id serial primary key, customer_id int not null, status text not null,
--                   amount numeric(12,2) not null, created_at timestamptz not null, note text)
--            with an index on customer_id, referenced by order_lines(order_id)

return migration {
  name = "orders_id_bigint",
  description = "orders.id integer -> bigint through a synced copy and a short cut-over",
  phases = {
    { name = "expand",
      description = "create orders_v2: the same table with a bigint key, sharing orders' sequence",
      up = function(db)
        db:ddl [[
          CREATE TABLE IF NOT EXISTS orders_v2 (
            id          bigint PRIMARY KEY DEFAULT nextval('orders_id_seq'),
            customer_id int NOT NULL,
            status      text NOT NULL,
            amount      numeric(12,2) NOT NULL,
            created_at  timestamptz NOT NULL,
            note        text)]]
        -- the table is new and empty: a plain CREATE INDEX takes no time
        db:ddl "CREATE INDEX IF NOT EXISTS orders_v2_customer_id_idx ON orders_v2 (customer_id)"
      end,
      down = function(db) db:ddl "DROP TABLE IF EXISTS orders_v2" end },

    { name = "sync",
      description = "mirror every INSERT, UPDATE, DELETE and TRUNCATE of orders into orders_v2",
      up = function(db)
        -- The application roles write orders_v2 through the trigger, as themselves:
        -- give them what they have on orders (sync_create warns about any that lack it).
        db:value "SELECT shift.copy_grants('orders', 'orders_v2')"
        db:sync { name = "orders", table = "orders", into = "orders_v2" }
      end,
      -- without the sync the copy goes stale: empty it, so that running this
      -- phase again starts from an empty copy (sync_create refuses another)
      down = function(db)
        db:sync_drop "orders"
        db:ddl "TRUNCATE orders_v2 /* shift:allow truncate: the copy, which nothing reads yet */"
      end },

    { name = "backfill",
      description = "copy the rows that exist now, in batches; the sync handles every later write",
      up = function(db)
        -- A busy table: after each batch the copy rests nine times as long,
        -- so it works a tenth of the time and the application keeps its pace
        -- (on a 2-core machine that 4 clients keep busy: 0.8 or more of their
        -- throughput, where resting three times as long kept 0.7 to 0.8; a
        -- million rows take two and a half to three minutes).  Batches are
        -- short (target_ms 50, not the default 200): an application UPDATE of a row that a batch has copied but not yet
        -- committed makes the sync write the same key of orders_v2, and that
        -- write waits for the batch to commit; fewer rows in flight and a
        -- shorter batch mean fewer and shorter waits.  At a quiet hour,
        -- run it flat out with
        -- SELECT shift.backfill_set('orders_id_bigint:backfill', sleep_ratio => 0).
        db:backfill { table = "orders", into = "orders_v2", on_conflict = "nothing", sleep_ratio = 9, target_ms = 50 }
      end,
      -- the copied rows go with orders_v2 (expand's down)
      down = function(db) end },

    { name = "validate",
      description = "prove orders_v2 holds exactly what orders holds",
      up = function(db)
        -- one statement, one snapshot: the application may write meanwhile
        local r = db:compare { source = "orders", target = "orders_v2" }
        if not r.equal then error("orders_v2 differs from orders: " .. r.summary) end
        -- the same proof as two checksums, read in one snapshot too
        db:transaction(function(tx)
          tx:exec "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
          local a, b = tx:checksum { table = "orders" }, tx:checksum { table = "orders_v2" }
          log(string.format("orders and orders_v2: %d rows each, checksum %s", a.rows, a.checksum))
          if a.rows ~= b.rows or a.checksum ~= b.checksum then error("orders_v2's checksum differs") end
        end)
      end,
      down = function(db) end },

    { name = "cutover",
      description = "swap the tables in one short transaction; keep the old one current",
      up = function(db)
        db:cutover { sync = "orders", lock_timeout = "1s", retries = 20 }
      end,
      down = function(db)
        db:cutover_revert { sync = "orders", lock_timeout = "1s", retries = 20 }
      end },

    { name = "contract",
      description = "stop keeping orders_archive current and drop it (no way back from here)",
      up = function(db)
        db:sync_drop "orders"
        db:ddl "DROP TABLE IF EXISTS orders_archive"
      end },
  },
}
