"""Kinds as data: the log's kind choices come from the registry (a callable, so adding a
kind needs no migration), and a kind's name may be up to 32 characters.

SQLite alters a column by rebuilding its table, which drops the table's
triggers: the result-count triggers of 0004 are dropped before and created
again after, so the counts stay exact. PostgreSQL alters the column in place.
"""

from typing import Any

from django.db import migrations, models

import compute.domain.kinds.registry

from . import _counting


def _sqlite(statements: list[str]) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "sqlite":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("compute", "0004_resultcount")]

    operations = [
        migrations.RunPython(_sqlite(_counting.SQLITE_DROP), _sqlite(_counting.SQLITE_CREATE)),
        migrations.AlterField(
            model_name="computedresult",
            name="kind",
            field=models.CharField(choices=compute.domain.kinds.registry.choices, max_length=32),
        ),
        migrations.AlterField(
            model_name="resultcount",
            name="kind",
            field=models.CharField(max_length=32),
        ),
        migrations.RunPython(_sqlite(_counting.SQLITE_CREATE), _sqlite(_counting.SQLITE_DROP)),
    ]
