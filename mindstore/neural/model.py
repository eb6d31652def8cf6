"""The memory-augmented neural network (MANN) of Santoro et al. 2016 and its LSTM baseline.

    x_t --Encoder--> e_t                                 (small conv net, Koch/Vinyals-style)
    [e_t, e_{t-1}, onehot(y_{t-1}), r_{t-1}] --Controller--> h_t      (LSTM | GRU | RNN cell)
    o_t = [h_t, x_t]                                     controller output with a skip of its input
    o_t --WriteHead--> write key k_t, gate alpha_t       LRUA write (memory.py)
    o_t --ReadHead--> read keys k^r_{t,j}, strengths beta_{t,j}       content reads r_t
    [h_t, r_t] --Linear--> logits over the label space

The write at step t stores k_t, computed from h_t, which has seen y_{t-1} and e_{t-1}: it binds
the previous image to its label. e_{t-1} is fed to the controller directly so that the binding
does not first have to be learnt as a one-step delay line (``prev_embedding``; the plain paper
setting is ``prev_embedding=False``), and the heads see the controller's input next to h_t
(``skip``), so keys can be linear in the image features from the first step of training; this
removes most of the long plateau at chance reported for the plain MANN. Reads come from the same memory a step or many steps later,
when the class comes back, keyed by the new image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MANNConfig as MANNConfig  # re-exported: the name callers know
from .memory import DenseMemory, Memory, MemoryState, SparseMemory

CONTROLLERS = ("lstm", "gru", "rnn")
# rows per unit in a cell's weights: LSTM i, f, g, o; GRU r, z, n; RNN one
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# The prototype init's read sharpness with the euclidean score (squared distances between keys
# of scale 0.5: 0.5 e_t against slot means; chosen on 20-way validation episodes, 10 to 40 alike).
EUCLIDEAN_BETA = 10.0


def _norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm normalises by running averages of the training alphabets' statistics, which
    shift on new alphabets; GroupNorm normalises each image by its own, the same in training
    and in use (Wu & He 2018)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 8), channels)
    raise ValueError(f"unknown norm {kind!r}; choose batch or group")


# (dy, dx) pixel offsets of each view of shift averaging; (0, 0) is the drawing itself.
SHIFT_VIEWS = {5: ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)),
               9: tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))}


class Encoder(nn.Module):
    """x_t (B, 1, S, S) -> e_t (B, embed). Conv: ``blocks`` x (conv3x3-norm-ReLU-maxpool).

    With ``encoders`` n > 1, an ensemble: ``members`` are n encoders of width embed / n, each
    trained alone (``train.pretrain_encoder`` runs once per member, or ``--encoder-from`` takes
    one checkpoint per member), and e_t joins their embeddings, scaled by 1/sqrt(n) so that
    ||e - e'||^2 is the mean of the members' squared distances: prototypes compared by several
    metric spaces at once (Dietterich 2000; Snell et al.'s loss is a softmax over exactly these
    distances).
    """

    def __init__(self, cfg: MANNConfig) -> None:
        super().__init__()
        if cfg.encoders > 1:
            if cfg.embed % cfg.encoders:
                raise ValueError(f"an ensemble of {cfg.encoders} encoders splits embed evenly; "
                                 f"got embed {cfg.embed}: use a multiple of {cfg.encoders}")
            one = replace(cfg, encoders=1, embed=cfg.embed // cfg.encoders)
            self.members = nn.ModuleList(Encoder(one) for _ in range(cfg.encoders))
            return
        if cfg.encoders < 1:
            raise ValueError(f"encoders is {cfg.encoders}; use 1, or more for an ensemble")
        S = cfg.image_size
        if cfg.encoder == "conv":
            if cfg.blocks < 1 or S >> cfg.blocks < 1:
                raise ValueError(f"a conv encoder of {cfg.blocks} blocks halves {S}x{S} images "
                                 f"{cfg.blocks} times; use 1 to {max(1, S.bit_length() - 1)} blocks "
                                 "or larger images")
            layers: list[nn.Module] = []
            c_in = 1
            for _ in range(cfg.blocks):
                layers += [nn.Conv2d(c_in, cfg.channels, 3, padding=1),
                           _norm(cfg.norm, cfg.channels), nn.ReLU(), nn.MaxPool2d(2)]
                c_in = cfg.channels
            layers.append(nn.Flatten())
            self.net = nn.Sequential(*layers)
            flat = self.net(torch.zeros(2, 1, S, S)).shape[1]
            self.net.append(nn.Linear(flat, cfg.embed))
            if cfg.standardize:
                # A metric (prototypical) embedding is free to carry a large offset shared by
                # every image; cosine addressing on keys linear in e_t then sees all slots as
                # alike. Centring and scaling each feature removes it (BatchNorm, no affine).
                self.net.append(nn.BatchNorm1d(cfg.embed, affine=False))
        elif cfg.encoder == "mlp":
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(S * S, 128), nn.BatchNorm1d(128),
                                     nn.ReLU(), nn.Linear(128, cfg.embed))
        else:
            raise ValueError(f"unknown encoder {cfg.encoder!r}; choose conv or mlp")
        if cfg.shift_views not in SHIFT_VIEWS:
            raise ValueError(f"shift_views is {cfg.shift_views}; choose 5 (the drawing and its 4 "
                             "one-pixel shifts) or 9 (the 3x3 grid of one-pixel shifts)")
        self.shift_average, self.shift_views = cfg.shift_average, cfg.shift_views

    def singles(self) -> list[Encoder]:
        """The single encoders this one is made of: an ensemble's members, or itself."""
        return list(self.members) if hasattr(self, "members") else [self]

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "members"):
            return torch.cat([m(x) for m in self.members], -1) / len(self.members) ** 0.5
        if not self.shift_average or self.training:
            return self.net(x)
        # Test-time augmentation, in eval mode (in use, and as a frozen encoder under the MANN's
        # training; never while the encoder itself trains): the drawing and its shifts by one
        # pixel up, down, left and right (zero-padded), and with 9 views the four diagonal shifts
        # too, each encoded, the embeddings averaged.
        S = x.shape[-1]
        p = F.pad(x, (1, 1, 1, 1))
        views = [p[..., 1 + dy:1 + dy + S, 1 + dx:1 + dx + S] for dy, dx in SHIFT_VIEWS[self.shift_views]]
        return sum(self.net(v) for v in views) / len(views)  # one view at a time: 1x the memory


