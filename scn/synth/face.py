"""Drawing one face: identity, head pose, and the movements of the action units.

Geometry lives in face units: the origin is the midpoint between the eyes, x points to the
image's right, y down, and the face is about 2 units wide. A `Projection` maps face units to canvas
pixels; it imitates yaw by putting the face on a cylinder (features shift toward the turned side
and the receding half is compressed) and applies roll, scale and position. Everything is drawn
with OpenCV's anti-aliased primitives at sub-pixel precision on a canvas larger than the output
image, which the caller shrinks.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from scn.synth.expressions import AU_INDEX

SHIFT = 4  # fixed-point fraction bits for OpenCV drawing: sub-pixel precise anti-aliased edges
ONE = 1 << SHIFT

HAIR_STYLES = ("bald", "short", "fringe", "side", "long")
SKIN_TONES = np.array([(245, 206, 182), (230, 178, 146), (200, 140, 104), (150, 96, 66), (96, 60, 42)])
HAIR_COLOURS = np.array([(22, 18, 16), (58, 38, 26), (104, 70, 42), (176, 138, 84), (150, 66, 34),
                         (160, 156, 150)])
IRIS_COLOURS = np.array([(70, 44, 28), (40, 28, 20), (70, 100, 140), (84, 110, 70), (120, 90, 50)])
CLOTHES = np.array([(40, 50, 80), (200, 200, 205), (120, 30, 40), (30, 30, 32), (70, 110, 80),
                    (180, 150, 110)])


@dataclass(frozen=True, kw_only=True)
class Identity:
    """What stays the same across one person's expressions."""

    skin: tuple
    lips: tuple
    hair: tuple
    hair_style: str
    iris: tuple
    clothes: tuple
    face_width: float
    crown: float
    chin: float
    jaw_taper: float
    eye_spacing: float
    eye_width: float
    eye_open: float
    iris_radius: float
    brow_height: float
    brow_thickness: float
    brow_arch: float
    nose_width: float
    nose_length: float
    mouth_y: float
    mouth_width: float
    upper_lip: float
    lower_lip: float
    age: float


