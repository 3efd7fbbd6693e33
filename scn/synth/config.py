"""SynthConfig: every fraction and range the face generator draws from.

Defaults are chosen to resemble in-the-wild data such as RAF-DB: most faces are frontal-ish,
well lit and sharp, but a sizeable minority is subtle, blended, occluded, blurred, low-resolution
or heavily compressed, which is where a real expression classifier makes its mistakes.
"""
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """Distributions of expression, pose and degradation parameters (all keyword-only)."""

    # Expression. Intensity scales every action unit of the class prototype.
    intensity_min: float = 0.2
    intensity_max: float = 1.0
    blend_fraction: float = 0.2
    blend_weight_max: float = 0.45
    # Spontaneous activity of action units outside the prototype (resting faces differ).
    stray_au_probability: float = 0.25
    stray_au_max: float = 0.2

    # Pose, in degrees for angles and fractions of the image size for shifts.
    roll_max: float = 20.0
    roll_std: float = 7.0
    yaw_max: float = 22.0
    shift_max: float = 0.04
    scale_jitter: float = 0.08

    # Occlusion: at most one kind per face, chosen with these probabilities.
    glasses_fraction: float = 0.10
    sunglasses_fraction: float = 0.04
    hand_fraction: float = 0.05
    mask_fraction: float = 0.03

    # Image degradations, applied after rendering, in this order.
    blur_fraction: float = 0.2
    blur_sigma_max: float = 1.8
    lowres_fraction: float = 0.25
    lowres_scale_min: float = 0.3
    lowres_scale_max: float = 0.7
    sensor_noise_fraction: float = 0.3
    sensor_noise_sigma_max: float = 12.0
    low_jpeg_fraction: float = 0.3
    jpeg_quality_low: tuple[int, int] = (20, 50)
    jpeg_quality_high: tuple[int, int] = (70, 95)

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_fraction") or field.name.endswith("_probability"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{field.name} must be within [0, 1], got {value}")
        occlusion = (self.glasses_fraction + self.sunglasses_fraction + self.hand_fraction
                     + self.mask_fraction)
        if occlusion > 1.0:
            raise ValueError(f"occlusion fractions add up to {occlusion:.3f}, more than 1")
        if not 0.0 <= self.intensity_min <= self.intensity_max <= 1.0:
            raise ValueError("intensity range must satisfy 0 <= intensity_min <= intensity_max <= 1")
        if not 0.1 <= self.blend_weight_max < 0.5:
            raise ValueError("blend_weight_max must be within [0.1, 0.5): the true class keeps the larger weight")
        if self.blur_sigma_max < 0.6 or self.sensor_noise_sigma_max < 2.0:
            raise ValueError("blur_sigma_max must be at least 0.6 and sensor_noise_sigma_max at least 2")
        if not 0.0 < self.lowres_scale_min <= self.lowres_scale_max <= 1.0:
            raise ValueError("lowres scale range must satisfy 0 < min <= max <= 1")
        for name in ("jpeg_quality_low", "jpeg_quality_high"):
            low, high = getattr(self, name)
            if not 1 <= low <= high <= 100:
                raise ValueError(f"{name} must be a (low, high) pair within 1..100")

    def without_degradations(self) -> "SynthConfig":
        """The same expressions and pose, with no occlusion, blur, low resolution or noise."""
        return replace(
            self, glasses_fraction=0.0, sunglasses_fraction=0.0, hand_fraction=0.0,
            mask_fraction=0.0, blur_fraction=0.0, lowres_fraction=0.0, sensor_noise_fraction=0.0,
            low_jpeg_fraction=0.0, jpeg_quality_high=(95, 95),
        )
