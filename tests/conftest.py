from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def shared_data_dir() -> Path:
    """The IDX files CI provides (``$PREDICTIVE_CIRCUITS_DATA`` or ../shared/datasets)."""
    env = os.environ.get("PREDICTIVE_CIRCUITS_DATA")
    folder = Path(env) if env else SHARED_DATA
    if not (folder / "mnist").is_dir():
        pytest.skip(f"MNIST IDX files not found in {folder}")
    return folder
