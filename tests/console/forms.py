"""Filling in admin forms the way a browser would: what the page shows, plus changes."""

from typing import Any

from django.contrib.messages import get_messages
from django.test import Client


def page_form_data(response: Any) -> dict[str, Any]:
    """The values an admin add/change page would submit unchanged: its form's editable fields
    and every inline formset (management form included)."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value not in (None, False):
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        for inline_form in formset.forms:
            for name in inline_form.fields:
                value = inline_form[name].value()
                if value not in (None, False, ""):
                    data[inline_form.add_prefix(name)] = value
    return data


def submit(client: Client, url: str, **changes: Any) -> Any:
    """GET the page, change some fields, POST it back."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    data = page_form_data(page)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(url, data)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client: Client, changelist_url: str, action: str, *pks: Any) -> Any:
    return client.post(changelist_url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True)
