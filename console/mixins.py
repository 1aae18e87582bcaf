"""What every console ModelAdmin shares:

- ConsolePermissionsMixin: view/add/change/delete each map to one Perm code (None: never),
  judged by the site (console.sites): RBAC on the tenant console, operators on the platform's.
- ConsoleModelAdmin: every write goes through a service. The stock model saves and deletes
  are refused outright, so a ModelAdmin that forgets to route one fails loudly instead of
  writing without audit or rules. A ProblemError from a service becomes an error message
  on the page (the form shown again with what was typed), never a 500; the request's
  transaction is rolled back first, so nothing of a refused change is kept.
- CsvExportMixin: a streaming CSV of what the change list shows (its filters and search).
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from console.sites import ConsoleSite
from core.csv_export import csv_streaming_response
from core.errors import ProblemError
from identity.models import User

_REFUSAL_ATTR = "_console_refusal"
CSV_CHANGE_LIST_TEMPLATE = "console/change_list_export.html"
ROUTED_THROUGH_SERVICES = "Console changes go through the services; this ModelAdmin does not route this one."


def console_actor(request: HttpRequest) -> User:
    """The signed-in user acting in the console (every console view requires one)."""
    return cast(User, request.user)


def problem_text(problem: ProblemError) -> str:
    """A refusal as one line an admin can act on: what and why, never a secret (services put
    none in their problems)."""
    parts = [problem.detail.rstrip(".") + "."]
    for field, field_messages in (problem.errors or {}).items():
        parts.append(f"{field}: {' '.join(field_messages)}")
    not_held = problem.extra.get("not_held")
    if not_held:
        parts.append(f"Not held: {', '.join(not_held)}.")
    return " ".join(parts)


def problem_to_form(form: forms.BaseForm, problem: ProblemError) -> None:
    """Put a service's refusal on the form: its field errors on the fields the form has, the
    rest (and the reason) above the form."""
    unplaced = []
    for field, field_messages in (problem.errors or {}).items():
        if field in form.fields:
            form.add_error(field, list(field_messages))
        else:
            unplaced.append(f"{field}: {' '.join(field_messages)}")
    reason = problem.detail.rstrip(".") + "."
    not_held = problem.extra.get("not_held")
    if not_held:
        reason += f" Not held: {', '.join(not_held)}."
    form.add_error(None, [reason, *unplaced])


class ConsolePermissionsMixin:
    """`permission_codes` maps "view", "add", "change" and "delete" to a Perm code; a missing
    key or None means never. Change implies view, as in Django."""

    permission_codes: ClassVar[dict[str, str | None]] = {}
    admin_site: admin.AdminSite

    def console_allows(self, request: HttpRequest, action: str) -> bool:
        code = self.permission_codes.get(action)
        return code is not None and self.site_allows(request, code)

    def site_allows(self, request: HttpRequest, code: str) -> bool:
        """Whether the console user holds `code` tenant-wide (for actions beyond the four)."""
        return cast(ConsoleSite, self.admin_site).allows(request, code)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.console_allows(request, "view") or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.console_allows(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.console_allows(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.console_allows(request, "delete")


class ConsoleModelAdmin(ConsolePermissionsMixin, admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:  # type: ignore[override]
        return self.console_allows(request, "add")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return any(self.get_model_perms(request).values())

    # --- the stock writes are refused: subclasses route what they allow through services ----

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        raise PermissionDenied(ROUTED_THROUGH_SERVICES)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # No form.save_m2m(): many-to-many fields are written by the services.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Subclasses route the inlines they let change through services; here any change
        is refused. save(commit=False) writes nothing: it sorts the forms into new, changed
        and deleted objects (Django's change message reads those lists too)."""
        formset.save(commit=False)
        if formset.new_objects or formset.changed_objects or formset.deleted_objects:
            raise PermissionDenied(ROUTED_THROUGH_SERVICES)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied(ROUTED_THROUGH_SERVICES)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        raise PermissionDenied(ROUTED_THROUGH_SERVICES)

    # --- refusals from the services ------------------------------------------------------------

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ProblemError as problem:
            # Django's changeform_view is atomic: everything this submission wrote is rolled
            # back. Show the same form again, bound to what was typed, with the refusal on it.
            setattr(request, _REFUSAL_ATTR, problem)
            messages.error(request, problem_text(problem))
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)
        refusal: ProblemError | None = getattr(request, _REFUSAL_ATTR, None)
        if refusal is None:
            return form_class

        def clean(form: Any) -> Any:
            cleaned = form_class.clean(form)
            problem_to_form(form, refusal)
            return cleaned

        return type(form_class.__name__, (form_class,), {"clean": clean})

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None) -> Any:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ProblemError as problem:  # rolled back: delete_view is atomic
            messages.error(request, problem_text(problem))
            return HttpResponseRedirect(self.changelist_url())

    def changelist_url(self) -> str:
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist", current_app=self.admin_site.name)

    def apply_service(
        self,
        request: HttpRequest,
        objects: Iterable[Model],
        service: Callable[[Any], object],
        *,
        done: str,
    ) -> None:
        """Run `service` on each object (each call its own transaction): one success message
        with the count, one error message per refusal naming the object."""
        succeeded = 0
        for obj in objects:
            try:
                service(obj)
            except ProblemError as problem:
                messages.error(request, f"{obj}: {problem_text(problem)}")
            else:
                succeeded += 1
        if succeeded:
            messages.success(request, f"{done}: {succeeded}.")


