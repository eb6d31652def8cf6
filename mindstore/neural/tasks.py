"""Episodes where memory management matters, on cached embeddings, and the readouts to beat.

On Santoro et al.'s standard episodes a good encoder makes a nearest-prototype readout nearly
optimal, so a controller has nothing to add there. It can earn its place where the right answer
depends on order, on what to overwrite:

- ``relabel`` (rapid task adaptation): part-way through an episode, at step T/2, half of the
  classes (at least 2) swap labels among themselves (a cyclic shift), so the same drawings now
  mean something else. From then on the latest binding of a class must win over the older ones,
  which a stateless similarity readout cannot tell apart: it sees two labels for one class.
- ``capacity``: Santoro's episodes with a memory of only ``ways + CAPACITY_SPARE`` slots for
  ``ways x presentations`` drawings, so the write head must choose what to overwrite (the
  purpose of Santoro et al.'s least-recently-used-access write). A memory that keeps the newest
  drawings forgets classes not seen for a while; one that pools each class into one slot keeps
  them all. The simple readouts get the same budget: they see the newest ``slots`` drawings.
- ``standard``: Santoro's episodes, every class keeps its label.

Training the controller is cheap once the encoder is frozen: ``embed_characters`` encodes every
drawing (and ``views - 1`` random distortions of it) once; ``EmbeddedEpisodes`` then assembles
episodes of embeddings, so a training step runs the recurrent part only.

Scoring: a step counts when its label is knowable: not a class's first presentation, and after a
change not a relabelled class's first presentation under its new label (the new label has not
been shown yet). ``Episodes.after`` marks the steps from the change on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .data import augment, with_rotations

TASKS = ("standard", "relabel", "capacity")
# capacity episodes: memory slots = ways + CAPACITY_SPARE (one per class, and one the LRUA write
# clears at every step)
CAPACITY_SPARE = 1


def budget(task: str, ways: int) -> int | None:
    """Memory slots an episode of ``task`` allows (None: the model's own, no limit)."""
    return ways + CAPACITY_SPARE if task == "capacity" else None


@torch.no_grad()
def embed_characters(encoder: nn.Module, images: Tensor, *, rotate: bool = False, views: int = 1,
                     seed: int = 0, batch: int = 256, progress: bool = False) -> Tensor:
    """Embeddings of every drawing: ``images`` (chars, drawings, S, S) uint8 -> (classes,
    drawings, views, E) float32, classes = chars (x 4 with ``rotate``: each rotation is a new
    class). View 0 is the drawing itself, the others random distortions (``data.augment``)."""
    from tqdm import tqdm

    was = encoder.training
    encoder.eval()
    imgs = with_rotations(images) if rotate else images
    C, P, S = imgs.shape[0], imgs.shape[1], imgs.shape[-1]
    flat = imgs.reshape(C * P, 1, S, S).float().div(255)
    gen = torch.Generator().manual_seed(seed)
    out = []
    bar = tqdm(total=views * flat.shape[0], disable=not progress, desc="embed drawings", unit="img")
    for v in range(views):
        parts = []
        for i in range(0, flat.shape[0], batch):
            x = flat[i:i + batch]
            if v:
                x = augment(x, gen)
            parts.append(encoder(x))
            bar.update(x.shape[0])
        out.append(torch.cat(parts).view(C, P, -1))
    bar.close()
    encoder.train(was)
    return torch.stack(out, 2).contiguous()


@dataclass
class Episodes:
    """A batch of embedded episodes: ``e`` (B, T, E), ``y`` (B, T) targets, ``y_prev`` (B, T) the
    label shown with step t (y_{t-1}; -1 at t = 0), ``instance`` (B, T) which presentation of its
    class step t is (1-based), ``scored`` (B, T) whether the label is knowable, ``after`` (B, T)
    whether the step is at or after the change (all False for standard episodes), ``cls`` (B, T)
    the class index within the episode, ``slots`` the memory budget (None: unlimited)."""

    e: Tensor
    y: Tensor
    y_prev: Tensor
    instance: Tensor
    scored: Tensor
    after: Tensor
    cls: Tensor
    slots: int | None = None

    def to(self, device: torch.device | str) -> Episodes:
        tensors = (self.e, self.y, self.y_prev, self.instance, self.scored, self.after, self.cls)
        return Episodes(*(t.to(device) for t in tensors), slots=self.slots)


class EmbeddedEpisodes:
    """Episodes of cached embeddings ``emb`` (classes, drawings, views, E)."""

    def __init__(self, emb: Tensor) -> None:
        self.emb = emb

    @property
    def num_classes(self) -> int:
        return self.emb.shape[0]

    def sample(self, batch: int, classes: int, presentations: int, label_space: int, gen: torch.Generator,
               task: str = "standard", *, change: float = 0.5, share: float = 0.5) -> Episodes:
        """``batch`` episodes of ``classes`` x ``presentations`` steps. Relabel: the change comes
        at step ``change`` x T, and ``share`` of the classes (at least 2) swap labels."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        K, P, V, _ = self.emb.shape
        B, C, T = batch, classes, classes * presentations
        if C > K or presentations > P:
            raise ValueError(f"cannot draw {C} classes x {presentations} drawings from {K} classes x {P} drawings")
        if C > label_space:
            raise ValueError(f"{C}-way episodes need at least {C} labels; the model has {label_space}")
        pick = torch.rand(B, K, generator=gen).argsort(1)[:, :C]  # (B, C)
        draw = torch.rand(B, C, P, generator=gen).argsort(2)[..., :presentations]  # (B, C, p)
        view = torch.randint(0, V, (B, C, presentations), generator=gen)
        e = self.emb[pick.unsqueeze(-1), draw, view]  # (B, C, p, E)
        labels = torch.rand(B, label_space, generator=gen).argsort(1)[:, :C]
        order = torch.rand(B, T, generator=gen).argsort(1)
        cls = (torch.arange(T) // presentations).expand(B, T).gather(1, order)
        onehot = nn.functional.one_hot(cls, C)
        instance = (onehot.cumsum(1) * onehot).sum(-1)
        e = e.reshape(B, T, -1).gather(1, order.unsqueeze(-1).expand(-1, -1, e.shape[-1]))
        y = labels.gather(1, cls)
        after = torch.zeros(B, T, dtype=torch.bool)
        scored = instance > 1
        if task == "relabel":
            at = int(change * T)
            m = max(2, int(share * C))
            moved = torch.rand(B, C, generator=gen).argsort(1)[:, :m]  # classes that swap labels
            new = labels.clone()
            new.scatter_(1, moved, labels.gather(1, moved.roll(1, dims=1)))  # cyclic shift among them
            after[:, at:] = True
            y = torch.where(after, new.gather(1, cls), y)
            relabelled = torch.zeros(B, C, dtype=torch.bool).scatter_(1, moved, True).gather(1, cls)
            # the first presentation of a relabelled class after the change: its new label is unknown
            seen_after = (onehot * after.unsqueeze(-1)).cumsum(1)
            first_after = after & ((seen_after * onehot).sum(-1) == 1)
            scored = scored & ~(relabelled & first_after)
        y_prev = torch.cat([torch.full((B, 1), -1, dtype=torch.long), y[:, :-1]], dim=1)
        return Episodes(e, y, y_prev, instance, scored, after, cls, budget(task, C))


# -- readouts of the same encoder, no controller -------------------------------------------------


def _bound(T: int, window: int | None) -> Tensor:
    """(1, T, T-1): whether the drawing of step j is in memory at step t. It is bound once its
    label has arrived (step j + 1 <= t); with ``window``, only the newest ``window`` bindings are
    kept (j + 1 > t - window)."""
    j = torch.arange(T - 1).view(1, 1, -1)
    t = torch.arange(T).view(1, -1, 1)
    known = j + 1 <= t
    return known & (j + 1 > t - window) if window is not None else known


def _labels_from_votes(scores: Tensor, y_prev: Tensor, label_space: int, window: int | None = None) -> Tensor:
    """Per step t, the label whose earlier evidence scores best: ``scores`` (B, T, T) where
    [b, t, j] scores the drawing of step j (bound to its label, shown at step j + 1) for the query
    at step t; only drawings in memory (``_bound``) count. Returns logits (B, T, label_space)."""
    B, T, _ = scores.shape
    label_of = y_prev[:, 1:]  # the label of the drawing of step j is shown at step j + 1
    known = _bound(T, window)
    s = scores[..., : T - 1].masked_fill(~known, float("-inf"))
    best = s.max(-1)
    logits = torch.full((B, T, label_space), float("-inf"))
    idx = best.indices
    lab = label_of.gather(1, idx).clamp_min(0)  # (B, T)
    logits.scatter_(2, lab.unsqueeze(-1), 0.0)
    logits[..., 0] = torch.where(torch.isinf(best.values), 0.0, logits[..., 0])  # nothing bound yet: label 0
    return logits


def nearest_neighbour(e: Tensor, y_prev: Tensor, label_space: int, recency: float = 0.0,
                      window: int | None = None) -> Tensor:
    """1-NN over the drawings bound so far (squared distance; ``recency`` > 0 subtracts
    ``recency`` x age in steps: the most recent of two equally near drawings wins; ``window``:
    over the newest ``window`` drawings only, a memory of that many slots that keeps the newest)."""
    d = torch.cdist(e, e).pow(2)  # (B, T, T)
    T = e.shape[1]
    age = (torch.arange(T).view(-1, 1) - torch.arange(T).view(1, -1)).float()  # t - j
    return _labels_from_votes(-d - recency * age, y_prev, label_space, window)


def nearest_prototype(e: Tensor, y_prev: Tensor, label_space: int, window: int | None = None) -> Tensor:
    """Nearest prototype (Snell et al. 2017): each label's prototype is the mean of the drawings
    bound to it so far (with ``window``, of those among the newest ``window`` drawings); the query
    takes the nearest. Logits (B, T, label_space)."""
    B, T, E = e.shape
    label_of = y_prev[:, 1:]  # label of the drawing of step j
    onehot = nn.functional.one_hot(label_of.clamp_min(0), label_space).float() * (label_of >= 0).unsqueeze(-1)
    # sums and counts of drawings bound before step t: drawing j is bound at step j + 1
    sums = torch.zeros(B, T, label_space, E)
    counts = torch.zeros(B, T, label_space)
    sums[:, 1:] = torch.cumsum(onehot.unsqueeze(-1) * e[:, :-1].unsqueeze(2), 1)
    counts[:, 1:] = torch.cumsum(onehot, 1)
    if window is not None and window < T:  # drop what was bound before step t - window + 1
        sums[:, window + 1:] = sums[:, window + 1:] - sums[:, 1:T - window].clone()
        counts[:, window + 1:] = counts[:, window + 1:] - counts[:, 1:T - window].clone()
        counts = counts.round()  # cumsum differences of 0/1 counts: exact integers
    protos = sums / counts.clamp_min(1).unsqueeze(-1)
    d = (protos - e.unsqueeze(2)).pow(2).sum(-1)
    return torch.where(counts > 0, -d, torch.full_like(d, float("-inf")))


def accuracy(logits: Tensor, ep: Episodes, *, after_only: bool = False) -> Tensor:
    """Per episode, the share of scored steps (after the change only, with ``after_only``) whose
    label is right: (B,)."""
    mask = ep.scored & (ep.after if after_only else torch.ones_like(ep.after))
    hit = (logits.argmax(-1) == ep.y) & mask
    return hit.sum(1).float() / mask.sum(1).clamp_min(1).float()


def embedding_cache(checkpoint: str, *, data: str | None = None, views: int = 2, seed: int = 0,
                    progress: bool = True) -> dict[str, Tensor]:
    """{"train", "val", "eval"} embeddings of the Omniglot split (``data.Omniglot.split``) by the
    frozen encoder of ``checkpoint``: train with rotations as classes and ``views`` views (the
    drawing and ``views - 1`` distortions), val and eval the drawings only."""
    from .checkpoint import load_checkpoint
    from .data import load_omniglot

    model, _ = load_checkpoint(checkpoint)
    parts = load_omniglot(data, size=model.cfg.image_size).split()
    return {"train": embed_characters(model.encoder, parts["train"].images, rotate=True, views=views, seed=seed, progress=progress),
            "val": embed_characters(model.encoder, parts["val"].images, progress=progress),
            "eval": embed_characters(model.encoder, parts["eval"].images, progress=progress)}


def unroll(model: nn.Module, ep: Episodes, ablate: str | None = None) -> Tensor:
    """Logits of a MANN (with its memory cut to the episodes' budget and an optional ablation,
    ``MANN.unroll``) or of the LSTM baseline (no external memory: its state is its budget)."""
    if getattr(model.cfg, "model", "mann") == "lstm":
        return model.unroll(ep.e, ep.y_prev)
    return model.unroll(ep.e, ep.y_prev, ablate=ablate, slots=ep.slots)


@torch.no_grad()
def evaluate_tasks(model: nn.Module, sampler: EmbeddedEpisodes, *, task: str, ways: int, presentations: int = 10,
                   episodes: int = 200, seed: int = 1234, batch: int = 50, ablate: str | None = None) -> Tensor:
    """Per-episode accuracy (episodes,) on scored steps: after the change for relabel, from the
    2nd presentation on for standard episodes. The same ``seed`` gives the same episodes."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, episodes, batch):
        ep = sampler.sample(min(batch, episodes - start), ways, presentations, model.cfg.label_space, gen, task)
        out.append(accuracy(unroll(model, ep, ablate), ep, after_only=task == "relabel"))
    model.train(was)
    return torch.cat(out)


def _trainable(model: nn.Module, parts: tuple[str, ...], keep_agreement: bool) -> list[nn.Parameter]:
    """The parameters ``train_controller`` updates: every module but the encoder, or ``parts``;
    with ``keep_agreement`` the agreement rows get a zero gradient (a zero Adam update too)."""
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in parts if not any(n.startswith(p + ".") for n in names)]
    if unknown or "encoder" in parts:
        raise ValueError(f"cannot train {', '.join(unknown) or 'encoder'} here; choose among "
                         f"{', '.join(sorted({n.split('.')[0] for n in names} - {'encoder'}))}")
    params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")
              and (not parts or n.split(".")[0] in parts)]
    if keep_agreement:
        named = dict(model.named_parameters())
        for name, rows in model.agreement_rows().items():
            named[name].register_hook(lambda g, rows=rows: g.index_fill(0, rows, 0.0))
    return params


