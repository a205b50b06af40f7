"""What a run of rf_bert or rf_gpt2 costs on this machine: the models' sizes, a training step and the
evaluation pass, projected to the presets' epochs. No weights or data are needed: the models are built
from configurations with the shapes of the Hub's TinyBERT and DistilGPT-2 (random weights; the cost does
not depend on the values), and the texts are random token ids of a fixed length.

    python -m benchmarks.bench_text                       # TinyBERT and DistilGPT-2, 64 and 128 tokens, 2 threads
    python -m benchmarks.bench_text --models tinybert --tokens 64 --repeats 3

A step is what the rf_* loop does (forward, CE, the regulariser at temperature 2 on normalised features
and the fixed-definition RF bound, backward, SGD, the Frobenius cap), at the paper preset's batch size;
the evaluation is the eval-mode forward pass per text. With dynamic padding a batch is as long as its
longest text, so a run whose texts are shorter than --tokens costs less than projected: the
projections are upper bounds for texts truncated at --tokens. Projected epoch = steps x step + (train +
validation texts) x evaluation per text: the paper preset (SST-5's 8544 + 1101 texts, 300 epochs) and
the cpu preset (2000 + 1101 texts, 40 epochs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.timing import median_seconds, timed
from common import ArgumentParser, cap_weight_, capture_features, markdown_table
from common.unplug import rf_terms

MODELS = {  # name: (transformers config class, config kwargs, head, paper batch size)
    "tinybert": ("BertConfig", dict(vocab_size=30522, hidden_size=312, num_hidden_layers=4, num_attention_heads=12,
                                    intermediate_size=1200, max_position_embeddings=512), "classifier", 32),
    "distilgpt2": ("GPT2Config", dict(vocab_size=50257, n_embd=768, n_layer=6, n_head=12, n_positions=1024),
                   "score", 64),
    "tiny": ("BertConfig", dict(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=256), "classifier", 8),  # for the tests
}
CONFIG = {"lam": 0.3, "temperature": 2.0, "normalise_features": True}
PRESETS = {"paper": (8544, 1101, 300), "cpu": (2000, 1101, 40)}  # train texts, validation texts, epochs


def measure(name: str, tokens: int, repeats: int) -> dict:
    import transformers

    config_class, shape, head_name, batch = MODELS[name]
    config = getattr(transformers, config_class)(**shape, num_labels=5, pad_token_id=0)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "embd_pdrop", "attn_pdrop", "resid_pdrop"):
        if hasattr(config, key):
            setattr(config, key, 0.0)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    head = getattr(model, head_name)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ids = torch.randint(1, shape["vocab_size"], (batch, tokens))
    mask, y = torch.ones_like(ids), torch.arange(batch) % 5

    def step():
        model.train()
        with capture_features(model, head) as cap:
            logits = model(input_ids=ids, attention_mask=mask).logits
        phi = cap.features if cap.features.dim() == 2 else cap.features[:, -1]
        loss = rf_terms(F.cross_entropy(logits, y), phi, head.weight, logits, CONFIG, True)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        cap_weight_(head.weight, 30.0)

    @torch.no_grad()
    def evaluate():
        model.eval()
        return model(input_ids=ids, attention_mask=mask).logits

    step_s = median_seconds(step, repeats)
    eval_text_s = median_seconds(evaluate, repeats) / batch
    row = {"model": name, "parameters": sum(p.numel() for p in model.parameters()), "tokens": tokens,
           "batch": batch, "step_s": step_s, "eval_text_s": eval_text_s}
    for preset, (n_train, n_val, epochs) in PRESETS.items():
        epoch = -(-n_train // batch) * step_s + (n_train + n_val) * eval_text_s
        row[f"{preset}_epoch_s"], row[f"{preset}_run_h"] = epoch, epoch * epochs / 3600
    return row


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tinybert distilgpt2", help="space-separated: " + ", ".join(MODELS))
    parser.add_argument("--tokens", default="64 128", help="space-separated text lengths in tokens")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    models, lengths = args.models.split(), [int(t) for t in args.tokens.split()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not lengths or min(lengths) < 2 or args.threads < 1 or args.repeats < 1:
        parser.error(f"--models from {sorted(MODELS)}, --tokens >= 2, --threads and --repeats >= 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        seconds, rows = timed(lambda: [measure(m, t, args.repeats) for m in models for t in lengths])
    finally:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} calls ({seconds:.0f} s)\n")
    print(markdown_table(
        ["model (random weights)", "parameters", "tokens per text", "batch", "training step", "evaluation per text",
         "paper preset: epoch / 300 epochs", "cpu preset: epoch / 40 epochs"],
        [[r["model"], f"{r['parameters'] / 1e6:.1f} M", r["tokens"], r["batch"], f"{1e3 * r['step_s']:.0f} ms",
          f"{1e3 * r['eval_text_s']:.1f} ms", f"{r['paper_epoch_s'] / 60:.1f} min / {r['paper_run_h']:.0f} h",
          f"{r['cpu_epoch_s'] / 60:.1f} min / {r['cpu_run_h']:.1f} h"] for r in rows]))
    return rows


if __name__ == "__main__":
    main()
