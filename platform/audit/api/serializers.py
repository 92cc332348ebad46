from rest_framework import serializers

from audit.models import AuditEvent


class AuditEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "occurred_at",
            "actor_id",
            "actor_email",
            "action",
            "allowed",
            "object_type",
            "object_ids",
            "changed_fields",
            "ip",
            "user_agent",
            "request_id",
            "trace_id",
        ]
        read_only_fields = fields
