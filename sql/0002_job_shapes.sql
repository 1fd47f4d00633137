-- 0002_job_shapes: what each job's table was last made to look like, and the functions that
-- evolve a table from its own copy of the records (data jsonb) when the job file changes.
--
-- keapsync.map_<type>(v jsonb) converts one JSON value exactly as engine/map/map.c writes it
-- into a column of that type, and returns NULL wherever map.c would store NULL (a missing
-- value, JSON null, or a mismatch). keapsync.json_select(...) is a path's "[key=value]"
-- selector. store_evolve_sql_value (engine/store/evolve.c) writes the expressions that use
-- them; tests/unit/test_store.c checks them against map.c value by value.

-- A job's shape: {"table", "id": {"path", "type"}, "parent_col", "columns": [{"name",
-- "path", "type"}]} with SQL type names; written in the transaction that applies a change.
CREATE TABLE keapsync.jobs (
    job        text PRIMARY KEY,
    shape      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The double cJSON (strtod) reads from a JSON number: overflow is an infinity, underflow 0.
-- NULL for anything that is not a number.
CREATE FUNCTION keapsync.json_float8(v jsonb) RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n numeric;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) <> 'number' THEN
        RETURN NULL;
    END IF;
    n := v::numeric;
    IF n = 0 OR abs(n) BETWEEN 1e-300 AND 1e300 THEN
        RETURN n::float8;
    END IF;
    BEGIN
        RETURN n::float8;
    EXCEPTION WHEN numeric_value_out_of_range THEN
        IF abs(n) > 1 THEN
            RETURN sign(n)::float8 * 'Infinity'::float8;
        END IF;
        RETURN 0::float8;
    END;
END $$;

-- The double base_parse_double reads from a string map.c's numeric_text accepted, or NULL
-- when strtod reports a range error (overflow, underflow, subnormal).
CREATE FUNCTION keapsync.text_float8(s text) RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    f float8;
    e text;
BEGIN
    e := substring(s from '[eE]([+-]?[0-9]+)$');
    IF octet_length(s) <= 100 AND (e IS NULL OR (length(e) <= 4 AND abs(e::int) <= 200)) THEN
        f := s::float8; -- |value| within 10^-300 .. 10^300: never a range error
    ELSE
        BEGIN
            f := s::float8;
        EXCEPTION WHEN numeric_value_out_of_range THEN
            RETURN NULL;
        END;
    END IF;
    IF f <> 0 AND abs(f) < 2.2250738585072014e-308 THEN
        RETURN NULL;
    END IF;
    RETURN f;
END $$;

-- The exact decimal value of a finite double.
CREATE FUNCTION keapsync.float8_exact(d float8) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bits bigint := ('x' || encode(float8send(d), 'hex'))::bit(64)::bigint;
    e int := ((bits >> 52) & 2047)::int;
    m numeric := (bits & 4503599627370495)::numeric;
    k int;
    base numeric;
    p numeric := 1;
BEGIN
    IF e = 0 THEN
        e := 1; -- subnormal
    ELSE
        m := m + 4503599627370496;
    END IF;
    e := e - 1075;
    k := abs(e);
    base := CASE WHEN e >= 0 THEN 2 ELSE 5 END;
    WHILE k > 0 LOOP
        IF k & 1 = 1 THEN
            p := p * base;
        END IF;
        base := base * base;
        k := k >> 1;
    END LOOP;
    IF e >= 0 THEN
        m := m * p;
    ELSE
        m := m * p * ('1e' || e)::numeric; -- m * 2^e = m * 5^-e * 10^e, all exact
    END IF;
    RETURN CASE WHEN bits < 0 THEN -m ELSE m END;
END $$;

-- printf's "%.<p>g" of x (exact, not zero), rounding half away from zero.
CREATE FUNCTION keapsync.format_g(x numeric, p int) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    a numeric := abs(x);
    e int;
    r numeric;
    ds text;
    res text;
BEGIN
    IF trunc(a) > 0 THEN
        e := length(trunc(a)::text) - 1;
    ELSE
        e := -(length(substring(a::text from '^0\.(0*)')) + 1);
    END IF;
    r := round(a, p - 1 - e);
    IF r >= ('1e' || (e + 1))::numeric THEN
        e := e + 1;
    END IF;
    ds := rtrim(ltrim(replace(r::text, '.', ''), '0'), '0');
    IF e < -4 OR e >= p THEN
        res := substr(ds, 1, 1) || CASE WHEN length(ds) > 1 THEN '.' || substr(ds, 2) ELSE '' END
            || 'e' || CASE WHEN e < 0 THEN '-' ELSE '+' END || CASE WHEN abs(e) < 10 THEN '0' ELSE '' END || abs(e)::text;
    ELSIF e >= 0 THEN
        IF length(ds) <= e + 1 THEN
            res := rpad(ds, e + 1, '0');
        ELSE
            res := substr(ds, 1, e + 1) || '.' || substr(ds, e + 2);
        END IF;
    ELSE
        res := '0.' || repeat('0', -e - 1) || ds;
    END IF;
    RETURN CASE WHEN x < 0 THEN '-' || res ELSE res END;
