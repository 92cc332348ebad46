from django.apps import AppConfig


class PublicAuditConfig(AppConfig):
    name = "audit.public"
    label = "audit_public"
    verbose_name = "Audit trail of the operators' host"
