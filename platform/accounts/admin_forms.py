"""The tenant admin's user forms, with the plan's seat limit as a form error.

Both run inside the admin's transaction (``UserAdmin.add_view`` and ``changeform_view`` open one
before the form is validated), so the seat lock ``clean()`` takes is held until the account is
saved: the check and the insert cannot be split by a parallel create. The services the admin
then calls (accounts.services) check again under the same lock.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.seats import user_seat_reserve
from accounts.services import last_admin_check
from apikit.errors import APIError
from tenants.limits import PlanLimitReachedError


def _seat_or_form_error() -> None:
    try:
        user_seat_reserve()
    except PlanLimitReachedError as exc:
        raise forms.ValidationError(str(exc.detail), code=exc.contract_code) from None


class SeatCheckedUserCreationForm(AdminUserCreationForm):
    """The add-user page: an account added there is active, so it needs a free seat."""

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        _seat_or_form_error()
        return cleaned


class SeatCheckedUserChangeForm(UserChangeForm):
    """The change page: ticking "active" on an inactive account needs a free seat, and the last
    active tenant admin can be neither demoted nor deactivated (a form error, so nothing is
    saved or logged as changed)."""

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if self.cleaned_data.get("is_active") and not self.instance.is_active:
            _seat_or_form_error()
        if self.instance.pk is not None:
            try:
                last_admin_check(
                    user=self.instance,
                    role=self.cleaned_data.get("role"),
                    is_active=self.cleaned_data.get("is_active"),
                )
            except APIError as exc:
                raise forms.ValidationError(str(exc.detail), code=exc.contract_code) from None
        return cleaned
