from rest_framework import serializers


class SenderInputSerializer(serializers.Serializer):
    from_number = serializers.CharField(max_length=20, required=False, default="", allow_blank=True)
    messaging_service_sid = serializers.CharField(
        max_length=34, required=False, default="", allow_blank=True
    )
    account_sid = serializers.CharField(
        max_length=34,
        required=False,
        default="",
        allow_blank=True,
        help_text="This organisation's own provider account; empty: the deployment's account.",
    )
    auth_token = serializers.CharField(
        max_length=128,
        required=False,
        allow_null=True,
        default=None,
        write_only=True,
        trim_whitespace=False,
        help_text="The account's auth token. Write-only: stored encrypted, never returned (see "
        "auth_token_set). Leave it out to keep the stored one while the account is unchanged.",
    )
    version = serializers.IntegerField(required=False, min_value=1)


class SenderOutputSerializer(serializers.Serializer):
    sender = serializers.ChoiceField(
        choices=["own", "deployment"],
        help_text="own: this organisation's own sender; deployment: the shared default "
        "(its details are the operators' and not shown).",
    )
    id = serializers.UUIDField(allow_null=True)
    from_number = serializers.CharField()
    messaging_service_sid = serializers.CharField()
    account_sid = serializers.CharField()
    auth_token_set = serializers.BooleanField()
    version = serializers.IntegerField(allow_null=True)
    updated_at = serializers.DateTimeField(allow_null=True)
