"""The training objective (spec §4.1) as one module, so DDP wraps a single forward.

Loss = mean cross-entropy over the labelled positions of a sequence (labels pre-shifted, so the
logits at position p are scored against ``labels[p]`` with no further shift). Logits are
computed only at those positions (``logits_to_keep``): with NFS at ρ = 0.1 that is ~10–20 % of a
sequence, and the LM head (49 k × 576 for SmolLM2) is the largest matrix the model applies.

Besides the loss, ``forward`` returns counts for the log: decision accuracy (a frame's decision
is "silent" iff P(silence) > 0.5, the engine's rule at θ = 0.5), speak precision/recall counts,
and the assistant-token loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import IGNORE

# Order of the entries of the stats vector.
STATS = ("ce_sum", "n_labels", "asst_ce_sum", "n_asst", "dec_correct", "n_dec",
         "speak_tp", "speak_pred", "speak_true")


class Objective(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.silence_id = int(model.chat.silence_id)
        self.img_id = int(model.chat.img_token_id)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor,
                feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        dev = m.device
        ids, labels = input_ids.to(dev), labels.to(dev)
        emb = m.embed_tokens(ids, m.project(feats.to(dev)))
        pos = (labels != IGNORE).nonzero(as_tuple=True)[0]
        if pos.numel() == 0:
            raise ValueError("a training sequence has no labelled position")
        out = m.llm(inputs_embeds=emb[None], logits_to_keep=pos, use_cache=False)
        logits = out.logits[0].float()
        target = labels[pos]
        ce = F.cross_entropy(logits, target, reduction="none")
        with torch.no_grad():
            is_dec = ids[pos] == self.img_id
            p_silence = logits[is_dec].softmax(-1)[:, self.silence_id]
            pred_speak = p_silence <= 0.5
            true_speak = target[is_dec] != self.silence_id
            asst = ~is_dec
            stats = torch.stack([
                ce.sum(), torch.tensor(float(ce.numel()), device=dev), ce[asst].sum(),
                asst.sum().float(), (pred_speak == true_speak).sum().float(), is_dec.sum().float(),
                (pred_speak & true_speak).sum().float(), pred_speak.sum().float(),
                true_speak.sum().float()]).detach().float()
        return ce.mean(), stats


def summarize(stats: torch.Tensor) -> dict[str, float]:
    """Summed stats vectors → the logged figures."""
    s = dict(zip(STATS, (float(x) for x in stats.cpu())))
    out = {"loss": s["ce_sum"] / max(s["n_labels"], 1.0),
           "asst_loss": s["asst_ce_sum"] / max(s["n_asst"], 1.0),
           "decision_acc": s["dec_correct"] / max(s["n_dec"], 1.0),
           "n_decisions": int(s["n_dec"]), "n_asst_tokens": int(s["n_asst"])}
    if s["speak_true"] or s["speak_pred"]:
        p = s["speak_tp"] / max(s["speak_pred"], 1.0)
        r = s["speak_tp"] / max(s["speak_true"], 1.0)
        out.update(speak_precision=p, speak_recall=r, speak_f1=2 * p * r / max(p + r, 1e-9))
    return out
