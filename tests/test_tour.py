"""What the notebooks load per PRESET (csrip_lib.tour): the shipped models, found without training."""
from __future__ import annotations

import pytest

from csrip_lib import tour


@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_PAIR.values())), reason="no shipped models")
def test_pretrained_notebook_06_uses_the_shipped_pair_and_trains_nothing(tmp_path, capsys):
    paths = tour.table2_checkpoints(tmp_path / "data-unused", tour.PRETRAINED, tmp_path / "runs", train=True)
    assert paths == {name: tour.shipped(n) for name, n in tour.SHIPPED_PAIR.items()}
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    assert "C-SRIP: shipped c-srip-quick" in capsys.readouterr().out