@dataclass(frozen=True, kw_only=True)
class Pose:
    """Head pose: in-plane roll and yaw in degrees, shift as fractions of the image, scale factor."""

    roll: float
    yaw: float
    shift_x: float
    shift_y: float
    scale: float
    gaze: float


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random person."""
    skin = _mix_palette(rng, SKIN_TONES) * rng.uniform(0.94, 1.04) + rng.normal(0, 4, 3)
    lips = 0.72 * skin + 0.28 * np.array([170, 60, 70]) + rng.normal(0, 5, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2) + rng.normal(0, 5, 3)
    iris = IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.2)
    clothes = CLOTHES[rng.integers(len(CLOTHES))] * rng.uniform(0.7, 1.2)
    return Identity(
        skin=_colour(skin), lips=_colour(lips), hair=_colour(hair), iris=_colour(iris),
        clothes=_colour(clothes), hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))],
        face_width=rng.uniform(0.86, 1.0), crown=rng.uniform(0.95, 1.08), chin=rng.uniform(1.12, 1.3),
        jaw_taper=rng.uniform(0.15, 0.45), eye_spacing=rng.uniform(0.37, 0.45),
        eye_width=rng.uniform(0.14, 0.175), eye_open=rng.uniform(0.055, 0.075),
        iris_radius=rng.uniform(0.068, 0.078), brow_height=rng.uniform(-0.3, -0.24),
        brow_thickness=rng.uniform(0.04, 0.07), brow_arch=rng.uniform(0.0, 0.05),
        nose_width=rng.uniform(0.09, 0.135), nose_length=rng.uniform(0.4, 0.5),
        mouth_y=rng.uniform(0.28, 0.34), mouth_width=rng.uniform(0.24, 0.31),
        upper_lip=rng.uniform(0.028, 0.048), lower_lip=rng.uniform(0.04, 0.065),
        age=rng.uniform(0.0, 1.0),
    )


def sample_pose(rng: np.random.Generator, *, config) -> Pose:
    """Draw a head pose within the configured limits."""
    roll = float(np.clip(rng.normal(0.0, config.roll_std), -config.roll_max, config.roll_max))
    return Pose(
        roll=roll, yaw=rng.uniform(-config.yaw_max, config.yaw_max),
        shift_x=rng.uniform(-config.shift_max, config.shift_max),
        shift_y=rng.uniform(-config.shift_max, config.shift_max),
        scale=rng.uniform(1.0 - config.scale_jitter, 1.0 + config.scale_jitter),
        gaze=rng.uniform(-0.03, 0.03),
    )


class Projection:
    """Face units to canvas pixels: cylinder yaw, then roll, scale and position."""

    def __init__(self, *, canvas: int, pose: Pose, face_width: float):
        self.unit = canvas * 0.4 * pose.scale
        self.centre = np.array([canvas * (0.5 + pose.shift_x), canvas * (0.40 + pose.shift_y)])
        self.inverse_width = 1.0 / (1.05 * face_width)
        yaw, roll = np.radians(pose.yaw), np.radians(pose.roll)
        self.cos_yaw, self.sin_yaw = np.cos(yaw), np.sin(yaw)
        rotation = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
        self.matrix = rotation.T * self.unit

    def __call__(self, points, *, lift: float = 0.0) -> np.ndarray:
        """Pixel coordinates of (N, 2) face-unit points; `lift` raises them off the face (the nose)."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        x, y = points[:, 0], points[:, 1]
        depth = 0.55 * np.sqrt(np.maximum(1.0 - (x * self.inverse_width) ** 2, 0.0)) + lift
        turned = x * self.cos_yaw + depth * self.sin_yaw
        (a, b), (c, d) = self.matrix
        pixels = np.empty_like(points)
        pixels[:, 0] = turned * a + y * c + self.centre[0]
        pixels[:, 1] = turned * b + y * d + self.centre[1]
        return pixels

    def length(self, units: float) -> float:
        """A face-unit length in canvas pixels."""
        return units * self.unit


@dataclass(frozen=True, kw_only=True)
class Landmarks:
    """Where the face parts ended up, in face units, with the pen that drew them.

    `outline` is a 20-point face outline in the manner of the 68-point scheme of face-alignment
    sets (300-W), reduced to the points that move: inner end, middle and outer end of each brow,
    eye centres, middle of each upper and lower lid, mouth corners (all as left/right pairs), then
    nose tip, top of the upper lip, the lips' inner edges, bottom of the lower lip and chin."""

    pen: "Pen"
    brows: np.ndarray
    eyes: np.ndarray
    nose: np.ndarray
    mouth: np.ndarray
    outline: np.ndarray
    chin: np.ndarray

    def pixels(self, name: str) -> np.ndarray:
        """Canvas pixel coordinates of one landmark group, shape (N, 2)."""
        return self.pen.project(getattr(self, name), lift=0.25 if name == "nose" else 0.0)


OUTLINE_POINTS = 20
# The outline's order after a horizontal flip: each left/right pair swaps, the midline stays.
OUTLINE_MIRROR = [i ^ 1 for i in range(14)] + list(range(14, OUTLINE_POINTS))


