"""The Pathfinder / Path-X rasteriser: one seeded image of the Long Range Arena's synthetic task, in memory.

`lra.pathfinder` writes these images to disk as a data set (resumable) and holds the command line.

The algorithm follows the official Pathfinder generator (Linsley et al., 2018,
as used by the LRA): two target "snakes" made of `contour_length`
short paddles, each next paddle placed on a circle around the end of the
previous one with the direction drawn with weight
`(1 - occupancy) * cos^2(min(|dtheta| * continuity, pi/2))`; overlapping
candidates are rejected and redrawn; then distractor snakes of
`contour_length // 3` paddles; then two circular markers, one on the start
of the first snake and one on the end of the same snake (label 1) or of the
other snake (label 0). The image is the pixel-wise maximum of all layers,
written as an 8-bit grayscale PNG.

Choices of this implementation (the description leaves them open):

* Paddles are joined end to end, so every snake is one unbroken stroke; the
  `margin` is the blank gap (in pixels, 8-neighbourhood) kept between
  different snakes and markers. Hence in every image the two markers are
  connected through drawn pixels exactly when the label is 1.
* Strokes are rasterised in numpy by supersampling (`antialias_scale` sub-
  pixels per pixel side): a sub-pixel is inked when its centre lies within
  half the thickness of the paddle. Strokes are never thinner than
  `0.75 / antialias_scale` on each side, which keeps them unbroken.
* `distractor_budget` is the number of distractor paddles: there are
  `distractor_budget // (contour_length // 3)` distractor snakes, so the
  amount of clutter is the same at every difficulty.
* `seed_distance` is the least distance between the two markers. The target
  geometry is accepted only if BOTH possible marker pairs (same snake and other
  snake) satisfy it and keep clear of the other snake, so the label cannot be
  read off the snakes' shapes; the label only picks the end that is marked.
* A sample that cannot be placed is redrawn from scratch (bounded), never
  returned half-built.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .tasks import PATHFINDER_DIFFICULTIES, PATHFINDER_RESOLUTIONS
from .validation import check_int

__all__ = [
    "PathfinderParams",
    "PathfinderSample",
    "pathfinder_params",
    "draw_pathfinder_sample",
    "draw_indexed_pathfinder_sample",
]


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PathfinderParams:
    """Geometry of one Pathfinder variant; lengths are in output pixels.

    Attributes:
        resolution: image side.
        contour_length: paddles per target snake (6, 9 or 14 in the release).
        paddle_length: length of one paddle (distance between its ends).
        thickness: stroke width.
        margin: blank pixels kept between different snakes and markers (>= 1).
        marker_radius: radius of the two circular markers.
        seed_distance: least distance between the two marker centres.
        continuity: turning stiffness; turns beyond `pi / (2 * continuity)`
            have zero weight.
        antialias_scale: sub-pixels per pixel side used for anti-aliasing.
        distractor_budget: distractor paddles per image (see module docstring).
        angle_candidates: directions considered for each next paddle.
        snake_attempts: fresh starts tried before a snake is given up.
        image_attempts: fresh images tried before giving up with an error.
    """

    resolution: int
    contour_length: int
    paddle_length: float
    thickness: float
    margin: int
    marker_radius: float
    seed_distance: float
    continuity: float
    antialias_scale: int = 2
    distractor_budget: int = 20
    angle_candidates: int = 24
    snake_attempts: int = 20
    image_attempts: int = 200

    def __post_init__(self) -> None:
        positive_ints = (
            "resolution",
            "contour_length",
            "margin",
            "antialias_scale",
            "angle_candidates",
            "snake_attempts",
            "image_attempts",
        )
        for name in positive_ints:
            check_int(f"PathfinderParams.{name}", getattr(self, name))
        for name in ("paddle_length", "thickness", "marker_radius", "continuity"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PathfinderParams.{name} must be > 0, got {getattr(self, name)!r}")
        if self.seed_distance < 0:
            raise ValueError(f"PathfinderParams.seed_distance must be >= 0, got {self.seed_distance!r}")
        check_int("PathfinderParams.distractor_budget", self.distractor_budget, least=0)
        if 2 * max(self.margin, self.marker_radius) + self.paddle_length >= self.resolution:
            raise ValueError(
                f"PathfinderParams: margin ({self.margin}) / marker_radius ({self.marker_radius}) "
                f"and paddle_length ({self.paddle_length}) leave no room in a "
                f"{self.resolution}-pixel image"
            )

    @property
    def distractor_length(self) -> int:
        """Paddles per distractor snake: a third of the contour length."""
        return max(1, self.contour_length // 3)

    @property
    def num_distractors(self) -> int:
        """Distractor snakes per image (attempted; crowded images may hold fewer)."""
        return self.distractor_budget // self.distractor_length

    @property
    def stroke_radius(self) -> float:
        """Half stroke width, floored so that rasterised strokes stay unbroken.

        A sub-pixel is inked when its centre is within this radius of the
        paddle; every point lies within `sqrt(2)/2` sub-pixel of some centre,
        so a radius above that (0.75 sub-pixel) leaves no gaps.
        """
        return max(self.thickness / 2, 0.75 / self.antialias_scale)


# 32 and 128 follow LRA's Pathfinder-32 and Path-X settings (the project's
# design notes on the LRA data; they give no paddle length for 128, so it is chosen to keep the snakes'
# share of the image close to the 32 setting). 64 and 256 are our own
# interpolation / extrapolation between and beyond those two.
_PRESETS: dict[int, dict[str, float | int]] = {
    32: dict(
        paddle_length=2.0,
        thickness=0.5,
        margin=1,
        marker_radius=1.5,
        seed_distance=7.0,
        continuity=1.0,
        distractor_budget=20,
    ),
    64: dict(
        paddle_length=3.5,
        thickness=1.0,
        margin=2,
        marker_radius=2.0,
        seed_distance=12.0,
        continuity=1.4,
        distractor_budget=28,
    ),
    128: dict(
        paddle_length=6.0,
        thickness=1.5,
        margin=2,
        marker_radius=3.0,
        seed_distance=20.0,
        continuity=1.8,
        distractor_budget=35,
    ),
    256: dict(
        paddle_length=12.0,
        thickness=3.0,
        margin=4,
        marker_radius=6.0,
        seed_distance=40.0,
        continuity=1.8,
        distractor_budget=35,
    ),
}


def pathfinder_params(resolution: int, difficulty: int) -> PathfinderParams:
    """Preset parameters for a resolution (32, 64, 128, 256) and difficulty (contour length 6, 9, 14).

    Raises:
        ValueError: for an unsupported resolution or difficulty, naming the allowed values.
    """
    if resolution not in _PRESETS:
        raise ValueError(
            f"unsupported Pathfinder resolution {resolution!r}; "
            f"choose one of {', '.join(map(str, PATHFINDER_RESOLUTIONS))}"
        )
    if difficulty not in PATHFINDER_DIFFICULTIES:
        raise ValueError(
            f"unsupported Pathfinder difficulty {difficulty!r}; choose a contour length of "
            f"{', '.join(map(str, PATHFINDER_DIFFICULTIES))}"
        )
    return PathfinderParams(
        resolution=resolution, contour_length=difficulty, antialias_scale=2, **_PRESETS[resolution]
    )


# ---------------------------------------------------------------------------
# Rasterisation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stamp:
    """Anti-aliased coverage of one shape in a window of the image starting at (row, col)."""

    row: int
    col: int
    coverage: np.ndarray  # float32 in [0, 1], shape (height, width)

    @property
    def mask(self) -> np.ndarray:
        return self.coverage > 0

    def window(self, grid: np.ndarray) -> np.ndarray:
        height, width = self.coverage.shape
        return grid[self.row : self.row + height, self.col : self.col + width]

    def hits(self, grid: np.ndarray) -> bool:
        """Whether any inked pixel of the stamp is set in the boolean `grid`."""
        return bool((self.window(grid) & self.mask).any())

    def paint(self, canvas: np.ndarray) -> None:
        """Combine into `canvas` by pixel-wise maximum."""
        window = self.window(canvas)
        np.maximum(window, self.coverage, out=window)


def _render_capsule(start: np.ndarray, end: np.ndarray, radius: float, scale: int, resolution: int) -> _Stamp:
    """Rasterise the points within `radius` of segment start-end (a disc when start == end).

    Points are (row, col) in pixel units; pixel (r, c) covers [r, r+1) x [c, c+1).
    Coverage is the fraction of the pixel's `scale x scale` sub-pixel centres inside.
    """
    top = max(0, math.floor(min(start[0], end[0]) - radius))
    left = max(0, math.floor(min(start[1], end[1]) - radius))
    bottom = min(resolution, math.floor(max(start[0], end[0]) + radius) + 1)
    right = min(resolution, math.floor(max(start[1], end[1]) + radius) + 1)
    if bottom <= top or right <= left:
        return _Stamp(0, 0, np.zeros((0, 0), np.float32))
    rows = top + (np.arange((bottom - top) * scale) + 0.5) / scale
    cols = left + (np.arange((right - left) * scale) + 0.5) / scale
    d_row = rows[:, None] - start[0]
    d_col = cols[None, :] - start[1]
    seg_row, seg_col = end[0] - start[0], end[1] - start[1]
    seg_sq = seg_row * seg_row + seg_col * seg_col
    if seg_sq > 0:
        t = np.minimum(np.maximum((d_row * seg_row + d_col * seg_col) / seg_sq, 0.0), 1.0)
        d_row = d_row - t * seg_row
        d_col = d_col - t * seg_col
    inside = d_row * d_row + d_col * d_col <= radius * radius
    counts = inside.reshape(bottom - top, scale, right - left, scale).sum(axis=(1, 3), dtype=np.float32)
    coverage = counts * np.float32(1.0 / (scale * scale))
    return _Stamp(top, left, coverage)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation by a (2 radius + 1)^2 square, i.e. Chebyshev distance <= radius."""
    out = mask.copy()
    for axis in (0, 1):
        source = out.copy()
        for shift in range(1, radius + 1):
            if axis == 0:
                out[shift:, :] |= source[:-shift, :]
                out[:-shift, :] |= source[shift:, :]
            else:
                out[:, shift:] |= source[:, :-shift]
                out[:, :-shift] |= source[:, shift:]
    return out