class Controller(nn.Module):
    """The recurrent core: an LSTM (default), GRU or plain tanh RNN cell."""

    def __init__(self, kind: str, inputs: int, hidden: int) -> None:
        super().__init__()
        cells = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}
        if kind not in cells:
            raise ValueError(f"unknown controller {kind!r}; choose one of {', '.join(CONTROLLERS)}")
        self.kind, self.hidden = kind, hidden
        self.cell = cells[kind](inputs, hidden)

    def initial_state(self, batch: int, device: torch.device | str) -> tuple[Tensor, ...]:
        h = torch.zeros(batch, self.hidden, device=device)
        return (h, h.clone()) if self.kind == "lstm" else (h,)

    def forward(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        if self.kind == "lstm":
            h, c = self.cell(x, state)
            return h, (h, c)
        h = self.cell(x, state[0])
        return h, (h,)


class ReadHead(nn.Module):
    """h_t -> read keys k^r (B, H, D) and key strengths beta (B, H), for all heads at once."""

    def __init__(self, hidden: int, heads: int, width: int) -> None:
        super().__init__()
        self.heads, self.width = heads, width
        self.key = nn.Linear(hidden, heads * width)
        self.beta = nn.Linear(hidden, heads)
        nn.init.constant_(self.beta.bias, 10.0)  # sharp from the start: cosines lie in [-1, 1]

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        k = self.key(h).view(-1, self.heads, self.width)
        return k, 1.0 + F.softplus(self.beta(h))  # beta >= 1


class WriteHead(nn.Module):
    """h_t -> write key k_t (B, D) and the LRUA gate alpha_t (B,).

    With ``count`` the key's last unit is ``mass``: 1 where there is a pair (x_{t-1}, y_{t-1}) to
    bind, 0 at an episode's first step, so that the LRUA write adds each slot's write mass into its
    last coordinate (what the euclidean score divides by)."""

    def __init__(self, hidden: int, width: int, count: bool = False) -> None:
        super().__init__()
        self.count = count
        self.key = nn.Linear(hidden, width)
        self.alpha = nn.Linear(hidden, 1)

    def forward(self, h: Tensor, mass: Tensor | None = None) -> tuple[Tensor, Tensor]:
        k = torch.tanh(self.key(h))
        if self.count:
            m = torch.ones_like(k[:, -1:]) if mass is None else mass.view(-1, 1).to(k.dtype)
            k = torch.cat([k[:, :-1], m], dim=1)
        return k, self.alpha(h).squeeze(-1)


@dataclass
class MANNState:
    controller: tuple[Tensor, ...]
    memory: MemoryState
    reads: Tensor  # r_{t-1} flattened, (B, H*D)
    prev_embed: Tensor  # e_{t-1}, (B, embed)


# What a checkpoint written before a field existed was trained with (missing fields read so).
LEGACY = {"channels": 16, "norm": "batch", "standardize": False, "init": "random"}


def config_from_dict(fields: dict, **overrides) -> MANNConfig:
    """The MANNConfig saved in a checkpoint, old ones included, with ``overrides`` applied."""
    return MANNConfig(**{**LEGACY, **fields, **overrides})


def build_memory(cfg: MANNConfig) -> Memory:
    if cfg.memory == "dense":
        return DenseMemory(cfg.slots, cfg.width, cfg.read_heads, cfg.score, cfg.gamma)
    if cfg.memory == "sparse":
        return SparseMemory(cfg.slots, cfg.width, cfg.read_heads, cfg.score, cfg.gamma, cfg.topk)
    raise ValueError(f"unknown memory {cfg.memory!r}; choose dense or sparse")


def label_input(y_prev: Tensor, label_space: int) -> Tensor:
    """onehot(y_{t-1}); all zeros where there is no previous label (y_prev = -1)."""
    return F.one_hot(y_prev + 1, label_space + 1)[..., 1:].float()


class MANN(nn.Module):
    """Santoro et al.'s MANN: controller + content read heads + LRUA write head."""

    def __init__(self, cfg: MANNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        inputs = cfg.embed * (2 if cfg.prev_embedding else 1) + cfg.label_space
        inputs += cfg.read_heads * cfg.width
        self.controller = Controller(cfg.controller, inputs, cfg.hidden)
        head_in = cfg.hidden + (inputs if cfg.skip else 0)
        self.read_head = ReadHead(head_in, cfg.read_heads, cfg.width)
        self.write_head = WriteHead(head_in, cfg.width, count=cfg.score == "euclidean")
        self.memory = build_memory(cfg)
        self.out = nn.Linear(cfg.hidden + cfg.read_heads * cfg.width, cfg.label_space)
        if cfg.init == "matching":
            self.init_as_matching_network()
        elif cfg.init == "prototype":
            self.init_as_prototype_memory()
        elif cfg.init != "random":
            raise ValueError(f"unknown init {cfg.init!r}; choose matching, prototype or random")

    @torch.no_grad()
    def init_as_matching_network(self, key: float = 0.5, label: float = 1.0,
                                 out: float = 3.0) -> None:
        """Start the heads as a matching network (Vinyals et al. 2016), set by hand.

        A write stores k^w = tanh(key e_{t-1} + label onehot(y_{t-1})) (image features in the
        first ``embed`` key units, the label's code in the next ``label_space``) into the least
        used slot (alpha biased low); every read head asks with k^r = key e_t; the output reads
        the label code back out of r_t. Every other weight into the keys, the gate and the output
        starts small. Without this the MANN needs thousands of steps to discover the binding
        (the plateau at chance of Santoro et al.'s MANN); with it, training starts from
        nearest-neighbour recall in the encoder's space. This only sets where the parameters
        start; whether they are then trained depends on the run (``--steps``): the packaged
        checkpoint's were not (``--steps 0``). With the euclidean score the key's last unit
        counts writes (``WriteHead``), so the width needs one more unit.
        """
        cfg = self.cfg
        E, L, D, H, h = cfg.embed, cfg.label_space, cfg.width, cfg.read_heads, cfg.hidden
        euclidean = cfg.score == "euclidean"
        need = E + L + (1 if euclidean else 0)  # euclidean: the last unit counts writes
        if not (cfg.skip and cfg.prev_embedding) or D < need:
            raise ValueError("the matching init needs skip, prev_embedding and width >= "
                             f"embed + label_space{' + 1' if euclidean else ''} ({need}); got width {D}")
        e_t, e_prev, y = slice(h, h + E), slice(h + E, h + 2 * E), slice(h + 2 * E, h + 2 * E + L)
        for lin in (self.read_head.key, self.write_head.key, self.write_head.alpha, self.out):
            lin.weight.mul_(0.01)
            lin.bias.zero_()
        self.read_head.key.weight.view(H, D, -1)[:, :E, e_t] += key * torch.eye(E)
        self.write_head.key.weight[:E, e_prev] += key * torch.eye(E)
        self.write_head.key.weight[E:E + L, y] += label * torch.eye(L)
        self.write_head.alpha.bias.fill_(-3.0)  # sigmoid(-3) = 0.05: mostly the least-used slot
        self.out.weight[:, h:].view(L, H, D)[:, :, E:E + L] += out * torch.eye(L).unsqueeze(1)

    @torch.no_grad()
    def init_as_prototype_memory(self, sharp: float = 20.0, agree: float = 1.0,
                                 gate: float = 40.0, threshold: float = 0.4,
                                 beta: float | None = None) -> None:
        """The matching network, plus an LRUA gate that pools a class's drawings into one slot.

        Santoro et al.'s LRUA writes either to the least-used slot or to the slot read at t-1
        (w^r_{t-1}); which one is the controller's choice, through alpha_t. Here the controller
        starts out making it the way a prototype memory would: at step t it has y_{t-1} and the
        read r_{t-1} made for x_{t-1}. If the label code in r_{t-1} is y_{t-1}'s (the memory
        recalled x_{t-1} right), k_t is added into the slot just read, which becomes a sum of
        that class's drawings, a prototype (Snell et al. 2017) that later reads match by cosine;
        otherwise (a new class, or a wrong recall) k_t takes the least-used slot, as before.

        ``label_space`` controller units compute the agreement a = sum_j y_{t-1,j} g(s_j), with
        s_j the mean over heads of r_{t-1}'s label unit j (0.76 for a read wholly on one slot of
        label j) and g = tanh(``agree`` s_j). An LSTM unit j opens its input gate on y_{t-1,j}
        (``sharp``) and takes g(s_j) as its candidate; a GRU or RNN unit is
        tanh(agree s_j + sharp (y_{t-1,j} - 1)), -1 unless j is the label. Then
        alpha_t = ``gate`` (a - ``threshold``), shifted by the -1s. Reads are sharpened (``beta``,
        60 for cosine, ``EUCLIDEAN_BETA`` for squared distances) so that w^r_{t-1} is mostly on
        one slot. This sets where the parameters start; whether they are trained depends on the
        run: in the packaged checkpoint (``--steps 0``) the controller, heads and output are
        exactly as set here, and only the conv encoders were trained.
        """
        self.init_as_matching_network()
        cfg = self.cfg
        if beta is None:
            beta = EUCLIDEAN_BETA if cfg.score == "euclidean" else 60.0
        E, L, D, H, hid = cfg.embed, cfg.label_space, cfg.width, cfg.read_heads, cfg.hidden
        if hid < L:
            raise ValueError(f"the prototype init needs a controller of at least label_space "
                             f"({L}) units; got {hid}")
        cell = self.controller.cell
        y = 2 * E  # controller input: [e_t, e_{t-1}, onehot(y_{t-1}), r_{t-1}]
        label_units = [2 * E + L + j * D + E for j in range(H)]  # r_{t-1,j}[E]: label 0, head j
        gates = GATES[cfg.controller]
        for u in range(L):
            for g in range(gates):  # the rows of unit u: LSTM i, f, g, o; GRU r, z, n; RNN
                row = g * hid + u
                for p in (cell.weight_ih[row], cell.weight_hh[row], cell.bias_ih[row:row + 1],
                          cell.bias_hh[row:row + 1]):
                    p.zero_()
            if cfg.controller == "lstm":
                i, f, c, o = u, hid + u, 2 * hid + u, 3 * hid + u
                cell.weight_ih[i, y + u] = sharp
                cell.bias_ih[i] = -sharp / 2  # input gate open only for label u
                cell.bias_ih[f] = -sharp  # forget: the unit holds this step's agreement only
                cell.bias_ih[o] = sharp
            else:
                z, c = (hid + u, 2 * hid + u) if cfg.controller == "gru" else (None, u)
                if z is not None:
                    cell.bias_ih[z] = -sharp  # h_t = n_t: no carry-over
                cell.weight_ih[c, y + u] = sharp
                cell.bias_ih[c] = -sharp
            for k in label_units:
                cell.weight_ih[c, k + u] = agree / H
        offset = 0.0 if cfg.controller == "lstm" else L - 1.0  # the GRU/RNN units read -1 off-label
        self.write_head.alpha.weight[0, :L] += gate
        self.write_head.alpha.bias.fill_(gate * (offset - threshold))
        self.read_head.beta.bias.fill_(beta)

    def agreement_rows(self) -> dict[str, Tensor]:
        """The controller rows ``init_as_prototype_memory`` sets by hand: every gate's row of the
        first ``label_space`` units (the agreement units that drive the LRUA gate). Training can
        keep them (``train_controller(keep_agreement=True)``) and learn only the other units."""
        cfg, hid = self.cfg, self.cfg.hidden
        gates = GATES[cfg.controller]
        rows = torch.cat([g * hid + torch.arange(cfg.label_space) for g in range(gates)])
        return {f"controller.cell.{n}": rows for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}

    def initial_state(self, batch: int, device: torch.device | str = "cpu", slots: int | None = None) -> MANNState:
        """A fresh episode's state; ``slots`` sets the memory's size (default ``cfg.slots``)."""
        cfg = self.cfg
        return MANNState(self.controller.initial_state(batch, device),
                         self.memory.initial_state(batch, device, slots),
                         torch.zeros(batch, cfg.read_heads * cfg.width, device=device),
                         torch.zeros(batch, cfg.embed, device=device))

    def step(self, e: Tensor, y_prev: Tensor, state: MANNState, *, zero_h: bool = False) -> tuple[Tensor, MANNState]:
        """One time step from an encoded image e_t (B, embed) and y_{t-1} (B,). ``zero_h`` (an
        ablation): the heads and the output see h_t = 0, so only the skip of x_t reaches them."""
        parts = [e, state.prev_embed] if self.cfg.prev_embedding else [e]
        x = torch.cat(parts + [label_input(y_prev, self.cfg.label_space), state.reads], dim=-1)
        h, ctrl = self.controller(x, state.controller)
        if zero_h:
            h = torch.zeros_like(h)
        o = torch.cat([h, x], dim=-1) if self.cfg.skip else h
        k_w, alpha = self.write_head(o, (y_prev >= 0).float())  # nothing to bind at the 1st step
        k_r, beta = self.read_head(o)
        r, mem = self.memory.step(state.memory, k_w, alpha, k_r, beta)
        r = r.flatten(1)
        return self.out(torch.cat([h, r], dim=-1)), MANNState(ctrl, mem, r, e)

    def forward(self, x: Tensor, y_prev: Tensor) -> Tensor:
        """Episodes x (B, T, 1, S, S), y_prev (B, T) -> logits (B, T, label_space)."""
        B, T = y_prev.shape
        return self.unroll(self.encoder(x.flatten(0, 1)).view(B, T, -1), y_prev)

    def unroll(self, e: Tensor, y_prev: Tensor, *, ablate: str | None = None, slots: int | None = None) -> Tensor:
        """Episodes of encoded images e (B, T, embed), y_prev (B, T) -> logits (B, T, label_space).

        ``slots``: the memory's size for these episodes (default ``cfg.slots``; capacity episodes
        give fewer slots than drawings, so the write head must choose what to overwrite).
        ``ablate`` (to measure what the controller contributes): ``"reset"`` zeroes the
        controller's state before every step (no recurrence), ``"zero_h"`` zeroes its output h_t
        (the heads and the output layer see only the skip of x_t)."""
        if ablate not in (None, "reset", "zero_h"):
            raise ValueError(f"unknown ablation {ablate!r}; choose reset or zero_h")
        B, T = y_prev.shape
        state = self.initial_state(B, e.device, slots)
        logits = []
        for t in range(T):
            if ablate == "reset":
                state.controller = self.controller.initial_state(B, e.device)
            out, state = self.step(e[:, t], y_prev[:, t], state, zero_h=ablate == "zero_h")
            logits.append(out)
        return torch.stack(logits, dim=1)


class LSTMBaseline(nn.Module):
    """The same encoder and inputs, an LSTM and no external memory (Santoro's LSTM row)."""

    def __init__(self, cfg: MANNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        inputs = cfg.embed * (2 if cfg.prev_embedding else 1) + cfg.label_space
        self.lstm = nn.LSTM(inputs, cfg.hidden, batch_first=True)
        self.out = nn.Linear(cfg.hidden, cfg.label_space)

    def forward(self, x: Tensor, y_prev: Tensor) -> Tensor:
        B, T = y_prev.shape
        return self.unroll(self.encoder(x.flatten(0, 1)).view(B, T, -1), y_prev)

    def unroll(self, e: Tensor, y_prev: Tensor) -> Tensor:
        """Episodes of encoded images e (B, T, embed) -> logits (B, T, label_space)."""
        parts = [e, F.pad(e, (0, 0, 1, 0))[:, :-1]] if self.cfg.prev_embedding else [e]
        h, _ = self.lstm(torch.cat(parts + [label_input(y_prev, self.cfg.label_space)], dim=-1))
        return self.out(h)


def build_model(cfg: MANNConfig) -> nn.Module:
    if cfg.model == "mann":
        return MANN(cfg)
    if cfg.model == "lstm":
        return LSTMBaseline(cfg)
    raise ValueError(f"unknown model {cfg.model!r}; choose mann or lstm")
