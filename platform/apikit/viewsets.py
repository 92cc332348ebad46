"""The one base class for tenant endpoints. It fixes authentication, tenant membership, role
permissions, object scoping, idempotent POSTs and ETags; subclasses only say which rows the user
may see and call services for writes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.viewsets import GenericViewSet

from apikit import conditional, idempotency, media
from apikit.ids import parse_uuid
from apikit.models import TenantModel
from apikit.permissions import RolePermission, TenantMember
from apikit.request_context import request_context
from audit.models import AuditEvent
from audit.services import (
    audit_denied_record,
    audit_event_record,
    audit_object_type,
    audit_read_record,
    audit_reads_required,
)

if TYPE_CHECKING:
    from rest_framework.decorators import ViewSetAction  # in the stubs only

_READ_METHODS = frozenset({"GET", "HEAD"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_LOCKED_METHODS = (
    "get_queryset",
    "get_object",
    "get_permissions",
    "get_authenticators",
    "dispatch",
    "initial",
    "as_view",
    "finalize_response",
)
# Set on a POST handler wrapped by ``idempotent_post`` (so as_view() wraps each one once).
_RUNS_IDEMPOTENTLY = "runs_idempotently"

Handler = Callable[..., HttpResponse]


def idempotent_post(handler: Handler) -> Handler:
    """Wrap an action so that a POST carrying an Idempotency-Key runs at most once per (user,
    key) (apikit.idempotency). It runs where DRF calls the action: after authentication,
    permissions and throttles, so the claim knows the user. The action's response is finalized
    (rendered, write audited) inside the idempotency transaction, so the stored response, the
    business rows and the audit event commit together; DRF's own finalize_response then leaves
    it as it is (see ``TenantScopedViewSet.finalize_response``)."""

    @functools.wraps(handler)
    def run(view: TenantScopedViewSet, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(idempotency.HEADER) if request.method == "POST" else None
        if key is None:
            return handler(view, request, *args, **kwargs)

        def respond() -> HttpResponse:
            try:
                response = handler(view, request, *args, **kwargs)
            except Exception as exc:
                response = view.handle_exception(exc)
            finalized: HttpResponse = view.finalize_response(request, response, *args, **kwargs)
            return finalized

        response = idempotency.run_idempotently(request, key=key, handler=respond)
        # Finalized already (or a stored replay, sent back exactly as it was first answered).
        view.finished_response = response
        return response

    setattr(run, _RUNS_IDEMPOTENTLY, True)
    return run


class TenantScopedViewSet(GenericViewSet):
    """Subclasses implement ``scoped_queryset()`` and may add ``extra_permission_classes``.

    ``get_queryset``, ``get_object``, ``get_permissions``, ``get_authenticators``, ``dispatch``,
    ``initial``, ``as_view`` and ``finalize_response`` cannot be overridden (checked when the
    class is created), so no endpoint can forget the tenant, role or scope checks, the audit or
    idempotent POSTs. An object outside the user's scope answers 404, exactly like a missing one.

    Idempotent POSTs use DRF's public hooks only: ``as_view()`` (which builds every route's view,
    router or hand-written) wraps the handler the route maps POST to with ``idempotent_post``,
    so no POST can bypass it.
    """

    model: ClassVar[type[Model]]
    extra_permission_classes: ClassVar[tuple[type[BasePermission], ...]] = ()
    required_permissions: ClassVar[dict[str, str | None]] = {}
    # None: audit reads when the model is marked sensitive (``audit_reads = True`` on the model).
    audit_reads: ClassVar[bool | None] = None
    lookup_field = "pk"
    # Actions may name the fields they changed (names only) for the write's audit event.
    audit_changed_fields: list[str] | None = None
    # The response the idempotent path already finalized (or replayed) for this request.
    finished_response: HttpResponse | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _LOCKED_METHODS:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}(); implement scoped_queryset() "
                    "or add extra_permission_classes instead."
                )

    @classmethod
    def as_view(
        cls, actions: dict[str, str | ViewSetAction[Any]] | None = None, **initkwargs: Any
    ) -> Any:
        """DRF's view function, with the route's POST handler wrapped by ``idempotent_post``
        (whatever its name: ``create``, an extra action, or a hand-written route), and the body
        of an idempotent POST read before DRF parses it: the fingerprint needs the exact bytes,
        and a parser (or the CSRF check on a form) may consume the stream first."""
        post = (actions or {}).get("post")
        if isinstance(post, str):
            handler = getattr(cls, post)
            if not getattr(handler, _RUNS_IDEMPOTENTLY, False):
                # On this class only; wrapping twice is avoided by the marker.
                setattr(cls, post, idempotent_post(handler))
        view = super().as_view(actions, **initkwargs)

        @functools.wraps(view)  # keeps cls, actions, initkwargs and csrf_exempt for routers
        def read_body_first(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "POST" and idempotency.HEADER in request.headers:
                request.body  # noqa: B018  (read now: the fingerprint needs the exact bytes)
            response: HttpResponse = view(request, *args, **kwargs)
            return response

        return read_body_first

    # --- the hook subclasses implement ---------------------------------------------------------

    def scoped_queryset(self) -> QuerySet[Any]:
        """Rows of ``model`` this request's user may see (already tenant-scoped by schema)."""
        raise NotImplementedError(f"{type(self).__name__} must implement scoped_queryset()")

    def hidden_fields(self) -> frozenset[str]:
        """Fields of ``model`` this request's user may not see (the domain's role projection;
        none by default). The view leaves them out of what it fetches and renders; apikit takes
        them out of the ordering allowlist and the filters (asking for one is a 400, like an
        unknown field; apikit.filters) and names them in the ETag (apikit.conditional)."""
        return frozenset()

    def get_renderers(self) -> list[BaseRenderer]:
        """The current action's own media types when it declares them (``apikit.media.produces``:
        a download, an export, a FHIR resource), else the API's JSON."""
        found = media.declared(self)
        if found is None:
            return super().get_renderers()
        return [renderer() for renderer in found.renderer_classes()]

    # --- locked plumbing ---------------------------------------------------------------------------

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

    # --- audit: every successful write, sensitive reads, denials --------------------------------

    def _reads_are_audited(self) -> bool:
        return (
            self.audit_reads if self.audit_reads is not None else audit_reads_required(self.model)
        )

    def paginate_queryset(self, queryset: Any) -> list[Any] | None:
        page: list[Any] | None = super().paginate_queryset(queryset)
        if page is not None and self.request.method in _READ_METHODS and self._reads_are_audited():
            audit_read_record(context=request_context(self.request), model=self.model, objects=page)
        return page

    def check_object_permissions(self, request: Request, obj: Any) -> None:
        super().check_object_permissions(request, obj)
        if request.method in _READ_METHODS and self._reads_are_audited():
            audit_read_record(context=request_context(request), model=type(obj), objects=[obj])

    def permission_denied(
        self, request: Request, message: Any = None, code: Any = None
    ) -> NoReturn:
        # Authenticated refusals only: anonymous traffic must not be able to flood the trail.
        if request.user and request.user.is_authenticated:
            action = (
                _write_action(request, self)
                if request.method in _WRITE_METHODS
                else AuditEvent.Action.READ
            )
            pk = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
            audit_denied_record(
                context=request_context(request),
                action=action,
                model=self.model,
                object_ids=[pk] if pk and parse_uuid(pk) else [],
            )
        super().permission_denied(request, message=message, code=code)

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Response:
        if response is not None and response is self.finished_response:
            return cast(
                Response, response
            )  # finalized inside the idempotency transaction (idempotent_post)
        finalized = super().finalize_response(request, response, *args, **kwargs)
        if request.method in _WRITE_METHODS and 200 <= finalized.status_code < 300:
            self._audit_write(request, finalized)
        return finalized

    def _audit_write(self, request: Request, response: HttpResponse) -> None:
        object_id = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        data = getattr(response, "data", None)
        if object_id is None and isinstance(data, dict):
            object_id = data.get("id")
        audit_event_record(
            context=request_context(request),
            action=_write_action(request, self),
            object_type=audit_object_type(self.model),
            object_ids=[object_id] if object_id and parse_uuid(object_id) else [],
            changed_fields=self.audit_changed_fields or (),
        )

    # --- helpers for actions -----------------------------------------------------------------------

    def detail_response(
        self,
        instance: Any,
        serializer_class: type[BaseSerializer[Any]],
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Serialize one object, with its ETag when it is versioned."""
        response_headers = dict(headers or {})
        if isinstance(instance, TenantModel):
            response_headers["ETag"] = conditional.etag_for(instance, hidden=self.hidden_fields())
        data = serializer_class(instance, context=self.get_serializer_context()).data
        return Response(data, status=status, headers=response_headers)

    def expected_version(self, instance: TenantModel) -> int:
        """The version a write may apply to (If-Match / body ``version``; 412 or 409 if stale)."""
        return conditional.expected_version(self.request, instance, hidden=self.hidden_fields())


class ListMixin:
    """``list``: filtered, paginated, with ``list_serializer_class``."""

    list_serializer_class: ClassVar[type[BaseSerializer[Any]]]
    # Set to fetch a page as dicts of these columns (``queryset.values(...)``) instead of model
    # instances; the list serializer then reads dicts. Instantiating 50 models with their related
    # rows is most of an ORM list request's CPU time. Include every ``ordering_fields`` column:
    # the cursor is read from the last row.
    list_values: ClassVar[tuple[str, ...]] = ()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        view: Any = self
        queryset = view.filter_queryset(view.get_queryset())
        if self.list_values:
            queryset = queryset.values(*self.list_values)
        page = view.paginate_queryset(queryset)
        rows: Iterable[Any] = page if page is not None else queryset
        data = self.list_serializer_class(
            rows, many=True, context=view.get_serializer_context()
        ).data
        if page is not None:
            return view.get_paginated_response(data)
        return Response(data)


class RetrieveMixin:
    """``retrieve``: ``detail_serializer_class`` with ETag; ``If-None-Match`` answers 304."""

    detail_serializer_class: ClassVar[type[BaseSerializer[Any]]]

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        view: Any = self
        instance = view.get_object()
        hidden = view.hidden_fields()
        if isinstance(instance, TenantModel) and conditional.is_not_modified(
            request, instance, hidden=hidden
        ):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = conditional.etag_for(instance, hidden=hidden)
            return not_modified
        return view.detail_response(instance, self.detail_serializer_class)


def _write_action(request: Request, view: TenantScopedViewSet) -> AuditEvent.Action:
    if request.method == "DELETE":
        return AuditEvent.Action.DELETE
    if request.method == "POST" and not view.detail:
        return AuditEvent.Action.CREATE
    return AuditEvent.Action.UPDATE
