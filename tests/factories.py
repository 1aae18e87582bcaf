import factory

from identity.models import User
from tenants.models import Plan

TEST_PASSWORD = "Correct-Horse-9"


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ["code"]

    code = factory.Sequence(lambda n: f"plan{n}")
    name = factory.LazyAttribute(lambda plan: plan.code.title())
    max_users = 50
    max_devices_per_user = 3
    max_branches = 10


class UserFactory(factory.django.DjangoModelFactory):
    """A user in whatever schema the connection is set to."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def save_password(obj: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            obj.save()
