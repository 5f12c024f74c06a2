"""Validated parameters of one synthetic benchmark run.

Every check names the parameter, the value given and the valid range, and
raises ``ConfigError`` (the CLI shows it as a one-line message).
"""

from __future__ import annotations

from dataclasses import dataclass

from rsitr.errors import ConfigError

MIN_IMAGES: int = 10
MIN_SIDE: int = 32
MAX_SIDE: int = 1024


@dataclass(frozen=True)
class BenchmarkOptions:
    """The knobs of ``generate_benchmark`` besides size and seed; the defaults are its defaults.

    ``image_size`` is the (min, max) side in pixels; each image is square with a side
    drawn in that range. Values are checked by ``make_settings``, not here.
    """

    image_size: tuple[int, int] = (64, 96)
    twin_rate: float = 0.1
    weak_caption_rate: float = 0.02
    near_duplicate_rate: float = 0.05
    karpathy_share: float = 0.3
    test_share: float = 0.2
    arabic: bool = True


@dataclass(frozen=True)
class Settings:
    """Parameters of ``generate_benchmark`` after validation."""

    n_images: int
    seed: int
    image_size: tuple[int, int]
    twin_rate: float
    weak_caption_rate: float
    near_duplicate_rate: float
    karpathy_share: float
    test_share: float
    arabic: bool


def _integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _share(name: str, value: object, low: float, high: float, *,
           low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    number = float(value)
    above = number >= low if low_inclusive else number > low
    below = number <= high if high_inclusive else number < high
    if not (above and below):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ConfigError(f"{name} must be in {interval}, got {value}")
    return number


def make_settings(n_images: object, seed: object, options: BenchmarkOptions) -> Settings:
    """Check every parameter of ``generate_benchmark`` and bundle them."""
    image_size, arabic = options.image_size, options.arabic
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise ConfigError(f"image_size must be a (min, max) pair of pixel sides, got {image_size!r}")
    low = _integer("image_size[0]", image_size[0], MIN_SIDE)
    high = _integer("image_size[1]", image_size[1], MIN_SIDE)
    if low > high or high > MAX_SIDE:
        raise ConfigError(f"image_size must satisfy {MIN_SIDE} <= min <= max <= {MAX_SIDE}, got {image_size!r}")
    if not isinstance(arabic, bool):
        raise ConfigError(f"arabic must be true or false, got {arabic!r}")
    return Settings(
        n_images=_integer("n_images", n_images, MIN_IMAGES),
        seed=_integer("seed", seed, 0),
        image_size=(low, high),
        twin_rate=_share("twin_rate", options.twin_rate, 0.0, 0.5),
        weak_caption_rate=_share("weak_caption_rate", options.weak_caption_rate, 0.0, 0.2),
        near_duplicate_rate=_share("near_duplicate_rate", options.near_duplicate_rate, 0.0, 1.0),
        karpathy_share=_share("karpathy_share", options.karpathy_share, 0.0, 1.0,
                              low_inclusive=False, high_inclusive=False),
        test_share=_share("test_share", options.test_share, 0.0, 0.5, low_inclusive=False, high_inclusive=False),
        arabic=arabic,
    )
