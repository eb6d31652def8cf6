"""The neural memory's configurations: what rebuilds a model (MANNConfig) and what makes a
training run (TrainConfig). Plain dataclasses without torch, so that `mindstore train --help`
builds its options from their fields and defaults without importing torch; both are saved in
every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MANNConfig:
    """Everything needed to rebuild a model; saved inside every checkpoint."""

    model: str = "mann"  # "mann", or "lstm": the controller alone, no external memory
    controller: str = "lstm"  # lstm | gru | rnn
    memory: str = "sparse"  # sparse (top-K reads, Rae et al. 2016) | dense
    hidden: int = 128  # controller units
    slots: int = 128  # N
    width: int = 128  # D: slot and key width (>= embed + label_space for the matching init, +1 for euclidean)
    read_heads: int = 4
    topk: int = 4  # K for sparse memory (SAM: 4 was as good as 8 or 16)
    score: str = "cosine"  # cosine | dot | multiplicative | additive | euclidean (slot means)
    gamma: float = 0.95  # usage decay
    label_space: int = 20  # output units; an episode uses a random subset of them
    image_size: int = 20
    encoder: str = "conv"  # conv (images) | mlp (small synthetic patterns)
    channels: int = 32  # conv encoder width
    blocks: int = 3  # conv encoder depth: blocks of conv3x3-norm-ReLU-maxpool (4: Snell's conv-4)
    norm: str = "group"  # conv encoder normalisation: group (each image its own) | batch
    standardize: bool = True  # e_t -> (e_t - mean) / std per feature, training statistics
    embed: int = 64  # e_t width
    prev_embedding: bool = True  # feed e_{t-1} to the controller with y_{t-1}
    skip: bool = True  # heads read o_t = [h_t, x_t]: the controller's input joins its output
    init: str = "matching"  # matching (heads start as a matching network, see MANN) | prototype
    # (the same, and a right recall's drawing is added into the slot it was read from) | random
    shift_average: bool = False  # e_t: mean over the drawing and its one-pixel shifts, eval mode
    shift_views: int = 5  # shift averaging: 5 (the drawing, 4 shifts) | 9 (the 3x3 grid of shifts)
    # an ensemble: n conv encoders trained apart (their own seeds), e_t = [f_1(x), ..., f_n(x)] /
    # sqrt(n), each f_i embed / n wide; squared distances are the members' averaged
    encoders: int = 1


@dataclass
class TrainConfig:
    """A training run; saved inside the checkpoint next to the model's config."""

    model: MANNConfig = field(default_factory=MANNConfig)
    # omniglot: Santoro's episodes, end to end | synthetic | relabel, capacity, mixed: the
    # controller and heads alone, on episodes of a frozen encoder's cached embeddings (tasks.py):
    # relabel or capacity episodes only, or standard, relabel and capacity episodes in turn
    task: str = "omniglot"
    views: int = 2  # relabel / capacity / mixed: embeddings cached per training drawing (itself + distortions)
    data: str | None = None  # Omniglot zip or folder; None: data.default_data_dir()
    steps: int = 10_000
    batch: int = 16
    classes: int = 5  # ways per training episode
    # relabel / capacity / mixed: train on episodes of each of these ways in turn (empty: classes)
    ways: tuple[int, ...] = ()
    # relabel / capacity / mixed: keep weights only while standard-episode validation stays within
    # this of its start (None: no such limit; tasks.train_controller)
    hold: float | None = None
    # relabel / capacity / mixed: the MANN's modules to train (empty: all but the encoder)
    parts: tuple[str, ...] = ()
    optimizer: str = "adam"  # relabel / capacity / mixed: adam | sgd (tasks.train_controller)
    keep_agreement: bool = False  # relabel / capacity / mixed: the prototype init's agreement units stay as set
    presentations: int = 10  # drawings of each class per episode
    lr: float = 2e-5  # small: the matching init is already a good start (docs/neural.md)
    lr_min: float = 2e-6  # cosine decay from lr to lr_min over the run
    clip: float = 5.0
    # The label of a class's 1st presentation is unknowable (labels are fresh every episode);
    # its cross-entropy only teaches the model to distrust what it reads (docs/neural.md).
    loss_on_first: bool = False
    eval_every: int = 500
    eval_episodes: int = 160
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    out: str = "runs/mann.pt"
    threads: int = 0  # torch.set_num_threads; 0 leaves the default
    # random affine distortion of training drawings (data.augment): none | pretrain (phase 1
    # only) | all (also the MANN's episodes: ahead on validation at step 500, docs/neural.md)
    augment: str = "all"
    # training characters' mirror images (and their rotations) as new classes, on top of the
    # four rotations: 8 classes per character instead of 4 (data.with_rotations)
    reflect: bool = False
    # Phase 1 (Omniglot): the encoder alone learns a metric space with the prototypical loss
    # (Snell et al. 2017) on many-way episodes; the MANN then trains on top of it (phase 2).
    pretrain_steps: int = 3000
    pretrain_ways: int = 60
    pretrain_shots: int = 1
    pretrain_queries: int = 5
    pretrain_lr: float = 1e-3
    pretrain_distort: float = 1.0  # scales the ranges of phase 1's random distortion (augment)
    # take the encoder from this checkpoint instead of phase 1; an ensemble (model.encoders n > 1)
    # takes a list of n, one single-encoder checkpoint per member
    encoder_from: str | list[str] | None = None
    freeze_encoder: bool = True  # phase 2 keeps a pretrained (or taken) encoder fixed
