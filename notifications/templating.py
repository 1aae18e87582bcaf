"""Rendering an email of a kind: the default templates, or a tenant's override.

Defaults are Django templates shipped with the code: the text with autoescaping off, the
HTML with it on (a tenant name or a device name cannot inject markup).

A tenant's override is plain text with `{placeholder}` substitution, never a template: a
tenant admin's text can reach nothing but the kind's placeholder values (fixed strings the
sender passes), not objects, attributes, filters or tags. Every `{` and `}` must belong to a
known placeholder; credentials (a temporary password, a reset or verification link) may
appear in a body only, and the body must keep the placeholders the kind cannot work
without. The HTML part of an overridden body is made from the text: escaped, paragraphs and
line breaks kept, link placeholders made links; no tenant-supplied markup is ever sent.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.template import Context, Engine
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from notifications.kinds import KINDS, Kind, KindSpec

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
_text_engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=False)
_html_engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=True)

# `{anything without braces}`: a placeholder if its content is a known name, an error otherwise.
PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
SUBJECT_MAX_LENGTH = 200
BODY_MAX_LENGTH = 10_000


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def template_name(kind: Kind, part: str) -> str:
    """`part`: "subject.txt", "txt" or "html"."""
    return f"notifications/email/{kind.value}.{part}"


def _render(engine: Engine, name: str, values: Mapping[str, Any]) -> str:
    # A Context autoescapes unless told otherwise, whatever the engine says.
    return engine.get_template(name).render(Context(dict(values), autoescape=engine.autoescape))


def default_render(kind: Kind, values: Mapping[str, str]) -> RenderedEmail:
    return RenderedEmail(
        subject=" ".join(_render(_text_engine, template_name(kind, "subject.txt"), values).split()),
        text=_render(_text_engine, template_name(kind, "txt"), values),
        html=_render(_html_engine, template_name(kind, "html"), values),
    )


def default_texts(kind: Kind) -> tuple[str, str]:
    """The default subject and text with `{placeholder}` in place of each value: what a tenant
    admin starts an override from."""
    tokens = {name: f"{{{name}}}" for name in KINDS[kind].all_placeholders}
    rendered = default_render(kind, tokens)
    return rendered.subject, rendered.text


# --- overrides -----------------------------------------------------------------------------


def _placeholder_problems(text: str, spec: KindSpec, *, where: str, secrets_allowed: bool) -> list[str]:
    problems = []
    usable = tuple(name for name in spec.all_placeholders if secrets_allowed or name not in spec.secrets)
    names = PLACEHOLDER_RE.findall(text)
    unknown = [name for name in names if name not in spec.all_placeholders]
    if unknown:
        named = ", ".join(f"{{{name}}}" for name in dict.fromkeys(unknown))
        problems.append(
            f"Unknown placeholder(s) {named} in the {where}. Use only: {', '.join(f'{{{n}}}' for n in usable)}."
        )
    secret = [name for name in names if name in spec.secrets and not secrets_allowed]
    if secret:
        problems.append(f"{{{secret[0]}}} may appear in the body only: subjects are kept after sending.")
    rest = PLACEHOLDER_RE.sub("", text)
    if "{" in rest or "}" in rest:
        problems.append(f"Braces in the {where} are only for placeholders such as {{tenant_name}}.")
    return problems


def override_errors(spec: KindSpec, *, subject: str, body: str) -> dict[str, list[str]]:
    """What is wrong with an override of a kind (field -> messages); empty when it is fine.
    An empty subject or body means the default is kept for that part."""
    errors: dict[str, list[str]] = {}
    if subject:
        problems = _placeholder_problems(subject, spec, where="subject", secrets_allowed=False)
        if "\n" in subject or "\r" in subject:
            problems.append("The subject must be one line.")
        if len(subject) > SUBJECT_MAX_LENGTH:
            problems.append(f"The subject may have at most {SUBJECT_MAX_LENGTH} characters.")
        if problems:
            errors["subject"] = problems
    if body:
        problems = _placeholder_problems(body, spec, where="body", secrets_allowed=True)
        used = set(PLACEHOLDER_RE.findall(body))
        problems += [f"The body must contain {{{name}}}." for name in spec.required if name not in used]
        lines = {line.strip() for line in body.splitlines()}
        problems += [f"The body must keep the line: {line}" for line in spec.required_lines if line not in lines]
        if len(body) > BODY_MAX_LENGTH:
            problems.append(f"The body may have at most {BODY_MAX_LENGTH} characters.")
        if problems:
            errors["body"] = problems
    return errors


def placeholders_substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with each `{name}` replaced by its value (validated text: every name known)."""
    return PLACEHOLDER_RE.sub(lambda match: values[match.group(1)], text)


def override_html(text: str, values: Mapping[str, str], *, links: frozenset[str]) -> SafeString:
    """The HTML of an overridden body: the text escaped, blank lines making paragraphs and
    line breaks kept; the values of link placeholders become links."""

    def line_html(line: str) -> str:
        parts: list[str] = []
        position = 0
        for match in PLACEHOLDER_RE.finditer(line):
            parts.append(escape(line[position : match.start()]))
            value = escape(values[match.group(1)])
            parts.append(f'<a href="{value}">{value}</a>' if match.group(1) in links else value)
            position = match.end()
        parts.append(escape(line[position:]))
        return "".join(parts)

    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text.strip()) if p.strip()]
    return mark_safe(  # noqa: S308  # every piece of text and every value is escaped above
        "\n".join(
            f"<p>{'<br>'.join(line_html(line) for line in paragraph.splitlines())}</p>" for paragraph in paragraphs
        )
    )


def override_render(kind: Kind, values: Mapping[str, str], *, subject: str, body: str) -> RenderedEmail:
    """The email with the tenant's subject and/or body (an empty one keeps the default)."""
    spec = KINDS[kind]
    default = default_render(kind, values)
    if not body:
        text, html = default.text, default.html
    else:
        text = placeholders_substitute(body, values)
        if not text.endswith("\n"):
            text += "\n"
        content = override_html(body, values, links=spec.all_links)
        html = _render(_html_engine, "notifications/email/override.html", {**values, "content": content})
    return RenderedEmail(
        subject=" ".join(placeholders_substitute(subject, values).split()) if subject else default.subject,
        text=text,
        html=html,
    )
