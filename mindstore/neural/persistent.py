"""The MANN's sparse memory backed by a MindStore vector space: FAISS top-K, slots in SQL.

``PersistentMemory`` is ``SparseMemory`` with its slots moved out of the torch tensor M and into a
space of a :class:`~mindstore.MindStore` (Rae et al. 2016: sparse reads and writes are what let a
MANN address millions of slots). The same ``step`` (LRUA write, then content read):

- read: each head's top-K slots come from the space's key index (``search_vectors``, one call for
  all heads); only those K rows are fetched from SQL (``keys``), their scores recomputed in
  torch, w^r = softmax(beta K) over them and r = sum_i w^r(i) M(i), exactly as ``SparseMemory``
  (for a euclidean checkpoint the index, which ranks by cosine, proposes more slots and the exact
  score keeps K).
- write: w^w_t = sigmoid(alpha) w^r_{t-1} + (1 - sigmoid(alpha)) w^lu: the slots read at t-1 get
  ``M(i) + w^w(i) k_t`` (``update_vectors``), the least-used slot gets ``(1 - sigmoid(alpha)) k_t``.
  In an unbounded space the least-used slot is a new one (an unused slot has usage 0); with a
  ``capacity`` the slot accessed longest ago is overwritten (``least_used``, an indexed read, not
  a scan). A new slot carries the string label the caller sets in ``labels`` before the step.

Usage is the store's access statistics (reads and writes stamp ``last_access``), not the decayed
u_t of the in-tensor memories: both make the write land on a slot nobody has used for longest.
Nothing here imports ``mindstore.db``: the memory talks to the store through its public methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInputError, SpaceError
from .memory import Memory, MemoryState

if TYPE_CHECKING:
    from ..store import MindStore


@dataclass
class SlotsRead:
    """What the heads read at one step: slot ids (B, H, K; -1 where the space had fewer than K),
    read weights (B, H, K), the slots' rows M(i) (B, H, K, D) and each slot's label."""

    ids: Tensor
    weights: Tensor
    rows: Tensor
    labels: dict[int, str | None] = field(default_factory=dict)


class PersistentMemory(Memory):
    """A sparse (top-K) memory whose slots are the space ``space`` of ``store``.

    Same interface as :class:`SparseMemory` (``initial_state``, ``step``), so a trained ``MANN``
    runs on it unchanged (``model.memory = PersistentMemory(...)``). Set ``labels`` (one string
    per batch row) before a step to write and label new slots, or leave it None for a read-only
    step. ``last_read`` and ``last_written`` hold the slots of the latest step.
    """

    def __init__(self, store: MindStore, space: str, *, heads: int, k: int, score: str = "cosine",
                 gamma: float = 0.95, capacity: int | None = None) -> None:
        info = {s.name: s for s in store.spaces()}.get(space)
        if info is None:
            raise SpaceError(f"no space named {space!r}; create it with store.create_space(name, dim=..., key_source=...)")
        if score not in ("cosine", "euclidean"):
            raise InvalidInputError(f"the store's key index ranks by cosine; a {score!r}-score checkpoint cannot use it "
                                    "(cosine and euclidean checkpoints can)")
        if capacity is not None and capacity < 1:
            raise InvalidInputError("capacity must be a positive number of slots, or None for unbounded")
        super().__init__(capacity or 0, info.dim, heads, score, gamma)
        self.store, self.space, self.k, self.capacity = store, space, k, capacity
        self.labels: list[str] | None = None  # labels of the slots the next step writes
        self.metadata: list[dict] | None = None  # and their metadata (e.g. the drawing, see drawing.py)
        self.update_read_slots = True  # the sigmoid(alpha) w^r_{t-1} part of the LRUA write
        self.last_read: SlotsRead | None = None
        self.last_keys: Tensor | None = None  # the read keys of the latest step, (B, H, D)
        self.last_written: list[int] = []

    def initial_state(self, batch: int, device: torch.device | str = "cpu", slots: int | None = None) -> MemoryState:
        if slots is not None:
            raise InvalidInputError("a persisted memory holds what its space holds; bound it with "
                                    "capacity= when you create it, not per episode")
        w = torch.zeros(batch, self.heads, self.k, device=device)
        idx = torch.full((batch, self.heads, self.k), -1, dtype=torch.long, device=device)
        return MemoryState(None, None, w, idx)

    def step(self, state: MemoryState, write_key: Tensor, alpha: Tensor, read_keys: Tensor,
             beta: Tensor) -> tuple[Tensor, MemoryState]:
        """LRUA write of ``write_key`` (when ``labels`` is set), then the top-K content read."""
        if self.labels is not None:
            if len(self.labels) != write_key.shape[0]:
                raise InvalidInputError(f"{len(self.labels)} labels for a batch of {write_key.shape[0]}")
            self.write(state, write_key, alpha, self.labels, self.metadata)
        self.last_keys = read_keys.detach()
        read = self.lookup(read_keys, beta)
        r = (read.weights.unsqueeze(-1) * self.score.value(read.rows)).sum(-2)  # r = sum_i w^r(i) M(i), (B, H, D)
        self.last_read = read
        return r, MemoryState(None, None, read.weights, read.ids)

    def candidates(self) -> int:
        """How many slots the key index proposes per head: K for cosine, which it ranks exactly;
        more for euclidean, which it cannot rank (a slot's mean is not its stored sum), so cosine
        proposes ``max(8 K, 32)`` and the exact score keeps the best K of them."""
        return self.k if self.score.kind == "cosine" else max(8 * self.k, 32)

    def lookup(self, keys: Tensor, beta: Tensor) -> SlotsRead:
        """Top-K slots per head from the key index; w^r = softmax(beta K(k, M_i)) over them."""
        B, H, D = keys.shape
        q = keys.detach().reshape(B * H, D).cpu().numpy().astype(np.float32)
        if self.score.kind == "euclidean":
            q[:, -1] = 0.0  # the slots' write counts are not part of the match
        fetch = self.candidates()
        hits = self.store.search_vectors(q, space=self.space, k=fetch)
        ids = torch.full((B * H, fetch), -1, dtype=torch.long)
        labels: dict[int, str | None] = {}
        for i, row in enumerate(hits):
            for j, h in enumerate(row):
                ids[i, j] = h.slot.id
                labels[h.slot.id] = h.slot.label
        ids = ids.view(B, H, fetch).to(keys.device)
        rows = self.rows(ids, keys.dtype, keys.device)
        scores = self.score(keys, rows).masked_fill(ids < 0, float("-inf"))  # differentiable, (B, H, K)
        if fetch > self.k:  # re-rank the proposals by the exact score, keep K
            best = scores.detach().topk(self.k, dim=-1).indices
            ids, scores = ids.gather(-1, best), scores.gather(-1, best)
            rows = rows.gather(-2, best.unsqueeze(-1).expand(-1, -1, -1, rows.shape[-1]))
            labels = {i: labels[i] for i in ids.flatten().tolist() if i >= 0}
        w = F.softmax(beta.unsqueeze(-1) * scores, dim=-1).nan_to_num(0.0)  # all -inf: nothing stored yet
        return SlotsRead(ids, w, rows, labels)

    def rows(self, ids: Tensor, dtype: torch.dtype, device: torch.device) -> Tensor:
        """M(i) for slot ids of any shape -> (..., D); zeros where the id is -1."""
        flat = ids.flatten().cpu().numpy()
        present = np.unique(flat[flat >= 0])
        out = torch.zeros(flat.size, self.width, dtype=dtype)
        if len(present):
            keys = torch.from_numpy(self.store.keys(present.tolist()).copy()).to(dtype)
            pos = np.searchsorted(present, flat[flat >= 0])
            out[torch.from_numpy(flat >= 0)] = keys[torch.from_numpy(pos)]
        return out.view(*ids.shape, self.width).to(device)

    @torch.no_grad()
    def write(self, state: MemoryState, write_key: Tensor, alpha: Tensor, labels: list[str],
              metadata: list[dict] | None = None) -> list[int]:
        """w^w = g w^r_{t-1} + (1 - g) w^lu, g = sigmoid(alpha): add g w^r(i) k_t into the slots
        read at t-1, put (1 - g) k_t, labelled (with ``metadata``, one dict per row), into the
        least-used slot. Returns that slot's ids."""
        B = write_key.shape[0]
        g = torch.sigmoid(alpha).view(B).double().clamp(max=1 - 1e-6)  # (1 - g) k_t must stay a non-zero key
        k = write_key.detach().double().cpu()
        updated: list[int] = []
        if self.update_read_slots and state.read_idx is not None:
            prev = (state.read_w.detach().double().cpu() / self.heads) * g.cpu().view(B, 1, 1)
            idx = state.read_idx.cpu()
            delta: dict[int, Tensor] = {}
            for b, h, j in (idx >= 0).nonzero().tolist():
                sid = int(idx[b, h, j])
                delta[sid] = delta.get(sid, 0) + prev[b, h, j] * k[b]  # M(i) += w^w(i) k_t
            updated = sorted(delta)
            if updated:
                old = torch.from_numpy(self.store.keys(updated).copy()).double()
                new = old + torch.stack([delta[i] for i in updated])
                self.store.update_vectors(updated, new.float().numpy())
        # The cleared slot: M(lu) = (1 - g) k_t. Without the update of the slots read, the g share
        # has nowhere to go and the new slot takes all of k_t (a euclidean slot with a count of
        # 1 - g ~ 0 would not be read at all).
        lu_w = (1 - g.cpu()) if self.update_read_slots else torch.ones_like(g.cpu())
        lu_keys = (lu_w.view(B, 1) * k).float().numpy()
        # Counting is a scan of the space's index entries: only a bounded memory pays for it.
        count = 0 if self.capacity is None else self.store.count(space=self.space)
        if self.capacity is None or count + B <= self.capacity:
            written = [s.id for s in self.store.add_vectors(lu_keys, space=self.space, labels=labels, metadata=metadata)]
        else:
            free = max(0, self.capacity - count)
            fresh = [s.id for s in self.store.add_vectors(lu_keys[:free], space=self.space, labels=labels[:free],
                                                          metadata=metadata[:free] if metadata is not None else None)] if free else []
            taken = set(updated)
            lru = [i for i in self.store.least_used(B - free + len(taken), space=self.space) if i not in taken][: B - free]
            # key, label and drawing in one transaction: an overwritten slot never keeps its old
            # binding's drawing
            self.store.update_vectors(lru, lu_keys[free:], labels=labels[free:],
                                      metadata=metadata[free:] if metadata is not None else None)
            written = fresh + lru
        self.last_written = written
        return written
