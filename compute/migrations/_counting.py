"""The result-count triggers (migration 0004), shared with the migrations that must
recreate them (SQLite drops a table's triggers when it rebuilds the table)."""

SQLITE_CREATE = [
    """CREATE TRIGGER compute_result_counted AFTER INSERT ON compute_computedresult
    BEGIN
        INSERT OR IGNORE INTO compute_resultcount (kind, with_digits, results)
            VALUES (NEW.kind, NEW.precision > 0, 0);
        UPDATE compute_resultcount SET results = results + 1
            WHERE kind = NEW.kind AND with_digits = (NEW.precision > 0);
    END""",
    """CREATE TRIGGER compute_result_uncounted AFTER DELETE ON compute_computedresult
    BEGIN
        UPDATE compute_resultcount SET results = results - 1
            WHERE kind = OLD.kind AND with_digits = (OLD.precision > 0);
    END""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS compute_result_counted",
    "DROP TRIGGER IF EXISTS compute_result_uncounted",
]

POSTGRESQL_CREATE = [
    """CREATE FUNCTION compute_result_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO compute_resultcount (kind, with_digits, results)
            SELECT kind, precision > 0, count(*) FROM added GROUP BY 1, 2
        ON CONFLICT (kind, with_digits)
            DO UPDATE SET results = compute_resultcount.results + EXCLUDED.results;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION compute_result_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE compute_resultcount AS c SET results = c.results - gone.results
            FROM (SELECT kind, precision > 0 AS with_digits, count(*) AS results
                  FROM removed GROUP BY 1, 2) AS gone
            WHERE c.kind = gone.kind AND c.with_digits = gone.with_digits;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER compute_result_counted AFTER INSERT ON compute_computedresult
        REFERENCING NEW TABLE AS added FOR EACH STATEMENT
        EXECUTE FUNCTION compute_result_count_added()""",
    """CREATE TRIGGER compute_result_uncounted AFTER DELETE ON compute_computedresult
        REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
        EXECUTE FUNCTION compute_result_count_removed()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS compute_result_counted ON compute_computedresult",
    "DROP TRIGGER IF EXISTS compute_result_uncounted ON compute_computedresult",
    "DROP FUNCTION IF EXISTS compute_result_count_added()",
    "DROP FUNCTION IF EXISTS compute_result_count_removed()",
]
