"""`make run`'s demo: a plan, the tenant `demo` and a platform operator, with their logins.

Passwords are generated on the first run and kept in .data/demo-credentials.json
(git-ignored), so every later `make run` prints the same logins.
"""

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from config.embedded import DATA_DIR
from identity.models import User
from identity.passwords import password_generate
from tenants.models import Plan, Tenant
from tenants.policy import DEFAULT_POLICY
from tenants.services import plan_create, tenant_create, tenant_origin

CREDENTIALS = DATA_DIR / "demo-credentials.json"


class Command(BaseCommand):
    help = "Create the demo tenant and a platform operator for local development."

    def handle(self, *args: Any, **options: Any) -> None:
        creds = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}
        rules = DEFAULT_POLICY["password"]
        creds.setdefault("operator", {"email": "operator@example.com", "password": password_generate(rules)})
        creds.setdefault("demo_admin", {"email": "admin@demo.example.com", "password": password_generate(rules)})

        plan = Plan.objects.filter(code="standard").first() or plan_create(
            code="standard", name="Standard", max_users=100, max_devices_per_user=3, max_branches=20
        )
        operator = creds["operator"]
        if not User.objects.filter(email=operator["email"]).exists():
            User.objects.create_superuser(email=operator["email"], password=operator["password"])
        demo = Tenant.objects.filter(schema_name="demo").first()
        if demo is None:
            demo = tenant_create(
                slug="demo",
                name="Demo Restaurants",
                plan=plan,
                domain=f"demo.{settings.IDP_BASE_DOMAIN}",
                admin_email=creds["demo_admin"]["email"],
                admin_password=creds["demo_admin"]["password"],
                admin_full_name="Demo Admin",
            ).tenant
        with schema_context("demo"):
            admin_exists = User.objects.filter(email=creds["demo_admin"]["email"]).exists()

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        CREDENTIALS.write_text(json.dumps(creds, indent=2))
        CREDENTIALS.chmod(0o600)
        public = f"{settings.IDP_PUBLIC_SCHEME}://{settings.IDP_BASE_DOMAIN}:{settings.IDP_PUBLIC_PORT}"
        self.stdout.write(
            "\n"
            f"  Tenant 'demo':     {tenant_origin(demo)}/  (admin console: {tenant_origin(demo)}/admin/)\n"
            f"  Tenant admin:      {creds['demo_admin']['email']} / {creds['demo_admin']['password']}"
            f"{'' if admin_exists else '  (not found: was it changed?)'}\n"
            f"  Platform host:     {public}/  (platform API: {public}/api/v1/platform/)\n"
            f"  Platform operator: {operator['email']} / {operator['password']}\n"
            f"  API docs:          {tenant_origin(demo)}/api/docs/\n"
        )
