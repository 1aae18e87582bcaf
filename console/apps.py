from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The admin consoles: the tenant console on tenant hosts and the platform console on the
    public host (console.sites). The apps' admin.py modules register their ModelAdmins there."""

    name = "console"
    verbose_name = "Admin console"
