"""Can a tower learn what the hand does from pixels? (docs/vision_pretraining.md, "What (b) needs")

The probe's `hand` reference says a frame's hand phase, with the frame a second earlier, decides
(b) completely (AUC 1.00). This trains a binary "hands at rest" head on pixels, on 30 train videos
(seed 7) and scores it on 10 val videos (seed 8), for the shipped ViT tower fine-tuned end to end
(`vit LR`), the same with a convolutional stem instead of its patch embedding (`vitstem LR`),
and for a 4-layer CNN with batch norm (`cnn LR`): 300 steps of 64 frames, 2 threads.
Look-aways count as rest (the world's `idle:rest`), as the fact heads would see them unmasked.

    python docs/results/probe/hand/hand_check.py cnn 2e-3
    python docs/results/probe/hand/hand_check.py vit 2e-4
    python docs/results/probe/hand/hand_check.py vitstem 2e-4
"""

import re
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from proassist_ros.data.world import make_world
from proassist_ros.model import load
from proassist_ros.model.vision import ConvStem
from proassist_ros.train.probe import hand_label, roc_auc, world_indices, world_videos

STEPS, BATCH, SIZE = 300, 64, 128


def frames_and_phases(seed: int, split: str, n: int) -> tuple[torch.Tensor, list[str]]:
    """(N, 3, SIZE, SIZE) pixels in [-1, 1] at 2 FPS and the hand's phase of each frame."""
    xs, phases = [], []
    for v in world_videos(seed, split, world_indices(seed, split, n), fps=2, size=(320, 240)):
        world = make_world(seed, split, int(re.search(split + r"_(\d+)", v.video_id)[1]))
        x = torch.tensor(np.stack(v.frames)).permute(0, 3, 1, 2).float() / 255
        xs.append((F.interpolate(x, size=(SIZE, SIZE), mode="area") - 0.5) / 0.5)
        phases += [hand_label(world, t) for t in v.t]
    return torch.cat(xs), phases


def cnn() -> nn.Module:
    layers, c_in = [], 3
    for c_out, k, pad in ((16, 5, 2), (32, 3, 1), (64, 3, 1), (64, 3, 1)):
        layers += [nn.Conv2d(c_in, c_out, k, 2, pad), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class ViT(nn.Module):
    """The shipped tower's MAP token (what the projector gets at I = 1); ``stem``: its 16-pixel
    patch embedding replaced by a randomly initialised ``model.vision.ConvStem`` (``patch_stem: conv``).
    hand_check_vitstem.log: the first run, the stem written in this script (batch norm, ReLU);
    hand_check_vitstem_gn.log: a GroupNorm + GELU variant (did not learn). The package's stem is the
    first run's architecture (batch norm, ReLU)."""

    def __init__(self, stem: bool = False) -> None:
        super().__init__()
        self.vision = load("embedded").vision.float()
        if stem:
            emb = self.vision.embeddings
            emb.patch_embedding = ConvStem(self.vision.config.hidden_size, self.vision.config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=x).pooler_output


def main(mode: str, lr: float) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    t0 = time.time()
    x_tr, p_tr = frames_and_phases(7, "train", 30)
    x_va, p_va = frames_and_phases(8, "val", 10)
    y_tr = torch.tensor([p == "idle:rest" for p in p_tr]).float()
    y_va = np.array([p == "idle:rest" for p in p_va])
    body = ViT(stem=mode == "vitstem") if mode.startswith("vit") else cnn()
    head = nn.Linear(body.vision.config.hidden_size if mode.startswith("vit") else 64, 1)
    opt = torch.optim.AdamW([*body.parameters(), *head.parameters()], lr)
    for step in range(STEPS):
        i = torch.randint(0, len(x_tr), (BATCH,))
        loss = F.binary_cross_entropy_with_logits(head(body(x_tr[i]))[:, 0], y_tr[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 99:
            body.eval()
            with torch.no_grad():
                s = torch.cat([head(body(x_va[j:j + 256]))[:, 0] for j in range(0, len(x_va), 256)]).numpy()
            body.train()
            print(f"{mode} lr {lr:g} step {step + 1}: train loss {loss.item():.3f}, val AUC (rest) "
                  f"{roc_auc(y_va, s):.3f}, {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