END $$;

-- map.c's format_double: integers below 2^53 plainly, else the shorter of %.15g and %.17g
-- that reads back as d. NULL for an infinity.
CREATE FUNCTION keapsync.format_double(d float8) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    n15 numeric;
BEGIN
    IF d IS NULL OR d IN ('Infinity'::float8, '-Infinity'::float8) OR d = 'NaN'::float8 THEN
        RETURN NULL;
    END IF;
    IF d = floor(d) AND abs(d) < 9007199254740992 THEN
        RETURN d::bigint::text;
    END IF;
    -- PostgreSQL converts through "%.15g". map.c reads it back with base_parse_double, which
    -- refuses what strtod reports out of range: any subnormal, and anything above DBL_MAX.
    n15 := d::numeric;
    IF abs(d) >= 2.2250738585072014e-308 AND abs(n15) <= 1.7976931348623157081452742373170e308
       AND n15::float8 = d THEN
        RETURN keapsync.format_g(n15, 15);
    END IF;
    RETURN keapsync.format_g(keapsync.float8_exact(d), 17);
END $$;

-- A path's "[key=value]" step: the first element of array v that is an object whose member
-- key is the string str, or a number equal to num (NULL when value is not a number).
CREATE FUNCTION keapsync.json_select(v jsonb, key text, str text, num float8) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT x FROM jsonb_array_elements(CASE WHEN jsonb_typeof(v) = 'array' THEN v END)
                  WITH ORDINALITY AS a(x, n)
    WHERE jsonb_typeof(x) = 'object'
      AND CASE jsonb_typeof(x -> key)
              WHEN 'string' THEN (x ->> key) COLLATE "C" = str COLLATE "C"
              WHEN 'number' THEN num IS NOT NULL AND keapsync.json_float8(x -> key) = num
              ELSE false
          END
    ORDER BY n
    LIMIT 1
$$;

