from rest_framework import serializers

from core.serializers import TokenField
from identity.models import User
from identity.selectors import user_role_names


class LoginSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, trim_whitespace=False)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})
    device_id = serializers.CharField(max_length=128)
    device_name = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    device_type = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


# No max_length on tokens: an oversized token is a malformed one, refused 401 invalid_token
# by identity.tokens (MAX_TOKEN_BYTES), not a 400 about a field.
class RefreshSerializer(serializers.Serializer):
    refresh = TokenField()


class LogoutSerializer(serializers.Serializer):
    refresh = TokenField(required=False)


class TokenUserSerializer(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "roles", "must_change_password"]

    def get_roles(self, user: User) -> list[str]:
        return user_role_names(user)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField(default="Bearer")
    expires_in = serializers.IntegerField()
    session_id = serializers.UUIDField()


class LoginResponseSerializer(TokenPairSerializer):
    user = TokenUserSerializer()


class WhoAmISerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    tenant = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    session_id = serializers.CharField()
    must_change_password = serializers.BooleanField()
    claims = serializers.DictField()
