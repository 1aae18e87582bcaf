from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core plumbing: errors, request ids, health"

    def ready(self) -> None:
        from core import cors, db

        cors.connect_signals()
        db.connect_signals()
