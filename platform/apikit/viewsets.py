"""The one base class for tenant endpoints. It fixes authentication, tenant membership, role
permissions and object scoping; subclasses only say which rows the user may see."""

from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework.permissions import BasePermission
from rest_framework.viewsets import GenericViewSet

from apikit.permissions import RolePermission, TenantMember

_LOCKED_METHODS = ("get_queryset", "get_object", "get_permissions")


class TenantScopedViewSet(GenericViewSet):
    """Subclasses implement ``scoped_queryset()`` and may add ``extra_permission_classes``.

    ``get_queryset``, ``get_object`` and ``get_permissions`` cannot be overridden (checked when the
    class is created), so no endpoint can forget the tenant, role or scope checks. An object
    outside the user's scope answers 404, exactly like a missing one.
    """

    model: ClassVar[type[Model]]
    extra_permission_classes: ClassVar[tuple[type[BasePermission], ...]] = ()
    required_permissions: ClassVar[dict[str, str | None]] = {}
    lookup_field = "pk"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _LOCKED_METHODS:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}(); implement scoped_queryset() "
                    "or add extra_permission_classes instead."
                )

    def scoped_queryset(self) -> QuerySet[Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement scoped_queryset()")

    def get_permissions(self) -> list[BasePermission]:
        classes: tuple[type[BasePermission], ...] = (
            TenantMember,
            RolePermission,
            *self.extra_permission_classes,
        )
        return [permission() for permission in classes]

    def get_queryset(self) -> QuerySet[Any]:
        return self.scoped_queryset()

    def get_object(self) -> Any:
        queryset = self.filter_queryset(self.get_queryset())
        lookup_url_kwarg = self.lookup_url_kwarg or self.lookup_field
        try:
            obj = queryset.get(**{self.lookup_field: self.kwargs[lookup_url_kwarg]})
        except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
            # Malformed ids (not a UUID) are just as "not found" as ids of other scopes.
            raise Http404 from None
        self.check_object_permissions(self.request, obj)
        return obj
