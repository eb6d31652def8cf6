"""Memory and model: gradients through reads and LRUA writes, sparse == dense at K = N."""

from __future__ import annotations

import pytest
import torch

from mindstore.neural.data import SyntheticEpisodes
from mindstore.neural.evaluate import accuracy_by_instance
from mindstore.neural.memory import SCORES, DenseMemory, SparseMemory
from mindstore.neural.model import MANN, MANNConfig, build_model

B, H, N, D = 3, 2, 8, 6


@pytest.fixture
def float64():
    """Compare in double precision: the two memories sum the same terms in another order."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def run_memory(mem, keys, steps: int = 5):
    state = mem.initial_state(B)
    reads = []
    for t in range(steps):
        r, state = mem.step(state, keys["write"][t], keys["alpha"][t], keys["read"][t],
                            keys["beta"][t])
        reads.append(r)
    return torch.stack(reads), state


def make_keys(steps: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return {"write": torch.randn(steps, B, D, generator=g).requires_grad_(),
            "alpha": torch.randn(steps, B, generator=g).requires_grad_(),
            "read": torch.randn(steps, B, H, D, generator=g).requires_grad_(),
            "beta": (1 + torch.rand(steps, B, H, generator=g) * 5).requires_grad_()}


@pytest.mark.parametrize("score", SCORES)
def test_sparse_equals_dense_when_k_is_n(score, float64):
    torch.manual_seed(0)
    dense = DenseMemory(N, D, H, score, 0.95)
    sparse = SparseMemory(N, D, H, score, 0.95, k=N)
    sparse.load_state_dict(dense.state_dict())
    kd, ks = make_keys(), make_keys()
    if score == "euclidean":  # the write key's last unit counts the writes (WriteHead)
        for k in (kd, ks):
            with torch.no_grad():
                k["write"][..., -1] = 1.0
    rd, sd = run_memory(dense, kd)
    rs, ss = run_memory(sparse, ks)
    torch.testing.assert_close(rs, rd, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ss.M, sd.M, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ss.usage, sd.usage, rtol=1e-9, atol=1e-10)
    (rd ** 2).sum().backward()
    (rs ** 2).sum().backward()
    for name in kd:
        torch.testing.assert_close(ks[name].grad, kd[name].grad, rtol=1e-8, atol=1e-10)


def test_gradients_flow_through_reads_and_lrua_writes():
    """The read at the last step must depend on what was written at earlier steps."""
    for mem in (DenseMemory(N, D, H, "cosine", 0.95), SparseMemory(N, D, H, "cosine", 0.95, 2)):
        k = make_keys()
        reads, _ = run_memory(mem, k)
        reads[-1].sum().backward()
        for name in ("write", "alpha", "read", "beta"):
            g = k[name].grad
            assert torch.isfinite(g).all(), name
        # the last read reaches back through the memory to every earlier write key
        assert (k["write"].grad[:-1].abs().sum(dim=(1, 2)) > 0).all()
        assert k["alpha"].grad[1:].abs().sum() > 0  # the LRUA gate (t = 0 has no prior reads)
        assert k["read"].grad[-1].abs().sum() > 0 and k["beta"].grad[-1].abs().sum() > 0
        # earlier read weights w^r_{t-1} choose where the LRUA write at t lands
        assert (k["read"].grad[:-1].abs().sum(dim=(1, 2, 3)) > 0).all()


def test_euclidean_score_reads_slots_as_the_means_of_what_was_written():
    """A slot that pooled n keys (last coordinate n) scores minus the squared distance to their
    mean, where cosine sees only the direction of their sum; an empty slot scores EMPTY."""
    from mindstore.neural.memory import EMPTY, Score

    pooled = torch.tensor([3.0, 0.0, 1.0]) + torch.tensor([2.6, 0.2, 1.0])  # 2 writes: mean (2.8, 0.1)
    single = torch.tensor([0.8, 0.3, 1.0])
    slots = torch.stack([pooled, single, torch.full((3,), 1e-6)]).unsqueeze(0)  # (1, 3, 3)
    key = torch.tensor([[[1.0, 0.0, 123.0]]])  # the key's last unit is ignored
    s = Score("euclidean", 3)(key, slots)[0, 0]
    torch.testing.assert_close(s[0], torch.tensor(-(1.8 ** 2 + 0.1 ** 2)))
    torch.testing.assert_close(s[1], torch.tensor(-(0.2 ** 2 + 0.3 ** 2)))
    assert s[2] == EMPTY
    cos = Score("cosine", 2)(key[..., :2], slots[..., :2])[0, 0]
    assert s[1] > s[0] and cos[0] > cos[1]  # the two scores disagree here: a mean is not a sum
    # the same slot read per head (gathered, (B, H, K, D)) scores the same
    per_head = Score("euclidean", 3)(key, slots.unsqueeze(1))[0, 0]
    torch.testing.assert_close(per_head, s)


def test_lrua_writes_to_least_used_slot_and_clears_it():
    mem = DenseMemory(N, D, H, "cosine", 0.95)
    state = mem.initial_state(1)
    state.usage = torch.arange(N, dtype=torch.float).flip(0).unsqueeze(0)  # slot N-1 least used
    state.M = torch.ones(1, N, D)
    key = torch.full((1, D), 0.5)
    _, new = mem.step(state, key, torch.tensor([-50.0]), torch.randn(1, H, D), torch.ones(1, H))
    torch.testing.assert_close(new.M[0, -1], key[0], atol=1e-6, rtol=0)  # cleared, then k_t
    torch.testing.assert_close(new.M[0, :-1], torch.ones(N - 1, D), atol=1e-6, rtol=0)


def test_sparse_reads_touch_only_k_slots():
    mem = SparseMemory(N, D, H, "cosine", 0.95, k=3)
    _, state = run_memory(mem, make_keys())
    assert state.read_w.shape == (B, H, 3) and state.read_idx.shape == (B, H, 3)
    torch.testing.assert_close(state.read_w.sum(-1), torch.ones(B, H))


@pytest.mark.parametrize("init", ["random", "matching", "prototype"])
@pytest.mark.parametrize("controller", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("memory", ["dense", "sparse"])
def test_model_gradients_finite_and_reach_every_part(controller, memory, init):
    cfg = MANNConfig(controller=controller, memory=memory, hidden=16, slots=12, width=16,
                     read_heads=2, topk=3, label_space=5, image_size=6, encoder="mlp", embed=8,
                     init=init)
    model = MANN(cfg)
    x = torch.rand(2, 7, 1, 6, 6)
    y_prev = torch.tensor([[-1, 0, 1, 2, 0, 3, 4]] * 2)
    model(x, y_prev).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for part in ("encoder", "controller", "read_head.key", "write_head.key", "write_head.alpha"):
        grads = [p.grad.abs().sum() for n, p in model.named_parameters() if n.startswith(part)]
        assert sum(grads) > 0, part


def test_matching_init_needs_room_for_image_and_label_in_a_key():
    with pytest.raises(ValueError, match="width >= embed \\+ label_space \\(13\\)"):
        MANN(MANNConfig(width=12, embed=8, label_space=5, image_size=6, encoder="mlp"))


def test_matching_init_recalls_new_patterns_before_any_training():
    """Fresh random patterns: with the heads set up as a matching network, an untrained MANN
    already binds and recalls (2nd presentation far above guessing among the labels
    seen), and a randomly initialised one does not."""
    acc = {}
    for init in ("matching", "random"):
        torch.manual_seed(0)
        model = MANN(MANNConfig(hidden=32, slots=32, width=64, read_heads=2, topk=4,
                                label_space=5, image_size=8, encoder="mlp", embed=32, init=init))
        acc[init] = accuracy_by_instance(model, SyntheticEpisodes(size=8), ways=3,
                                         presentations=4, episodes=200, seed=3)
    assert acc["matching"][2] > 0.6 and acc["matching"][4] > 0.6, acc
    assert acc["random"][2] < 0.4, acc


def test_prototype_init_needs_a_controller_unit_per_label():
    with pytest.raises(ValueError, match="at least label_space \\(5\\) units; got 4"):
        MANN(MANNConfig(hidden=4, width=16, embed=8, label_space=5, image_size=6, encoder="mlp",
                        init="prototype"))


def prototype_episode(init: str, controller: str = "lstm", score: str = "cosine"):
    """An untrained MANN over one batch of synthetic episodes (3 classes x 5 presentations):
    the LRUA gate at every step, whether the step before was recalled right, and the memory."""
    torch.manual_seed(0)
    model = MANN(MANNConfig(controller=controller, hidden=32, slots=32, width=64, read_heads=2,
                            topk=4, label_space=5, image_size=8, encoder="mlp", embed=32,
                            init=init, score=score)).eval()
    ep = SyntheticEpisodes(size=8).sample(40, 3, 5, 5, torch.Generator().manual_seed(1))
    gates = []
    hook = model.write_head.register_forward_hook(lambda mod, i, out: gates.append(out[1]))
    with torch.no_grad():
        e = model.encoder(ep.x.flatten(0, 1)).view(*ep.y.shape, -1)
        state = model.initial_state(ep.y.shape[0])
        right = []
        for t in range(ep.y.shape[1]):
            out, state = model.step(e[:, t], ep.y_prev[:, t], state)
            right.append(out.argmax(-1) == ep.y[:, t])
    hook.remove()
    gate = torch.sigmoid(torch.stack(gates[1:], 1))  # the gate at t decides x_{t-1}'s write
    return gate, torch.stack(right[:-1], 1), state.memory.M, torch.stack(right, 1)


@pytest.mark.parametrize("controller", ["lstm", "gru", "rnn"])
def test_prototype_init_pools_a_class_into_the_slot_that_recalled_it(controller):
    """Untrained, the prototype init writes a drawing recalled right into the slot it read (gate
    open) and a new class or a wrong recall into a fresh slot (gate shut), so an episode of 3
    classes x 5 presentations fills half the slots the matching init fills, and recalls better.
    The gate follows the read, not the output: a read split between two slots stays shut."""
    gate, was_right, M, right = prototype_episode("prototype", controller)
    assert 0.5 < was_right.float().mean() < 0.9  # both cases occur: first presentations are wrong
    assert (gate[was_right] > 0.5).float().mean() > 0.6
    assert (gate[~was_right] > 0.5).float().mean() < 0.05
    used = (M.norm(dim=-1) > 0.5).sum(1).float().mean()  # slots holding a drawing
    _, _, M_matching, right_matching = prototype_episode("matching", controller)
    used_matching = (M_matching.norm(dim=-1) > 0.5).sum(1).float().mean()
    assert used_matching > 13 and used < 9, (used_matching, used)
    assert right.float().mean() > right_matching.float().mean()


def test_euclidean_prototype_init_counts_each_binding_once_and_pools_classes():
    """With the euclidean score the write key's last unit is the write mass: 1 for every bound
    pair, 0 at the first step (nothing to bind), so the slots' counts add up to the pairs bound;
    the gate pools a class into few slots, and recall beats the cosine matching init's."""
    from mindstore.neural.memory import MIN_MASS

    gate, was_right, M, right = prototype_episode("prototype", score="euclidean")
    steps = right.shape[1]
    torch.testing.assert_close(M[..., -1].sum(1), torch.full((M.shape[0],), steps - 1.0), atol=1e-3, rtol=0)
    assert (gate[was_right] > 0.5).float().mean() > 0.6
    assert (gate[~was_right] > 0.5).float().mean() < 0.05
    used = (M[..., -1] >= MIN_MASS).sum(1).float().mean()
    assert used < 9, used  # 3 classes, 14 drawings bound
    _, _, _, right_matching = prototype_episode("matching")
    assert right.float().mean() > right_matching.float().mean()


