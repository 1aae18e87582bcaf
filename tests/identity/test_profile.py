"""The caller's own profile (/api/v1/auth/profile/, pictures included) and login activity
(/api/v1/auth/activity/)."""

import io
import itertools
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context
from PIL import Image
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from identity.pictures import PICTURE_MAX_BYTES
from tests.conftest import bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST = "acme.idp.test"
PROFILE = "/api/v1/auth/profile/"
ACTIVITY = "/api/v1/auth/activity/"
COOK_EMAIL = "cook@acme.example"
_addresses = (f"10.8.{n // 250}.{n % 250 + 1}" for n in itertools.count())


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def cook(tenant_a):
    with schema_context("acme"):
        return UserFactory(
            email=COOK_EMAIL,
            full_name="Cook Kamau",
            phone="0712 000 000",
            employee_id="E-100",
            kra_pin="A123456789B",
            branch_id="nairobi-1",
        )


@pytest.fixture
def cook_client(cook):
    return bearer_client(HOST, login_tokens(HOST, COOK_EMAIL)["access"])


def reload(user):
    with schema_context("acme"):
        return User.objects.get(pk=user.pk)


def image_bytes(fmt, size=(64, 48), *, mode="RGB", noise=False, **options):
    if noise:
        image = Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    else:
        image = Image.new(mode, size, (200, 30, 90, 255)[: len(mode)])
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def upload(content, name="avatar.png", content_type="image/png"):
    return SimpleUploadedFile(name, content, content_type=content_type)


def patch_multipart(client, **data):
    return client.patch(PROFILE, data, format="multipart")


def stored_files(media_root):
    return sorted(path for path in media_root.rglob("*") if path.is_file())


# --- reading and changing the profile ---------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [("get", PROFILE), ("patch", PROFILE), ("get", ACTIVITY)])
def test_an_anonymous_caller_gets_401_not_authenticated(tenant_a, method, path):
    assert_problem(getattr(client_for_host(HOST), method)(path), 401, "not_authenticated")


def test_a_user_reads_their_own_profile(cook, cook_client):
    response = cook_client.get(PROFILE)

    assert response.status_code == 200
    profile = response.json()
    assert profile["id"] == str(cook.pk)
    assert (profile["email"], profile["full_name"], profile["phone"]) == (COOK_EMAIL, "Cook Kamau", "0712 000 000")
    assert (profile["employee_id"], profile["branch_id"], profile["kra_pin"]) == ("E-100", "nairobi-1", "A123456789B")
    assert (profile["roles"], profile["is_tenant_admin"], profile["picture"]) == ([], False, None)
    assert not any("password" in key and key != "must_change_password" for key in profile)


def test_a_user_changes_their_name_phone_and_address(cook, cook_client):
    changes = {"full_name": "Cook Wanjiku", "phone": "+254 712 345678", "address": "Moi Avenue 1, Nairobi"}

    response = cook_client.patch(PROFILE, changes, format="json")

    assert response.status_code == 200, response.content
    assert {key: response.json()[key] for key in changes} == changes
    stored = reload(cook)
    assert (stored.full_name, stored.phone, stored.address) == tuple(changes.values())
    with schema_context("acme"):
        [event] = AuditEvent.objects.filter(type="user.updated", target_id=str(cook.pk))
    assert event.actor_id == cook.pk
    assert event.data["changes"]["full_name"] == {"before": "Cook Kamau", "after": "Cook Wanjiku"}


