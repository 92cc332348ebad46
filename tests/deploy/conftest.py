from __future__ import annotations

import pytest

from tests.deploy.chart import VALUES_FILES, Manifest, render, values_file


@pytest.fixture(scope="module", params=sorted(VALUES_FILES))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    """(values file name, its rendered manifests) for each of the chart's CI values files."""
    return request.param, render(values_file(request.param))
