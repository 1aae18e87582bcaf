"""Small types shared by the apps."""


class Unset:
    """Marks an argument that was not given, where None is a meaningful value
    (`subscription_ends_at=None` clears the end date; not passing it leaves it)."""


UNSET = Unset()