def test_euclidean_init_needs_a_unit_for_the_count():
    with pytest.raises(ValueError, match=r"embed \+ label_space \+ 1 \(38\); got width 37"):
        MANN(MANNConfig(hidden=32, width=37, embed=32, label_space=5, image_size=8, encoder="mlp",
                        init="prototype", score="euclidean"))


def test_lstm_baseline_runs():
    cfg = MANNConfig(model="lstm", hidden=16, label_space=5, image_size=6, encoder="mlp", embed=8)
    out = build_model(cfg)(torch.rand(2, 7, 1, 6, 6), torch.full((2, 7), -1))
    assert out.shape == (2, 7, 5)


def test_sparse_memory_takes_any_topk_index():
    """The seam a FAISS index will fill: a stand-in index over its own copy of the slots,
    kept current only through ``written``, gives the same reads as the exact default."""

    class CopyIndex:
        def __init__(self):
            self.rows = None
            self.updates = 0

        def search(self, memory, keys, k, score):
            rows = memory.detach() if self.rows is None else self.rows
            q = score.query(keys)  # cosine: normalised query against normalised rows
            rows = rows / (rows.norm(dim=-1, keepdim=True) + 1e-8)
            return (q @ rows.transpose(1, 2)).topk(k, dim=-1).indices

        def written(self, memory, slots):
            self.rows = memory.detach().clone() if self.rows is None else self.rows
            b = torch.arange(slots.shape[0]).unsqueeze(1)
            self.rows[b, slots] = memory.detach()[b, slots]  # only the touched rows
            self.updates += 1

    torch.manual_seed(0)
    exact = SparseMemory(N, D, H, "cosine", 0.95, k=3)
    custom = SparseMemory(N, D, H, "cosine", 0.95, k=3, index=CopyIndex())
    r_exact, _ = run_memory(exact, make_keys())
    r_custom, _ = run_memory(custom, make_keys())
    torch.testing.assert_close(r_custom, r_exact)
    assert custom.index.updates == 5


