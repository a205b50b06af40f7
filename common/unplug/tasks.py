"""What the rf_* training loop needs of a model on its data (`UnplugTask`), for images (`image_task`) and for
tokenised text (`text_task`): the one place where the loop meets a data family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..images import black_pixel, evaluate, num_batches, num_samples, train_batches
from ..measures.features import capture_features
from ..plumbing.config import Run
from ..plumbing.distributed import current, rank_rows
from ..plumbing.evaluation import measure_split
from ..text.data import stratified_subset
from ..plumbing.loop import to_device
from ..text.models import encode, padded_batch, sequence_features

__all__ = ["UnplugTask", "image_task", "text_task"]


@dataclass(frozen=True)
class UnplugTask:
    """What the loop needs of a model on its data, whatever the inputs are.

    n_train: training samples; steps: mini-batches per epoch.
    batches(generator): one epoch of (inputs, labels) on the device: the n_train rows in global batches of
        config["batch_size"] rows (the last one the rest), in the order `generator` draws
        (`epoch_generator(seed, epoch)`, so a resumed run draws the same batches); under torchrun this
        rank's share of each global batch.
    forward(model, inputs): (features, logits) of a batch in train mode through `model` (the network, or
        its DistributedDataParallel wrapper): the features the regulariser uses (the classifier's input
        unless the experiment says otherwise), with their graph.
    evaluate(): the eval-mode metrics of both splits (`common.measures.splits.split_metrics` keys), under torchrun
        from all ranks' features.
    """

    n_train: int
    steps: int
    batches: Callable[[torch.Generator], Iterable[tuple[Any, Tensor]]]
    forward: Callable[[torch.nn.Module, Any], tuple[Tensor, Tensor]]
    evaluate: Callable[[], dict]


def image_task(run: Run, model: nn.Module, head: nn.Linear, data: dict, memory_format=torch.contiguous_format,
               workers: int = 0) -> UnplugTask:
    """The UnplugTask of an image classifier: data = {"train": source, "val": source}, a source being (images,
    labels) tensors on the device or a torch Dataset (read by a DataLoader with `workers` processes); batches of
    config["batch_size"] with the crop-and-flip augmentation when config["augment"] > 0 (its padding); the
    features are the input of `head`; the evaluation is `common.images.evaluate` (under torchrun, this rank's
    share of each batch and split)."""
    config, device = run.config, run.device
    fill = black_pixel(config["dataset"], config["augment"]) if config["augment"] else None
    rank, world = current().rank, current().world_size

    def forward(net, x):
        with capture_features(net, head) as cap:
            logits = net(x.contiguous(memory_format=memory_format))
        return cap.features, logits

    return UnplugTask(
        n_train=num_samples(data["train"]), steps=num_batches(data["train"], config["batch_size"]),
        batches=lambda generator: train_batches(data["train"], config["batch_size"], generator, device, fill, workers,
                                                rank, world),
        forward=forward, evaluate=lambda: evaluate(model, head, data, workers=workers, progress=run.progress,
                                                   rank=rank, world_size=world))


def text_task(model: nn.Module, head: nn.Linear, tokenizer, data: dict, config: dict, device: torch.device,
              feature_layer: nn.Module | None = None, eval_batch_size: int = 128, progress: bool = False) -> UnplugTask:
    """The UnplugTask of a sequence classifier. data = {"train": (texts, labels), "val": (texts, labels)},
    tokenised once here with config["max_length"]; batches of config["batch_size"] in the order the epoch's
    generator draws, padded per batch (under torchrun, this rank's share of each global batch, and the
    evaluation gathers all ranks' features). The regulariser's features are the input of `feature_layer` (default:
    the classifier `head`; rf_bert's --features cls hooks the pooler); the evaluation always measures the
    classifier's input, so its RF, NCC and NC values are those of the layer W acts on; with
    config["eval_train_size"] > 0 the training split's metrics are measured on that many of its rows (a
    stratified draw seeded by config["seed"], the same every epoch)."""
    encodings = {split: encode(tokenizer, texts, config["max_length"]) for split, (texts, _) in data.items()}
    labels = {split: y.to(device) for split, (_, y) in data.items()}
    n_train, batch_size = len(labels["train"]), config["batch_size"]
    measured = {split: list(range(len(y))) for split, y in labels.items()}  # the rows each split's metrics use
    if 0 < config.get("eval_train_size", 0) < n_train:
        measured["train"] = stratified_subset(data["train"][1], config["eval_train_size"], config["seed"]).tolist()
    rank, world = current().rank, current().world_size  # under torchrun: this rank's shares

    def run(net: nn.Module, batch: dict, layer: nn.Module) -> tuple[Tensor, Tensor]:
        with capture_features(net, layer) as cap:
            logits = net(**batch).logits
        return sequence_features(cap.features, batch["attention_mask"]), logits

    def batches(generator: torch.Generator):
        order = torch.randperm(n_train, generator=generator)
        for index in order.split(batch_size):
            index = index[rank_rows(len(index), rank, world)]
            yield (padded_batch(tokenizer, encodings["train"], index.tolist(), device),
                   labels["train"][to_device(index, device)])

    @torch.no_grad()
    def evaluate() -> dict:
        model.eval()
        row = {}
        for split in data:
            chunks = []
            rows = measured[split]
            share = rows[rank_rows(len(rows), rank, world)]
            # shortest texts first, so each batch pads to about its own length (about 1.6x fewer tokens on
            # snippets of 5 to 50 tokens); measure_split puts the rows back into the share's order
            order = torch.argsort(torch.tensor([len(encodings[split][i]["input_ids"]) for i in share],
                                               dtype=torch.long), stable=True)
            by_length = [share[i] for i in order.tolist()]
            steps = range(0, len(by_length), eval_batch_size)
            for start in tqdm(steps, desc=f"evaluating {split}", disable=not progress, leave=False):
                batch = padded_batch(tokenizer, encodings[split], by_length[start:start + eval_batch_size], device)
                phi, z = run(model, batch, head)
                chunks.append((phi.float(), z.float()))
            row.update(measure_split(split, chunks, head, labels=labels[split][rows], order=order))
        return row

    return UnplugTask(n_train=n_train, steps=-(-n_train // batch_size), batches=batches,
                      forward=lambda net, batch: run(net, batch, feature_layer if feature_layer is not None else head),
                      evaluate=evaluate)
