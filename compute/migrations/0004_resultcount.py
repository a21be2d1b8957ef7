"""Exact row counts per kind, kept by triggers: the statistics never count the whole log.

The triggers are the database's own (SQLite: row triggers; PostgreSQL:
statement triggers over transition tables, one upsert per statement even
for a COPY of a million rows), so no writer can forget them. The counts
start from the rows already logged.
"""

from collections.abc import Callable
from typing import Any

from django.db import migrations, models

from ._counting import POSTGRESQL_CREATE, POSTGRESQL_DROP, SQLITE_CREATE, SQLITE_DROP

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
