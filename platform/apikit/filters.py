"""Filtering conventions: FilterSets for fields, an ordering allowlist, explicit search fields.
Invalid values answer 400 (never a 500, never silently ignored)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.request import Request

FILTER_HIDDEN = "You may not filter by this field."


def hidden_fields(view: Any) -> frozenset[str]:
    """The fields the view's user may not see (``TenantScopedViewSet.hidden_fields``)."""
    hidden = getattr(view, "hidden_fields", None)
    return frozenset(hidden()) if callable(hidden) else frozenset()


class StrictOrderingFilter(OrderingFilter):
    """``?ordering=`` accepts only the view's ``ordering_fields`` (an explicit allowlist; ``__all__``
    is refused) less the fields the user may not see, each optionally prefixed with ``-``;
    anything else is a 400. (A cursor carries the ordering column's value of the last row.)"""

    def get_valid_fields(
        self, queryset: QuerySet[Any], view: Any, context: Mapping[str, Any] | None = None
    ) -> list[tuple[str, str]]:
        fields = getattr(view, "ordering_fields", None)
        if fields is None or fields == "__all__":
            return []
        hidden = hidden_fields(view)
        return [(field, field) for field in fields if field not in hidden]

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        requested = [term.strip() for term in raw.split(",") if term.strip()]
        allowed = {name for name, _ in self.get_valid_fields(queryset, view)}
        invalid = [term for term in requested if term.lstrip("-") not in allowed]
        if invalid or not requested:
            choices = ", ".join(sorted(allowed)) or "none"
            raise ValidationError(
                {
                    self.ordering_param: [
                        f"Cannot order by {', '.join(invalid) or raw!r}; use one of: {choices}."
                    ]
                }
            )
        return requested


class ExplicitSearchFilter(SearchFilter):
    """``?search=`` over the view's ``search_fields`` only; views without them ignore it."""


class FilterSetBackend(DjangoFilterBackend):
    """django-filter's backend, skipped when the request names none of the FilterSet's
    parameters: building and validating the FilterSet's form is a large share of an unfiltered
    list request's CPU time, and with no parameter it can only return the queryset unchanged."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not _names_any_filter(request, filterset_class.base_filters):
            return queryset
        _refuse_hidden(request, filterset_class.base_filters, hidden_fields(view))
        return super().filter_queryset(request, queryset, view)


def _refuse_hidden(request: Request, filters: Mapping[str, Any], hidden: frozenset[str]) -> None:
    """A filter on a field the user may not see is a 400: its answer would reveal the values."""
    if not hidden:
        return
    refused = {
        name
        for name, found in filters.items()
        if (name in hidden or str(found.field_name).split("__")[0] in hidden)
        and _names_any_filter(request, {name: found})
    }
    if refused:
        raise ValidationError({name: [FILTER_HIDDEN] for name in sorted(refused)})


def _names_any_filter(request: Request, names: Mapping[str, Any]) -> bool:
    # Range and multi-widget filters read suffixed parameters (``visits_min``, ``date_after``).
    return any(
        key in names or any(key.startswith(f"{name}_") for name in names)
        for key in request.query_params
    )


DEFAULT_FILTER_BACKENDS = (FilterSetBackend, StrictOrderingFilter, ExplicitSearchFilter)
