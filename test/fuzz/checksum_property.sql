-- The checksum property test's engine (test/fuzz/checksum_property.sh runs
-- it; integration 53 with a fixed seed, make fuzz for long).  Everything
-- lives in schema prop.
--
-- prop.check_table(seed, family, mutations) makes a random table prop.a of
-- one family's column and a few random others, then prop.b: the same rows
-- rewritten to equal values (numeric scale, float -0, jsonb scales, interval
-- spans, bpchar padding, citext case, discrete range bounds, hstore and
-- tsvector order, arrays with a NULL bitmap but no NULL, composites of
-- those), in another column order, another row order, other storage (TOAST,
-- out of line, compressed), its checksum taken under random session
-- settings (client_encoding, TimeZone, DateStyle, IntervalStyle,
-- extra_float_digits, lc_monetary, bytea_output).  The two must have the
-- same checksum.  Then each mutation changes prop.b (a value nearby or new,
-- NULL, a row deleted, added, re-keyed, two values swapped) in a
-- subtransaction; the oracle, EXCEPT ALL both ways (over the columns' text
-- for types without equality), says whether the tables are still equal, and
-- the checksum must say the same.  Every mutation is rolled back.

DROP SCHEMA IF EXISTS prop CASCADE;
CREATE SCHEMA prop;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE TYPE prop.mood AS ENUM ('sad', 'ok', 'happy', 'ünïcödé €');
CREATE DOMAIN prop.posint AS int CHECK (VALUE > 0);
CREATE TYPE prop.pair AS (t text, n numeric, m prop.mood, c citext);

-- ---------------------------------------------------------------- random values

CREATE FUNCTION prop.ri(lo float8, hi float8) RETURNS bigint LANGUAGE sql VOLATILE AS
$$ SELECT floor(lo + random() * (hi - lo + 1))::bigint $$;

-- ASCII, Latin-1, characters LATIN1 lacks, a 4-byte one, and what arrays and composites quote
CREATE FUNCTION prop.rt(maxlen int) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN random() < 0.03 THEN repeat(s, 300) ELSE s END
    FROM (SELECT coalesce(string_agg(substr(a, prop.ri(1, char_length(a))::int, 1), ''), '') AS s
            FROM generate_series(1, prop.ri(0, maxlen)::int),
                 (SELECT 'abcxyzABCXYZ019 éüßÉ€łŻЖ中😀,"\{}()''=>'::text AS a) x) w
$$;

CREATE FUNCTION prop.raword() RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(chr(97 + prop.ri(0, 25)::int), '') FROM generate_series(1, prop.ri(1, 6)::int)
$$;

CREATE FUNCTION prop.rword() RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT string_agg(substr('abcdefxyzéüłЖ中', prop.ri(1, 14)::int, 1), '') FROM generate_series(1, prop.ri(1, 6)::int)
$$;

-- numerics of any size and display scale (64 and more forces the long form), and the special values
CREATE FUNCTION prop.rnum() RETURNS numeric LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN r < 0.03 THEN 'NaN'::numeric WHEN r < 0.05 THEN 'Infinity' WHEN r < 0.07 THEN '-Infinity'
              WHEN r < 0.12 THEN 0::numeric
              WHEN r < 0.2 THEN round((random() - 0.5)::numeric * 10::numeric ^ prop.ri(-30, 30), prop.ri(0, 90)::int)
              ELSE round((random() * 2000 - 1000)::numeric, prop.ri(0, 6)::int) END
    FROM (SELECT random() AS r) s
$$;

CREATE FUNCTION prop.rfloat() RETURNS float8 LANGUAGE sql VOLATILE AS $$
  SELECT CASE WHEN r < 0.03 THEN 'NaN'::float8 WHEN r < 0.05 THEN 'Infinity' WHEN r < 0.07 THEN '-Infinity'
              WHEN r < 0.15 THEN 0 ELSE (random() - 0.5) * 10 ^ prop.ri(-30, 30) END
    FROM (SELECT random() AS r) s
$$;

-- a coordinate without -0 (a text oracle would tell -0 from 0)
CREATE FUNCTION prop.rc() RETURNS float8 LANGUAGE sql VOLATILE AS $$
  SELECT round((random() * 200 - 100)::numeric, 3)::float8
$$;

CREATE FUNCTION prop.rjsonb(depth int) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r float8 := random();
  out jsonb;
BEGIN
  IF depth <= 0 OR r < 0.5 THEN
    RETURN CASE WHEN r < 0.1 THEN 'null'::jsonb WHEN r < 0.2 THEN to_jsonb(random() < 0.5)
                WHEN r < 0.35 THEN to_jsonb(prop.rt(8))
                ELSE to_jsonb(round((random() * 100 - 50)::numeric, prop.ri(0, 4)::int)) END;
  ELSIF r < 0.75 THEN
    SELECT coalesce(jsonb_agg(prop.rjsonb(depth - 1)), '[]') INTO out FROM generate_series(1, prop.ri(0, 4)::int);
  ELSE
    SELECT coalesce(jsonb_object_agg(prop.rt(6), prop.rjsonb(depth - 1)), '{}') INTO out
      FROM generate_series(1, prop.ri(0, 4)::int);
  END IF;
  RETURN out;
