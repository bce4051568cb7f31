import os
from pathlib import Path

import pytest

from schemas import environment

environment.apply()  # before any test module imports Prefect, GX or transformers

# Fixture modules shared by several test folders (the fake OpenAI server, ...).
pytest_plugins = ["tests.judges.fixtures"]
# Prefect logs "Stopping temporary server" at exit, after pytest closed its streams.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