class CsvExportMixin:
    """An `export.csv` page next to the change list, linked from it, that streams the rows
    the list shows (its filters, search and ordering) without loading them into memory.

    `csv_columns` are field names (values_list); `csv_values` turns a row into cells. Set
    `change_list_template = CSV_CHANGE_LIST_TEMPLATE` for the link."""

    csv_columns: ClassVar[tuple[str, ...]] = ()

    def get_urls(self) -> list[URLPattern]:
        model_admin = cast(admin.ModelAdmin, self)
        opts = model_admin.opts
        export = path(
            "export.csv",
            model_admin.admin_site.admin_view(self.export_csv_view),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
        return [export, *super().get_urls()]  # type: ignore[misc]

    def csv_values(self, row: tuple[Any, ...]) -> Sequence[object]:
        """The cells of one row of `csv_columns`."""
        raise NotImplementedError

    def export_csv_view(self, request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        model_admin = cast(ConsoleModelAdmin, self)
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = model_admin.get_changelist_instance(request)
        except IncorrectLookupParameters:
            messages.error(request, "The export's filters are not valid.")
            return HttpResponseRedirect(model_admin.changelist_url())
        queryset: QuerySet[Any] = changelist.get_queryset(request)
        rows: Iterator[Sequence[object]] = (
            self.csv_values(row) for row in queryset.values_list(*self.csv_columns).iterator(chunk_size=2000)
        )
        filename = f"{model_admin.opts.model_name}-{date.today():%Y-%m-%d}.csv"
        return csv_streaming_response(header=self.csv_columns, rows=rows, filename=filename)


def shown_once_response(
    request: HttpRequest,
    *,
    site: admin.AdminSite,
    title: str,
    intro: str,
    facts: Sequence[tuple[str, str]],
    label: str,
    secret: str,
    next_url: str,
) -> HttpResponse:
    """The answer to the POST that created a secret: the secret is rendered into this one
    response (never into a message, the session or a URL) and the page is not cached."""
    context = {
        **site.each_context(request),
        "title": title,
        "intro": intro,
        "facts": facts,
        "label": label,
        "secret": secret,
        "next_url": next_url,
    }
    response = TemplateResponse(request, "console/secret_once.html", context)
    response["Cache-Control"] = "no-store"
    return response
