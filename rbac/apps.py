from django.apps import AppConfig


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Roles and permissions"

    def ready(self) -> None:
        from django.core.checks import Tags, register

        from core import read_ahead
        from identity.tokens import IdpServiceToken
        from rbac import authentication  # registers the service-token OpenAPI extension
        from rbac.checks import view_permissions_check
        from rbac.service_clients import basic_client_reads

        read_ahead.register(str(IdpServiceToken.token_type), authentication.service_token_reads)
        read_ahead.register_for_request(basic_client_reads)

        # Every view of both hosts declares per method who may call it (rbac.checks).
        register(view_permissions_check, Tags.security)
