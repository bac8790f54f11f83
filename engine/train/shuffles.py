"""Each trial's per-epoch shuffle, drawn where its population trains.

Two recipes, recorded with each study (`StudySpec.shuffle`), so that a study resumes with the
one it was created with:

1. `torch.randperm(n, generator=g)` from the trial's own generator, after its initial weights
   (the notebook's way). Drawn on the CPU, one trial at a time, then copied to the device.
2. A keyed bijection of the indices, computed for every trial at once on the population's
   device: perm[j] = E(j), with E a 4-round Feistel network on k-bit integers (k the bits of
   n - 1, at least 2), its round keys hashed from the trial's seed, the epoch and the round,
   and cycle-walking (E applied again) for the values that land at n or above. Every operation
   is on integers below 2^31 (int32, no overflow), so CPU and GPU give the same permutation
   bit for bit, and the trial's numbers do not depend on the device that trained it.

The recipe-2 cost is a few in-place integer passes over [trials, n]: about randperm's on one
CPU core, and a few milliseconds per epoch for 10^5 trials on a GPU, where randperm would
draw 4 * 10^8 indices on the host and copy them over.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["FEISTEL_ROUNDS", "keyed_permutations", "round_keys"]

FEISTEL_ROUNDS = 6
# odd, below 2^15: a 16-bit value times one stays below 2^31 (int32 without overflow)
_MULTIPLIERS = (0x5BD1, 0x6A3B, 0x4F1D, 0x7A8D, 0x4C2B, 0x6E35, 0x5A97, 0x7193)
_TAKE = 15  # F keeps the product's bits from 15 up (they depend on every input bit)
_M32 = 0xFFFFFFFF
# one block of rows at a time: on a CPU its buffers stay in cache; on a GPU the kernels stay large
_BLOCK_ELEMENTS = {"cpu": 1 << 17}
_GPU_BLOCK_ELEMENTS = 1 << 24
_MAX_BITS = 30


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """x * c mod 2^32 for int64 x in [0, 2^32) and c < 2^32, never above 2^63 on the way."""
    if c < 1 << 31:
        return (x * c) & _M32
    return (x * (c - (1 << 31)) + ((x & 1) << 31)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (Wellons' lowbias32), on int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def round_keys(seeds: Sequence[int], epoch: int) -> torch.Tensor:
    """[trials, FEISTEL_ROUNDS] int32 round keys in [0, 2^16), on the CPU: from each trial's
    63-bit seed, the epoch and the round."""
    seed = torch.tensor(list(seeds), dtype=torch.int64).view(-1, 1)
    tags = torch.tensor([(epoch * FEISTEL_ROUNDS + r) & _M32 for r in range(FEISTEL_ROUNDS)],
                        dtype=torch.int64)
    key = _mix32(_mix32(tags ^ 0x9E3779B9) ^ (seed >> 32))
    key = _mix32(key ^ (seed & _M32))
    return (key & 0xFFFF).to(torch.int32)


def _encrypt(left: torch.Tensor, right: torch.Tensor, keys: torch.Tensor, bits: tuple[int, int],
             spare: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """E on the halves `left` (high bits) and `right` (low bits), in place: left, right and
    spare take turns, and the result is in one of them (returned); scratch is a fourth buffer.
    keys: [rows, rounds], broadcast against the halves' rows.

    A round: right' = left ^ F(right), left' = right (unbalanced: the widths swap), with
    F(v) = bits 15.. of ((h ^ h >> 15) & 0xFFFF) * c2, h = (v ^ key) * c1. Every product is
    below 2^31. Four rounds left pairs of neighbours visibly non-uniform at 64 rows; six pass a
    chi-square test (tests/test_shuffles.py)."""
    width_l, width_r = bits
    for r in range(FEISTEL_ROUNDS):
        out = torch.bitwise_xor(right, keys[:, r : r + 1], out=spare)
        out.mul_(_MULTIPLIERS[r])
        out.bitwise_xor_(torch.bitwise_right_shift(out, 15, out=scratch)).bitwise_and_(0xFFFF)
        out.mul_(_MULTIPLIERS[(r + 4) % len(_MULTIPLIERS)])
        out.bitwise_right_shift_(_TAKE).bitwise_and_((1 << width_l) - 1).bitwise_xor_(left)
        left, right, spare = right, out, left
        width_l, width_r = width_r, width_l
    return left.bitwise_left_shift_(width_r).bitwise_or_(right)


def keyed_permutations(seeds: Sequence[int], epoch: int, n: int, device: torch.device,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """Recipe 2: one permutation of range(n) per seed for `epoch`, [len(seeds), n] int64 on
    `device` (into `out` when given)."""
    rows = len(seeds)
    if out is None:
        out = torch.empty(rows, n, dtype=torch.long, device=device)
    if n <= 1 or rows == 0:
        return out.copy_(torch.zeros(rows, n, dtype=torch.long)) if n == 1 else out
    k = max(2, (n - 1).bit_length())
    if k > _MAX_BITS:
        raise ValueError(f"shuffle recipe 2 takes at most 2^{_MAX_BITS} rows, not {n}")
    bits = (k // 2, k - k // 2)
    keys = round_keys(seeds, epoch).to(device)
    index = torch.arange(n, dtype=torch.int32, device=device)
    high, low = index >> bits[1], index & ((1 << bits[1]) - 1)
    per_block = _BLOCK_ELEMENTS.get(device.type, _GPU_BLOCK_ELEMENTS)
    block = max(1, min(rows, per_block // n))
    buffers = [torch.empty(block, n, dtype=torch.int32, device=device) for _ in range(4)]
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        a, b, c, d = (t[: stop - start] for t in buffers)
        a.copy_(high.expand_as(a))
        b.copy_(low.expand_as(b))
        out[start:stop].copy_(_encrypt(a, b, keys[start:stop], bits, c, d))
    _walk(out, keys, n, bits)  # once for all blocks: few values, so few small steps
    return out


def _walk(x: torch.Tensor, keys: torch.Tensor, n: int, bits: tuple[int, int]) -> None:
    """Cycle-walking: E again on each value at n or above, until every one is below n (E
    permutes [0, 2^k), so the values below n come out a permutation of range(n))."""
    if n == 1 << sum(bits):
        return
    while True:
        where = (x >= n).nonzero()
        if len(where) == 0:
            return
        row, col = where[:, 0], where[:, 1]
        value = x[row, col].to(torch.int32).view(-1, 1)
        left, right = value >> bits[1], value & ((1 << bits[1]) - 1)
        x[row, col] = _encrypt(left, right, keys[row], bits, torch.empty_like(value),
                               torch.empty_like(value)).view(-1).to(x.dtype)
