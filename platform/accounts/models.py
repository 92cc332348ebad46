"""User accounts. The same table exists in public (platform operators) and in every tenant schema
(that tenant's staff): a user belongs to exactly one realm."""

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.hashers import acheck_password, check_password, make_password
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.db.models import F

from accounts.roles import Role
from apikit.ids import new_id


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        """An active account takes one of the tenant plan's seats (accounts.seats), as on every
        other path; this one is ``createsuperuser``'s, e.g. run in a tenant's schema."""
        from accounts.seats import user_seat_reserve  # accounts.seats imports this module

        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        with transaction.atomic(using=self._db):
            if user.is_active:
                user_seat_reserve()
            user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        """Platform operators (public schema) only: `manage.py createsuperuser`."""
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("is_active", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    # Blank for platform operators in the public schema; one of Role in a tenant schema.
    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    # Whether the account may sign in. False for two different reasons, told apart by the two
    # dates below: not verified yet (``email_verified_at`` unset, no ``deactivated_at``), or
    # switched off by an admin (``deactivated_at`` set). Only an admin clears a deactivation: no
    # emailed link (verification, invitation, password reset) ever activates such an account.
    is_active = models.BooleanField(default=False)
    # When the user proved they read mail at ``email`` (a verification link, an accepted
    # invitation or a password reset). Part of the verification token's key, so a link works once.
    email_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every stored password change: tokens carry it (claim ``cv``) and stop working
    # once it moves on (accounts.authentication, accounts.tokens).
    credentials_version = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    # Optimistic locking for the user detail (ETag, If-Match, body ``version``), as on TenantModel:
    # every service write bumps it with F("version") + 1.
    version = models.PositiveIntegerField(default=1, db_default=1, editable=False)

    objects: ClassVar[UserManager] = UserManager()

    # True from set_password() / set_unusable_password() until save() stores the new password.
    _credentials_changed: bool = False

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def set_password(self, raw_password: str | None) -> None:
        super().set_password(raw_password)
        self._credentials_changed = True

    def set_unusable_password(self) -> None:
        super().set_unusable_password()
        self._credentials_changed = True

    def check_password(self, raw_password: str | None) -> bool:
        return check_password(raw_password, self.password, self._upgrade_password_hash)

    async def acheck_password(self, raw_password: str | None) -> bool:
        return await acheck_password(raw_password, self.password, self._aupgrade_password_hash)

    def _upgrade_password_hash(self, raw_password: str) -> None:
        """The same password hashed with the current hasher or parameters, at login: not a
        credentials change, so it goes around set_password() and ends no session."""
        self.password = make_password(raw_password)
        self.save(update_fields=["password"])

    async def _aupgrade_password_hash(self, raw_password: str) -> None:
        self.password = make_password(raw_password)
        await self.asave(update_fields=["password"])

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Storing a password set since the last save (not a hash upgrade) bumps
        ``credentials_version`` and ends the user's sessions and tokens, in the same
        transaction (accounts.services.user_sessions_end). The admin's forms, ``changepassword``
        and the services all come through here."""
        update_fields = kwargs.get("update_fields")
        stores_change = self._credentials_changed and (
            update_fields is None or "password" in update_fields
        )
        if not stores_change or self._state.adding:
            super().save(*args, **kwargs)
            if stores_change:
                self._credentials_changed = False  # a new account has no session to end
            return
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "credentials_version"}
        previous = self.credentials_version
        self.credentials_version = F("credentials_version") + 1
        try:
            with transaction.atomic(using=kwargs.get("using")):
                super().save(*args, **kwargs)
                self.refresh_from_db(fields=["credentials_version"])
                from accounts.services import user_sessions_end

                user_sessions_end(user=self)
        except BaseException:
            self.credentials_version = previous
            raise
        self._credentials_changed = False


class Invitation(models.Model):
    """An invitation to join this tenant as ``role``, sent to ``email``.

    Only a hash of the emailed token is kept (accounts.links.invitation_token_hash, keyed by the
    tenant), so a database read does not yield a working link. Resending replaces the token (the
    old link stops working); an invitation is open until it is accepted, revoked or expires.
    """

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Role.choices)
    full_name = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    invited_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The account the invitation became (set when accepted).
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One open invitation per address: a second one is a resend, not a new row.
            models.UniqueConstraint(
                fields=["email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="accounts_invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"