def draw_face(canvas: np.ndarray, identity: Identity, pose: Pose, aus: np.ndarray, *,
              light: float) -> Landmarks:
    """Draw the head onto `canvas` (RGB uint8, drawn in place).

    `aus` holds action-unit intensities in ACTION_UNITS order; `light` in [-1, 1] says from which
    side the light falls (negative: from the left), which decides the side of the nose shadow.
    Returns the Landmarks of brows, eyes, nose, mouth and chin.
    """
    au = {unit: float(aus[i]) for unit, i in AU_INDEX.items()}
    project = Projection(canvas=canvas.shape[0], pose=pose, face_width=identity.face_width)
    pen = Pen(canvas, project)
    skin = np.array(identity.skin)
    jaw_drop = 0.3 * au[26]

    if identity.hair_style == "long":
        _long_hair_back(pen, identity)
    _neck_and_clothes(pen, identity)
    _ears(pen, identity)
    _soften(canvas, sigma=pen.px(0.05))
    contour = _face_contour(identity, jaw_drop=jaw_drop)

    def shade(layer, offset):
        # Darker towards the outline: the face looks round.
        layer[:] = skin * 0.8
        pen.fill(contour * [0.84, 0.88] + [0, -0.04], skin, canvas=layer, offset=offset)
        _soften(layer, sigma=pen.px(0.1))

    pen.clipped(contour, shade)
    _cheeks(pen, identity, au)
    eyes = [_eye(pen, identity, au, side, gaze=pose.gaze) for side in (-1, 1)]
    brows = [_brow(pen, identity, au, side) for side in (-1, 1)]
    _forehead_lines(pen, identity, au)
    nose = _nose(pen, identity, au, light=light)
    mouth, mouth_corners, lips = _mouth(pen, identity, au, jaw_drop=jaw_drop)
    _hair_front(pen, identity)
    chin = (0.0, identity.chin + jaw_drop)
    # Left/right pairs first (side -1 then +1), then the points on the midline: OUTLINE_MIRROR.
    pairs = [brow[k] for k in range(3) for brow in brows] + [eye[k] for k in range(3) for eye in eyes]
    outline = np.array(pairs + list(mouth_corners) + [nose] + list(lips) + [chin], dtype=float)
    return Landmarks(pen=pen, brows=np.array([brow[1] for brow in brows]), eyes=np.array([eye[0] for eye in eyes]),
                     nose=np.array(nose), mouth=np.array(mouth), outline=outline, chin=np.array(chin))


def _soften(image: np.ndarray, *, sigma: float):
    """Blur an image in place: puts the background out of focus, shades the face round.

    Blurring a quarter-size copy and enlarging it again costs a fraction of a full-size blur.
    """
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / 4)
    cv2.resize(small, (w, h), dst=image, interpolation=cv2.INTER_LINEAR)