@pytest.mark.parametrize("views", [5, 9])
def test_shift_average_encodes_a_drawing_with_its_one_pixel_shifts_in_eval_mode_only(views):
    from dataclasses import replace

    from mindstore.neural.model import Encoder

    torch.manual_seed(0)
    cfg = MANNConfig(image_size=8, channels=4, embed=6, shift_average=True, shift_views=views)
    enc, plain = Encoder(cfg), Encoder(replace(cfg, shift_average=False))
    plain.load_state_dict(enc.state_dict())
    x = torch.rand(3, 1, 8, 8)

    def moved(dy: int, dx: int) -> torch.Tensor:  # shifted by one pixel, zeros coming in
        y = torch.roll(x, (dy, dx), dims=(-2, -1))
        if dy:
            y[..., 0 if dy > 0 else -1, :] = 0
        if dx:
            y[..., :, 0 if dx > 0 else -1] = 0
        return y

    enc.eval(), plain.eval()
    if views == 5:  # the drawing and its shifts up, down, left and right
        shifted = [x, moved(1, 0), moved(-1, 0), moved(0, 1), moved(0, -1)]
    else:  # and the four diagonal shifts
        shifted = [moved(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    expected = torch.stack([plain(v) for v in shifted]).mean(0)
    torch.testing.assert_close(enc(x), expected)
    assert not torch.allclose(enc(x), plain(x), atol=1e-4)
    enc.train(), plain.train()  # while the encoder trains: the drawing alone
    torch.testing.assert_close(enc(x), plain(x))


def test_shift_views_other_than_5_or_9_are_refused():
    from mindstore.neural.model import Encoder

    with pytest.raises(ValueError, match="choose 5 .* or 9"):
        Encoder(MANNConfig(image_size=8, channels=4, embed=6, shift_average=True, shift_views=4))


def test_an_ensemble_joins_its_members_embeddings_so_squared_distances_are_their_mean():
    from dataclasses import replace

    from mindstore.neural.model import Encoder

    torch.manual_seed(0)
    cfg = MANNConfig(image_size=8, channels=4, embed=12, encoders=3, shift_average=True)
    ens = Encoder(cfg).eval()
    singles = [Encoder(replace(cfg, encoders=1, embed=4)).eval() for _ in range(3)]
    for single, member in zip(singles, ens.members):
        single.load_state_dict(member.state_dict())
    x = torch.rand(5, 1, 8, 8)
    parts = [s(x) for s in singles]
    e = ens(x)
    assert e.shape == (5, 12)
    torch.testing.assert_close(e, torch.cat(parts, -1) / 3 ** 0.5)
    mean_sq = torch.stack([torch.cdist(p, p).pow(2) for p in parts]).mean(0)
    torch.testing.assert_close(torch.cdist(e, e).pow(2), mean_sq, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(parts[0], parts[1])  # members start apart: their own weights
    with pytest.raises(ValueError, match="multiple of 3"):
        Encoder(replace(cfg, embed=10))
    with pytest.raises(ValueError, match="use 1, or more"):
        Encoder(replace(cfg, encoders=0))
