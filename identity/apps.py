from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class IdentityConfig(AppConfig):
    name = "identity"
    verbose_name = "Identity"

    def ready(self) -> None:
        from core import read_ahead
        from identity import schema  # noqa: F401  # registers the OpenAPI auth extension
        from identity.authentication import access_token_reads
        from identity.models import User
        from identity.security import ip_block_reads
        from identity.tokens import IdpAccessToken

        read_ahead.register(str(IdpAccessToken.token_type), access_token_reads)
        read_ahead.register_for_request(ip_block_reads)

        post_save.connect(_user_row_changed, sender=User, dispatch_uid="identity.user_row_changed")
        post_delete.connect(_user_row_changed, sender=User, dispatch_uid="identity.user_row_deleted")


def _user_row_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Every save or delete of a user retires its row cached for authentication."""
    from identity.user_rows import user_row_changed

    user_row_changed([instance.pk])
