from rest_framework import serializers

from sync.models import Device


class DeviceCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    platform = serializers.ChoiceField(choices=Device.Platform.choices)


class DeviceOutputSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(read_only=True)
    is_revoked = serializers.BooleanField(read_only=True)

    class Meta:
        model = Device
        fields = [
            "id",
            "user_id",
            "name",
            "platform",
            "created_at",
            "last_seen_at",
            "revoked_at",
            "is_revoked",
        ]
        read_only_fields = fields


class DeviceScopeSerializer(serializers.Serializer):
    all = serializers.BooleanField(help_text="True for tenant_admin: every facility and farm.")
    container_ids = serializers.ListField(child=serializers.UUIDField())
    tables = serializers.ListField(child=serializers.CharField())


class DeviceRegisteredSerializer(DeviceOutputSerializer):
    scope = DeviceScopeSerializer(read_only=True)
    schema_versions = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta(DeviceOutputSerializer.Meta):
        fields = [*DeviceOutputSerializer.Meta.fields, "scope", "schema_versions"]
        read_only_fields = fields


class PullTableChangesSerializer(serializers.Serializer):
    upserted = serializers.ListField(child=serializers.DictField())
    deleted = serializers.ListField(child=serializers.UUIDField())


class PullOutputSerializer(serializers.Serializer):
    """Documents the pull response (built without a serializer, set-wise)."""

    strategy = serializers.ChoiceField(choices=["incremental", "replacement"])
    changes = serializers.DictField(child=PullTableChangesSerializer())
    cursor = serializers.CharField()
    has_more = serializers.BooleanField()
    server_time = serializers.DateTimeField()
    schema_version = serializers.IntegerField()
