"""audit/events/: the tenant's audit trail, read-only, for tenant_admin (audit.view_auditevent)."""

from django.db.models import QuerySet
from rest_framework import mixins

from apikit.filters import FilterSetBackend
from apikit.pagination import CursorPagination
from apikit.viewsets import TenantScopedViewSet
from audit import selectors
from audit.api.filters import AuditEventFilter
from audit.api.serializers import AuditEventOutputSerializer
from audit.models import AuditEvent


class AuditEventViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """List and retrieve only: there is no route that changes or deletes an event. Reads of the
    trail are not themselves audited (they hold no patient data)."""

    model = AuditEvent
    serializer_class = AuditEventOutputSerializer
    pagination_class = CursorPagination
    # UUIDv7 ids are unique and time-ordered: newest first, stable under concurrent inserts.
    cursor_ordering = "-id"
    # The cursor fixes the order, so no ordering or search backends.
    filter_backends = (FilterSetBackend,)
    filterset_class = AuditEventFilter

    def scoped_queryset(self) -> QuerySet[AuditEvent]:
        # The whole tenant's trail: the role check (audit.view_auditevent) is the scope.
        return selectors.audit_event_list()