-- text: strings as they are, booleans and numbers as their JSON text (format_double).
CREATE FUNCTION keapsync.map_text(v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'string', 'boolean' THEN
        RETURN v #>> '{}';
    WHEN 'number' THEN
        RETURN keapsync.format_double(keapsync.json_float8(v));
    ELSE
        RETURN NULL;
    END CASE;
END $$;

-- bigint: integral numbers in range (read as a double first), or strings -?[0-9]+.
CREATE FUNCTION keapsync.map_bigint(v jsonb) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d float8;
    s text;
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'number' THEN
        d := keapsync.json_float8(v);
        IF d = trunc(d) THEN
            IF d >= -9223372036854775808::float8 AND d < 9223372036854775808::float8 THEN
                RETURN d::bigint;
            END IF;
        END IF;
    WHEN 'string' THEN
        s := v #>> '{}';
        IF s ~ '^-?[0-9]+$' AND octet_length(s) <= 20 THEN
            IF s::numeric BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
                RETURN s::bigint;
            END IF;
        END IF;
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END $$;

-- map.c's numeric_text: a decimal number as a string, finite, at most 256 bytes.
CREATE FUNCTION keapsync.numeric_text(s text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF octet_length(s) > 256 OR s !~ '^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
        RETURN false;
    END IF;
    RETURN keapsync.text_float8(s) IS NOT NULL;
END $$;

CREATE FUNCTION keapsync.map_double(v jsonb) RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d float8;
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'number' THEN
        d := keapsync.json_float8(v);
        IF d NOT IN ('Infinity'::float8, '-Infinity'::float8) THEN
            RETURN d;
        END IF;
    WHEN 'string' THEN
        IF keapsync.numeric_text(v #>> '{}') THEN
            RETURN (v #>> '{}')::float8;
        END IF;
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END $$;

CREATE FUNCTION keapsync.map_numeric(v jsonb) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'number' THEN
        RETURN keapsync.format_double(keapsync.json_float8(v))::numeric;
    WHEN 'string' THEN
        IF keapsync.numeric_text(v #>> '{}') THEN
            RETURN (v #>> '{}')::numeric;
        END IF;
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END $$;

-- boolean: true/false, or the numbers 0 and 1.
CREATE FUNCTION keapsync.map_boolean(v jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d float8;
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'boolean' THEN
        RETURN v::boolean;
    WHEN 'number' THEN
        d := keapsync.json_float8(v);
        IF d = 0 OR d = 1 THEN
            RETURN d = 1;
        END IF;
    ELSE
        NULL;
    END CASE;
    RETURN NULL;
END $$;

-- base_time_parse: "YYYY-MM-DDTHH:MM:SS[.fff...]" ("T", "t" or a space), then "Z", "z",
-- "+hh", "+hhmm" or "+hh:mm" (or "-"), or no zone (UTC); milliseconds kept, the rest cut.
CREATE FUNCTION keapsync.parse_time(s text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m text[];
    y int; mo int; d int; h int; mi int; sec int; ms int; oh int := 0; om int := 0;
    sgn int := 0;
    dim int;
BEGIN
    m := regexp_match(s, '^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})'
                         '(?:[.,]([0-9]+))?(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?$');
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    y := m[1]::int; mo := m[2]::int; d := m[3]::int;
    h := m[4]::int; mi := m[5]::int; sec := m[6]::int;
    ms := coalesce(rpad(substr(m[7], 1, 3), 3, '0')::int, 0);
    IF m[8] IS NOT NULL THEN
        sgn := CASE WHEN m[8] = '-' THEN -1 ELSE 1 END;
        oh := m[9]::int;
        om := coalesce(m[10]::int, 0);
    END IF;
    IF mo < 1 OR mo > 12 THEN
        RETURN NULL;
    END IF;
    dim := (ARRAY[31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[mo];
    IF mo = 2 AND ((y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0) THEN
        dim := 29;
    END IF;
    IF d < 1 OR d > dim OR h > 23 OR mi > 59 OR sec > 60 OR oh > 23 OR om > 59 THEN
        RETURN NULL;
    END IF;
    RETURN (make_timestamp(CASE WHEN y = 0 THEN -1 ELSE y END, mo, d, h, mi, 0)
            + ((sec * 1000 + ms) - sgn * (oh * 3600 + om * 60) * 1000) * interval '1 millisecond')
           AT TIME ZONE 'UTC';
END $$;

CREATE FUNCTION keapsync.map_timestamptz(v jsonb) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN keapsync.parse_time(v #>> '{}') END
$$;

-- date: "YYYY-MM-DD" naming a real day as it is, or a timestamp's UTC day.
CREATE FUNCTION keapsync.map_date(v jsonb) RETURNS date
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text;
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RETURN NULL;
    END IF;
    s := v #>> '{}';
    IF s ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' AND keapsync.parse_time(s || 'T00:00:00Z') IS NOT NULL THEN
        RETURN s::date;
    END IF;
    RETURN (keapsync.parse_time(s) AT TIME ZONE 'UTC')::date;
END $$;

-- A JSON number as cJSON prints it (map.c writes jsonb columns through cJSON_Print): an
-- infinity as null, an integral int32 plainly, else "%1.15g" when it reads back within
-- DBL_EPSILON (cJSON's compare_double), else "%1.17g".
CREATE FUNCTION keapsync.json_number(v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    d float8 := keapsync.json_float8(v);
    n15 numeric;
    back float8;
    close boolean;
BEGIN
    IF d IN ('Infinity'::float8, '-Infinity'::float8) THEN
        RETURN 'null'::jsonb;
    END IF;
    IF d = trunc(d) AND d BETWEEN -2147483648 AND 2147483647 THEN
        RETURN to_jsonb(d::int);
    END IF;
    n15 := d::numeric; -- "%.15g"
    IF abs(n15) > 1.7976931348623157081452742373170e308 THEN
        RETURN to_jsonb(n15); -- reads back as an infinity, which compare_double takes
    END IF;
    back := n15::float8;
    -- Below DBL_MIN the product is 0 in C (and an underflow error here): equality only.
    IF greatest(abs(back), abs(d)) < 2.2250738585072014e-308 THEN
        close := back = d;
    ELSE
        close := abs(back - d) <= greatest(abs(back), abs(d)) * 2.220446049250313e-16;
    END IF;
    IF close THEN
        RETURN to_jsonb(n15);
    END IF;
    RETURN to_jsonb(keapsync.format_g(keapsync.float8_exact(d), 17)::numeric);
END $$;

-- v printed by cJSON and read back: numbers as json_number, the rest as it is.
CREATE FUNCTION keapsync.json_print(v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    CASE jsonb_typeof(v)
    WHEN 'number' THEN
        RETURN keapsync.json_number(v);
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(keapsync.json_print(x) ORDER BY n), '[]'::jsonb)
                FROM jsonb_array_elements(v) WITH ORDINALITY AS a(x, n));
    WHEN 'object' THEN
        RETURN (SELECT coalesce(jsonb_object_agg(k, keapsync.json_print(x)), '{}'::jsonb)
                FROM jsonb_each(v) AS e(k, x));
    ELSE
        RETURN v;
    END CASE;
END $$;

-- jsonb: any value but JSON null, as cJSON prints it.
CREATE FUNCTION keapsync.map_jsonb(v jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(v) <> 'null' THEN keapsync.json_print(v) END
$$;
