"""Auth and user-management endpoints: thin views over accounts.services."""

from collections.abc import Mapping
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api import serializers
from accounts.api.throttling import PasswordResetThrottle
from accounts.models import Invitation, User
from accounts.tokens import refresh_token_revoke, refresh_token_user_id, token_pair_rotate
from apikit import conditional
from apikit.inputs import validated
from apikit.pagination import CursorPagination
from apikit.permissions import TenantMember
from apikit.request_context import request_context
from apikit.throttling import TenantRateThrottle
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


def _versioned(user: User) -> Any:
    """apikit.conditional reads only ``version`` (typed for TenantModel, which User is not)."""
    return user


def user_detail_response(user: User, *, status_code: int = 200) -> Response:
    """The user with its ETag (``W/"<version>"``, apikit.conditional)."""
    return Response(
        serializers.UserOutputSerializer(user).data,
        status=status_code,
        headers={"ETag": conditional.etag_for(_versioned(user))},
    )


class UserViewSet(
    mixins.ListModelMixin,
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
        "send_verification": "accounts.change_user",
    }

    def scoped_queryset(self) -> QuerySet[User]:
        return selectors.user_list()

    @extend_schema(responses={200: serializers.UserOutputSerializer})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        """One user, with ``ETag``; ``If-None-Match`` with it answers 304."""
        user = self.get_object()
        if conditional.is_not_modified(request, _versioned(user)):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = conditional.etag_for(_versioned(user))
            return not_modified
        return user_detail_response(user)

    @extend_schema(
        request=serializers.UserCreateInputSerializer,
        responses={201: serializers.UserOutputSerializer},
        summary="Create a staff account (inactive until its owner follows the emailed "
        "verification link, unless is_active is true)",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.UserCreateInputSerializer, request.data)
        user = services.user_create(**data)
        return user_detail_response(user, status_code=status.HTTP_201_CREATED)

    @extend_schema(
        request=serializers.UserUpdateInputSerializer,
        responses={200: serializers.UserOutputSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        user = self.get_object()
        expected = conditional.expected_version(request, _versioned(user))
        data = validated(serializers.UserUpdateInputSerializer, request.data)
        data.pop("version", None)  # checked above and, atomically, by the service
        user = services.user_update(user=user, expected_version=expected, **data)
        self.audit_changed_fields = list(data)
        return user_detail_response(user)

    @extend_schema(request=None, responses={200: serializers.UserOutputSerializer})
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Deactivate a staff account: it can no longer log in and its tokens stop working."""
        user = services.user_deactivate(user=self.get_object())
        self.audit_changed_fields = ["is_active", "deactivated_at"]
        return user_detail_response(user)

    @extend_schema(
        request=None,
        responses={202: serializers.DetailOutputSerializer},
        summary="Email the user a new verification link (409 when verified or deactivated)",
    )
    @action(detail=True, methods=["post"], url_path="send-verification")
    def send_verification(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.user_verification_send(user=self.get_object())
        return Response(
            {"detail": "A verification link is on its way."}, status=status.HTTP_202_ACCEPTED
        )

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
        return user_detail_response(user)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Invitations to join this tenant; tenant_admin only (the user-management permissions)."""

    model = Invitation
    serializer_class = serializers.InvitationOutputSerializer
    pagination_class = CursorPagination
    cursor_ordering = "-created_at"
    required_permissions = {
        "list": "accounts.view_user",
        "retrieve": "accounts.view_user",
        "create": "accounts.add_user",
        "resend": "accounts.change_user",
        "revoke": "accounts.change_user",
    }

    def scoped_queryset(self) -> QuerySet[Invitation]:
        return selectors.invitation_list()

    @extend_schema(
        request=serializers.InvitationCreateInputSerializer,
        responses={201: serializers.InvitationOutputSerializer},
        summary="Invite someone by email (409 email_taken / invitation_pending)",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.InvitationCreateInputSerializer, request.data)
        invitation = services.invitation_create(**data, invited_by=self.request_user())
        return Response(
            serializers.InvitationOutputSerializer(invitation).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=None,
        responses={200: serializers.InvitationOutputSerializer},
        summary="Send the invitation again with a new link (the previous link stops working)",
    )
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        invitation = services.invitation_resend(
            invitation=self.get_object(), invited_by=self.request_user()
        )
        self.audit_changed_fields = ["token_hash", "sent_at", "expires_at"]
        return Response(serializers.InvitationOutputSerializer(invitation).data)

    @extend_schema(request=None, responses={200: serializers.InvitationOutputSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke a pending invitation: its link stops working."""
        invitation = services.invitation_revoke(invitation=self.get_object())
        self.audit_changed_fields = ["revoked_at"]
        return Response(serializers.InvitationOutputSerializer(invitation).data)

    def request_user(self) -> User | None:
        user = self.request.user
        return user if isinstance(user, User) else None


# --- links followed from account emails, and the signed-in user's password ---------------------


class OnTenantHost(BasePermission):
    """Anyone, on a tenant's host (the links and the reset request act in that tenant only)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return getattr(request, "tenant", None) is not None


def _tenant_name(request: Request) -> str:
    return str(request.tenant.name)  # type: ignore[attr-defined]


class LinkView(APIView):
    """A link from an account email: GET checks it (it changes nothing, so a mail scanner
    fetching the link uses nothing up), POST acts on it. Anonymous; the anonymous throttles
    apply."""

    authentication_classes = ()
    permission_classes = (OnTenantHost,)


class InvitationAcceptView(LinkView):
    @extend_schema(
        parameters=[serializers.InvitationTokenInputSerializer],
        responses={200: serializers.InvitationLinkOutputSerializer},
        summary="Check an invitation link (400 link_invalid when unknown, used or expired)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.InvitationTokenInputSerializer, request.query_params)
        invitation = services.invitation_for_token(token=data["token"])
        return Response(
            {
                "email": invitation.email,
                "role": invitation.role,
                "full_name": invitation.full_name,
                "expires_at": invitation.expires_at,
                "tenant": _tenant_name(request),
            }
        )

    @extend_schema(
        request=serializers.InvitationAcceptInputSerializer,
        responses={201: serializers.UserOutputSerializer},
        summary="Accept an invitation: set a password; the account is active at once",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.InvitationAcceptInputSerializer, request.data)
        user = services.invitation_accept(
            token=data["token"],
            password=data["password"],
            full_name=data.get("full_name"),
            context=request_context(request),
        )
        return Response(serializers.UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class VerifyView(LinkView):
    @extend_schema(
        parameters=[serializers.UserLinkInputSerializer],
        responses={200: serializers.UserLinkOutputSerializer},
        summary="Check a verification link (400 link_invalid when unknown, used or expired)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.UserLinkInputSerializer, request.query_params)
        user = services.user_for_verification_link(uid=data["uid"], token=data["token"])
        return Response(
            {
                "email": user.email,
                "password_required": not user.has_usable_password(),
                "tenant": _tenant_name(request),
            }
        )

    @extend_schema(
        request=serializers.VerifyInputSerializer,
        responses={200: serializers.DetailOutputSerializer},
        summary="Verify the email address (and set a password if none): the account is active",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.VerifyInputSerializer, request.data)
        services.user_verify(
            uid=data["uid"],
            token=data["token"],
            password=data.get("password"),
            context=request_context(request),
        )
        return Response({"detail": "Your address is verified; you can log in."})


class PasswordResetView(APIView):
    authentication_classes = ()
    permission_classes = (OnTenantHost,)
    # The anonymous buckets, plus requests per (tenant, client IP, email).
    throttle_classes = (TenantRateThrottle, PasswordResetThrottle)

    @extend_schema(
        request=serializers.PasswordResetInputSerializer,
        responses={202: serializers.DetailOutputSerializer},
        summary="Email a password reset link (the same answer whether the email exists or not)",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.PasswordResetInputSerializer, request.data)
        services.password_reset_request(email=data["email"])
        return Response(
            {"detail": services.RESET_REQUESTED_DETAIL}, status=status.HTTP_202_ACCEPTED
        )


class PasswordResetConfirmView(LinkView):
    @extend_schema(
        parameters=[serializers.UserLinkInputSerializer],
        responses={200: serializers.UserLinkOutputSerializer},
        summary="Check a password reset link (400 link_invalid when unknown, used or expired)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.UserLinkInputSerializer, request.query_params)
        user = services.user_for_reset_link(uid=data["uid"], token=data["token"])
        return Response(
            {"email": user.email, "password_required": True, "tenant": _tenant_name(request)}
        )

    @extend_schema(
        request=serializers.PasswordResetConfirmInputSerializer,
        responses={200: serializers.DetailOutputSerializer},
        summary="Set a new password from a reset link (every session of the account ends)",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.PasswordResetConfirmInputSerializer, request.data)
        services.password_reset_confirm(
            uid=data["uid"],
            token=data["token"],
            password=data["password"],
            context=request_context(request),
        )
        return Response({"detail": "Your password is changed; log in with it."})


class PasswordChangeView(APIView):
    permission_classes = (IsAuthenticated, TenantMember)

    @extend_schema(
        request=serializers.PasswordChangeInputSerializer,
        responses={200: serializers.TokenPairOutputSerializer},
        summary="Change your password (old one required): every other session ends; the "
        "answer holds a new token pair for this client",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.PasswordChangeInputSerializer, request.data)
        pair = services.password_change(
            user=request.user,  # type: ignore[arg-type]
            old_password=data["old_password"],
            new_password=data["new_password"],
            context=request_context(request),
        )
        return Response({"access": pair.access, "refresh": pair.refresh})
