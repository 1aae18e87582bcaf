"""simplejwt's token table carries only the indexes its lookups use (identity migration 0004)."""

import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

pytestmark = pytest.mark.django_db


def indexes_of_outstanding_tokens(schema: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            [schema, OutstandingToken._meta.db_table],
        )
        return dict(cursor.fetchall())


@pytest.mark.parametrize("schema", ["public", settings.TENANT_BASE_SCHEMA, "acme"])
def test_token_ids_have_their_unique_index_and_no_pattern_index(schema):
    indexes = indexes_of_outstanding_tokens(schema)

    assert any("UNIQUE" in definition and "(jti)" in definition for definition in indexes.values())
    assert not [name for name, definition in indexes.items() if "pattern_ops" in definition]
    assert len(indexes) == 3  # the primary key, the unique token id, the user (a foreign key)
