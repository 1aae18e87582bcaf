from typing import Any

from rest_framework import serializers

from sessions.models import DeviceSession


class DeviceSessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = DeviceSession
        fields = [
            "id",
            "device_id",
            "device_name",
            "device_type",
            "ip",
            "created_at",
            "last_active_at",
            "current",
            "ended_at",
            "end_reason",
        ]
        read_only_fields = fields
        # Only ended sessions carry these (see to_representation); core.openapi reads this.
        optional_fields = ["ended_at", "end_reason"]

    def get_current(self, session: DeviceSession) -> bool:
        return str(session.pk) == self.context.get("current_session_id")

    def to_representation(self, instance: DeviceSession) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if instance.ended_at is None:  # ended_at and end_reason only for ended sessions
            data.pop("ended_at")
            data.pop("end_reason")
        return data


class RevokeAllSerializer(serializers.Serializer):
    keep_current = serializers.BooleanField(required=False, default=False)
