"""Exact row counts per kind, kept by triggers: the statistics never count the whole log.

The triggers are the database's own (SQLite: row triggers; PostgreSQL:
statement triggers over transition tables, one upsert per statement even
for a COPY of a million rows), so no writer can forget them. The counts
start from the rows already logged.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations, models

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

SEED = """INSERT INTO compute_resultcount (kind, with_digits, results)
    SELECT kind, precision > 0, count(*) FROM compute_computedresult GROUP BY 1, 2"""


def _run(statements_by_vendor: dict[str, list[str]]) -> Callable[[Any, Any], None]:
    def run(apps: Any, schema_editor: Any) -> None:
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise RuntimeError(
                f"no result-count triggers for {schema_editor.connection.vendor}: "
                "mathsite supports SQLite and PostgreSQL"
            )
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("compute", "0003_fib_mod")]

    operations = [
        migrations.CreateModel(
            name="ResultCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kind", models.CharField(max_length=8)),
                ("with_digits", models.BooleanField()),
                ("results", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kind", "with_digits"), name="unique_result_count"
                    )
                ],
            },
        ),
        migrations.RunPython(
            _run({"sqlite": [SEED, *SQLITE_CREATE], "postgresql": [SEED, *POSTGRESQL_CREATE]}),
            _run({"sqlite": SQLITE_DROP, "postgresql": POSTGRESQL_DROP}),
        ),
    ]
