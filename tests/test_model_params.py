"""Parameter counts: Table 1's split and Table 2's totals (the presets of docs/model.md)."""

import pytest

from stae.model.config import preset, presets
from stae.paper import PAPER_PARAMETERS
from stae.model import build_model, parameter_table

EXACT = ["conv-1enc-1lstm", "conv-1enc-2lstm", "conv-2enc-1lstm", "conv-2enc-2lstm"]


def test_table1_split_of_vanilla():
    rows = parameter_table(build_model("conv-1enc-1lstm"))
    assert rows == {"E": 1_600, "D": 1_569, "memory": 679_320, "Theta": 21_162, "total": 703_651}


@pytest.mark.parametrize("name", EXACT)
def test_conv_presets_match_table2_exactly(name):
    assert parameter_table(build_model(name))["total"] == PAPER_PARAMETERS[name]


def test_fc_presets_documented_counts():
    one = parameter_table(build_model("fc-2enc-1lstm"))["total"]
    two = parameter_table(build_model("fc-2enc-2lstm"))["total"]
    assert one == 50_377_195 and two == 83_945_963
    # The second FC-LSTM layer is exactly the paper's difference between the two rows.
    assert two - one == PAPER_PARAMETERS["fc-2enc-2lstm"] - PAPER_PARAMETERS["fc-2enc-1lstm"] == 33_568_768


def test_registry_names_are_table2_rows():
    assert set(presets()) == set(PAPER_PARAMETERS)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("conv-3enc-1lstm")
