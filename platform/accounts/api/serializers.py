from rest_framework import serializers

from accounts.models import Invitation, User
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
        fields = [
            "id",
            "email",
            "full_name",
            "role",
            "is_active",
            "email_verified_at",
            "deactivated_at",
            "version",
            "date_joined",
            "updated_at",
        ]
        read_only_fields = fields


class UserCreateInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, required=False, allow_null=True, default=None
    )
    is_active = serializers.BooleanField(
        default=False,
        help_text="False (the default): the account waits for its owner to follow the "
        "verification link emailed now (which also asks for a password when none is given). "
        "True: active at once, no email.",
    )
    full_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class UserPasswordSetInputSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class UserUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(
        required=False,
        help_text="false deactivates (no emailed link can undo it); true activates.",
    )
    version = serializers.IntegerField(
        required=False,
        help_text="The version the change applies to (409 version_conflict when stale); or "
        "send If-Match with the ETag (412 precondition_failed when stale).",
    )


# --- the account lifecycle by email ------------------------------------------------------------


class InvitationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "full_name",
            "sent_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
            "created_at",
        ]
        read_only_fields = fields


class InvitationCreateInputSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices)
    full_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class InvitationTokenInputSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=128)


class InvitationAcceptInputSerializer(InvitationTokenInputSerializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)
    full_name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=None, allow_null=True
    )


class InvitationLinkOutputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.CharField()
    full_name = serializers.CharField()
    expires_at = serializers.DateTimeField()
    tenant = serializers.CharField(help_text="The organisation's name.")


class UserLinkInputSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)


class VerifyInputSerializer(UserLinkInputSerializer):
    password = serializers.CharField(
        max_length=256,
        trim_whitespace=False,
        required=False,
        allow_null=True,
        default=None,
        help_text="Required when the account has no password yet (password_required).",
    )


class UserLinkOutputSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password_required = serializers.BooleanField()
    tenant = serializers.CharField(help_text="The organisation's name.")


class PasswordResetInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)


class PasswordResetConfirmInputSerializer(UserLinkInputSerializer):
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class PasswordChangeInputSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=256, trim_whitespace=False)
    new_password = serializers.CharField(max_length=256, trim_whitespace=False)


class DetailOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()
