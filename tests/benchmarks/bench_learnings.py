"""Learnings at scale: the top 10 relevant among 100,000 in at most 20 ms.

Prints, for N learnings (default 100,000) with a Zipf-like vocabulary of coding words,
identifiers and file names:
- the index build time (once per process; later changes are incremental);
- a title's top 10 (workspace-filtered, at least the configured relevance): wall and
  CPU time, p50/p95/max, and whether they agree with a brute-force cosine (exact);
- through the engine's part with a real SQLite store holding N lessons: picking a
  task's learnings (refresh from the store, auto-retire check, search, record), and
  saving one new learning (its near-duplicate check runs in the write transaction).

Run: python tests/benchmarks/bench_learnings.py [N]
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.config import LearningsConfig  # noqa: E402
from agent.learnings.book import LearningBook  # noqa: E402
from agent.learnings.index import Index  # noqa: E402
from agent.learnings.words import weights  # noqa: E402
from agent.store import Store  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
QUERIES = 500
GOAL_MS = 20.0
WS = "/work/project"


def _words(text: str) -> list[str]:
    return text.split()


VERBS = _words("run check read write fix update add remove keep avoid prefer split merge test "
               "validate cache retry log parse render mock patch rename document")
NOUNS = _words("pagination config authentication session migration token router parser logger "
               "build linter docs scheduler query endpoint cache fixture schema payload webhook "
               "queue worker handler template serializer middleware index cursor batch")
GLUE = _words("the tests before after always code function file api error when with in for "
              "first then so it is are")


def vocabulary(rng: random.Random) -> list[str]:
    words = list(NOUNS)
    words += [f"{a}_{b}" for a in NOUNS for b in ("id", "map", "list", "cfg", "ctx")]
    words += [f"module{i}" for i in range(6_000)] + [f"src/file{i}.py" for i in range(4_000)]
    rng.shuffle(words[len(NOUNS):])
    return words


def zipf(rng: random.Random, words: list[str]) -> str:
    return words[min(int(rng.paretovariate(0.9)) - 1, len(words) - 1)]


def sentence(rng: random.Random, words: list[str]) -> str:
    parts = [rng.choice(VERBS)] + [zipf(rng, words) for _ in range(rng.randint(2, 5))]
    parts += rng.sample(GLUE, rng.randint(2, 6)) + [rng.choice(VERBS), zipf(rng, words)]
    rng.shuffle(parts)
    return " ".join(parts)


def brute_force(docs: list[tuple[int, str]], index: Index, title: str, k: int) -> list[int]:
    """The cosine computed the slow, obvious way, with the index's IDF."""
    def vector(text: str) -> dict[str, float]:
        raw = {t: p * index.idf(t) for t, p in weights(text).items()}
        norm = math.sqrt(sum(w * w for w in raw.values())) or 1.0
        return {t: w / norm for t, w in raw.items()}

    q = vector(title)
    scored = [(sum(w * vector(text).get(t, 0.0) for t, w in q.items()), i) for i, text in docs]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [i for s, i in scored[:k] if s >= 0.1]


def ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[int(len(values) * 0.95) - 1]
    return (f"p50 {statistics.median(values) * 1000:6.2f} ms  p95 {p95 * 1000:6.2f} ms  "
            f"max {values[-1] * 1000:6.2f} ms")


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


async def through_the_store(docs: list[tuple[int, str]], titles: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bench.db")
        now = time.time()
        rows = [("pattern", text, WS, "seed", now, now, now) for _i, text in docs]
        # Straight in (the bench is about reading them): one merge check per row would
        # compare each with all before it.
        await store._write(lambda db: db.executemany(  # noqa: SLF001
            "INSERT INTO lessons (category, text, workspace, source_task, created_at, "
            "last_taught_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows))
        book = LearningBook(store, LearningsConfig(holdout=0.1))
        started = time.perf_counter()
        await book.relevant("warm the index up")
        first = time.perf_counter() - started
        picks = []
        for n, title in enumerate(titles[:200]):
            t0 = time.perf_counter()
            await book.select(f"task{n}", title, WS)
            picks.append(time.perf_counter() - t0)
        saves = []
        for n in range(20):
            t0 = time.perf_counter()
            await store.add_learnings(None, [("pattern", titles[n] + " learned")], workspace=WS)
            saves.append(time.perf_counter() - t0)
        await store.close()
    print(f"store: first load of {N:,} lessons into the index   {first:6.2f} s")
    print(f"store: pick a task's learnings (record included)   {ms(picks)}")
    print(f"store: save one learning (near-duplicate check)    {ms(saves)}")


def main() -> None:
    rng = random.Random(20261202)
    words = vocabulary(rng)
    docs = [(i, sentence(rng, words)) for i in range(1, N + 1)]
    titles = [sentence(rng, words) for _ in range(QUERIES)]
    load = os.getloadavg()
    print(f"bench_learnings: {N:,} learnings, {QUERIES} titles; machine: {os.cpu_count()} "
          f"cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    started = time.perf_counter()
    index = Index.build((i, text, WS) for i, text in docs)
    print(f"index build                                        {time.perf_counter() - started:6.2f} s")

    index.search(titles[0], 10)  # warm-up
    wall, cpu, found = [], [], 0
    for title in titles:
        w0, c0 = time.perf_counter(), time.process_time()
        hits = index.search(title, 10, groups=[WS, None], min_score=0.1)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        found += len(hits)
    print(f"top 10 of {N:,}, wall                         {ms(wall)}")
    print(f"top 10 of {N:,}, CPU                          {ms(cpu)}")
    print(f"  {found / len(titles):.1f} relevant found per title on average")

    sample = docs if N <= 20_000 else rng.sample(docs, 20_000)
    small = Index.build((i, text, WS) for i, text in sample)
    agree = sum(
        [i for i, _s in small.search(t, 10, min_score=0.1)] == brute_force(sample, small, t, 10)
        for t in titles[:20]
    )
    print(f"exact: {agree}/20 titles get the brute-force cosine top 10 "
          f"(on {len(sample):,} learnings)")

    asyncio.run(through_the_store(docs, titles))

    verdict = "PASS" if p95(wall) * 1000 <= GOAL_MS else "FAIL"
    print(f"{verdict}: top 10 among {N:,} in {p95(wall) * 1000:.2f} ms at p95 "
          f"(goal <= {GOAL_MS:.0f} ms)")


if __name__ == "__main__":
    main()
