-- events_partition_by_month: move the big, ever-growing events table into a
-- table partitioned by month on created_at, while the application writes.
--
-- There is no ALTER TABLE that turns a table into a partitioned one: the rows
-- must move into a new table.  Doing that in one INSERT ... SELECT under a
-- lock stops the application for as long as the copy takes.  Instead: build
-- the partitioned table next to it, keep it current with a sync, fill it in
-- batches, prove it equal, and swap the names in one short transaction.  After
-- the swap the sync runs the other way (from the partitioned table back into
-- the old one), so the rollback loses nothing, until the contract phase.
--
-- The key changes.  A primary key (any unique index) of a partitioned table
-- must contain the partition key, so events' PRIMARY KEY (id) becomes
-- PRIMARY KEY (id, created_at) on the new table.  What that means:
--   * id alone is no longer enforced unique across partitions: it still comes
--     from the same sequence (events_id_seq, which the cut-over hands to the
--     new table), so only an application that writes its own ids could
--     duplicate one;
--   * no foreign key can reference events(id) any more (it needs a unique
--     constraint on exactly the referenced columns): expand refuses to start
--     if one does -- move such keys to (id, created_at) or drop them first;
--   * the sync and the copy identify rows by (id, created_at): an UPDATE that
--     changes created_at is mirrored as a delete of the old key and an insert
--     of the new one, so the row moves to the partition of its new month.
--
--   expand    events_v2, partitioned by range on created_at: one partition per
--             month from FIRST_MONTH for MONTHS months, and a default partition
--             for anything outside (it is empty, so its indexes cost nothing)
--   sync      every write to events is mirrored into events_v2 (C triggers,
--             one set-wise statement per statement, in the writer's transaction)
--   backfill  copy the existing rows in id order, in batches of ~200 ms, each
--             committed with its checkpoint (a crash loses nothing; rows the
--             sync already wrote are left as they are)
--   validate  compare the two tables by chunk checksums: not one row may differ
--   cutover   in one short transaction (lock_timeout 1 s, retried): events ->
--             events_archive, events_v2 -> events; the sequence, grants and
--             owner follow; the sync turns around and keeps events_archive current
--   contract  stop the reverse sync and drop the archive: the point of no return
--
-- Run:       pgshift --dsn 'dbname=app' run scripts/examples/events_partition_by_month.lua --to cutover
-- Review:    pgshift plan --format markdown scripts/examples/events_partition_by_month.lua
-- Undo:      pgshift rollback scripts/examples/events_partition_by_month.lua [--to PHASE]  (any phase before contract)
-- Expects:   events(id bigserial primary key, created_at timestamptz not null, kind text not null,
--                   payload jsonb) with an index on (kind, created_at), referenced by no foreign key
-- Later:     add next months' partitions ahead of time (a CREATE TABLE ... PARTITION OF on an empty
--            month is quick); rows that arrive for a month without one land in events_default.

-- The months that get a partition of their own; edit to suit your data.
local FIRST_MONTH = { year = 2025, month = 1 }
local MONTHS = 24

-- { {name =, from =, to =}, ... }: the monthly partitions, computed in plain Lua
-- so that plan shows every statement.
local function months()
  local list, y, m = {}, FIRST_MONTH.year, FIRST_MONTH.month
  for _ = 1, MONTHS do
    local ny, nm = y, m + 1
    if nm > 12 then ny, nm = y + 1, 1 end
    list[#list + 1] = { name = string.format("events_y%04dm%02d", y, m),
                        from = string.format("%04d-%02d-01", y, m),
                        to = string.format("%04d-%02d-01", ny, nm) }
    y, m = ny, nm
  end
  return list
end

