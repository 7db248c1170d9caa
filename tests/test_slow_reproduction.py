"""Slow reproduction checks on MNIST (run with ``pytest -m slow``)."""

from __future__ import annotations

import pytest

from algorithms.data import load_dataset
from algorithms.spec import PCSpec
from algorithms.training import fit
from algorithms.variants import Variant, build_model

pytestmark = pytest.mark.slow


def test_fixed_prediction_pc_tracks_backprop_on_mnist(shared_data_dir):
    """One epoch on 10k MNIST images: PC under the fixed-prediction assumption (100 steps,
    rate 0.1) lands within 0.5 points of its backprop twin, which clears 80%."""
    data = load_dataset("mnist", shared_data_dir)
    data = type(data)(data.name, data.train_x[:10000], data.train_y[:10000], data.test_x,
                      data.test_y, data.image_shape, data.classes)
    spec = PCSpec(fixed_predictions=True)
    pc = fit(build_model(Variant.PC, spec), data, 1, progress=False)[-1].test_accuracy
    bp = fit(build_model(Variant.BACKPROP, spec), data, 1, progress=False)[-1].test_accuracy
    assert bp > 0.80 and abs(pc - bp) < 0.005
