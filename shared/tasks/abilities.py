"""What a language model can do, measured on the held-out forms of :mod:`shared.tasks.heldout`.

* :func:`sequence_accuracy` — top-1 accuracy of the next member, per surface form and task: the
  book's templates (``bare``, ``among_words``) and every held-out form, each row marked
  ``held_out``; :func:`form_table` pivots it into one row per form (the table of ``sequence_data``).
* :func:`ioi_scores` — logit(indirect object) − logit(subject) per IOI prompt.
* :func:`greater_than_scores` — probability difference per prompt: the mass on the two-digit
  tokens above the start year's ``YY`` minus the mass on those at or below it (full softmax); the
  same difference on the prompt's "01" twin (the **control**: a model that ignores ``YY`` scores
  the same on both) and the **gain** (clean minus control), the part that depends on the start year.
* :func:`induction_score` — the best prefix-matching (induction) score of any head on repeated
  random tokens.
* :func:`ability_summary` — all of them reduced to the numbers the suite is judged by, with the
  targets of ``TARGETS``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import pandas as pd
import torch

from shared.analysis.heads import prefix_matching_scores, top_heads
from shared.errors import ParameterError
from shared.tasks import heldout
from shared.tasks.greater_than import corrupt_gt, gt_items, prob_diff_from_logits, two_digit_ids
from shared.tasks.ioi import check_names, ioi_items
from shared.tasks.repeated import repeated_tokens_for
from shared.tasks.sequences import generate, get_task
from shared.tasks.tokens import encode_text, get_tokenizer, score, tokenize

EVAL_SEED = 4242  # a seed of its own: no chapter draws prompts with it
TARGETS = {"book_accuracy": 0.90, "heldout_accuracy": 0.80, "ioi_positive": 0.90, "ioi_mean": 2.0,
           "gt_prob_diff": 0.50, "induction": 0.50}


def sequence_accuracy(model: Any, forms: Optional[Sequence[str]] = None, tasks: Sequence[str] = heldout.SEQ_TASKS,
                      n_members: int = 4, n_prompts: int = 40, seed: int = EVAL_SEED) -> pd.DataFrame:
    """One row per (form, task): ``accuracy`` (top-1), ``logit_diff`` (answer − last member), ``n``,
    ``held_out`` (False only for the book's ``bare`` list, which no sequence corpus can avoid)."""
    forms = list(heldout.BOOK_TEMPLATES + tuple(heldout.SEQ_FORMS)) if forms is None else list(forms)
    prompts = {(form, task): _book_prompts(task, form, n_members, n_prompts, seed) if form in heldout.BOOK_TEMPLATES
               else heldout.seq_form_prompts(form, task, n_members, n_prompts, seed)
               for form in forms for task in tasks}
    # one scoring pass over every prompt (batched by token length), then split by form and task
    table = score(model, [p for group in prompts.values() for p in group]).groupby(["template", "task"])
    rows = []
    for (form, task), group in prompts.items():
        part = table.get_group((form, task))
        rows.append(dict(form=form, task=task, held_out=form != "bare", book=form in heldout.BOOK_TEMPLATES,
                         n=len(group), accuracy=float(part.top1.mean()), logit_diff=float(part.logit_diff.mean())))
    return pd.DataFrame(rows)


def _book_prompts(task: str, template: str, n_members: int, n_prompts: int, seed: int) -> list:
    """The book's template; a bare list has only one prompt per start, so at most that many."""
    n = min(n_prompts, len(get_task(task).starts(n_members))) if template == "bare" else n_prompts
    return generate(task, template, n_members, n, seed=seed)


def form_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per form (rows) and task (columns) with the form's mean and whether it is held out."""
    table = accuracy.pivot(index="form", columns="task", values="accuracy")
    table = table.reindex(index=list(dict.fromkeys(accuracy.form)), columns=list(dict.fromkeys(accuracy.task)))
    table["mean"] = table.mean(axis=1)
    table.insert(0, "held_out", accuracy.groupby("form").held_out.first().reindex(table.index))
    return table


@torch.no_grad()
def _last_logits(model: Any, texts: Sequence[str]) -> torch.Tensor:
    """Logits at the last position of each ``BOS + text`` (batched by token length): [n, vocab]."""
    ids = [tokenize(model, t)[0] for t in texts]
    out = torch.empty(len(texts), model.cfg.d_vocab)
    by_length: dict[int, list[int]] = {}
    for k, row in enumerate(ids):
        by_length.setdefault(len(row), []).append(k)
    for index in by_length.values():
        tokens = torch.tensor([ids[k] for k in index], device=model.cfg.device)
        out[index] = model(tokens)[:, -1].float().cpu()
    return out


def ioi_scores(model: Any, templates: Optional[Sequence[str]] = None, n_prompts: int = 40,
               seed: int = EVAL_SEED) -> pd.DataFrame:
    """Per prompt: ``template``, ``order``, ``logit_diff`` = logit(" IO") − logit(" S") at the end."""
    tok = get_tokenizer(model)
    ids = {n: encode_text(tok, " " + n)[0][0] for n in check_names(tok)}
    prompts = [p for t in (templates or heldout.IOI_TEMPLATES) for p in ioi_items(t, n_prompts, seed)]
    logits = _last_logits(model, [p.text for p in prompts])
    rows = [dict(template=p.template, order=p.order, io=p.io, s=p.s1,
                 logit_diff=float(logits[i, ids[p.io]] - logits[i, ids[p.s1]])) for i, p in enumerate(prompts)]
    return pd.DataFrame(rows)


def greater_than_scores(model: Any, templates: Optional[Sequence[str]] = None, n_prompts: int = 40,
                        seed: int = EVAL_SEED) -> pd.DataFrame:
    """Per prompt: ``template``, ``yy``, ``prob_diff`` = p(YY' > YY) − p(YY' <= YY) over the 100
    two-digit tokens, ``mass`` = their total probability, ``control`` = the same difference (same
    ``YY`` threshold) on the prompt with the start year's last digits replaced by 01, and ``gain`` =
    ``prob_diff`` − ``control``."""
    digits = two_digit_ids(model)
    prompts = [p for t in (templates or heldout.GT_TEMPLATES) for p in gt_items(t, n_prompts, seed)]
    n = len(prompts)
    logits = _last_logits(model, [p.text for p in prompts] + [p.text for p in corrupt_gt(prompts)])
    yy = torch.tensor([p.yy for p in prompts])
    diff = prob_diff_from_logits(logits, torch.cat([yy, yy]), digits)
    mass = logits[:n].softmax(-1)[:, digits].sum(-1)
    return pd.DataFrame([dict(template=p.template, yy=p.yy, prob_diff=float(diff[i]), mass=float(mass[i]),
                              control=float(diff[n + i]), gain=float(diff[i] - diff[n + i]))
                         for i, p in enumerate(prompts)])


def induction_score(model: Any, seq_len: int = 50, n: int = 20, seed: int = EVAL_SEED) -> tuple[float, str]:
    """The best head's induction (prefix-matching) score on repeated random tokens, and its name."""
    seq_len = min(seq_len, (model.cfg.n_ctx - 1) // 2)
    scores = prefix_matching_scores(model, repeated_tokens_for(model, seq_len, n, seed).tokens, seq_len)
    return float(scores.max()), top_heads(scores, float("inf"))[0]


@torch.no_grad()
def name_recall(model: Any, texts: Sequence[str], names: Sequence[str]) -> dict[str, float]:
    """How well a model recalls names from context, on texts of the kind it was trained on: at every
    mention of a name (spaced, one token) that already occurred in the text while another name did too,
    the probability the model gave that name and the probability it gave the other name; ``chance`` is
    one over the number of names. A model that copies names from context gives the right name far
    more than chance (IOI needs this and more)."""
    tok = get_tokenizer(model)
    ids = {encode_text(tok, " " + n)[0][0]: n for n in names if len(encode_text(tok, " " + n)[0]) == 1}
    right, other = [], []
    for text in texts:
        row = [tok.bos_token_id] + encode_text(tok, text)[0]
        probs = model(torch.tensor([row], device=model.cfg.device))[0].float().softmax(-1).cpu()
        seen: list[int] = []
        for i, token in enumerate(row[1:], start=1):
            if token not in ids:
                continue
            others = [t for t in dict.fromkeys(seen) if t != token]
            if token in seen and others:
                right.append(float(probs[i - 1, token]))
                other.append(float(probs[i - 1, others[0]]))
            seen.append(token)
    if not right:
        raise ParameterError("No text mentions a name again after another name; name_recall needs such texts.")
    return dict(right=sum(right) / len(right), other=sum(other) / len(other), chance=1 / len(ids), n=len(right))


@torch.no_grad()
def induction_accuracy(model: Any, seq_len: int = 24, n: int = 20, seed: int = EVAL_SEED) -> float:
    """Top-1 accuracy on the second copy of repeated uniformly random tokens (every prediction inside
    the copy after its first token): what a model with working induction gets nearly always right and a
    model without it almost never (the tokens are random)."""
    rep = repeated_tokens_for(model, min(seq_len, (model.cfg.n_ctx - 1) // 2), n, seed)
    tokens = rep.tokens.to(model.cfg.device)
    second = slice(rep.start + rep.seq_len, rep.start + 2 * rep.seq_len - 1)
    predicted = model(tokens)[:, second].argmax(-1)
    return float((predicted == tokens[:, second.start + 1:second.stop + 1]).float().mean())


def training_probe(model: Any, n_prompts: int = 16, seed: int = EVAL_SEED) -> dict[str, float]:
    """The few numbers followed while a suite model trains, all on held-out forms: IOI share of prompts
    preferring IO and mean logit difference, overall and per order (ABBA: IO named first; BABA: S named
    first), induction top-1 (:func:`induction_accuracy`), greater-than probability difference and gain,
    and sequence top-1 over the held-out surface forms (mean and worst form)."""
    ioi = ioi_scores(model, n_prompts=n_prompts, seed=seed)
    gt = greater_than_scores(model, n_prompts=n_prompts, seed=seed)
    forms = form_table(sequence_accuracy(model, forms=list(heldout.SEQ_FORMS), n_prompts=max(4, n_prompts // 2),
                                         seed=seed))
    out = dict(ioi_share=float((ioi.logit_diff > 0).mean()), ioi_ld=float(ioi.logit_diff.mean()))
    for order, part in ioi.groupby("order"):
        out[f"ioi_{order.lower()}_share"] = float((part.logit_diff > 0).mean())
        out[f"ioi_{order.lower()}_ld"] = float(part.logit_diff.mean())
    out.update(induction_top1=induction_accuracy(model, seed=seed), gt_prob_diff=float(gt.prob_diff.mean()),
               gt_gain=float(gt.gain.mean()), seq_heldout=float(forms["mean"].mean()),
               seq_worst_form=float(forms["mean"].min()))
    return out


def ability_summary(model: Any, n_prompts: int = 40, seed: int = EVAL_SEED) -> dict[str, Any]:
    """The suite's ability numbers (see ``TARGETS``), the per-form accuracies and the per-template scores."""
    seq = sequence_accuracy(model, n_prompts=n_prompts, seed=seed)
    ioi = ioi_scores(model, n_prompts=n_prompts, seed=seed)
    gt = greater_than_scores(model, n_prompts=n_prompts, seed=seed)
    best, head = induction_score(model, seed=seed)
    forms = form_table(seq)
    held = forms[~forms.index.isin(heldout.BOOK_TEMPLATES)]
    return dict(
        book_accuracy=float(forms.loc[list(heldout.BOOK_TEMPLATES), "mean"].mean()),
        heldout_accuracy=float(held["mean"].mean()),
        ioi_positive=float((ioi.logit_diff > 0).mean()), ioi_mean=float(ioi.logit_diff.mean()),
        gt_prob_diff=float(gt.prob_diff.mean()), gt_gain=float(gt.gain.mean()), induction=best, induction_head=head,
        forms=forms, ioi_by_template=ioi.groupby("template").logit_diff.agg(["mean", lambda x: (x > 0).mean()]),
        gt_by_template=gt.groupby("template")[["prob_diff", "control", "gain", "mass"]].mean(),
    )


def meets_targets(summary: dict[str, Any]) -> dict[str, bool]:
    """Whether each number of :func:`ability_summary` reaches its target in ``TARGETS``."""
    return {key: summary[key] >= target if key != "induction" else summary[key] > target
            for key, target in TARGETS.items()}


__all__ = ["EVAL_SEED", "TARGETS", "ability_summary", "form_table", "greater_than_scores", "induction_accuracy",
           "induction_score", "training_probe",
           "ioi_scores", "meets_targets", "name_recall", "sequence_accuracy"]
