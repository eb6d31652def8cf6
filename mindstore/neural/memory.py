"""External memory for the MANN: content-based read heads and the LRUA write, dense or sparse.

Two memories stand behind one interface:

- ``DenseMemory`` addresses every slot: the read weights are a softmax over all N slots
  (Graves et al. 2014, Neural Turing Machines; Santoro et al. 2016).
- ``SparseMemory`` addresses only the top-K slots by similarity (Rae et al. 2016, Sparse Access
  Memory): the K indices come from a ``TopK`` index (no gradient), the K scores are then recomputed
  from the gathered slots so that gradients flow exactly as in the dense case restricted to them.

The top-K lookup is the one narrow seam: ``ExactTopK`` scores every slot of the per-episode torch
memory (training), a FAISS-backed index can answer the same ``search`` over millions of persisted
slots (use), and the model never sees the difference.

Shapes: B batch, H read heads, N slots, D slot width, K addressed slots per head.
An addressing is a pair (weights (B, H, K), indices (B, H, K) or None); None means "all N slots in
order", the dense case, so weights are then (B, H, N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-8
SCORES = ("cosine", "dot", "multiplicative", "additive", "euclidean")
# euclidean: a slot that has received less write mass than this holds no memory yet (a score of
# EMPTY). The LRUA write leaves (1 - sigmoid(alpha)) k_t in the least-used slot even when the gate
# sends the write elsewhere; as a mean that trace would be a whole drawing.
MIN_MASS = 0.25
EMPTY = -1e4


class Score(nn.Module):
    """K(k, M_i): how well a key matches a slot.

    cosine          K = k.M_i / (|k| |M_i|)                 (NTM, Santoro et al.; default)
    dot             K = k.M_i
    multiplicative  K = k^T W M_i                           (Luong et al. 2015, "general")
    additive        K = v^T tanh(W_h k + W_m M_i)           (Bahdanau et al. 2015)
    euclidean       K = -|k' - M_i' / n_i|^2                 (Snell et al. 2017, on slot means)

    For euclidean the last coordinate of a slot counts the write mass n_i it has received (the
    write key's last unit is 1, see ``WriteHead``), so M_i' / n_i, the other coordinates over it,
    is the mean of what was written there; k' is the key without its last unit. A slot pooling a
    class's drawings is then read as their prototype, as in a prototypical network, where cosine
    sees only the direction of their sum. Slots with n_i < ``MIN_MASS`` score ``EMPTY``.

    ``keys`` (B, H, D) against ``slots`` (B, N, D) -> (B, H, N); or against per-head gathered
    slots (B, H, K, D) -> (B, H, K).
    """

    def __init__(self, kind: str, dim: int) -> None:
        super().__init__()
        if kind not in SCORES:
            raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")
        self.kind = kind
        if kind == "multiplicative":
            self.W = nn.Parameter(torch.eye(dim) + 0.01 * torch.randn(dim, dim))
        elif kind == "additive":
            self.W_h = nn.Linear(dim, dim, bias=False)
            self.W_m = nn.Linear(dim, dim, bias=True)
            self.v = nn.Linear(dim, 1, bias=False)

    def query(self, keys: Tensor) -> Tensor:
        """The query a dot-product index would need: k, k/|k| or W^T k (None for additive)."""
        if self.kind == "cosine":
            return keys / (keys.norm(dim=-1, keepdim=True) + EPS)
        if self.kind == "multiplicative":
            return keys @ self.W  # (k^T W) M_i = (W^T k) . M_i
        if self.kind == "dot":
            return keys
        raise NotImplementedError(f"{self.kind} scores have no dot-product form")

    def as_slot(self, keys):  # noqa: ANN001, ANN201 - a Tensor or an ndarray, returned as such
        """What one write of ``keys`` (B, D) leaves in fresh slots: the keys themselves, and for
        euclidean a write count of 1 in the last unit (a copy; ``keys`` is left alone)."""
        if self.kind != "euclidean":
            return keys
        keys = keys.clone() if isinstance(keys, Tensor) else keys.copy()
        keys[..., -1] = 1.0
        return keys

    def value(self, slots: Tensor) -> Tensor:
        """What a read takes from a slot: the slot itself, or for euclidean its mean M_i / n_i
        (then the read's label code says which class the read is on, not how many drawings that
        class has)."""
        if self.kind == "euclidean":
            return slots / slots[..., -1:].clamp_min(MIN_MASS)
        return slots

    def forward(self, keys: Tensor, slots: Tensor) -> Tensor:
        per_head = slots.dim() == 4  # (B, H, K, D)
        if self.kind == "additive":
            h = self.W_h(keys).unsqueeze(-2)  # (B, H, 1, D)
            m = self.W_m(slots)
            m = m if per_head else m.unsqueeze(1)  # (B, 1|H, N|K, D)
            return self.v(torch.tanh(h + m)).squeeze(-1)
        if self.kind == "euclidean":
            n = slots[..., -1:]
            means = self.value(slots)[..., :-1]
            q = keys[..., :-1].unsqueeze(-2)  # (B, H, 1, D-1)
            d = (q - (means if per_head else means.unsqueeze(1))).pow(2).sum(-1)
            empty = (n.squeeze(-1) < MIN_MASS) if per_head else (n.squeeze(-1) < MIN_MASS).unsqueeze(1)
            return torch.where(empty, torch.full_like(d, EMPTY), -d)
        q = self.query(keys)
        if self.kind == "cosine":
            slots = slots / (slots.norm(dim=-1, keepdim=True) + EPS)
        if per_head:
            return (slots @ q.unsqueeze(-1)).squeeze(-1)
        return q @ slots.transpose(1, 2)


class TopK(Protocol):
    """The narrow interface sparse access needs: which K slots best match each query.

    Returns indices (B, H, k), int64, without gradient. ``ExactTopK`` answers from the torch
    memory; a FAISS index (flat inner product over normalised keys for cosine, over raw keys for
    dot, over raw keys with the query ``score.query(keys)`` for multiplicative) answers from
    persisted slots and is told about each write through ``written``.
    """

    def search(self, memory: Tensor, keys: Tensor, k: int, score: Score) -> Tensor: ...

    def written(self, memory: Tensor, slots: Tensor) -> None: ...


class ExactTopK:
    """Exact top-K by scoring every slot: what training uses (small per-episode memories)."""

    def search(self, memory: Tensor, keys: Tensor, k: int, score: Score) -> Tensor:
        with torch.no_grad():
            return score(keys, memory).topk(k, dim=-1).indices

    def written(self, memory: Tensor, slots: Tensor) -> None:
        pass  # nothing cached: the next search scores the memory as it is


@dataclass
class MemoryState:
    """Everything the memory carries from step t-1 to step t of an episode."""

    M: Tensor | None  # (B, N, D) slots M_t; None when the slots live in a store (persistent.py)
    usage: Tensor | None  # (B, N) u_t, no gradient: it only picks slots through argmin
    read_w: Tensor  # (B, H, K|N) read weights w^r_t
    read_idx: Tensor | None  # (B, H, K) slot indices of read_w, None when dense


class Memory(nn.Module):
    """Content-addressed memory with a least-recently-used-access (LRUA) write head.

    Subclasses decide which slots a read head addresses (``address``); the read and the LRUA
    write are shared so that the dense and sparse memories differ in that one place.
    """

    def __init__(self, slots: int, width: int, heads: int, score: str, gamma: float) -> None:
        super().__init__()
        self.slots, self.width, self.heads, self.gamma = slots, width, heads, gamma
        self.score = Score(score, width)

    def initial_state(self, batch: int, device: torch.device | str = "cpu", slots: int | None = None) -> MemoryState:
        """Empty memory of ``slots`` slots (default: the configured N; fewer for episodes where
        the write head must choose what to overwrite)."""
        n = self.slots if slots is None else slots
        if not self._min_slots() <= n:
            raise ValueError(f"a memory of {n} slots is too small: it needs at least {self._min_slots()}")
        # A small constant, not zero: cosine of a zero slot is 0/0 (NaN gradients).
        M = torch.full((batch, n, self.width), 1e-6, device=device)
        usage = torch.zeros(batch, n, device=device)
        w, idx = self._no_reads(batch, device, n)
        return MemoryState(M, usage, w, idx)

    def _min_slots(self) -> int:
        return 1

    def _no_reads(self, batch: int, device: torch.device | str, slots: int) -> tuple[Tensor, Tensor | None]:
        return torch.zeros(batch, self.heads, slots, device=device), None

    def address(self, M: Tensor, keys: Tensor, beta: Tensor) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def written(self, M: Tensor, slots: Tensor) -> None:
        """Hook: ``slots`` (B, T) of M changed (a persisted index updates only those rows)."""

    def read(self, M: Tensor, w: Tensor, idx: Tensor | None) -> Tensor:
        """r = sum_i w(i) M(i): (B, H, D); for euclidean, r = sum_i w(i) M(i) / n_i."""
        if idx is None:
            return w @ self.score.value(M)
        return (w.unsqueeze(-1) * self.score.value(gather_slots(M, idx))).sum(-2)

    def step(self, state: MemoryState, write_key: Tensor, alpha: Tensor, read_keys: Tensor,
             beta: Tensor) -> tuple[Tensor, MemoryState]:
        """One time step: LRUA write of ``write_key`` (B, D), then read with ``read_keys`` (B, H, D).

        The write comes first so that an item bound at step t can be recalled at step t.
        Returns the read vectors (B, H, D) and the new state.
        """
        B, device, N = write_key.shape[0], write_key.device, state.M.shape[1]
        # w^lu_{t-1}: the least-used slot under u_{t-1} (Santoro et al., eq. for w^lu).
        lu = state.usage.argmin(dim=1)  # (B,)
        # w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu_{t-1}
        g = torch.sigmoid(alpha).view(B, 1)
        prev = state.read_w.flatten(1) / self.heads  # mean over heads, (B, H*K|H*N)
        if state.read_idx is None:
            prev = prev.view(B, self.heads, N).sum(1)
            prev_idx = torch.arange(N, device=device).expand(B, -1)
        else:
            prev_idx = state.read_idx.flatten(1)
        w_idx = torch.cat([prev_idx, lu.unsqueeze(1)], dim=1)  # the only slots the write touches
        w_w = torch.cat([g * prev, 1 - g], dim=1)
        # The least-used slot is cleared before the write: M_{t-1}(lu) <- 0.
        keep = torch.ones(B, N, 1, device=device).scatter(1, lu.view(B, 1, 1), 0.0)
        M = state.M * keep
        # M_t(i) = M_{t-1}(i) + w^w_t(i) k_t, summed over the touched slots only.
        delta = w_w.unsqueeze(-1) * write_key.unsqueeze(1)  # (B, T, D)
        M = M.scatter_add(1, w_idx.unsqueeze(-1).expand(-1, -1, self.width), delta)
        self.written(M, torch.cat([w_idx, lu.unsqueeze(1)], dim=1))
        # Read: w^r_t = softmax(beta K(k, M_t)), r_t = sum_i w^r_t(i) M_t(i).
        read_w, read_idx = self.address(M, read_keys, beta)
        r = self.read(M, read_w, read_idx)
        # u_t = gamma u_{t-1} + w^r_t + w^w_t (no gradient: usage only feeds an argmin).
        with torch.no_grad():
            usage = self.gamma * state.usage
            usage = usage.scatter_add(1, w_idx, w_w.detach())
            if read_idx is None:
                usage = usage + read_w.detach().sum(1)
            else:
                usage = usage.scatter_add(1, read_idx.flatten(1), read_w.detach().flatten(1))
        return r, MemoryState(M, usage, read_w, read_idx)


def gather_slots(M: Tensor, idx: Tensor) -> Tensor:
    """Rows of M (B, N, D) at idx (B, H, K) -> (B, H, K, D)."""
    B, H, K = idx.shape
    rows = M.gather(1, idx.reshape(B, H * K, 1).expand(-1, -1, M.shape[-1]))
    return rows.view(B, H, K, M.shape[-1])


class DenseMemory(Memory):
    """Every read head addresses all N slots: w^r = softmax over N."""

    def address(self, M: Tensor, keys: Tensor, beta: Tensor) -> tuple[Tensor, Tensor | None]:
        return F.softmax(beta.unsqueeze(-1) * self.score(keys, M), dim=-1), None


class SparseMemory(Memory):
    """Each read head addresses only its top-K slots (Rae et al. 2016, SAM).

    ``index`` finds the K slots (exact in training); their scores are recomputed here from the
    gathered slots, so gradients reach keys and slots exactly as a dense softmax restricted to
    those K would. With K = N this equals ``DenseMemory`` up to float rounding.
    """

    def __init__(self, slots: int, width: int, heads: int, score: str, gamma: float, k: int,
                 index: TopK | None = None) -> None:
        super().__init__(slots, width, heads, score, gamma)
        if not 1 <= k <= slots:
            raise ValueError(f"top-K must be between 1 and the number of slots ({slots}), got {k}")
        self.k = k
        self.index: TopK = index or ExactTopK()

    def written(self, M: Tensor, slots: Tensor) -> None:
        self.index.written(M, slots)

    def _min_slots(self) -> int:
        return self.k  # every head addresses K distinct slots

    def _no_reads(self, batch: int, device: torch.device | str, slots: int) -> tuple[Tensor, Tensor | None]:
        idx = torch.arange(self.k, device=device).expand(batch, self.heads, -1).contiguous()
        return torch.zeros(batch, self.heads, self.k, device=device), idx

    def address(self, M: Tensor, keys: Tensor, beta: Tensor) -> tuple[Tensor, Tensor | None]:
        idx = self.index.search(M, keys, self.k, self.score)  # (B, H, K), no gradient
        scores = self.score(keys, gather_slots(M, idx))  # (B, H, K), differentiable
        return F.softmax(beta.unsqueeze(-1) * scores, dim=-1), idx
