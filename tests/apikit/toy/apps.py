from django.apps import AppConfig


class ToyConfig(AppConfig):
    """A test-only app exercising the API platform before the real domains exist."""

    name = "tests.apikit.toy"
    label = "toy"

    def ready(self) -> None:
        # Real apps are listed in accounts.roles; the toy app adds itself to the matrix here.
        from accounts.roles import Role
        from apikit.policy import ROLE_PERMISSIONS

        every = {
            f"toy.{action}_{model}"
            for action in ("view", "add", "change", "delete")
            for model in ("site", "item")
        }
        ROLE_PERMISSIONS[Role.TENANT_ADMIN] = ROLE_PERMISSIONS[Role.TENANT_ADMIN] | every
        ROLE_PERMISSIONS[Role.CLINICIAN] = ROLE_PERMISSIONS[Role.CLINICIAN] | {
            "toy.view_site",
            "toy.view_item",
            "toy.add_item",
            "toy.change_item",
            "toy.delete_item",
        }
