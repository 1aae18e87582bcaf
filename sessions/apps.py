from django.apps import AppConfig


class DeviceSessionsConfig(AppConfig):
    name = "sessions"
    # `sessions` is django.contrib.sessions' label; device sessions need their own.
    label = "device_sessions"
    verbose_name = "Device sessions"
