import pytest
from django_tenants.utils import schema_context

from core.errors import ProblemError
from identity.models import User
from sessions.models import DeviceSession
from sessions.services import Device, session_start
from tenants.policy import DEFAULT_POLICY
from tests.conftest import SHARED_ADMIN_EMAIL


def test_a_session_is_not_started_for_a_user_deactivated_after_the_password_check(tenant_a):
    with schema_context("acme"):
        checked = User.objects.get(email=SHARED_ADMIN_EMAIL)  # as the login saw it: active
        User.objects.filter(pk=checked.pk).update(is_active=False)

        with pytest.raises(ProblemError) as refusal:
            session_start(
                user=checked,
                device=Device("pos-1"),
                ip=None,
                user_agent="",
                policy=DEFAULT_POLICY,
                max_devices_per_user=1,
            )

        assert refusal.value.code == "account_disabled"
        assert not DeviceSession.objects.filter(user=checked).exists()