class Pen:
    """Anti-aliased filled shapes and lines in face units on one canvas (also used for occluders)."""

    def __init__(self, canvas: np.ndarray, project: Projection):
        self.canvas = canvas
        self.project = project

    def px(self, units: float) -> float:
        return self.project.length(units)

    def fixed(self, points, *, lift: float = 0.0, offset=(0, 0)) -> np.ndarray:
        pixels = self.project(points, lift=lift) - np.asarray(offset)
        return np.round(pixels * ONE).astype(np.int32)

    def fill(self, points, colour, *, lift: float = 0.0, canvas=None, offset=(0, 0)):
        target = self.canvas if canvas is None else canvas
        cv2.fillPoly(target, [self.fixed(points, lift=lift, offset=offset)], _rgb(colour),
                     cv2.LINE_AA, SHIFT)

    def line(self, points, colour, width: float, *, lift: float = 0.0):
        thickness = max(1, int(round(self.px(width))))
        cv2.polylines(self.canvas, [self.fixed(points, lift=lift)], False, _rgb(colour), thickness,
                      cv2.LINE_AA, SHIFT)

    def crease(self, points, skin, strength: float, width: float = 0.012, *, lift: float = 0.0):
        """A wrinkle or fold: a line of darkened skin, invisible at zero strength."""
        if strength > 0.03:
            self.line(points, np.asarray(skin) * (1.0 - 0.35 * min(strength, 1.0)), width, lift=lift)

    def blob(self, centre, radius: float, colour, amount: float):
        """Blend a soft round patch of `colour` (Gaussian falloff): cheek highlights, shadows."""
        if amount <= 0.01:
            return
        (cx, cy), r = self.project(centre)[0], self.px(radius)
        h, w = self.canvas.shape[:2]
        x0, x1 = max(int(cx - 2 * r), 0), min(int(cx + 2 * r) + 1, w)
        y0, y1 = max(int(cy - 2 * r), 0), min(int(cy + 2 * r) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return
        ys, xs = np.ogrid[y0:y1, x0:x1]
        weight = amount * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (r * r))[..., None]
        patch = self.canvas[y0:y1, x0:x1]
        patch[:] = patch * (1.0 - weight) + np.asarray(colour) * weight

    def clipped(self, outline, draw, *, lift: float = 0.0):
        """Run `draw(layer, offset)` on a copy of the region under `outline`, keep it inside only.

        Eyes and the open mouth need this: the iris must not spill over the lids, nor teeth over
        the lips.
        """
        pixels = self.project(outline, lift=lift)
        h, w = self.canvas.shape[:2]
        x0, y0 = np.maximum(np.floor(pixels.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(pixels.max(axis=0)).astype(int) + 2, [w, h])
        if x0 >= x1 or y0 >= y1:
            return
        region = self.canvas[y0:y1, x0:x1]
        layer = region.copy()
        mask = np.zeros(layer.shape[:2], np.uint8)
        cv2.fillPoly(mask, [self.fixed(outline, lift=lift, offset=(x0, y0))], 255, cv2.LINE_AA, SHIFT)
        draw(layer, (x0, y0))
        alpha = mask.astype(np.float32) * (1.0 / 255.0)
        region[:] = cv2.blendLinear(layer, region, alpha, 1.0 - alpha)


def _face_contour(identity: Identity, *, jaw_drop: float) -> np.ndarray:
    """Outline of the face: a rounded top, cheeks, and a jaw tapering to the chin."""
    t = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    s, c = np.sin(t), np.cos(t)
    lower = s > 0
    taper = 1.0 - identity.jaw_taper * np.where(lower, s, 0.0) ** 3
    x = identity.face_width * c * taper
    y = np.where(lower, (identity.chin + jaw_drop) * s, identity.crown * s)
    return np.stack([x, y], axis=1)


def _long_hair_back(pen: Pen, identity: Identity):
    w = identity.face_width
    t = np.linspace(np.pi, 2.0 * np.pi, 16)
    top = np.stack([1.18 * w * np.cos(t), 1.15 * identity.crown * np.sin(t)], axis=1)
    sides = np.array([[1.22 * w, 1.0], [1.05 * w, 1.55], [-1.05 * w, 1.55], [-1.22 * w, 1.0]])
    pen.fill(np.vstack([top, sides]), np.array(identity.hair) * 0.85)


def _neck_and_clothes(pen: Pen, identity: Identity):
    w, skin = identity.face_width, np.array(identity.skin)
    pen.fill([[-0.48 * w, 0.6], [0.48 * w, 0.6], [0.55 * w, 2.2], [-0.55 * w, 2.2]], skin * 0.72)
    shoulders = [[-0.5 * w, 1.55], [0.5 * w, 1.55], [2.4, 1.85], [2.4, 2.6], [-2.4, 2.6], [-2.4, 1.85]]
    pen.fill(shoulders, identity.clothes)
    pen.fill([[-0.36 * w, 1.55], [0.36 * w, 1.55], [0.0, 1.8]], skin * 0.72)


def _ears(pen: Pen, identity: Identity):
    for side in (-1, 1):
        pen.fill(_ellipse((side * 0.97 * identity.face_width, 0.12), 0.11, 0.2), np.array(identity.skin) * 0.8)


def _cheeks(pen: Pen, identity: Identity, au: dict):
    """Cheek raise (AU6) and the smile (AU12) lift and round the cheeks, seen as a highlight."""
    skin = np.array(identity.skin)
    lift = 0.6 * au[6] + 0.4 * au[12]
    light = np.minimum(skin * 1.12 + 10, 255)
    for side in (-1, 1):
        pen.blob((side * 0.47, 0.36 - 0.1 * lift), 0.17, light, 0.25 + 0.35 * lift)
        pen.blob((side * 0.52, 0.6 - 0.05 * lift), 0.14, skin * 0.82, 0.3 * lift)


def _eye(pen: Pen, identity: Identity, au: dict, side: int, *, gaze: float) -> tuple:
    """One eye: lids shaped by AU5 (raise), AU7 (tighten), AU6 (cheek push), AU4 and AU9.

    Returns the eye's centre and the middle points of its upper and lower lids."""
    skin = np.array(identity.skin)
    cx, width = side * identity.eye_spacing, identity.eye_width
    upper = identity.eye_open * (1 + 1.2 * au[5] - 0.4 * au[7] - 0.25 * au[4] - 0.2 * au[9] - 0.2 * au[6])
    lower = identity.eye_open * (0.75 - 0.45 * au[7] - 0.45 * au[6] - 0.15 * au[9])
    u = np.linspace(-1.0, 1.0, 13)
    x = cx + side * u * width
    upper_lid = np.stack([x, -upper * (1 - u ** 2) ** 0.7 * (1 + 0.15 * u) + 0.01 * u], axis=1)
    lower_lid = np.stack([x, max(lower, 0.008) * (1 - u ** 2) ** 0.9 + 0.01 * u], axis=1)
    opening = np.vstack([upper_lid, lower_lid[::-1]])
    # The eyes keep looking at the camera while the head turns away from it.
    iris_centre = (cx + gaze - 0.04 * pen.project.sin_yaw, 0.012)
    radius = identity.iris_radius

    def draw(layer, offset):
        pen.fill(opening, (236, 232, 226), canvas=layer, offset=offset)
        pen.fill(_ellipse(iris_centre, radius, radius), identity.iris, canvas=layer, offset=offset)
        pen.fill(_ellipse(iris_centre, 0.4 * radius, 0.4 * radius), (12, 10, 10), canvas=layer,
                 offset=offset)
        glint = (iris_centre[0] - 0.3 * radius, iris_centre[1] - 0.35 * radius)
        pen.fill(_ellipse(glint, 0.14 * radius, 0.14 * radius), (250, 250, 250), canvas=layer,
                 offset=offset)
        # The shadow of the upper lid on the eyeball.
        shade = np.vstack([upper_lid, upper_lid[::-1] + [0, 0.025]])
        pen.fill(shade, (150, 130, 120), canvas=layer, offset=offset)

    pen.clipped(opening, draw)
    pen.line(upper_lid, (30, 22, 20), 0.022)
    pen.crease(upper_lid[2:-2] + [0, -0.045 - 0.02 * au[5]], skin, 0.5 * (1 - au[5]))
    pen.crease(lower_lid[3:-3] + [0, 0.03], skin, 0.25 + 0.5 * au[6] + 0.5 * au[7])
    corner = np.array([cx + side * (width + 0.04), 0.0])
    for angle in (-0.45, 0.0, 0.45):
        direction = np.array([side * np.cos(angle), np.sin(angle)])
        pen.crease([corner, corner + 0.07 * direction], skin, 0.9 * au[6] + 0.2 * identity.age)
    return (cx, 0.0), upper_lid[6], lower_lid[6]


def _brow(pen: Pen, identity: Identity, au: dict, side: int) -> tuple:
    """One brow: AU1 raises its inner end, AU2 its outer end, AU4 (and AU9) pulls it down and in.

    Returns its inner end, middle and outer end."""
    base, s = identity.brow_height, identity.eye_spacing
    inner = (side * (s - 0.2 + 0.05 * au[4]), base - 0.16 * au[1] + 0.11 * au[4] + 0.05 * au[9])
    middle = (side * s, base - identity.brow_arch - 0.07 * au[1] - 0.11 * au[2] + 0.07 * au[4]
              + 0.02 * au[9])
    outer = (side * (s + 0.21), base + 0.035 - 0.15 * au[2] + 0.03 * au[4])
    t = np.linspace(0.0, 1.0, 9)[:, None]
    centre = ((1 - t) ** 2 * np.array(inner) + 2 * t * (1 - t) * (2 * np.array(middle)
              - (np.array(inner) + np.array(outer)) / 2) + t ** 2 * np.array(outer))
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    half = identity.brow_thickness * (1.1 - 0.7 * t) / 2
    colour = np.array(identity.hair) * 0.75 + np.array(identity.skin) * 0.1
    pen.fill(np.vstack([centre + normal * half, (centre - normal * half)[::-1]]), colour)
    return inner, middle, outer


def _forehead_lines(pen: Pen, identity: Identity, au: dict):
    """Horizontal forehead wrinkles from raised brows; vertical ones between lowered brows."""
    skin, top = identity.skin, identity.brow_height - 0.1
    raised = max(au[1], au[2]) + 0.15 * identity.age
    x = np.linspace(-0.32, 0.32, 9)
    for row in range(3):
        y = top - 0.08 * row - 0.04 * (x / 0.32) ** 2
        pen.crease(np.stack([x * (1 - 0.1 * row), y], axis=1), skin, 0.8 * raised - 0.15 * row)
    frown = au[4] + 0.5 * au[9]
    for side in (-1, 1):
        pen.crease([(side * 0.05, identity.brow_height + 0.03), (side * 0.035, identity.brow_height - 0.1)],
                   skin, 0.9 * frown)


def _nose(pen: Pen, identity: Identity, au: dict, *, light: float) -> tuple:
    """Nose: bridge shading, wings and nostrils; AU9 wrinkles the bridge and lifts the wings."""
    skin = np.array(identity.skin)
    tip, w = identity.nose_length, identity.nose_width
    lift = 0.04 * au[9] + 0.02 * au[10]
    wing = w * (1 + 0.2 * au[9])
    shadow_side = 1 if light < 0 else -1
    bridge = [(0.07, 0.05), (0.09, tip - 0.12), (wing * 0.8, tip - 0.04)]
    pen.crease([(shadow_side * x, y) for x, y in bridge],
               skin, 0.3 + 0.3 * abs(light), 0.02, lift=0.15)
    pen.blob((0.0, tip + 0.07 - lift), 0.08, skin * 0.7, 0.35)
    pen.blob((0.0, tip - 0.05), 0.05, np.minimum(skin * 1.15 + 10, 255), 0.4)
    for side in (-1, 1):
        arc = _ellipse((side * wing * 0.85, tip - lift), 0.055, 0.05, start=-0.6 * np.pi, stop=0.55 * np.pi,
                       mirror=side)
        pen.crease(arc, skin, 0.6, 0.016, lift=0.1)
        nostril = _ellipse((side * wing * 0.42, tip + 0.03 - lift), 0.038, 0.017)
        pen.fill(nostril, skin * 0.35, lift=0.2)
    for row in range(3):
        y = 0.06 + 0.045 * row
        pen.crease([(-0.07, y), (0.0, y - 0.012), (0.07, y)], skin, 1.1 * au[9] - 0.2 * row, lift=0.2)
    return 0.0, tip


def _mouth(pen: Pen, identity: Identity, au: dict, *, jaw_drop: float) -> tuple:
    """Lips, opening, teeth and the folds around the mouth, from AU10-AU26.

    Returns the mouth's centre, its two corners (where the lips meet), and on the midline the top
    of the upper lip, the lips' inner edges and the bottom of the lower lip."""
    skin = np.array(identity.skin)
    centre_y = identity.nose_length + identity.mouth_y
    width = identity.mouth_width * (1 + 0.25 * au[20] + 0.25 * au[12] - 0.22 * au[23] - 0.12 * au[24]
                                    - 0.25 * au[26] * (1 - au[20]) + 0.05 * au[25])
    corner = -0.13 * au[12] + 0.085 * au[15] + 0.015 * au[20] - 0.015 * au[10]
    opening = 0.035 * au[25] + jaw_drop + 0.02 * au[10]
    u = np.linspace(-1.0, 1.0, 15)
    x = u * width
    stomion = centre_y - 0.025 * au[17] * (1 - u ** 2) + corner * np.abs(u) ** 1.6
    gap = opening * (1 - u ** 2) ** (0.75 - 0.45 * au[20])
    upper_inner = stomion - 0.25 * gap - 0.04 * au[10] * np.sqrt(1 - u ** 2)
    lower_inner = stomion + 0.75 * gap
    # Tightened, pressed or stretched lips thin out, but never vanish.
    upper_thick = identity.upper_lip * max(0.2, 1 - 0.55 * au[23] - 0.6 * au[24] - 0.25 * au[12] - 0.2 * au[20])
    lower_thick = identity.lower_lip * max(0.25, 1 - 0.45 * au[23] - 0.55 * au[24] - 0.2 * au[12]
                                           - 0.2 * au[20] + 0.2 * au[17])
    bow = 1 - 0.3 * np.exp(-(u / 0.15) ** 2)
    upper_outer = upper_inner - upper_thick * np.sqrt(1 - u ** 2) * bow - 0.006
    lower_outer = lower_inner + lower_thick * (1 - u ** 2) ** 0.6 + 0.004

    def line(ys):
        """A curve over the mouth's x samples."""
        return np.stack([x, ys], axis=1)

    _mouth_folds(pen, identity, au, width=width, corner_y=centre_y + corner, lower_y=lower_outer.max())
    if opening > 0.004:
        cavity = np.vstack([line(upper_inner), line(lower_inner)[::-1]])
        teeth_upper = min(0.055, 0.9 * opening)

        def draw(layer, offset):
            pen.fill(cavity, (60, 22, 24), canvas=layer, offset=offset)
            # Teeth stop short of the mouth corners; lower teeth show only in a wide-open mouth.
            teeth = np.vstack([line(upper_inner - 0.01), line(upper_inner + teeth_upper)[::-1]])
            pen.fill(teeth * [0.85, 1.0], (226, 220, 206), canvas=layer, offset=offset)
            if gap.max() > 0.07:
                bottom = np.vstack([line(lower_inner - 0.03), line(lower_inner + 0.01)[::-1]])
                pen.fill(bottom * [0.75, 1.0], (200, 194, 182), canvas=layer, offset=offset)

        pen.clipped(cavity, draw)
    lips = np.array(identity.lips)
    pen.fill(np.vstack([line(upper_inner), line(upper_outer)[::-1]]), lips * 0.85)
    pen.fill(np.vstack([line(lower_inner), line(lower_outer)[::-1]]), lips)
    pen.blob((0.0, (lower_inner[7] + lower_outer[7]) / 2), 0.03, np.minimum(lips * 1.25, 255), 0.35)
    pen.line(line(stomion if opening <= 0.004 else upper_inner), lips * 0.45, 0.012)
    lips = [(0.0, float(edge[7])) for edge in (upper_outer, upper_inner, lower_inner, lower_outer)]
    return (0.0, float(stomion[7])), line(stomion)[[0, -1]], lips


def _mouth_folds(pen: Pen, identity: Identity, au: dict, *, width: float, corner_y: float,
                 lower_y: float):
    """Nasolabial folds (AU12, AU10, AU9, AU6), corner lines (AU15, AU20), chin (AU17)."""
    skin, tip = identity.skin, identity.nose_length
    fold = 0.15 + 0.3 * identity.age + 0.7 * au[12] + 0.5 * au[10] + 0.5 * au[9] + 0.3 * au[6]
    for side in (-1, 1):
        start = np.array([side * (identity.nose_width + 0.06), tip - 0.03 - 0.03 * au[9]])
        end = np.array([side * (width + 0.07), corner_y + 0.08])
        bend = (start + end) / 2 + [side * 0.05, 0.0]
        t = np.linspace(0.0, 1.0, 8)[:, None]
        curve = (1 - t) ** 2 * start + 2 * t * (1 - t) * bend + t ** 2 * end
        pen.crease(curve, skin, fold, 0.016)
        corner = np.array([side * width, corner_y])
        pen.crease([corner + [side * 0.015, -0.02], corner + [side * 0.03, 0.02]], skin, au[12])
        pen.crease([corner + [side * 0.01, 0.02], corner + [side * 0.03, 0.14]], skin, 0.8 * au[15])
        pen.crease([corner + [side * 0.02, 0.0], corner + [side * 0.1, 0.01]], skin, 0.8 * au[20])
    purse = 0.7 * max(au[23], au[24])
    for x in (-0.08, -0.03, 0.03, 0.08):
        pen.crease([(x, corner_y - 0.06), (x * 1.1, corner_y - 0.1)], skin, purse, 0.008)
    sulcus_y = lower_y + 0.07 - 0.03 * au[17]
    pen.crease([(-0.1, sulcus_y), (0.0, sulcus_y + 0.015), (0.1, sulcus_y)], skin, 0.3 + 0.6 * au[17], 0.016)
    for x, y in ((-0.05, 0.1), (0.04, 0.12), (0.0, 0.16)):
        pen.crease([(x, sulcus_y + y), (x + 0.015, sulcus_y + y + 0.005)], skin, 0.9 * au[17], 0.014)


def _hair_front(pen: Pen, identity: Identity):
    """The hair over the forehead, by style; a few strands give it texture."""
    if identity.hair_style == "bald":
        return
    w, crown = identity.face_width, identity.crown
    t = np.linspace(np.pi, 2.0 * np.pi, 20)
    top = np.stack([1.07 * w * np.cos(t), 1.1 * crown * np.sin(t) - 0.02], axis=1)
    x = np.linspace(w * 1.02, -w * 1.02, 21)
    rel = x / w
    if identity.hair_style == "fringe":
        edge = -0.5 + 0.5 * np.abs(rel) ** 4 + 0.025 * np.cos(rel * 24)
    elif identity.hair_style == "side":
        edge = -0.62 + 0.22 * (rel + 0.3) ** 2 * (rel > -0.3) + 0.62 * np.abs(rel) ** 5
    else:
        edge = -0.68 + 0.6 * np.abs(rel) ** 3
    hair = np.array(identity.hair)
    pen.fill(np.vstack([top, np.stack([x, edge], axis=1)]), hair)
    for offset in (-0.5, -0.2, 0.15, 0.45):
        strand = np.stack([np.linspace(offset, offset * 1.4, 5), np.linspace(-0.95 * crown, -0.72, 5)], axis=1)
        pen.line(strand, hair * 0.7 + 8, 0.012)


def _ellipse(centre, rx: float, ry: float, *, start: float = 0.0, stop: float = 2.0 * np.pi,
             mirror: int = 1) -> np.ndarray:
    """Points on an ellipse (or an arc of it, mirrored left-right when mirror is -1)."""
    t = np.linspace(start, stop, 20)
    return np.stack([centre[0] + mirror * rx * np.cos(t), centre[1] + ry * np.sin(t)], axis=1)


def _mix_palette(rng: np.random.Generator, palette: np.ndarray) -> np.ndarray:
    """A colour between two neighbouring palette entries: skin tones vary continuously."""
    position = rng.uniform(0, len(palette) - 1)
    i = min(int(position), len(palette) - 2)
    return palette[i] + (position - i) * (palette[i + 1] - palette[i])


def _colour(values) -> tuple:
    return tuple(float(v) for v in np.clip(values, 0, 255))


def _rgb(colour) -> tuple:
    """An OpenCV colour: a scalar (masks) or three floats; callers keep channels within 0..255."""
    if np.isscalar(colour):
        return colour
    return tuple(map(float, colour))
