"""Each trial's per-epoch shuffle, drawn where its population trains.

Two recipes, recorded with each study (`StudySpec.shuffle`), so that a study resumes with the
one it was created with:

1. `torch.randperm(n, generator=g)` from the trial's own generator, after its initial weights
   (the notebook's way). Drawn on the CPU, one trial at a time, then copied to the device.
2. A keyed bijection of the indices, computed for every trial at once on the population's
   device: perm[j] = E(j), with E a 6-round unbalanced Feistel network on k-bit integers (k
   the bits of n - 1, at least 2), its round keys hashed from the trial's seed, the epoch and
   the round, and cycle-walking (E applied again) for the values that land at n or above.
   Every operation is on integers below 2^31 (int32, no overflow), so CPU and GPU give the
   same permutation bit for bit, and the trial's numbers do not depend on the device that
   trained it.

Recipe 2's cost: each round's F is tabulated per trial (2^ceil(k/2) entries), so a round over
[trials, n] is an add, a lookup and an xor in place; about twice randperm's on one CPU core,
and a few large kernels per epoch for 10^5 trials on a GPU, where randperm would draw 4 * 10^8
indices on the host and copy them over (docs/performance.md, "Shuffles").
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


def _tables(keys: torch.Tensor, bits: tuple[int, int]) -> torch.Tensor:
    """Every round's F of every trial, [rows, FEISTEL_ROUNDS, 2^max(bits)] int32 on the keys'
    device: a round then costs one lookup per index (three passes over [rows, n]) instead of
    nine arithmetic ones. F(v) = bits 15.. of ((h ^ h >> 15) & 0xFFFF) * c2 with
    h = (v ^ key) * c1, masked to the round's output width; every product is below 2^31. (Four
    rounds left pairs of neighbours visibly non-uniform; six pass the chi-square tests in
    tests/test_shuffles.py.)"""
    width = max(bits)
    v = torch.arange(1 << width, dtype=torch.int32, device=keys.device)
    h = torch.bitwise_xor(v, keys.unsqueeze(-1))  # [rows, rounds, 2^width]
    for r in range(FEISTEL_ROUNDS):
        h[:, r].mul_(_MULTIPLIERS[r])
    h.bitwise_xor_(h >> 15).bitwise_and_(0xFFFF)
    for r in range(FEISTEL_ROUNDS):
        # round r maps the right half (bits[1] wide at even rounds) onto the left one
        out_width = bits[0] if r % 2 == 0 else bits[1]
        h[:, r].mul_(_MULTIPLIERS[(r + 4) % len(_MULTIPLIERS)])
        h[:, r].bitwise_right_shift_(_TAKE).bitwise_and_((1 << out_width) - 1)
    return h


def _encrypt_block(high: torch.Tensor, low: torch.Tensor, table: torch.Tensor,
                   bases: list[torch.Tensor], buffers: list[torch.Tensor], out: torch.Tensor,
                   width_r: int) -> None:
    """E of range(n) (its halves `high`, `low`: [n]) for a block of trials, into `out`
    ([rows, n] int64). table: the block's `_tables`; bases: each round's offset of a row's
    table in it ([rows, 1]); buffers: four [rows, n] int32.

    A round: right' = left ^ F(right), left' = right (unbalanced: the widths swap). The first
    two rounds read the halves of range(n) as they are, broadcast to every row."""
    flat = table.view(-1)
    index, *free = buffers
    left: torch.Tensor = high
    right: torch.Tensor = low
    for base in bases:
        torch.add(right, base, out=index)
        new = free.pop()
        torch.index_select(flat, 0, index.view(-1), out=new.view(-1))
        new.bitwise_xor_(left)
        if left.dim() == 2:
            free.insert(0, left)
        left, right = right, new
    # after an even number of rounds the widths are back: left is the high half
    out.copy_(left.bitwise_left_shift_(width_r).bitwise_or_(right))


def keyed_permutations(seeds: Sequence[int], epoch: int, n: int, device: torch.device,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """Recipe 2: one permutation of range(n) per seed for `epoch`, [len(seeds), n] int64 on
    `device` (into `out` when given)."""
    rows = len(seeds)
    if out is None:
        out = torch.empty(rows, n, dtype=torch.long, device=device)
    if n <= 1 or rows == 0:
        return out.zero_()
    k = max(2, (n - 1).bit_length())
    if k > _MAX_BITS:
        raise ValueError(f"shuffle recipe 2 takes at most 2^{_MAX_BITS} rows, not {n}")
    bits = (k // 2, k - k // 2)
    tables = _tables(round_keys(seeds, epoch).to(device), bits)
    width = tables.shape[2]
    index = torch.arange(n, dtype=torch.int32, device=device)
    high, low = index >> bits[1], index & ((1 << bits[1]) - 1)
    per_block = _BLOCK_ELEMENTS.get(device.type, _GPU_BLOCK_ELEMENTS)
    block = max(1, min(rows, per_block // n))
    row_base = torch.arange(block, dtype=torch.int32, device=device).view(-1, 1) * (
        FEISTEL_ROUNDS * width)
    bases = [row_base + r * width for r in range(FEISTEL_ROUNDS)]
    buffers = [torch.empty(block, n, dtype=torch.int32, device=device) for _ in range(4)]
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        size = stop - start
        _encrypt_block(high, low, tables[start:stop], [b[:size] for b in bases],
                       [b[:size] for b in buffers], out[start:stop], bits[1])
    _walk(out, tables, n, bits)
    return out


def _walk(out: torch.Tensor, tables: torch.Tensor, n: int, bits: tuple[int, int]) -> None:
    """Cycle-walking: E again on each value at n or above, until it is below n (E permutes
    [0, 2^k), so the values below n come out a permutation of range(n)).

    Where those values are is known without looking: E put value v at E^-1(v), so the
    inverse network run on n .. 2^k - 1 gives their positions in each row (a few per cent of
    a row; those at n or more are in no row), and the whole [rows, n] is never scanned."""
    m = (1 << sum(bits)) - n
    if m == 0:
        return
    flat, width = tables.view(-1), tables.shape[2]
    rows, low_mask, device = out.shape[0], (1 << bits[1]) - 1, out.device

    def rounds(value: torch.Tensor, base: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """E (or E^-1) of each int32 value, its row's tables at `base` in `flat`."""
        left, right = value >> bits[1], value & low_mask
        for r in reversed(range(FEISTEL_ROUNDS)) if inverse else range(FEISTEL_ROUNDS):
            at = (base + r * width).add_(left if inverse else right)
            f = flat.index_select(0, at)
            if inverse:  # (left, right) = (right' ^ F(left'), left')
                left, right = f.bitwise_xor_(right), left
            else:
                left, right = right, f.bitwise_xor_(left)
        return left.bitwise_left_shift_(bits[1]).bitwise_or_(right)

    table_of = (torch.arange(rows, dtype=torch.int32, device=device) * (
        FEISTEL_ROUNDS * width)).repeat_interleave(m)
    value = torch.arange(n, n + m, dtype=torch.int32, device=device).repeat(rows)
    position = rounds(value, table_of, inverse=True)
    # a value whose position is n or more is in no row: its cycle may never come below n
    mine = (position < n).nonzero().view(-1)
    target = (mine // m) * n + position[mine]  # in out.view(-1), int64
    table_of, value = table_of[mine], value[mine]
    into = out.view(-1)
    while len(value):
        value = rounds(value, table_of)
        done = value < n
        into[target[done]] = value[done].long()
        keep = ~done
        table_of, value, target = table_of[keep], value[keep], target[keep]