def test_email_roles_and_employee_fields_are_read_only_here(cook, cook_client):
    sent = {
        "email": "boss@acme.example",
        "roles": ["Admin"],
        "is_tenant_admin": True,
        "must_change_password": False,
        "employee_id": "E-999",
        "kra_pin": "Z999999999Z",
        "branch_id": "elsewhere",
        "full_name": "Cook Wanjiku",
    }

    response = cook_client.patch(PROFILE, sent, format="json")

    assert response.status_code == 200, response.content
    stored = reload(cook)
    assert (stored.email, stored.is_tenant_admin, stored.employee_id) == (COOK_EMAIL, False, "E-100")
    assert (stored.kra_pin, stored.branch_id) == ("A123456789B", "nairobi-1")
    assert stored.full_name == "Cook Wanjiku"
    assert response.json()["email"] == COOK_EMAIL


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nickname": "Chef"}, "nickname"),
        ({"full_name": ""}, "full_name"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"phone": "call me maybe"}, "phone"),
        ({"address": "x" * 501}, "address"),
        ({"picture": "not a file"}, "picture"),
    ],
)
def test_bad_profile_input_answers_400_naming_the_field_and_changes_nothing(cook, cook_client, changes, field):
    response = cook_client.patch(PROFILE, {"phone": "0700 111 222"} | changes, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert field in body["errors"]
    stored = reload(cook)
    assert (stored.full_name, stored.phone) == ("Cook Kamau", "0712 000 000")


def test_a_user_who_must_change_their_password_can_read_but_not_change_their_profile(cook):
    with schema_context("acme"):
        User.objects.filter(pk=cook.pk).update(must_change_password=True)
    client = bearer_client(HOST, login_tokens(HOST, COOK_EMAIL)["access"])

    assert client.get(PROFILE).status_code == 200
    assert_problem(client.patch(PROFILE, {"full_name": "X"}, format="json"), 403, "password_change_required")
    assert_problem(patch_multipart(client, picture=upload(image_bytes("PNG"))), 403, "password_change_required")
    assert reload(cook).full_name == "Cook Kamau"
    assert not reload(cook).picture


# --- pictures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_a_png_jpeg_or_webp_picture_is_accepted_and_stored_by_its_real_type(
    cook, cook_client, media_root, fmt, extension
):
    # The name and declared type say nothing true: the content decides.
    picture = upload(image_bytes(fmt), name="avatar.gif", content_type="application/octet-stream")

    response = patch_multipart(cook_client, picture=picture, full_name="Cook Wanjiku")

    assert response.status_code == 200, response.content
    url = response.json()["picture"]
    assert url.startswith(f"http://{HOST}/media/acme/pictures/{cook.pk}/") and url.endswith(f".{extension}")
    stored = reload(cook)
    assert stored.full_name == "Cook Wanjiku"
    assert stored.picture.name.startswith(f"acme/pictures/{cook.pk}/")
    [path] = stored_files(media_root)
    with Image.open(path) as image:
        assert image.format == fmt
        assert image.size == (64, 48)


def test_a_stored_picture_loses_its_metadata_and_is_scaled_down(cook, cook_client, media_root):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {2: (1.0, 17.0, 0.0)}  # GPS latitude
    content = image_bytes("JPEG", (3000, 1500), exif=exif.tobytes())

    response = patch_multipart(cook_client, picture=upload(content, "me.jpg", "image/jpeg"))

    assert response.status_code == 200, response.content
    [path] = stored_files(media_root)
    with Image.open(path) as image:
        assert image.size == (1024, 512)
        assert not image.getexif()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"I am not a picture, whatever my name says.\n", id="text-named-png"),
        pytest.param(b"", id="empty"),
        pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', id="svg"),
        pytest.param(image_bytes("GIF"), id="gif"),
        pytest.param(image_bytes("BMP"), id="bmp"),
        pytest.param(image_bytes("TIFF"), id="tiff"),
        pytest.param(image_bytes("PNG", (200, 200), noise=True)[:2000], id="truncated-png"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\0" * 200, id="png-signature-only"),
    ],
)
def test_anything_but_a_decodable_png_jpeg_or_webp_answers_415_and_changes_nothing(
    cook, cook_client, media_root, content
):
    response = patch_multipart(cook_client, picture=upload(content, "avatar.png", "image/png"), full_name="Changed")

    body = assert_problem(response, 415, "unsupported_media_type")
    assert "picture" in body["errors"]
    stored = reload(cook)
    assert (stored.full_name, stored.picture.name) == ("Cook Kamau", "")
    assert stored_files(media_root) == []


