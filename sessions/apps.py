from django.apps import AppConfig


class DeviceSessionsConfig(AppConfig):
    name = "sessions"
    # `sessions` is django.contrib.sessions' label; device sessions need their own.
    label = "device_sessions"
    verbose_name = "Device sessions"

    def ready(self) -> None:
        from core import read_ahead
        from sessions.selectors import introspected_token_reads

        read_ahead.register_for_request(introspected_token_reads)
