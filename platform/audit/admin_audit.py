"""The Django admin on the audit trail (issue 21, item 2).

Every ModelAdmin of both admin sites — ``admin.site`` on the tenant hosts and the operators'
``tenants.admin.operator_site`` on the public host — derives from ``AuditedModelAdmin``
(tests/security/test_admin_audit.py walks both sites), so what the admin shows and changes lands
in the trail of the active schema, as the API's requests do: ``audit.services`` writes to the
tenant's trail, or on the public host to ``audit.public``'s.

* **Reads** of sensitive models (``audit_reads = True``, see ``audit_reads_required``): one
  ``read`` event per page holding the ids shown — a changelist page's rows (raw-id lookup popups
  included), the change / view page's object and the sensitive rows of its inlines, the delete
  confirmation (single and bulk) and the history page.
* **Autocomplete** over a sensitive model is refused (403): it searches ``search_fields`` (a
  patient's phone number) and answers names, one JSON page after another.
* **Writes** through ``log_addition`` / ``log_change`` / ``log_deletions``, which the add and
  change pages, list_editable, password changes, the delete page and the bulk delete all call:
  ``create`` / ``update`` / ``delete`` events naming the changed fields (the form's
  ``changed_data``: names, never values); each inline row created, changed or deleted is an event
  of its own (``save_formset``), and the parent's event names the inline (``items``).
* **Actions**: every admin action (``get_actions``) runs in one transaction with an ``update``
  event naming it (``action:<name>``) and the selected ids. The bulk delete is the exception:
  its deletions are ``log_deletions``' events and its confirmation page a read.
* **Object permissions** (``AuditedGuardedModelAdmin``): guardian's per-user page offers the
  access levels only (``view``, ``manage``) and saves them through
  ``container_access_change``, which the domain admins point at the service the API's
  ``access/`` endpoints call (it writes the ``permission_change`` event); the per-group page is
  refused (access is by role and per-user grants, never by group).

Only public ModelAdmin and guardian hooks are overridden.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils.crypto import salted_hmac
from guardian.admin import AdminUserObjectPermissionsForm, GuardedModelAdmin

from apikit.policy import (
    AccessLevel,
    container_access_grant,
    container_access_revoke,
    sees_everything,
)
from apikit.request_context import request_context
from audit.models import AuditEvent
from audit.services import (
    audit_event_record,
    audit_object_type,
    audit_permission_change,
    audit_reads_required,
)

# The form fields of Django's password forms (set / change / unusable) are one model field.
PASSWORD_FORM_FIELDS = frozenset({"password1", "password2", "usable_password"})
PASSWORD_FIELD = "password"  # noqa: S105 (a field's name)
ACTION_FIELD = "action:{name}"
AUTOCOMPLETE_VIEW = "autocomplete"
GRANT_REFUSED = (
    "Access can be granted to active users who are not tenant admins only "
    "(a tenant admin sees every {model} already)."
)
_OBJECT_ID_SALT = "verdant.audit.admin-object-id"

AdminAction = Callable[[Any, HttpRequest, QuerySet[Any]], HttpResponseBase | None]


def audit_object_id(*, object_type: str, pk: Any) -> uuid.UUID:
    """The id the trail records for a primary key (``object_ids`` holds UUIDs): a UUID as it is;
    an integer n (tenants, plans, domains, singletons) as the UUID whose value is n
    (``00000000-0000-0000-0000-00000000002a`` for 42), readable back; any other key (an opt-out's
    phone number, a day) as a keyed digest of type and key (SECRET_KEY), so every event of that
    row can be found without the trail holding the key itself."""
    if isinstance(pk, uuid.UUID):
        return pk
    if isinstance(pk, int) and not isinstance(pk, bool) and 0 <= pk < 2**128:
        return uuid.UUID(int=pk)
    digest = salted_hmac(_OBJECT_ID_SALT, f"{object_type}:{pk}", algorithm="sha256").digest()
    return uuid.UUID(bytes=digest[:16])


def _pks(objects: Iterable[Model]) -> list[Any]:
    return [obj.pk for obj in objects]


def _event_record(
    request: HttpRequest,
    *,
    action: AuditEvent.Action,
    model: type[Model] | Model,
    pks: Iterable[Any],
    changed_fields: Iterable[str] = (),
) -> None:
    object_type = audit_object_type(model)
    audit_event_record(
        context=request_context(request),
        action=action,
        object_type=object_type,
        object_ids=[
            audit_object_id(object_type=object_type, pk=pk) for pk in pks if pk is not None
        ],
        changed_fields=changed_fields,
    )


def _object_event_record(
    request: HttpRequest, *, obj: Any, message: Any, action: AuditEvent.Action
) -> None:
    """One object added or changed through a form: the fields its change message names."""
    _event_record(
        request,
        action=action,
        model=obj,
        pks=[obj.pk],
        changed_fields=message_field_names(message=message),
    )


def form_field_names(*, form: forms.BaseForm) -> list[str]:
    """The names of the fields a form changed (``password1`` / ``password2`` count as
    ``password``), in order, each once."""
    names: list[str] = []
    for name in form.changed_data:
        field = PASSWORD_FIELD if name in PASSWORD_FORM_FIELDS else name
        if field not in names:
            names.append(field)
    return names


def _formset_changed(formset: Any) -> bool:
    # Set by BaseModelFormSet.save(); absent when the formset was never saved.
    return any(
        getattr(formset, attribute, None)
        for attribute in ("new_objects", "changed_objects", "deleted_objects")
    )


def _inline_names(formsets: Iterable[Any] | None) -> list[str]:
    """The accessor names (``items``) of the inlines whose rows were added, changed or deleted."""
    return [formset.get_default_prefix() for formset in formsets or () if _formset_changed(formset)]


class AdminChangeMessage(list[dict[str, Any]]):
    """Django's change message (a list, which LogEntry stores as JSON; it names fields by their
    labels), carrying the changed fields' names for the audit trail from
    ``construct_change_message`` to ``log_addition`` / ``log_change``."""

    def __init__(self, message: Iterable[dict[str, Any]], *, field_names: Sequence[str]) -> None:
        super().__init__(message)
        self.field_names = list(field_names)


def message_field_names(*, message: Any) -> list[str]:
    """The changed fields a change message names: the names ``AdminChangeMessage`` carries, or
    for a message built elsewhere the labels of its top-level ``changed`` entry."""
    if isinstance(message, AdminChangeMessage):
        return message.field_names
    names: list[str] = []
    if isinstance(message, list):
        for entry in message:
            changed = entry.get("changed") if isinstance(entry, Mapping) else None
            if isinstance(changed, Mapping) and "name" not in changed:
                names.extend(str(field) for field in changed.get("fields", ()))
    return names


def _context_data(response: Any) -> Mapping[str, Any]:
    if isinstance(response, TemplateResponse) and response.context_data:
        return response.context_data
    return {}


def _is_autocomplete(request: HttpRequest, *, site_name: str) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.view_name == f"{site_name}:{AUTOCOMPLETE_VIEW}"


class AuditedModelAdmin(admin.ModelAdmin):
    """The ModelAdmin every admin of both sites derives from (see the module docstring)."""

    # None: reads are audited when the model is marked sensitive (``audit_reads = True``).
    audit_reads: ClassVar[bool | None] = None

    def audit_reads_enabled(self) -> bool:
        return (
            self.audit_reads if self.audit_reads is not None else audit_reads_required(self.model)
        )

    def audit_read_record(
        self, request: HttpRequest, *, model: type[Model], objects: Iterable[Model]
    ) -> None:
        """One ``read`` event holding the ids of ``objects`` (a page of rows, or one object)."""
        _event_record(request, action=AuditEvent.Action.READ, model=model, pks=_pks(objects))

    # --- reads ------------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        response = super().changelist_view(request, extra_context)
        changelist = _context_data(response).get("cl")
        if changelist is not None and self.audit_reads_enabled():
            self.audit_read_record(request, model=self.model, objects=changelist.result_list)
        return response

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.pk is not None and self.audit_reads_enabled():
            self.audit_read_record(request, model=self.model, objects=[obj])
        for inline in context.get("inline_admin_formsets", ()):
            formset = inline.formset
            if audit_reads_required(formset.model):
                shown = [form.instance for form in formset.initial_forms]
                if shown:
                    self.audit_read_record(request, model=formset.model, objects=shown)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> Any:
        shown = context.get("object")
        if shown is not None and self.audit_reads_enabled():
            self.audit_read_record(request, model=self.model, objects=[shown])
        return super().render_delete_form(request, context)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> Any:
        response = super().history_view(request, object_id, extra_context)
        shown = _context_data(response).get("object")
        if shown is not None and self.audit_reads_enabled():
            self.audit_read_record(request, model=self.model, objects=[shown])
        return response

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The autocomplete view asks only this: a sensitive model is never its target.
        if self.audit_reads_enabled() and _is_autocomplete(request, site_name=self.admin_site.name):
            return False
        return bool(super().has_view_permission(request, obj))

    # --- writes ------------------------------------------------------------------------------

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> Any:
        message = super().construct_change_message(request, form, formsets, add)
        return AdminChangeMessage(
            message, field_names=[*form_field_names(form=form), *_inline_names(formsets)]
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        _object_event_record(request, obj=obj, message=message, action=AuditEvent.Action.CREATE)
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        _object_event_record(request, obj=obj, message=message, action=AuditEvent.Action.UPDATE)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        """One ``delete`` event holding every id (the delete page passes one object, the bulk
        delete its queryset, evaluated once here and reused by Django's log)."""
        pks = _pks(queryset)
        entries = super().log_deletions(request, queryset)
        _event_record(request, action=AuditEvent.Action.DELETE, model=self.model, pks=pks)
        return entries

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Each inline row created, changed or deleted is an event of its own (a deleted row's
        id is taken before the delete clears it)."""
        deleted = [f.instance.pk for f in formset.deleted_forms if f.instance.pk is not None]
        super().save_formset(request, form, formset, change)
        created = {id(obj) for obj in formset.new_objects}
        for inline_form in formset.forms:
            if id(inline_form.instance) in created:
                _event_record(
                    request,
                    action=AuditEvent.Action.CREATE,
                    model=formset.model,
                    pks=[inline_form.instance.pk],
                    changed_fields=form_field_names(form=inline_form),
                )
        for obj, changed in formset.changed_objects:
            _event_record(
                request,
                action=AuditEvent.Action.UPDATE,
                model=formset.model,
                pks=[obj.pk],
                changed_fields=changed,
            )
        if deleted:
            _event_record(
                request, action=AuditEvent.Action.DELETE, model=formset.model, pks=deleted
            )

    # --- actions -----------------------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)
        return {
            name: (self.audit_action_wrap(func, name=name), name, description)
            for name, (func, _, description) in actions.items()
        }

    def audit_action_wrap(self, func: AdminAction, *, name: str) -> AdminAction:
        """``func`` run in one transaction with its audit event (see the module docstring)."""

        def audited(
            model_admin: Any, request: HttpRequest, queryset: QuerySet[Any]
        ) -> HttpResponseBase | None:
            with transaction.atomic(using=router.db_for_write(queryset.model)):
                selected = list(queryset.values_list("pk", flat=True))
                response = func(model_admin, request, queryset)
                if func is not delete_selected:
                    _event_record(
                        request,
                        action=AuditEvent.Action.UPDATE,
                        model=queryset.model,
                        pks=selected,
                        changed_fields=[ACTION_FIELD.format(name=name)],
                    )
                elif response is not None and self.audit_reads_enabled():
                    # The confirmation page lists the selected rows; deletions are logged apart.
                    _event_record(
                        request, action=AuditEvent.Action.READ, model=queryset.model, pks=selected
                    )
            return response

        return audited


class ContainerAccessForm(AdminUserObjectPermissionsForm):
    """Guardian's per-user object-permission form for a container (a facility, a farm), narrowed
    to the access levels and saved through the admin's ``container_access_change``. Bound to
    the admin and the request by ``AuditedGuardedModelAdmin.get_obj_perms_manage_user_form``."""

    model_admin: ClassVar[AuditedGuardedModelAdmin]
    request: ClassVar[HttpRequest]

    def _codenames(self) -> dict[str, AccessLevel]:
        model_name = self.obj._meta.model_name
        return {f"{level}_{model_name}": level for level in AccessLevel}

    def levels(self, codenames: Iterable[str]) -> set[AccessLevel]:
        known = self._codenames()
        return {known[codename] for codename in codenames if codename in known}

    def get_obj_perms_field_choices(self) -> list[Any]:
        known = self._codenames()
        return [choice for choice in super().get_obj_perms_field_choices() if choice[0] in known]

    def get_obj_perms_field_initial(self) -> Any:
        known = self._codenames()
        # Codenames (guardian's annotation says Permission rows).
        held: Iterable[Any] = super().get_obj_perms_field_initial()
        return [codename for codename in held if codename in known]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        selected = self.levels(cleaned.get(self.get_obj_perms_field_name(), ()))
        granted = selected - self.levels(self.get_obj_perms_field_initial())
        if granted and (not self.user.is_active or sees_everything(self.user)):
            raise forms.ValidationError(
                GRANT_REFUSED.format(model=self.obj._meta.verbose_name), code="grant_refused"
            )
        return cleaned

    def save_obj_perms(self) -> None:
        selected = self.levels(self.cleaned_data[self.get_obj_perms_field_name()])
        held = self.levels(self.get_obj_perms_field_initial())
        with transaction.atomic():
            for level in (AccessLevel.MANAGE, AccessLevel.VIEW):
                if level in held - selected:
                    self.model_admin.container_access_change(
                        request=self.request,
                        container=self.obj,
                        user=self.user,
                        level=level,
                        grant=False,
                    )
            for level in (AccessLevel.VIEW, AccessLevel.MANAGE):
                if level in selected - held:
                    self.model_admin.container_access_change(
                        request=self.request,
                        container=self.obj,
                        user=self.user,
                        level=level,
                        grant=True,
                    )


class AuditedGuardedModelAdmin(AuditedModelAdmin, GuardedModelAdmin):  # type: ignore[misc]
    """A container's admin with guardian's object-permission pages, audited (see the module
    docstring). Domain admins override ``container_access_change`` to call their service."""

    def container_access_change(
        self,
        *,
        request: HttpRequest,
        container: Model,
        user: Any,
        level: AccessLevel,
        grant: bool,
    ) -> None:
        """Grant or revoke ``level`` on ``container`` for ``user``, audited as
        ``permission_change``. The default calls apikit.policy and the audit service."""
        with transaction.atomic():
            change = container_access_grant if grant else container_access_revoke
            change(user=user, container=container, level=level)
            audit_permission_change(
                context=request_context(request),
                container=container,
                user=user,
                change=f"{'grant' if grant else 'revoke'}:{level}",
            )

    def get_obj_perms_manage_user_form(self, request: HttpRequest) -> type[forms.Form]:
        return type(
            "ContainerAccessForm", (ContainerAccessForm,), {"model_admin": self, "request": request}
        )

    def obj_perms_manage_group_view(
        self, request: HttpRequest, object_pk: str, group_id: str
    ) -> Any:
        raise PermissionDenied  # access is by role and per-user grants, never by group
