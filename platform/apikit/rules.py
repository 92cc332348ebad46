"""The error a domain rule raises (``clinical/rules.py``, ``farms/rules.py``).

Domain rules are pure, keyword-only functions: they take plain values and return the cleaned
value or raise ``RuleError`` naming the input field the problem belongs to, in the domain's own
vocabulary (``planting``, ``supersedes``, ``ends_at``), a machine-readable ``code`` and a message
for people. The services turn it into a 400 (``as_validation_error``); the sync push into a
rejected row whose error names the wire column.
"""

from __future__ import annotations

from rest_framework.exceptions import ValidationError


class RuleError(ValueError):
    def __init__(self, field: str, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code

    def as_validation_error(self) -> ValidationError:
        return ValidationError({self.field: [self.message]})
