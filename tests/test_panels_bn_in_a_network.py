"""Notebook 06's panel (helpers.panels.bn_in_a_network): it reads the settings the quick sweeps
train."""

from helpers.lessons import bn_in_a_network as experiments
from helpers.panels.bn_in_a_network import PANELS


def test_the_quick_sweep_settings_are_the_ones_the_panel_reads():
    lr_control, std_control, _ = PANELS[0].controls
    assert tuple(lr_control.options) == experiments.LEARNING_RATES
    assert lr_control.value == experiments.BASE_LR
    assert tuple(std_control.options) == experiments.INIT_STDS
    assert std_control.value == experiments.BASE_INIT_STD