return migration {
  name = "events_partition_by_month",
  description = "events -> a table range-partitioned by month on created_at, through a synced copy and a short cut-over",
  phases = {
    { name = "expand",
      description = "create events_v2 partitioned by month, with its partitions, a default partition and the indexes",
      up = function(db)
        -- a foreign key to events(id) could not follow the cut-over (see the top of the file)
        local refs = db:value [[
          SELECT string_agg(conrelid::regclass || '.' || conname, ', ')
            FROM pg_constraint WHERE contype = 'f' AND confrelid = 'events'::regclass]]
        if refs then error("foreign keys reference events(id), which the partitioned table cannot keep: " .. refs) end
        db:ddl [[
          CREATE TABLE IF NOT EXISTS events_v2 (
            id          bigint NOT NULL DEFAULT nextval('events_id_seq'),
            created_at  timestamptz NOT NULL DEFAULT now(),
            kind        text NOT NULL,
            payload     jsonb,
            PRIMARY KEY (id, created_at)
          ) PARTITION BY RANGE (created_at)]]
        for _, p in ipairs(months()) do
          db:ddl(string.format(
            "CREATE TABLE IF NOT EXISTS %s PARTITION OF events_v2 FOR VALUES FROM ('%s') TO ('%s')",
            p.name, p.from, p.to))
        end
        db:ddl "CREATE TABLE IF NOT EXISTS events_default PARTITION OF events_v2 DEFAULT"
        -- on the partitioned table: every partition gets its own, now and when added later;
        -- the tables are empty, so a plain CREATE INDEX takes no time
        db:ddl "CREATE INDEX IF NOT EXISTS events_v2_kind_created_at_idx ON events_v2 (kind, created_at)"
      end,
      -- dropping the partitioned table drops its partitions and their indexes
      down = function(db) db:ddl "DROP TABLE IF EXISTS events_v2" end },

    { name = "sync",
      description = "mirror every INSERT, UPDATE, DELETE and TRUNCATE of events into events_v2",
      up = function(db)
        -- The application roles write events_v2 through the trigger, as themselves:
        -- give them what they have on events (sync_create warns about any that lack it).
        -- Rows reach the partitions through events_v2, so its grants are what counts.
        db:value "SELECT shift.copy_grants('events', 'events_v2')"
        -- key: events_v2's primary key (id, created_at), the ON CONFLICT target of the mirror;
        -- after the cut-over the reverse sync writes events_archive by its own key, id
        db:sync { name = "events", table = "events", into = "events_v2" }
      end,
      -- without the sync the copy goes stale: empty it, so that running this
      -- phase again starts from an empty copy (sync_create refuses another)
      down = function(db)
        db:sync_drop "events"
        db:ddl "TRUNCATE events_v2 /* shift:allow truncate: the copy, which nothing reads yet */"
      end },

    { name = "backfill",
      description = "copy the rows that exist now, in id order and in batches; the sync handles every later write",
      up = function(db)
        -- on_conflict = "nothing": a row the sync wrote first is newer than what the copy read
        db:backfill { table = "events", into = "events_v2", on_conflict = "nothing" }
      end,
      -- the copied rows go with events_v2 (expand's down)
      down = function(db) end },

    { name = "validate",
      description = "prove events_v2 holds exactly what events holds",
      up = function(db)
        -- both sides identified by (id, created_at), events_v2's key; one statement, one
        -- snapshot: the application may write meanwhile
        local r = db:compare { source = "events", target = "events_v2",
                               key = { "id", "created_at" }, target_key = { "id", "created_at" } }
        if not r.equal then error("events_v2 differs from events: " .. r.summary) end
        -- rows outside the monthly partitions wait in events_default: say how many (a
        -- partition for their month can only be added once they are moved out of it)
        local outside = db:value "SELECT count(*) FROM events_default"
        log(string.format("events and events_v2 are equal; %s row(s) in events_default", tostring(outside)))
      end,
      down = function(db) end },

    { name = "cutover",
      description = "swap the names in one short transaction; keep the old table current",
      up = function(db)
        db:cutover { sync = "events", lock_timeout = "1s", retries = 20 }
      end,
      down = function(db)
        db:cutover_revert { sync = "events", lock_timeout = "1s", retries = 20 }
      end },

    { name = "contract",
      description = "stop keeping events_archive current and drop it (no way back from here)",
      up = function(db)
        db:sync_drop "events"
        db:ddl "DROP TABLE IF EXISTS events_archive"
      end },
  },
}
