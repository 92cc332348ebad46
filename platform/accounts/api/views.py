"""Auth and user-management endpoints: thin views over accounts.services."""

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api import serializers
from accounts.models import User
from accounts.tokens import refresh_token_revoke, refresh_token_user_id, token_pair_rotate
from apikit.inputs import validated
from apikit.pagination import CursorPagination
from apikit.permissions import TenantMember
from apikit.request_context import request_context
from apikit.viewsets import TenantScopedViewSet


class TokenObtainView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    # Adds the login buckets of apikit.login_guard to the throttle check: attempts per (tenant,
    # client IP, email) and the email's failure delay, or a trusted device's own.
    throttle_scope = "login"

    @extend_schema(
        request=serializers.LoginInputSerializer,
        responses={200: serializers.LoginOutputSerializer},
        summary="Log in with email and password",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.LoginInputSerializer, request.data)
        result = services.auth_login(
            email=data["email"],
            password=data["password"],
            device=data.get("device"),
            device_token=data.get("device_token"),
            context=request_context(request),
        )
        return Response(
            {
                "access": result.pair.access,
                "refresh": result.pair.refresh,
                "device_token": result.device_token,
            }
        )


class TokenRefreshView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def throttle_user_id(self, data: object) -> str | None:
        """Charge a refresh to its user's buckets when its signature and tenant verify, not to
        the anonymous ones (apikit.throttling)."""
        raw = data.get("refresh") if isinstance(data, Mapping) else None
        return refresh_token_user_id(raw_refresh=raw) if isinstance(raw, str) else None

    @extend_schema(
        request=serializers.RefreshInputSerializer,
        responses={200: serializers.TokenPairOutputSerializer},
        summary="Rotate a refresh token (the old one is blacklisted)",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.RefreshInputSerializer, request.data)
        pair = token_pair_rotate(raw_refresh=data["refresh"])
        return Response({"access": pair.access, "refresh": pair.refresh})


class LogoutView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        request=serializers.RefreshInputSerializer,
        responses={204: None},
        summary="Log out: blacklist the refresh token",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.RefreshInputSerializer, request.data)
        refresh_token_revoke(raw_refresh=data["refresh"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    permission_classes = (IsAuthenticated, TenantMember)

    @extend_schema(responses={200: serializers.MeOutputSerializer}, summary="Who am I")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = request.user
        tenant = request.tenant  # type: ignore[attr-defined]
        # Built directly (the serializer documents the shape): this endpoint is called by every
        # client on start-up and is the platform's per-request cost benchmark.
        body = {
            "id": str(user.pk),
            "email": user.email,  # type: ignore[union-attr]
            "full_name": user.full_name,  # type: ignore[union-attr]
            "role": user.role,  # type: ignore[union-attr]
            "tenant": {"slug": tenant.slug, "name": tenant.name, "kind": tenant.kind},
        }
        return Response(body)


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Staff accounts of this tenant; tenant_admin only."""

    model = User
    serializer_class = serializers.UserOutputSerializer
    pagination_class = CursorPagination
    cursor_ordering = "email"
    required_permissions = {
        "deactivate": "accounts.change_user",
        "set_password": "accounts.change_user",
    }

    def scoped_queryset(self) -> QuerySet[User]:
        return selectors.user_list()

    @extend_schema(
        request=serializers.UserCreateInputSerializer,
        responses={201: serializers.UserOutputSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.UserCreateInputSerializer, request.data)
        user = services.user_create(**data)
        return Response(serializers.UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.UserUpdateInputSerializer,
        responses={200: serializers.UserOutputSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = self.get_object()
        data = validated(serializers.UserUpdateInputSerializer, request.data)
        user = services.user_update(user=user, **data)
        return Response(serializers.UserOutputSerializer(user).data)

    @extend_schema(request=None, responses={200: serializers.UserOutputSerializer})
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = services.user_deactivate(user=self.get_object())
        return Response(serializers.UserOutputSerializer(user).data)

    @extend_schema(
        request=serializers.UserPasswordSetInputSerializer,
        responses={200: serializers.UserOutputSerializer},
        summary="Set a user's password (ends every session and token the user holds)",
    )
    @action(detail=True, methods=["post"], url_path="set-password")
    def set_password(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = self.get_object()
        data = validated(serializers.UserPasswordSetInputSerializer, request.data)
        user = services.user_password_set(user=user, password=data["password"])
        self.audit_changed_fields = ["password"]
        return Response(serializers.UserOutputSerializer(user).data)