def _optimizer(params: list[nn.Parameter], optimizer: str, lr: float, lr_min: float, steps: int):  # noqa: ANN202 - (optimizer, scheduler)
    """Adam or SGD with momentum 0.9, the rate cosine-decayed from ``lr`` to ``lr_min`` over ``steps``."""
    import math

    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"unknown optimizer {optimizer!r}; choose adam or sgd")
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    span = max(steps, 1)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * min(s, span) / span))) / lr)


def train_controller(model: nn.Module, train_eps: EmbeddedEpisodes, val_eps: EmbeddedEpisodes, *, steps: int,
                     tasks: tuple[str, ...] = TASKS, ways: tuple[int, ...] = (5,), presentations: int = 10,
                     batch: int = 16, lr: float = 1e-3, lr_min: float = 1e-5, clip: float = 5.0, seed: int = 0,
                     eval_every: int = 250, eval_episodes: int = 200, progress: bool = True, log=None,
                     on_validate=None, hold: float | None = None, parts: tuple[str, ...] = (),
                     keep_agreement: bool = False, optimizer: str = "adam") -> dict:
    """Train everything but the encoder on embedded episodes, the tasks and ways in turn; keep the
    weights that score best on validation (mean over tasks and ways). Returns the metrics with
    the learning curve; the model holds the kept weights. ``on_validate(metrics, best_state)``
    runs after every validation (e.g. to write a checkpoint, so that a long run loses nothing).
    ``hold``: weights are kept only while every standard-episode validation score stays within
    ``hold`` of where it started (what training for the other tasks may cost standard episodes).
    ``parts``: train only these modules of the MANN (e.g. ``("controller", "write_head", "out")``,
    keeping the read head that recalls); empty: everything but the encoder. ``keep_agreement``:
    the controller's hand-set agreement units (``MANN.agreement_rows``) get no updates.
    ``optimizer``: adam, or sgd (momentum 0.9), whose steps follow the gradient's size: Adam moves
    every weight about ``lr`` a step, the hand-set heads' many near-zero weights too."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = _trainable(model, parts, keep_agreement)
    opt, sched = _optimizer(params, optimizer, lr, lr_min, steps)
    combos = [(t, w) for t in tasks for w in ways]
    keeper = _Keeper(model, val_eps, combos, presentations=presentations, episodes=eval_episodes,
                     hold=hold, log=log, on_validate=on_validate)
    running = None
    bar = tqdm(range(1, steps + 1), disable=not progress, desc="train controller")
    keeper.validate(0, running, bar)
    for step in bar:
        model.train()
        model.encoder.eval()
        t, w = combos[step % len(combos)]
        ep = train_eps.sample(batch, w, presentations, model.cfg.label_space, gen, t)
        logits = unroll(model, ep)
        loss = nn.functional.cross_entropy(logits[ep.scored], ep.y[ep.scored])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
        if step % eval_every == 0 or step == steps:
            keeper.validate(step, running, bar)
    model.load_state_dict(keeper.best_state)
    return keeper.metrics(steps)


class _Keeper:
    """Scores the model on validation episodes of every (task, ways) pair and keeps the weights of
    the best mean score; with ``hold``, only while every standard-episode score stays within
    ``hold`` of its first value."""

    def __init__(self, model: nn.Module, val_eps: EmbeddedEpisodes, combos: list[tuple[str, int]], *,
                 presentations: int, episodes: int, hold: float | None, log, on_validate) -> None:  # noqa: ANN001
        self.model, self.val_eps, self.combos = model, val_eps, combos
        self.presentations, self.episodes, self.hold = presentations, episodes, hold
        self.log, self.on_validate = log, on_validate
        self.history: list[dict] = []
        self.best_score: float | None = None
        self.best_state: dict = {}
        self.start = time.time()

    def validate(self, step: int, running: float | None, bar) -> None:  # noqa: ANN001 - a tqdm bar
        from .checkpoint import report

        row = {"step": step, "loss": None if running is None else round(running, 4),
               "seconds": round(time.time() - self.start)}
        for t, w in self.combos:
            row[f"{t}_{w}way"] = round(evaluate_tasks(self.model, self.val_eps, task=t, ways=w,
                                                      presentations=self.presentations,
                                                      episodes=self.episodes).mean().item(), 4)
        score = sum(row[f"{t}_{w}way"] for t, w in self.combos) / len(self.combos)
        row["val_score"] = round(score, 4)
        held = self.hold is None or not self.history or all(
            row[k] >= self.history[0][k] - self.hold for k in row if k.startswith("standard_"))
        if not held:
            row["held"] = False
        self.history.append(row)
        if held and (self.best_score is None or score >= self.best_score):
            self.best_score = score
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            row["kept"] = True
        report(row, bar, self.log)
        if self.on_validate is not None:
            self.on_validate(self.metrics(step), self.best_state)

    def metrics(self, steps: int) -> dict:
        return {"history": self.history, "val_score": round(self.best_score, 4), "steps": steps,
                "seconds": round(time.time() - self.start)}