END $$;

-- the same jsonb with every number at another display scale, objects rebuilt in another order
CREATE FUNCTION prop.jsonb_rescale(j jsonb) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  out jsonb;
BEGIN
  CASE jsonb_typeof(j)
    WHEN 'number' THEN
      RETURN to_jsonb(CASE WHEN random() < 0.5 THEN round(j::numeric, scale(j::numeric) + prop.ri(1, 70)::int)
                           ELSE trim_scale(j::numeric) END);
    WHEN 'array' THEN
      SELECT coalesce(jsonb_agg(prop.jsonb_rescale(e) ORDER BY o), '[]') INTO out
        FROM jsonb_array_elements(j) WITH ORDINALITY x(e, o);
      RETURN out;
    WHEN 'object' THEN
      SELECT coalesce(jsonb_object_agg(k, prop.jsonb_rescale(v) ORDER BY random()), '{}') INTO out
        FROM jsonb_each(j) x(k, v);
      RETURN out;
    ELSE
      RETURN j;
  END CASE;
END $$;

-- an array literal of up to maxn elements of family fam, some NULL
CREATE FUNCTION prop.rarray(fam text, maxn int) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  g text;
  parts text[] := '{}';
  v text;
BEGIN
  SELECT gen INTO STRICT g FROM prop.family WHERE name = fam;
  FOR i IN 1..prop.ri(0, maxn) LOOP
    IF random() < 0.15 THEN
      parts := parts || 'NULL'::text;
    ELSE
      EXECUTE 'SELECT (' || g || ')::text' INTO v;
      parts := parts || CASE WHEN v IS NULL THEN 'NULL'
                             ELSE '"' || replace(replace(v, '\', '\\'), '"', '\"') || '"' END;
    END IF;
  END LOOP;
  RETURN '{' || array_to_string(parts, ',') || '}';
END $$;

-- ---------------------------------------------------------------- the families
-- gen: a random value; rw: an equal one made from :v:; mut: changes of :v:
-- (the oracle decides whether one changed the value); eq: the type has an
-- equality EXCEPT can use (else the oracle compares its text).
CREATE TABLE prop.family (name text PRIMARY KEY, type text, eq boolean, gen text, rw text, mut text[]);

INSERT INTO prop.family VALUES
 ('int2', 'int2', true, $t$prop.ri(-32768, 32767)::int2$t$, $t$:v:$t$, ARRAY[$t$:v: # 1::int2$t$, $t$:v: # 16384::int2$t$]),
 ('int4', 'int4', true, $t$prop.ri(-2147483648, 2147483647)::int4$t$, $t$:v:$t$, ARRAY[$t$:v: # 1$t$, $t$:v: # 65536$t$]),
 ('int8', 'int8', true, $t$prop.ri(-9e18, 9e18)$t$, $t$:v:$t$,
   ARRAY[$t$:v: # 1$t$, $t$x'6e756c6c2d2d6e75'::bigint$t$, $t$-:v:$t$]),
 ('numeric', 'numeric', true, $t$prop.rnum()$t$,
   $t$CASE WHEN scale(:v:) IS NULL THEN :v: WHEN random() < 0.5 THEN round(:v:, LEAST(scale(:v:) + prop.ri(1, 80)::int, 1000)) ELSE trim_scale(:v:) END$t$,
   ARRAY[$t$:v: + 10::numeric ^ (-coalesce(scale(:v:), 0) - 1)$t$, $t$-:v:$t$, $t$:v: * 10000$t$, $t$round(:v:, 0)$t$]),
 ('float4', 'float4', true, $t$prop.rfloat()::float4$t$, $t$CASE WHEN :v: = 0 THEN '-0'::float4 ELSE :v: END$t$,
   ARRAY[$t$:v: + 1$t$, $t$-:v:$t$, $t$:v: * 2$t$]),
 ('float8', 'float8', true, $t$prop.rfloat()$t$, $t$CASE WHEN :v: = 0 THEN '-0'::float8 ELSE :v: END$t$,
   ARRAY[$t$:v: * (1 + 1e-15)$t$, $t$-:v:$t$, $t$:v: + 1$t$]),
 ('bool', 'bool', true, $t$random() < 0.5$t$, $t$:v:$t$, ARRAY[$t$NOT :v:$t$]),
 ('char', '"char"', true, $t$chr(prop.ri(1, 127)::int)::"char"$t$, $t$:v:$t$, ARRAY[$t$chr(ascii(:v:::text) % 126 + 1)::"char"$t$]),
 ('date', 'date', true, $t$CASE WHEN random() < 0.05 THEN 'infinity'::date ELSE '2000-01-01'::date + prop.ri(-400000, 400000)::int END$t$,
   $t$:v:$t$, ARRAY[$t$:v: + 1$t$, $t$'-infinity'::date$t$]),
 ('time', 'time', true, $t$'00:00'::time + prop.ri(0, 86399999999) * '1 microsecond'::interval$t$, $t$:v:$t$,
   ARRAY[$t$:v: + '1 microsecond'::interval$t$]),
 ('timetz', 'timetz', true,
   $t$(('00:00'::time + prop.ri(0, 86399999999) * '1 microsecond'::interval)::text || (ARRAY['+00', '-03:30', '+05:45', '+14'])[prop.ri(1, 4)])::timetz$t$,
   $t$:v:$t$, ARRAY[$t$(:v:::time::text || '+01')::timetz$t$, $t$:v: + '1 microsecond'::interval$t$]),
 ('timestamp', 'timestamp', true,
   $t$CASE WHEN random() < 0.05 THEN '-infinity'::timestamp ELSE '2000-01-01'::timestamp + prop.ri(-1e13, 1e13) * '1 microsecond'::interval END$t$,
   $t$:v:$t$, ARRAY[$t$:v: + '1 microsecond'::interval$t$]),
 ('timestamptz', 'timestamptz', true,
   $t$CASE WHEN random() < 0.05 THEN 'infinity'::timestamptz ELSE '2000-01-01 00:00+00'::timestamptz + prop.ri(-1e13, 1e13) * '1 microsecond'::interval END$t$,
   $t$(:v: AT TIME ZONE 'Asia/Kolkata') AT TIME ZONE 'Asia/Kolkata'$t$, ARRAY[$t$:v: - '1 microsecond'::interval$t$]),
 ('interval', 'interval', true,
   $t$make_interval(months => prop.ri(-100, 100)::int, days => prop.ri(-1000, 1000)::int, secs => prop.ri(-1e11, 1e11) / 1e6)$t$,
   $t$(ARRAY[justify_interval(:v:), justify_hours(:v:), justify_days(:v:), :v: + '1 mon'::interval - '30 days'::interval])[prop.ri(1, 4)]$t$,
   ARRAY[$t$:v: + '1 microsecond'::interval$t$, $t$:v: + '1 mon'::interval - '29 days'::interval$t$]),
 ('money', 'money', true, $t$(prop.ri(-1e12, 1e12) / 100.0)::numeric::money$t$, $t$:v:$t$, ARRAY[$t$:v: + 0.01::numeric::money$t$]),
 ('text', 'text', true, $t$prop.rt(20)$t$, $t$:v:$t$, ARRAY[$t$:v: || 'x'$t$, $t$upper(:v:)$t$, $t$''$t$, $t$:v: || ' '$t$]),
 ('varchar', 'varchar', true, $t$prop.rt(20)::varchar$t$, $t$:v:$t$, ARRAY[$t$(:v: || ' ')::varchar$t$, $t$lower(:v:)::varchar$t$]),
 ('bpchar', 'bpchar', true, $t$prop.rt(10)::bpchar$t$, $t$(rtrim(:v:::text, ' ') || repeat(' ', prop.ri(0, 3)::int))::bpchar$t$,
   ARRAY[$t$(:v:::text || 'x')::bpchar$t$, $t$(:v:::text || '  ')::bpchar$t$]),
 ('name', 'name', true, $t$left(prop.rt(20), 40)::name$t$, $t$:v:$t$, ARRAY[$t$(:v:::text || 'x')::name$t$]),
 ('bytea', 'bytea', true, $t$convert_to(prop.rt(20), 'UTF8')$t$, $t$:v:$t$, ARRAY[$t$:v: || '\x00'::bytea$t$]),
 ('uuid', 'uuid', true, $t$md5(random()::text)::uuid$t$, $t$upper(:v:::text)::uuid$t$,
   ARRAY[$t$overlay(:v:::text placing 'f' from 1 for 1)::uuid$t$]),
 ('json', 'json', false, $t$prop.rjsonb(2)::text::json$t$, $t$:v:$t$, ARRAY[$t$(:v:::text || ' ')::json$t$]),
 ('jsonb', 'jsonb', true, $t$prop.rjsonb(3)$t$, $t$prop.jsonb_rescale(:v:)$t$,
   ARRAY[$t$:v: || '{"m": 1}'::jsonb$t$, $t$jsonb_build_array(:v:)$t$, $t$prop.jsonb_rescale(:v:) || '[]'::jsonb$t$]),
 ('xml', 'xml', false, $t$xmlelement(name a, prop.rt(10))$t$, $t$:v:$t$, ARRAY[$t$xmlconcat(:v:, '<b/>'::xml)$t$]),
 ('inet', 'inet', true,
   $t$CASE WHEN random() < 0.3 THEN ('2001:db8::' || to_hex(prop.ri(0, 65535)) || '/' || prop.ri(16, 128))::inet
           ELSE (prop.ri(0, 255) || '.' || prop.ri(0, 255) || '.' || prop.ri(0, 255) || '.' || prop.ri(0, 255) || '/' || prop.ri(1, 32))::inet END$t$,
   $t$:v:$t$, ARRAY[$t$set_masklen(:v:, masklen(:v:) - 1)$t$, $t$host(:v:)::inet$t$]),
 ('cidr', 'cidr', true, $t$network((prop.ri(0, 255) || '.' || prop.ri(0, 255) || '.' || prop.ri(0, 255) || '.0/' || prop.ri(8, 24))::inet)::cidr$t$,
   $t$:v:$t$, ARRAY[$t$set_masklen(:v:, masklen(:v:) - 1)$t$]),
 ('macaddr', 'macaddr', true, $t$lpad(to_hex(prop.ri(0, 2 ^ 47)), 12, '0')::macaddr$t$, $t$upper(:v:::text)::macaddr$t$,
   ARRAY[$t$lpad(to_hex(prop.ri(0, 2 ^ 47)), 12, '0')::macaddr$t$]),
 ('macaddr8', 'macaddr8', true, $t$(lpad(to_hex(prop.ri(0, 2 ^ 47)), 12, '0') || 'ab12')::macaddr8$t$, $t$upper(:v:::text)::macaddr8$t$,
   ARRAY[$t$macaddr8_set7bit(:v:)$t$]),
 ('bit', 'bit(12)', true, $t$prop.ri(0, 4095)::int::bit(12)$t$, $t$:v:$t$, ARRAY[$t$~:v:$t$]),
 ('varbit', 'varbit', true, $t$substring(prop.ri(0, 1048575)::int::bit(20)::varbit from 1 for prop.ri(0, 20)::int)$t$, $t$:v:$t$,
   ARRAY[$t$:v: || B'1'$t$, $t$:v: || B'0'$t$]),
 ('point', 'point', false, $t$point(prop.rc(), prop.rc())$t$, $t$:v:$t$, ARRAY[$t$:v: + point(1, 0)$t$]),
 ('lseg', 'lseg', false, $t$lseg(point(prop.rc(), prop.rc()), point(prop.rc(), prop.rc()))$t$, $t$:v:$t$,
   ARRAY[$t$lseg(point(prop.rc(), prop.rc()), point(prop.rc(), prop.rc()))$t$]),
 ('box', 'box', false, $t$box(point(prop.rc(), prop.rc()), point(prop.rc(), prop.rc()))$t$, $t$box(:v:::text::box)$t$,
   ARRAY[$t$:v: + point(1, 1)$t$]),
 ('line', 'line', false, $t$('{' || prop.ri(1, 9) || ',' || prop.ri(-9, 9) || ',' || prop.ri(-9, 9) || '}')::line$t$, $t$:v:$t$,
   ARRAY[$t$('{' || prop.ri(1, 9) || ',' || prop.ri(-9, 9) || ',' || prop.ri(10, 19) || '}')::line$t$]),
 ('circle', 'circle', false, $t$circle(point(prop.rc(), prop.rc()), prop.ri(1, 50))$t$, $t$:v:$t$, ARRAY[$t$circle(center(:v:), radius(:v:) + 1)$t$]),
 ('path', 'path', false,
   $t$(SELECT (CASE WHEN o THEN '[' ELSE '(' END || '(' || prop.rc() || ',' || prop.rc() || '),(' || prop.rc() || ',' || prop.rc() || ')' || CASE WHEN o THEN ']' ELSE ')' END)::path FROM (SELECT random() < 0.5 AS o) s)$t$,
   $t$:v:$t$, ARRAY[$t$CASE WHEN isopen(:v:) THEN pclose(:v:) ELSE popen(:v:) END$t$]),
 ('polygon', 'polygon', false, $t$polygon(box(point(prop.rc(), prop.rc()), point(prop.rc(), prop.rc())))$t$, $t$:v:$t$,
   ARRAY[$t$polygon(box(point(prop.rc(), prop.rc()), point(prop.rc(), prop.rc())))$t$]),
 ('tsvector', 'tsvector', true, $t$array_to_tsvector(ARRAY(SELECT prop.rword() FROM generate_series(1, prop.ri(0, 5)::int)))$t$,
   $t$array_to_tsvector(ARRAY(SELECT w FROM unnest(tsvector_to_array(:v:)) w ORDER BY random()))$t$,
   ARRAY[$t$:v: || 'zz'::tsvector$t$, $t$setweight(:v:, 'A')$t$]),
 ('tsquery', 'tsquery', true, $t$(prop.raword() || CASE WHEN random() < 0.5 THEN ' & ' ELSE ' | ' END || prop.raword())::tsquery$t$, $t$:v:$t$,
   ARRAY[$t$:v: || 'zz'::tsquery$t$, $t$!! :v:$t$]),
 ('jsonpath', 'jsonpath', false, $t$('$.' || prop.raword() || '[*] ? (@ > ' || prop.ri(0, 9) || ')')::jsonpath$t$, $t$:v:$t$,
   ARRAY[$t$('$.' || prop.raword() || '[*]')::jsonpath$t$]),
 ('pg_lsn', 'pg_lsn', true, $t$(to_hex(prop.ri(0, 1e6)) || '/' || to_hex(prop.ri(0, 4e9)))::pg_lsn$t$, $t$:v:$t$, ARRAY[$t$:v: + 1$t$]),
 ('oid', 'oid', true, $t$prop.ri(0, 4e9)::oid$t$, $t$:v:$t$, ARRAY[$t$((:v:::bigint + 1) % 4294967296)::oid$t$]),
 ('tid', 'tid', true, $t$('(' || prop.ri(0, 1e6) || ',' || prop.ri(1, 300) || ')')::tid$t$, $t$:v:$t$,
   ARRAY[$t$('(' || prop.ri(0, 1e6) || ',' || prop.ri(1, 300) || ')')::tid$t$]),
 ('int4range', 'int4range', true,
   $t$CASE WHEN random() < 0.1 THEN 'empty'::int4range ELSE int4range(CASE WHEN random() < 0.1 THEN NULL ELSE prop.ri(-100, 100)::int END, CASE WHEN random() < 0.1 THEN NULL ELSE prop.ri(101, 300)::int END, (ARRAY['[)', '[]', '()', '(]'])[prop.ri(1, 4)]) END$t$,
   $t$CASE WHEN isempty(:v:) OR upper(:v:) IS NULL THEN :v: ELSE int4range(lower(:v:), upper(:v:) - 1, '[]') END$t$,
   ARRAY[$t$int4range(lower(:v:), upper(:v:) + 1)$t$, $t$int4range(lower(:v:) - 1, upper(:v:))$t$]),
 ('int8range', 'int8range', true, $t$int8range(prop.ri(-1e15, 0), prop.ri(1, 1e15), (ARRAY['[)', '[]', '()', '(]'])[prop.ri(1, 4)])$t$,
   $t$CASE WHEN isempty(:v:) OR upper(:v:) IS NULL THEN :v: ELSE int8range(lower(:v:), upper(:v:) - 1, '[]') END$t$,
   ARRAY[$t$int8range(lower(:v:), upper(:v:) + 1)$t$]),
 ('numrange', 'numrange', true,
   $t$CASE WHEN random() < 0.1 THEN 'empty'::numrange ELSE numrange(round((random() * 10)::numeric, prop.ri(0, 3)::int), CASE WHEN random() < 0.1 THEN NULL ELSE round((10 + random() * 10)::numeric, prop.ri(0, 70)::int) END, (ARRAY['[)', '[]', '()', '(]'])[prop.ri(1, 4)]) END$t$,
   $t$CASE WHEN isempty(:v:) THEN :v: ELSE numrange(round(lower(:v:), scale(lower(:v:)) + 2), round(upper(:v:), scale(upper(:v:)) + 1), CASE WHEN lower_inc(:v:) THEN '[' ELSE '(' END || CASE WHEN upper_inc(:v:) THEN ']' ELSE ')' END) END$t$,
   ARRAY[$t$numrange(lower(:v:), upper(:v:), '[]')$t$, $t$numrange(lower(:v:), upper(:v:) + 0.001)$t$]),
 ('daterange', 'daterange', true, $t$daterange('2000-01-01'::date + prop.ri(-1000, 1000)::int, '2003-01-01'::date + prop.ri(0, 1000)::int, (ARRAY['[)', '[]', '()', '(]'])[prop.ri(1, 4)])$t$,
   $t$CASE WHEN isempty(:v:) OR upper(:v:) IS NULL THEN :v: ELSE daterange(lower(:v:), upper(:v:) - 1, '[]') END$t$,
   ARRAY[$t$daterange(lower(:v:), upper(:v:) + 1)$t$]),
 ('tstzrange', 'tstzrange', true, $t$tstzrange('2020-01-01 00:00+00'::timestamptz + prop.ri(0, 1e9) * '1 second'::interval, NULL, (ARRAY['[)', '()'])[prop.ri(1, 2)])$t$,
   $t$:v:$t$, ARRAY[$t$tstzrange(lower(:v:), upper(:v:), '[]')$t$, $t$tstzrange(lower(:v:) + '1 microsecond'::interval, upper(:v:))$t$]),
 ('int4multirange', 'int4multirange', true,
   $t$int4multirange(int4range(prop.ri(0, 10)::int, prop.ri(11, 20)::int), int4range(prop.ri(15, 30)::int, prop.ri(31, 40)::int), int4range(prop.ri(50, 60)::int, prop.ri(61, 70)::int))$t$,
   $t$CASE WHEN isempty(:v:) THEN :v: ELSE (SELECT range_agg(r ORDER BY random()) FROM unnest(:v:) r) END$t$,
   ARRAY[$t$:v: + int4multirange(int4range(1000, 1001))$t$, $t$:v: - int4multirange(int4range(15, 16))$t$]),
 ('nummultirange', 'nummultirange', true,
   $t$nummultirange(numrange(round((random() * 5)::numeric, 2), round((5 + random() * 5)::numeric, 3)), numrange(20.0, round((21 + random())::numeric, 1), '[]'))$t$,
   $t$CASE WHEN isempty(:v:) THEN :v: ELSE (SELECT range_agg(r ORDER BY random()) FROM unnest(:v:) r) END$t$,
   ARRAY[$t$:v: + nummultirange(numrange(100, 101))$t$]),
 ('citext', 'citext', true, $t$prop.rt(12)::citext$t$,
   $t$translate(:v:::text, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')::citext$t$,
   ARRAY[$t$(:v:::text || 'x')::citext$t$, $t$upper(:v:::text)::citext$t$, $t$(:v:::text || ' ')::citext$t$]),
 ('hstore', 'hstore', true, $t$hstore(ARRAY[prop.rt(4), prop.rt(4), prop.rt(4)], ARRAY[prop.rt(5), NULL, prop.rt(5)])$t$,
   $t$CASE WHEN :v: = ''::hstore THEN :v: ELSE (SELECT hstore(array_agg(key ORDER BY o), array_agg(value ORDER BY o)) FROM (SELECT key, value, random() AS o FROM each(:v:)) s) END$t$,
   ARRAY[$t$:v: || hstore('zz', 'y')$t$, $t$delete(:v:, (akeys(:v:))[1])$t$, $t$:v: || hstore((akeys(:v:))[1], NULL)$t$]),
 ('mood', 'prop.mood', true, $t$(enum_range(NULL::prop.mood))[prop.ri(1, 4)]$t$, $t$:v:::text::prop.mood$t$,
   ARRAY[$t$(enum_range(NULL::prop.mood))[(array_position(enum_range(NULL::prop.mood), :v:) % 4) + 1]$t$]),
 ('posint', 'prop.posint', true, $t$prop.ri(1, 1e6)::int::prop.posint$t$, $t$:v:$t$, ARRAY[$t$(:v: + 1)::prop.posint$t$]),
 ('pair', 'prop.pair', true,
   $t$ROW(CASE WHEN random() < 0.2 THEN NULL ELSE prop.rt(6) END, prop.rnum(), (enum_range(NULL::prop.mood))[prop.ri(1, 4)], prop.rt(5)::citext)::prop.pair$t$,
   $t$ROW((:v:).t, CASE WHEN scale((:v:).n) IS NULL THEN (:v:).n ELSE round((:v:).n, scale((:v:).n) + prop.ri(1, 70)::int) END, (:v:).m, upper((:v:).c::text)::citext)::prop.pair$t$,
   ARRAY[$t$ROW((:v:).t || 'x', (:v:).n, (:v:).m, (:v:).c)::prop.pair$t$, $t$ROW((:v:).t, (:v:).n + 1, (:v:).m, (:v:).c)::prop.pair$t$,
         $t$ROW(NULL, NULL, NULL, NULL)::prop.pair$t$, $t$ROW((:v:).t, (:v:).n, (:v:).m, (:v:).c || 'Q')::prop.pair$t$]);

-- arrays of the families with an equality (an array's word is built from its elements')
INSERT INTO prop.family
SELECT name || '[]', type || '[]', true, format('prop.rarray(%L, 5)::%s[]', name, type),
       -- element by element, then a NULL bitmap without a NULL: appended, then sliced off
       $t$CASE WHEN array_ndims(:v:) IS DISTINCT FROM 1 OR array_lower(:v:, 1) <> 1 THEN :v:
               ELSE (ARRAY(SELECT CASE WHEN num_nonnulls((:v:)[i]) = 0 THEN NULL ELSE $t$ || replace(rw, ':v:', '(:v:)[i]') || $t$ END FROM generate_subscripts(:v:, 1) i ORDER BY i) || NULL::$t$ || type || $t$)[1:cardinality(:v:)] END$t$,
       ARRAY[':v: || (' || gen || ')',
             ':v:[2:]',
             'CASE WHEN cardinality(:v:) > 0 AND array_ndims(:v:) = 1 THEN (''[5:'' || (4 + cardinality(:v:)) || '']='' || :v:::text)::' || type || '[] ELSE :v: END',
             '(''{'' || :v:::text || ''}'')::' || type || '[]',
             'array_replace(:v:, :v:[1], NULL)']
  FROM prop.family
 WHERE eq AND name IN ('int4', 'int8', 'numeric', 'float4', 'float8', 'text', 'varchar', 'bpchar', 'bool', 'date',
                       'timestamptz', 'interval', 'uuid', 'bytea', 'jsonb', 'citext', 'hstore', 'mood', 'posint',
                       'pair', 'int4range', 'numrange', 'inet', 'varbit', 'money', 'timetz');

-- ---------------------------------------------------------------- the check

-- the last table's definition and a value-changing mutation of it without
-- random values, for the driver to replay on the other server
CREATE TABLE prop.last (ddl_a text, cols text[], mutation text);
INSERT INTO prop.last DEFAULT VALUES;

-- the session settings a checksum is taken under, in turn
CREATE FUNCTION prop.set_random_settings() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  s text[] := ARRAY[
    'client_encoding', (ARRAY['UTF8', 'LATIN1', 'WIN1252', 'EUC_JP', 'SQL_ASCII'])[prop.ri(1, 5)],
    'TimeZone', (ARRAY['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham'])[prop.ri(1, 4)],
    'DateStyle', (ARRAY['ISO, MDY', 'SQL, DMY', 'Postgres, YMD', 'German'])[prop.ri(1, 4)],
    'IntervalStyle', (ARRAY['postgres', 'iso_8601', 'sql_standard', 'postgres_verbose'])[prop.ri(1, 4)],
    'extra_float_digits', (ARRAY['-15', '0', '1', '3'])[prop.ri(1, 4)],
    'lc_monetary', (ARRAY['C', 'C.utf8', 'POSIX'])[prop.ri(1, 3)],
    'bytea_output', (ARRAY['hex', 'escape'])[prop.ri(1, 2)]];
BEGIN
  FOR i IN 0..6 LOOP
    PERFORM set_config(s[2 * i + 1], s[2 * i + 2], true);
  END LOOP;
  RETURN array_to_string(s, ' ');
END $$;

CREATE FUNCTION prop.reset_settings() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('client_encoding', 'UTF8', true);
  PERFORM set_config('TimeZone', 'UTC', true);
  PERFORM set_config('DateStyle', 'ISO, MDY', true);
  PERFORM set_config('IntervalStyle', 'postgres', true);
  PERFORM set_config('extra_float_digits', '1', true);
  PERFORM set_config('lc_monetary', 'C', true);
  PERFORM set_config('bytea_output', 'hex', true);
END $$;

CREATE FUNCTION prop.cs(rel regclass, cols text[]) RETURNS text LANGUAGE sql AS $$
  SELECT rows || ':' || checksum FROM shift.table_checksum(rel, columns => cols)
$$;

/*
 * One table: returns the checks made, the mutations judged by the oracle,
 * the disagreements, the mutations skipped (they failed), and a report.  fam is the
 * family the table is about (others are drawn at random); mutations is how
 * many value changes to try.
 */
CREATE FUNCTION prop.check_table(seed float8, fam text, mutations int, OUT checks int, OUT judged int,
                                 OUT disagreements int, OUT skipped int, OUT report text)
LANGUAGE plpgsql AS $$
DECLARE
  fams text[];
  f prop.family;
  ncols int;
  nrows int;
  colnames text[] := ARRAY['id'];
  types text[] := ARRAY['int4'];
  eqs boolean[] := ARRAY[true];
  defs text[] := '{}';
  gens text[] := '{}';
  rws text[] := '{}';
  perm int[];
  proj text;
  oracle_sql text;
  cs_a text;
  cs_b text;
  settings text;
  equal boolean;
  same boolean;
  msql text;
  c int;
  r int;
  pick float8;
  fdef prop.family;
  ids int[];
  problems text[] := '{}';
  changed_sample text;
BEGIN
  checks := 0;
  judged := 0;
  disagreements := 0;
  skipped := 0;
  PERFORM setseed(seed);
  nrows := prop.ri(5, 40);
  PERFORM prop.reset_settings();
  DROP TABLE IF EXISTS prop.a, prop.b;
  -- the family, and two to four others
  SELECT array_agg(name ORDER BY random()) INTO fams FROM (SELECT name FROM prop.family WHERE name <> fam ORDER BY random() LIMIT prop.ri(2, 4)) s;
  fams := fam || fams;
  ncols := array_length(fams, 1);
  FOR c IN 1..ncols LOOP
    SELECT * INTO STRICT f FROM prop.family WHERE name = fams[c];
    colnames := colnames || ('c' || c);
    types := types || f.type;
    eqs := eqs || f.eq;
    gens := gens || f.gen;
    rws := rws || f.rw;
    defs := defs || format('c%s %s', c, f.type);
  END LOOP;
  EXECUTE format('CREATE TABLE prop.a (id int PRIMARY KEY, %s)', array_to_string(defs, ', '));
  -- prop.b: the columns in another order, other storage
  SELECT array_agg(i ORDER BY random()) INTO perm FROM generate_series(1, ncols + 1) i;
  EXECUTE format('CREATE TABLE prop.b (%s, PRIMARY KEY (id) DEFERRABLE)',
                 (SELECT string_agg(format('%I %s', colnames[p], types[p]), ', ' ORDER BY o)
                    FROM unnest(perm) WITH ORDINALITY x(p, o)));
  FOR c IN 2..ncols + 1 LOOP
    IF random() < 0.4 AND (SELECT typstorage <> 'p' FROM pg_type WHERE oid = types[c]::regtype) THEN
      EXECUTE format('ALTER TABLE prop.b ALTER COLUMN %I SET STORAGE %s', colnames[c],
                     (ARRAY['EXTERNAL', 'MAIN', 'EXTENDED'])[prop.ri(1, 3)]);
    END IF;
  END LOOP;
  -- rows, some values NULL
  EXECUTE format('INSERT INTO prop.a SELECT g, %s FROM generate_series(1, %s) g',
                 (SELECT string_agg(format('CASE WHEN random() < 0.1 THEN NULL ELSE %s END', gens[i]), ', ')
                    FROM generate_series(1, ncols) i), nrows);
  -- the same values rewritten equal, in another row order
  EXECUTE format('INSERT INTO prop.b (%s) SELECT %s FROM prop.a ORDER BY random()',
                 array_to_string(colnames, ', '),
                 'id, ' || (SELECT string_agg(format('CASE WHEN num_nonnulls(c%s) = 0 THEN NULL ELSE %s END', i,
                                                     replace(rws[i], ':v:', 'c' || i)), ', ')
                              FROM generate_series(1, ncols) i));
  UPDATE prop.last SET ddl_a = format('CREATE TABLE prop.a (id int PRIMARY KEY, %s)', array_to_string(defs, ', ')),
                       cols = colnames, mutation = NULL;

  proj := (SELECT string_agg(CASE WHEN eqs[i] THEN quote_ident(colnames[i]) ELSE quote_ident(colnames[i]) || '::text' END, ', ')
             FROM generate_series(1, ncols + 1) i);
  oracle_sql := format('SELECT NOT EXISTS (SELECT %1$s FROM prop.a EXCEPT ALL SELECT %1$s FROM prop.b)'
                       ' AND NOT EXISTS (SELECT %1$s FROM prop.b EXCEPT ALL SELECT %1$s FROM prop.a)', proj);
  EXECUTE oracle_sql INTO equal;
  IF NOT equal THEN
    RAISE EXCEPTION 'the equal rewrite of % is not equal by the oracle', array_to_string(fams, ', ');
  END IF;
  cs_a := prop.cs('prop.a', colnames);
  settings := prop.set_random_settings();
  cs_b := prop.cs('prop.b', colnames);
  PERFORM prop.reset_settings();
  checks := checks + 1;
  IF cs_a <> cs_b THEN
    disagreements := disagreements + 1;
    problems := problems || format('equal rewrite, checksum differs (under %s)', settings);
  END IF;
  -- through compare too: keyed, bucket sums and the drill-down
  checks := checks + 1;
  IF EXISTS (SELECT FROM shift.compare('prop.a', 'prop.b', columns => colnames)) THEN
    disagreements := disagreements + 1;
    problems := problems || format('equal rewrite, compare finds %s',
                                   (SELECT string_agg(kind || ' ' || key::text, '; ') FROM shift.compare('prop.a', 'prop.b', columns => colnames)));
  END IF;

  SELECT array_agg(id) INTO ids FROM prop.a;
  FOR m IN 1..mutations LOOP
    c := prop.ri(1, ncols)::int;
    r := ids[prop.ri(1, nrows)];
    pick := random();
    SELECT * INTO STRICT fdef FROM prop.family WHERE name = fams[c];
    msql := CASE
      WHEN pick < 0.45 THEN format('UPDATE prop.b SET c%s = %s WHERE id = %s', c,
                                   replace(fdef.mut[prop.ri(1, array_length(fdef.mut, 1))], ':v:', 'c' || c), r)
      WHEN pick < 0.70 THEN format('UPDATE prop.b SET c%s = %s WHERE id = %s', c, fdef.gen, r)
      WHEN pick < 0.78 THEN format('UPDATE prop.b SET c%s = NULL WHERE id = %s', c, r)
      WHEN pick < 0.84 THEN format('DELETE FROM prop.b WHERE id = %s', r)
      WHEN pick < 0.89 THEN format('INSERT INTO prop.b (id, c%s) VALUES (%s, %s)', c, nrows + 1000, fdef.gen)
      WHEN pick < 0.94 THEN format('UPDATE prop.b SET id = CASE id WHEN %1$s THEN %2$s ELSE %1$s END WHERE id IN (%1$s, %2$s)',
                                   r, ids[prop.ri(1, nrows)])
      ELSE format('UPDATE prop.b SET c%1$s = CASE id WHEN %2$s THEN (SELECT c%1$s FROM prop.a WHERE id = %3$s) ELSE (SELECT c%1$s FROM prop.a WHERE id = %2$s) END WHERE id IN (%2$s, %3$s)',
                  c, r, ids[prop.ri(1, nrows)])
    END;
    BEGIN
      EXECUTE msql;
      EXECUTE oracle_sql INTO equal;
      IF random() < 0.5 THEN
        settings := prop.set_random_settings();
      END IF;
      same := cs_a = prop.cs('prop.b', colnames);
      PERFORM prop.reset_settings();
      checks := checks + 1;
      judged := judged + 1;
      IF equal <> same THEN
        disagreements := disagreements + 1;
        problems := problems || format('%s: the oracle says %s, the checksum %s', msql,
                                       CASE WHEN equal THEN 'equal' ELSE 'different' END,
                                       CASE WHEN same THEN 'equal' ELSE 'different' END);
      END IF;
      IF m % 4 = 0 THEN
        checks := checks + 1;
        IF equal = EXISTS (SELECT FROM shift.compare('prop.a', 'prop.b', columns => colnames)) THEN
          disagreements := disagreements + 1;
          problems := problems || format('%s: the oracle says %s, compare disagrees', msql,
                                         CASE WHEN equal THEN 'equal' ELSE 'different' END);
        END IF;
      END IF;
      IF NOT equal AND changed_sample IS NULL AND msql NOT LIKE '%random()%' AND msql NOT LIKE '%prop.r%' THEN
        changed_sample := msql;
      END IF;
      RAISE EXCEPTION USING ERRCODE = 'PSRB0', MESSAGE = 'undo the mutation';
    EXCEPTION
      WHEN SQLSTATE 'PSRB0' THEN
        NULL;
      WHEN OTHERS THEN
        PERFORM prop.reset_settings();
        skipped := skipped + 1;			-- the change itself failed (an overflow, a domain's check)
    END;
  END LOOP;
  UPDATE prop.last SET mutation = changed_sample;
  report := format('%s: %s rows of (%s)%s', fam, nrows, array_to_string(fams, ', '),
                   CASE WHEN cardinality(problems) > 0 THEN E'\n' || array_to_string(problems, E'\n') ELSE '' END);
END $$;
