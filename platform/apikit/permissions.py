"""Permission classes every tenant endpoint gets from the base viewset."""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

_ACTION_BY_METHOD = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class TenantMember(BasePermission):
    """Only on a tenant host, only for that tenant's users (users live in the tenant schema, and
    JWTs are checked against the host's tenant at authentication)."""

    message = "Log in with an account of this organisation."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return getattr(request, "tenant", None) is not None and bool(
            request.user and request.user.is_authenticated
        )


class RolePermission(BasePermission):
    """The user's role must grant the model permission for the action (accounts.roles).

    A view may name the permission per action in ``required_permissions`` (action -> perm);
    otherwise the HTTP method maps to view/add/change/delete on the view's model.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        required = required_permission(request=request, view=view)
        return required is None or request.user.has_perm(required)


def required_permission(*, request: Request, view: Any) -> str | None:
    explicit: dict[str, str | None] = getattr(view, "required_permissions", {})
    action = getattr(view, "action", None)
    if action in explicit:
        return explicit[action]
    model = view.model
    verb = _ACTION_BY_METHOD.get(request.method or "GET", "change")
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"
