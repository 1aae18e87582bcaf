"""Email tasks. They take ids; the work is in notifications.services.

Both are sent through the project's app (config.celery), so they carry the schema they were
sent from (tenant-schemas-celery) and run in it.
"""

from config.celery import app
from notifications.services import outbox_email_send, outbox_sweep_current_schema
from tenants.schemas import in_every_schema


# A hard time limit (prefork pools enforce it) keeps a live worker's claim far shorter than
# NOTIFICATIONS_SENDING_TIMEOUT_SECONDS, so that only a dead worker's rows are taken back.
@app.task(name="notifications.email_send", ignore_result=True, time_limit=120)
def email_send(outbox_id: int, schema: str) -> str:
    """Send one outbox row of `schema` (the schema the task runs in), at most once."""
    return outbox_email_send(outbox_id=outbox_id, schema=schema)


@app.task(name="notifications.outbox_resend", ignore_result=True)
def outbox_resend() -> dict[str, dict[str, int]]:
    """Beat, every minute: in the public schema and every tenant's (never the template), take
    back rows whose worker died, hand due rows to the broker, and drop old sent rows."""
    return in_every_schema(outbox_sweep_current_schema, what="Outbox resend")
