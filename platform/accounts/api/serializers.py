from rest_framework import serializers

from accounts.models import User
from accounts.roles import Role


class LoginInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    device = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="A registered device of this account (POST /api/v1/sync/devices/): the tokens "
        "then carry its id (claim did) and stop working when the device is revoked.",
    )
    device_token = serializers.CharField(
        max_length=512,
        required=False,
        allow_null=True,
        default=None,
        help_text="The device_token of this client's last successful login of this account "
        "(not the sync device above). Login attempts carrying a valid one are counted apart "
        "from everyone else's, so another party's wrong passwords cannot slow this client's "
        "login down. An invalid or expired one is ignored.",
    )


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class LoginOutputSerializer(TokenPairOutputSerializer):
    device_token = serializers.CharField(
        help_text="Keep it with this account's login on this client and send it with the next "
        "login (valid for LOGIN_DEVICE_TOKEN_DAYS, 90 days by default; each login returns a "
        "new one)."
    )


class RefreshInputSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TenantSummarySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()


class MeOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.CharField()
    tenant = TenantSummarySerializer()


class UserOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "is_active", "date_joined", "updated_at"]
        read_only_fields = fields


class UserCreateInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, required=False, allow_null=True, default=None
    )
    is_active = serializers.BooleanField(default=True)
    full_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class UserPasswordSetInputSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class UserUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
