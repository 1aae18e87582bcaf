from django.apps import AppConfig


class RbacConfig(AppConfig):
    name = "rbac"
    verbose_name = "Roles and permissions"

    def ready(self) -> None:
        from django.core.checks import Tags, register

        from rbac import authentication  # noqa: F401  # registers the service-token OpenAPI extension
        from rbac.checks import view_permissions_check

        # Every view of both hosts declares per method who may call it (rbac.checks).
        register(view_permissions_check, Tags.security)
