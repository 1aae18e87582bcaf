"""simplejwt's OutstandingToken.jti is a unique CharField, so on PostgreSQL it carries two
indexes: the unique one, and the `varchar_pattern_ops` one Django adds to every indexed
CharField for `LIKE 'prefix%'` lookups. Token ids are stored hashed and looked up by
equality only (simplejwt, identity.token_rows), and every login and refresh inserts a row:
the second index cost each of them an index insertion and its WAL for nothing
(docs/performance.md, the fifth pass). Dropped in the schema being migrated (every tenant
and the template, from which new tenants are cloned, and the public schema)."""

from django.db import migrations

# Django's name for it (schema_editor._create_index_name(table, ["jti"], suffix="_like"));
# tests/identity/test_token_indexes.py checks that no such index is left.
LIKE_INDEX = "token_blacklist_outstandingtoken_jti_hex_d9bdf6f7_like"


class Migration(migrations.Migration):
    dependencies = [
        ("identity", "0003_ipblock_attempt_ip_index"),
        ("token_blacklist", "0013_alter_blacklistedtoken_options_and_more"),
    ]

    operations = [
        migrations.RunSQL(
            # Schema-qualified: an unqualified name would fall through to the public schema's.
            sql=f"DO $$ BEGIN EXECUTE format('DROP INDEX IF EXISTS %I.%I', current_schema(), '{LIKE_INDEX}'); END $$",
            reverse_sql=(
                f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} ON token_blacklist_outstandingtoken (jti varchar_pattern_ops)"
            ),
        ),
    ]
