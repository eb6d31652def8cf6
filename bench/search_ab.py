"""Search latency at 100k text slots without the model (query vectors cached), for an A/B of two checkouts.

Run it once with each tree (a git worktree of the base commit and this one), interleaved, on the same
machine: the difference is what a change costs a search. Prints p50 / p95 ms per mode and scope.

    git worktree add /tmp/base <commit>; python bench/search_ab.py /tmp/base base.json; python bench/search_ab.py . new.json
"""
import json
import sys
import tempfile
import time
from pathlib import Path

tree, out = str(Path(sys.argv[1]).resolve()), sys.argv[2]
# the mindstore under test is the tree named on the command line
sys.path.insert(0, tree)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_hybrid as bh  # noqa: E402
import numpy as np  # noqa: E402
from bench_store import fill  # noqa: E402

import mindstore  # noqa: E402
from mindstore import Config, MindStore  # noqa: E402
from mindstore.embed import default_embedder  # noqa: E402


class Cached:
    def __init__(self, inner):
        self.inner, self.name, self.memo = inner, inner.name, {}

    @property
    def dim(self):
        return self.inner.dim

    def embed(self, texts, batch_size=64):
        miss = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if miss:
            for t, v in zip(miss, self.inner.embed(miss, batch_size=batch_size)):
                self.memo[t] = v
        return np.stack([self.memo[t] for t in texts])

base_texts, base_keys = bh.base(20000)
rng = np.random.default_rng(1)
queries = [bh.QUESTIONS[i % 5].format(n=bh.NAMES[rng.integers(20)], p=bh.PLACES[rng.integers(16)], w=bh.WHEN[rng.integers(8)]) for i in range(200)]
emb = Cached(default_embedder())
emb.embed(queries)
res = {"tree": mindstore.__file__}
with tempfile.TemporaryDirectory() as tmp:
    url, config = f"sqlite:///{tmp}/bench.db", Config(index_dir=Path(tmp) / "index")
    with MindStore(url, config=config, embedder=emb) as store:
        store.add("warm up the space", user_id="warm")
        fill(store, 100_000, users=100, base_keys=base_keys, base_texts=base_texts)
        store.search("warm up", mode="lexical")
        for mode in ("dense", "hybrid"):
            for q in queries[:10]:
                store.search(q, k=10, mode=mode)
            for scope in ("all", "user"):
                ts = []
                for i, q in enumerate(queries):
                    t = time.perf_counter()
                    store.search(q, k=10, mode=mode, **({"user_id": f"user{i % 100}"} if scope == "user" else {}))
                    ts.append((time.perf_counter() - t) * 1000)
                ts.sort()
                res[f"{mode} {scope}"] = (round(ts[len(ts)//2], 2), round(ts[int(len(ts)*0.95)], 2))
json.dump(res, open(out, "w"))
print(res)
