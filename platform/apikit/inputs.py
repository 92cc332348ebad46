"""Input validation helper for thin views: serializers validate, services act."""

from typing import Any

from rest_framework.serializers import BaseSerializer


def validated(serializer_class: type[BaseSerializer[Any]], data: Any) -> dict[str, Any]:
    """Validate request data; invalid input raises and becomes a 400 envelope."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
