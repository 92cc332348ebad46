"""Test URLconf: the tenant URLconf plus audit's routes (until settings wires them), and a
viewset that audits its reads (``audit_reads = True``), standing in for a sensitive resource."""

from django.db.models import QuerySet
from django.urls import include, path
from rest_framework import mixins
from rest_framework.routers import SimpleRouter

from accounts import selectors as account_selectors
from accounts.api.serializers import UserOutputSerializer
from accounts.models import User
from apikit.pagination import CursorPagination
from apikit.viewsets import TenantScopedViewSet
from settings import urls as tenant_urls

AUDITED_USERS_URL = "/api/v1/audited-users/"


class AuditedUserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    model = User
    audit_reads = True
    serializer_class = UserOutputSerializer
    pagination_class = CursorPagination
    cursor_ordering = "email"
    filter_backends = ()

    def scoped_queryset(self) -> QuerySet[User]:
        return account_selectors.user_list()


router = SimpleRouter()
router.register("audited-users", AuditedUserViewSet, basename="audited-user")

urlpatterns = [
    path("api/v1/", include(router.urls)),
    *tenant_urls.urlpatterns,
]

handler404 = tenant_urls.handler404
handler500 = tenant_urls.handler500
