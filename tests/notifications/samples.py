"""Values for every placeholder of every kind, with secrets the tests look for in logs."""

from notifications.kinds import KINDS, Kind

SECRET_PASSWORD = "Tmp-Pass-7Qz!x"
SECRET_RESET_TOKEN = "sEcReT-tOkEn-0123456789abcdefghijklmnopqrstu"
SECRET_LINK = f"http://acme.idp.test/reset-password/?token={SECRET_RESET_TOKEN}"
SECRET_VERIFY_TOKEN = "vErIfY-tOkEn-5f1e9c"
SECRETS = (SECRET_PASSWORD, SECRET_RESET_TOKEN, SECRET_VERIFY_TOKEN)


def sample_context(kind: Kind) -> dict[str, str]:
    """A value for each of the kind's own placeholders: links on the tenant's host."""
    values = {
        "verification_link": f"http://acme.idp.test/verify-email/MQ/{SECRET_VERIFY_TOKEN}/",
        "link_valid_days": "3",
        "user_name": "Ada <Lovelace>",
        "temporary_password": SECRET_PASSWORD,
        "admin_url": "http://acme.idp.test/admin/",
        "reset_link": SECRET_LINK,
        "link_valid_minutes": "10",
        "reset_at": "2026-11-22 10:00 UTC",
        "changed_at": "2026-11-22 10:00 UTC",
        "ip": "203.0.113.7",
        "sessions_ended": "2",
        "device_name": "Front till",
        "device_type": "pos",
        "signed_in_at": "2026-11-22 10:00 UTC",
        "locked_until": "2026-11-22 10:15 UTC",
        "lock_minutes": "15",
        "ended_at": "2026-11-22 10:00 UTC",
    }
    return {name: values[name] for name in KINDS[kind].placeholders}
