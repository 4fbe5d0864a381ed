"""A wall-clock time painted into a picture as big black and white squares, so it survives VP8.

Layout: two rows of CELLS_PER_ROW square cells across the top of the frame, one bit per cell,
cell side width // CELLS_PER_ROW. 40 bits: the time in milliseconds modulo 2**32, then an 8-bit
check so a frame caught mid-transition or smeared by the encoder reads as None rather than a wrong
time. The same layout is painted by the Chromium page (see browser_pages.py), so keep them in step.
"""

from __future__ import annotations

import numpy as np

CELLS_PER_ROW = 20
ROWS = 2
BITS = CELLS_PER_ROW * ROWS
BLACK, WHITE = 16, 235  # video-range luma
MODULUS = 1 << 32


def check_byte(value: int) -> int:
    b = value.to_bytes(4, "big")
    return (b[0] + 3 * b[1] + 5 * b[2] + 7 * b[3] + 0x5A) & 0xFF


def bits_of(ms: int) -> list[int]:
    value = ms % MODULUS
    word = (value << 8) | check_byte(value)
    return [(word >> (BITS - 1 - i)) & 1 for i in range(BITS)]


def cell_size(width: int) -> int:
    return width // CELLS_PER_ROW


def band_height(width: int) -> int:
    return cell_size(width) * ROWS


def paint(luma: np.ndarray, ms: int) -> None:
    """Paint `ms` into the top band of a luma plane (H x W uint8), in place."""
    side = cell_size(luma.shape[1])
    for i, bit in enumerate(bits_of(ms)):
        row, col = divmod(i, CELLS_PER_ROW)
        luma[row * side : (row + 1) * side, col * side : (col + 1) * side] = WHITE if bit else BLACK


def read(luma: np.ndarray) -> int | None:
    """The time painted into a luma plane, or None when the code does not check out."""
    side = cell_size(luma.shape[1])
    q = side // 4
    band = luma[: ROWS * side, : CELLS_PER_ROW * side].astype(np.float32)
    cells = band.reshape(ROWS, side, CELLS_PER_ROW, side)[:, q : side - q, :, q : side - q]
    means = cells.mean(axis=(1, 3)).reshape(-1)
    if np.any(np.abs(means - (BLACK + WHITE) / 2) < 40):
        return None  # a cell neither black nor white: not a clean code
    word = 0
    for m in means:
        word = (word << 1) | int(m > (BLACK + WHITE) / 2)
    value, check = word >> 8, word & 0xFF
    return value if check_byte(value) == check else None


def age_ms(painted: int, now_ms: float) -> float:
    """now - painted, undoing the modulo (valid for ages under 24 days)."""
    diff = (int(now_ms) - painted) % MODULUS
    if diff > MODULUS // 2:
        diff -= MODULUS
    return diff + (now_ms - int(now_ms))
