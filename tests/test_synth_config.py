"""SynthConfig: keyword-only options, impossible settings refused, degradations switchable off."""
import pytest

from scn.synth import SynthConfig


@pytest.mark.parametrize("options, message", [
    ({"blur_fraction": 1.5}, r"blur_fraction must be within \[0, 1\]"),
    ({"glasses_fraction": 0.6, "mask_fraction": 0.6}, "occlusion fractions add up to 1.2"),
    ({"intensity_min": 0.8, "intensity_max": 0.5}, "intensity range"),
    ({"blend_weight_max": 0.6}, r"blend_weight_max must be within \[0.1, 0.5\)"),
    ({"jpeg_quality_low": (0, 50)}, "jpeg_quality_low must be a"),
])
def test_rejects_impossible_settings(options, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**options)
    with pytest.raises(TypeError):
        SynthConfig(0.2)


def test_without_degradations_keeps_expressions_and_drops_every_fault():
    config = SynthConfig(blend_fraction=0.5).without_degradations()
    assert config.blend_fraction == 0.5
    for name in ("glasses", "sunglasses", "hand", "mask", "blur", "lowres", "sensor_noise", "low_jpeg"):
        assert getattr(config, f"{name}_fraction") == 0.0