def test_a_picture_over_2_mb_answers_413_and_changes_nothing(cook, cook_client, media_root):
    content = image_bytes("PNG", (860, 860), noise=True)  # incompressible: a little over 2 MB
    assert PICTURE_MAX_BYTES < len(content) < 3 * 1024 * 1024

    response = patch_multipart(cook_client, picture=upload(content), full_name="Changed")

    assert_problem(response, 413, "payload_too_large")
    assert reload(cook).full_name == "Cook Kamau"
    assert stored_files(media_root) == []


def test_a_request_body_far_over_the_limit_answers_413_before_it_is_read(cook, cook_client, media_root):
    content = image_bytes("PNG", (1200, 1200), noise=True)

    response = patch_multipart(cook_client, picture=upload(content), full_name="Changed")

    assert_problem(response, 413, "payload_too_large")
    assert reload(cook).full_name == "Cook Kamau"
    assert stored_files(media_root) == []


def test_a_new_picture_replaces_the_old_file_once_the_change_commits(
    cook, cook_client, media_root, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        patch_multipart(cook_client, picture=upload(image_bytes("PNG")))
    [first] = stored_files(media_root)

    with django_capture_on_commit_callbacks(execute=True):
        response = patch_multipart(cook_client, picture=upload(image_bytes("WEBP"), "a.webp", "image/webp"))

    assert response.status_code == 200
    [second] = stored_files(media_root)
    assert second != first and second.suffix == ".webp"


def test_a_null_picture_removes_it(cook, cook_client, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        patch_multipart(cook_client, picture=upload(image_bytes("PNG")))

    with django_capture_on_commit_callbacks(execute=True):
        response = cook_client.patch(PROFILE, {"picture": None}, format="json")

    assert response.status_code == 200
    assert response.json()["picture"] is None
    assert not reload(cook).picture
    assert stored_files(media_root) == []


# --- activity ---------------------------------------------------------------------------------


def post_login(email, password, *, user_agent="TillOS/2.1", device_id="pos-9"):
    client = APIClient(HTTP_HOST=HOST, REMOTE_ADDR=next(_addresses), HTTP_USER_AGENT=user_agent)
    body = {"email": email, "password": password, "device_id": device_id, "device_name": "Till 9", "device_type": "pos"}
    return client.post("/api/v1/auth/token/", body, format="json")


def test_activity_lists_only_the_callers_own_attempts_newest_first_failures_included(cook):
    with schema_context("acme"):
        UserFactory(email="waiter@acme.example")
    assert post_login(" COOK@acme.example", "Wrong-Passw0rd!").status_code == 401
    assert post_login("waiter@acme.example", TEST_PASSWORD).status_code == 200
    assert post_login("nobody@acme.example", TEST_PASSWORD).status_code == 401
    tokens = post_login(COOK_EMAIL, TEST_PASSWORD, user_agent="Tablet/1.0", device_id="tab-1").json()

    response = bearer_client(HOST, tokens["access"]).get(ACTIVITY)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    latest, earlier = body["results"]
    assert set(latest) == {"timestamp", "ip", "success", "reason", "device", "user_agent"}
    assert (latest["success"], latest["user_agent"]) == (True, "Tablet/1.0")
    assert latest["device"] == {"id": "tab-1", "name": "Till 9", "type": "pos"}
    assert (earlier["success"], earlier["reason"], earlier["user_agent"]) == (
        False,
        "invalid_credentials",
        "TillOS/2.1",
    )
    assert earlier["ip"].startswith("10.8.")
    assert latest["timestamp"] > earlier["timestamp"]


def test_activity_is_paginated(cook):
    for _ in range(3):
        post_login(COOK_EMAIL, "Wrong-Passw0rd!")
    client = bearer_client(HOST, login_tokens(HOST, COOK_EMAIL)["access"])

    page = client.get(ACTIVITY, {"page_size": 2}).json()

    assert page["count"] == 4
    assert len(page["results"]) == 2 and page["next"]