# ---------------------------------------------------------------------------
# Snakes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snake:
    points: np.ndarray  # (paddles + 1, 2) paddle end points, (row, col)
    coverage: np.ndarray  # float32 (resolution, resolution)

    @property
    def mask(self) -> np.ndarray:
        return self.coverage > 0


def _candidate_directions(
    rng: np.random.Generator, params: PathfinderParams, heading: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate angles for the next paddle and their continuity weights.

    The first paddle may point anywhere. Later ones turn by `dtheta` from the
    current heading with weight `cos^2(min(|dtheta| * continuity, pi/2))`;
    only the turns with non-zero weight are considered, jittered so that the
    directions are continuous rather than a fixed fan.
    """
    count = params.angle_candidates
    jitter = rng.random()
    if heading is None:
        return (np.arange(count) + jitter) * (2 * np.pi / count), np.ones(count)
    half_range = min(np.pi, np.pi / (2 * params.continuity))
    turns = -half_range + (np.arange(count) + jitter) * (2 * half_range / count)
    weights = np.cos(np.minimum(np.abs(turns) * params.continuity, np.pi / 2)) ** 2
    return heading + turns, weights


def _path_occupancy(start: np.ndarray, ends: np.ndarray, forbidden: np.ndarray, samples: int) -> np.ndarray:
    """Fraction of points along each candidate paddle that fall on forbidden pixels."""
    t = np.arange(1, samples + 1) / samples
    points = start + t[None, :, None] * (ends - start)[:, None, :]  # (candidates, samples, 2)
    # Candidates reaching outside the image are zeroed by the caller; clamping
    # only keeps their look-ups in range.
    pixels = np.minimum(np.maximum(points.astype(np.intp), 0), forbidden.shape[0] - 1)
    return forbidden[pixels[..., 0], pixels[..., 1]].mean(axis=1)


def _weighted_choice(rng: np.random.Generator, weights: np.ndarray) -> int:
    """Index drawn with probability proportional to `weights` (some must be > 0)."""
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    # Guard against the draw landing exactly on the total through rounding.
    return min(index, int(np.flatnonzero(weights)[-1]))


def _try_grow_snake(
    rng: np.random.Generator, params: PathfinderParams, num_paddles: int, blocked: np.ndarray
) -> _Snake | None:
    """Grow one snake from a random free start, or return None when it gets stuck.

    `blocked` marks pixels that other snakes (dilated by the margin) occupy.
    A new paddle must also not overlap the snake's earlier paddles, except the
    last two, which necessarily share pixels around the joint being extended.
    """
    resolution = params.resolution
    # Paddle ends keep a marker radius (at least the margin) from the border,
    # so that a marker on any end is drawn whole.
    inset = max(float(params.margin), params.marker_radius)
    low, high = inset, resolution - inset
    start = rng.uniform(low, high, size=2)
    if blocked[int(start[0]), int(start[1])]:
        return None

    coverage = np.zeros((resolution, resolution), np.float32)
    own_old = np.zeros((resolution, resolution), bool)
    points = [start]
    stamps: list[_Stamp] = []
    heading: float | None = None
    samples = max(2, math.ceil(2 * params.paddle_length))
    for index in range(num_paddles):
        if index >= 3:
            stamps[index - 3].window(own_old)[...] |= stamps[index - 3].mask
        forbidden = blocked | own_old
        angles, weights = _candidate_directions(rng, params, heading)
        ends = points[-1] + params.paddle_length * np.stack([np.sin(angles), np.cos(angles)], axis=1)
        inside = np.all((ends >= low) & (ends < high), axis=1)
        weights = weights * inside * (1.0 - _path_occupancy(points[-1], ends, forbidden, samples))
        stamp = None
        while weights.sum() > 0:
            choice = _weighted_choice(rng, weights)
            candidate = _render_capsule(
                points[-1], ends[choice], params.stroke_radius, params.antialias_scale, resolution
            )
            if not candidate.hits(forbidden):
                stamp = candidate
                break
            weights[choice] = 0.0  # overlaps: reject this direction and redraw
        if stamp is None:
            return None
        stamp.paint(coverage)
        stamps.append(stamp)
        points.append(ends[choice])
        heading = float(angles[choice])
    return _Snake(np.array(points), coverage)


def _grow_snake(
    rng: np.random.Generator, params: PathfinderParams, num_paddles: int, blocked: np.ndarray
) -> _Snake | None:
    for _ in range(params.snake_attempts):
        snake = _try_grow_snake(rng, params, num_paddles, blocked)
        if snake is not None:
            return snake
    return None


# ---------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PathfinderSample:
    """One generated image with the generator's own layers, for verification.

    Attributes:
        image: uint8 (H, W), the pixel-wise maximum of all layers.
        label: 1 when both markers sit on the same snake, else 0.
        snake_masks: inked pixels of the two target snakes.
        snake_points: paddle end points of each target snake, (row, col).
        distractor_mask: inked pixels of all distractor snakes.
        marker_mask: inked pixels of the two markers.
        marker_centers: the two marker centres, (row, col) in pixel units;
            `int()` of each coordinate gives the pixel.
        marker_snakes: index into `snake_masks` of the snake each marker sits on.
    """

    image: np.ndarray
    label: int
    snake_masks: list[np.ndarray]
    snake_points: list[np.ndarray]
    distractor_mask: np.ndarray
    marker_mask: np.ndarray
    marker_centers: tuple[tuple[float, float], tuple[float, float]]
    marker_snakes: tuple[int, int]

    @property
    def marker_pixels(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The pixel (row, col) under each marker centre."""
        first, second = ((int(row), int(col)) for row, col in self.marker_centers)
        return first, second


def _markers_fit(
    params: PathfinderParams, targets: Sequence[_Snake], marker_stamps: dict[tuple[int, int], _Stamp]
) -> bool:
    """Check the marker geometry for BOTH labels so that acceptance does not depend on the label.

    Markers sit on (snake 0, start), (snake 0, end) and (snake 1, end); either
    pair with the first must be `seed_distance` apart, each marker must keep
    the margin from the snake it does not sit on, and the two markers of a
    pair must not touch.
    """
    first_center = targets[0].points[0]
    for snake in (0, 1):
        if np.linalg.norm(targets[snake].points[-1] - first_center) < params.seed_distance:
            return False
    clearance = [_dilate(snake.mask, params.margin) for snake in targets]
    for (snake, _end), stamp in marker_stamps.items():
        if stamp.hits(clearance[1 - snake]):
            return False
    start_zone = np.zeros_like(targets[0].mask)
    marker_stamps[(0, 0)].window(start_zone)[...] = marker_stamps[(0, 0)].mask
    start_zone = _dilate(start_zone, params.margin)
    return not (marker_stamps[(0, -1)].hits(start_zone) or marker_stamps[(1, -1)].hits(start_zone))


def _try_draw_sample(rng: np.random.Generator, params: PathfinderParams, label: int) -> PathfinderSample | None:
    resolution, margin = params.resolution, params.margin
    blocked = np.zeros((resolution, resolution), bool)

    targets: list[_Snake] = []
    for _ in range(2):
        snake = _grow_snake(rng, params, params.contour_length, blocked)
        if snake is None:
            return None
        targets.append(snake)
        blocked |= _dilate(snake.mask, margin)

    def marker(snake: int, end: int) -> _Stamp:
        center = targets[snake].points[end]
        return _render_capsule(center, center, params.marker_radius, params.antialias_scale, resolution)

    marker_stamps = {(0, 0): marker(0, 0), (0, -1): marker(0, -1), (1, -1): marker(1, -1)}
    if not _markers_fit(params, targets, marker_stamps):
        return None
    marker_snakes = (0, 0) if label == 1 else (0, 1)
    chosen = [(0, 0), (marker_snakes[1], -1)]
    marker_layer = np.zeros((resolution, resolution), np.float32)
    for key in chosen:
        marker_stamps[key].paint(marker_layer)
    blocked |= _dilate(marker_layer > 0, margin)

    # Distractors go where neither targets nor markers are; one that cannot
    # be placed is dropped (crowded images simply hold fewer).
    distractor_layer = np.zeros((resolution, resolution), np.float32)
    for _ in range(params.num_distractors):
        snake = _grow_snake(rng, params, params.distractor_length, blocked)
        if snake is None:
            continue
        np.maximum(distractor_layer, snake.coverage, out=distractor_layer)
        blocked |= _dilate(snake.mask, margin)

    layers = np.stack([targets[0].coverage, targets[1].coverage, distractor_layer, marker_layer])
    image = np.rint(layers.max(axis=0) * 255).astype(np.uint8)
    centers = tuple((float(p[0]), float(p[1])) for p in (targets[s].points[e] for s, e in chosen))
    return PathfinderSample(
        image=image,
        label=label,
        snake_masks=[snake.mask for snake in targets],
        snake_points=[snake.points for snake in targets],
        distractor_mask=distractor_layer > 0,
        marker_mask=marker_layer > 0,
        marker_centers=centers,  # type: ignore[arg-type]
        marker_snakes=marker_snakes,
    )


def draw_pathfinder_sample(rng: np.random.Generator, params: PathfinderParams, label: int) -> PathfinderSample:
    """Draw one Pathfinder image with the given label (1: markers on the same snake).

    A sample whose snakes or markers cannot be placed is redrawn from scratch
    up to `params.image_attempts` times.

    Raises:
        ValueError: if `label` is not 0 or 1.
        RuntimeError: if no valid image was found (parameters too crowded).
    """
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    for _ in range(params.image_attempts):
        sample = _try_draw_sample(rng, params, int(label))
        if sample is not None:
            return sample
    raise RuntimeError(
        f"could not place a Pathfinder sample in {params.image_attempts} attempts; "
        f"the parameters are too crowded: {params}"
    )


def _image_rng(seed: int, resolution: int, difficulty: int, index: int) -> np.random.Generator:
    # Each image has its own stream, keyed by its index (and the variant, so the
    # three difficulties do not share label sequences): results do not depend
    # on the number of workers or on which batches a rerun skips.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(resolution, difficulty, index)))


def draw_indexed_pathfinder_sample(seed: int, resolution: int, difficulty: int, index: int) -> PathfinderSample:
    """The sample that `lra.pathfinder.generate_pathfinder` writes as image number `index` (0-based, over
    all batches).

    The label is a fair coin flip from the image's own random stream.
    """
    params = pathfinder_params(resolution, difficulty)
    rng = _image_rng(seed, resolution, difficulty, index)
    label = int(rng.integers(2))
    return draw_pathfinder_sample(rng, params, label)
