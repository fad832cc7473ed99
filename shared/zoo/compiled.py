"""Transformers compiled from RASP programs with Tracr (Lindner et al. 2023, "Tracr: Compiled
Transformers as a Laboratory for Interpretability"), kept as native checkpoints with the ground
truth of their circuits.

Tracr turns a RASP program into weights: every RASP operation becomes one attention head or one
MLP, and every value the program computes gets its own named, one-hot block of the residual
stream. So which node reads what another writes is known exactly. Registered local models:

* ``tracr-reverse`` — ``reverse(tokens)``: the length (a selector-width head and MLP), then
  ``length - index - 1`` (two MLPs), then a head that fetches the token at that position;
* ``tracr-sort`` — ``sort(tokens)`` for distinct tokens: how many tokens are smaller (a
  selector-width head and MLP), then a head that fetches the token whose count is the position;
* ``tracr-hist`` — ``hist(tokens)``: how often each token occurs (one selector-width head and MLP);
* ``tracr-sort-freq`` — tokens sorted by how often they occur (hist, then a numerical key, then sort).

Compiling needs ``tracr-pypi`` (with jax and haiku), which the book does not depend on: the
compiled weights ship in ``shared/checkpoints`` in float16 and the ground truth sits in each model's
``metrics.json``. ``load_model(name, retrain=True)`` compiles again. Float16 is exact enough: Tracr's
weights are small multiples of simple fractions (the largest, 100, in the discretising MLPs); rounded
to float16 they move no logit by more than 2e-6 on 500 random inputs per program, every answer stays
the same, and no weight becomes zero, so the ground truth is unchanged (``tests/test_compiled.py``
checks the shipped files).

Ground truth (derived at compile time from Tracr's own blocks): each head's query, key and value
read some residual directions and its output writes others; an MLP reads its input directions and
writes its output ones; the input (embeddings) writes the token, position and constant directions
and the logits read the program's output directions. An edge ``s -> r[:port]`` belongs to the
circuit when ``r`` reads through ``port`` a direction that ``s`` writes. :func:`weight_edges`
derives the same set from the nonzero pattern of the saved weights alone, as a cross-check.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from shared.engine.batch import PromptBatch
from shared.engine.graph import Graph, head_name, mlp_name
from shared.errors import ModelUnavailableError, ParameterError
from shared.zoo.registry import Checkpoints, LocalModel, load_model, model_metrics, register_local_model

INSTALL = ("pip install --target <folder> tracr-pypi (outside the book's environment, e.g. "
           "/work/tracr-site), then put that folder on PYTHONPATH")
BOS, PAD = "BOS", "PAD"
SEQ_LEN = 5  # program inputs have this many tokens, after BOS


def _count(seq: list[int], x: int) -> int:
    return sum(1 for y in seq if y == x)


def _sort_freq(seq: list[int]) -> list[int]:
    order = sorted(range(len(seq)), key=lambda i: (-_count(seq, seq[i]), i))
    return [seq[i] for i in order]


@dataclass(frozen=True)
class Program:
    """A RASP program of Tracr's library, its input vocabulary, a plain-Python reference of what it
    computes, the native shape its compiled model has, and a short description."""

    name: str
    vocab: tuple[int, ...]
    reference: Callable[[list[int]], list[int]]
    shape: dict[str, int]
    description: str
    distinct: bool = False  # inputs without repeated tokens (sort needs unique keys)


PROGRAMS: dict[str, Program] = {p.name: p for p in (
    Program("reverse", (1, 2, 3, 4, 5), lambda s: s[::-1],
            dict(n_layers=4, d_model=45, d_head=12, n_heads=1, d_mlp=30, d_vocab=7, d_vocab_out=5),
            "reverse the input: length, then length - index - 1, then fetch the token there"),
    Program("sort", (1, 2, 3, 4, 5, 6, 7), sorted,
            dict(n_layers=2, d_model=29, d_head=9, n_heads=1, d_mlp=12, d_vocab=9, d_vocab_out=7),
            "sort distinct tokens: count the smaller ones, then fetch the token whose count is the position",
            distinct=True),
    Program("hist", (1, 2, 3, 4), lambda s: [_count(s, x) for x in s],
            dict(n_layers=1, d_model=19, d_head=6, n_heads=1, d_mlp=12, d_vocab=6, d_vocab_out=6),
            "count how often each token occurs"),
    Program("sort_freq", (1, 2, 3, 4), _sort_freq,
            dict(n_layers=5, d_model=66, d_head=32, n_heads=1, d_mlp=30, d_vocab=6, d_vocab_out=4),
            "sort tokens by how often they occur (ties in input order): hist, a numerical key, then sort"),
)}


def model_name(program: str) -> str:
    """The zoo name of a compiled program, e.g. ``"tracr-sort-freq"``."""
    return "tracr-" + program.replace("_", "-")


def _rasp(program: str):
    from tracr.compiler import lib
    from tracr.rasp import rasp

    make = {"reverse": lambda: lib.make_reverse(rasp.tokens),
            "sort": lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens),
            "hist": lib.make_hist,
            "sort_freq": lambda: lib.make_sort_freq(SEQ_LEN)}[program]
    return make().named(program)


def _import_tracr() -> None:
    try:
        import tracr  # noqa: F401
    except ImportError as err:
        raise ModelUnavailableError(f"Compiling the Tracr models needs tracr, which is not installed here: {INSTALL} "
                                    "(the shipped compiled models load without it).") from err


def _compile(program: str, mlp_exactness: int):
    """Tracr's compile_rasp_to_model, step by step so that the craft blocks stay at hand."""
    from tracr.compiler import (assemble, basis_inference, craft_graph_to_model, craft_model_to_transformer,
                                expr_to_craft_graph, nodes, rasp_to_graph)
    from tracr.craft import bases, transformers
    from tracr.rasp import rasp

    spec = PROGRAMS[program]
    extracted = rasp_to_graph.extract_rasp_graph(_rasp(program))
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(spec.vocab), SEQ_LEN)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=mlp_exactness)
    craft = craft_graph_to_model.craft_graph_to_model(graph, sources)
    model = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft, graph=graph, sink=sink, max_seq_len=SEQ_LEN, compiler_bos=BOS, compiler_pad=PAD,
        causal=False)
    # which RASP operation each block implements, and where the assembler put it
    op_of = {}
    for label, data in graph.nodes.items():
        block = data.get(nodes.MODEL_BLOCK)
        for b in (block.blocks if isinstance(block, transformers.SeriesWithResiduals) else [block]):
            if b is not None:
                op_of[id(b)] = label
    _, places = assemble._get_model_config_and_module_names(craft)
    blocks = []  # (node, op, {port: read directions}, written directions)
    names = lambda space: sorted(f"{d.name}:{d.value}" if d.value is not None else d.name for d in space.basis)
    for place, block in zip(places, craft.blocks):
        layer = int(place.split("_")[1].split("/")[0])
        if isinstance(block, transformers.MLP):  # Tracr merges the MLPs of one layer: name it by what it writes
            written = names(block.snd.output_space)
            ops = sorted({d.split(":")[0] for d in written if not d.endswith("_selector_width_attn_output")})
            blocks.append((mlp_name(layer), op_of.get(id(block), " + ".join(ops) or "?"),
                           {None: names(block.fst.input_space)}, written))
        else:
            for h, head in enumerate(block.as_multi().heads()):
                blocks.append((head_name(layer, h), op_of.get(id(head), op_of.get(id(block), "?")),
                               {"q": names(head.w_qk.left_space), "k": names(head.w_qk.right_space),
                                "v": names(head.w_ov.input_space)}, names(head.w_ov.output_space)))
    return model, blocks, names(bases.VectorSpaceWithBasis(sink[nodes.OUTPUT_BASIS]))


def program_edges(blocks: list, output: list[str], graph: Graph, embedded: list[str]) -> list[str]:
    """Edges from the blocks' read/write directions (see the module docstring)."""
    writes = {"input": set(embedded)} | {node: set(w) for node, _, _, w in blocks}
    reads = {f"{node}:{port}" if port else node: set(d) for node, _, ports, _ in blocks for port, d in ports.items()}
    reads["logits"] = set(output)
    out = []
    for e in graph.edges:
        s, r = e.split("->")
        if writes.get(s, set()) & reads.get(r, set()):
            out.append(e)
    return out


def weight_edges(bridge: Any, tol: float = 0.0) -> list[str]:
    """The edges the weights allow: the residual dimensions each sender writes (nonzero columns of
    its output weights) meet the dimensions its receiver reads (nonzero rows of W_Q, W_K, W_V, the
    MLP's input weights or W_U)."""
    graph = Graph.of(bridge)
    nz = lambda w, dim: (w.detach().abs() > tol).any(dim)
    writes = {"input": nz(bridge.W_E, 0) | nz(bridge.W_pos, 0)}
    reads = {"logits": nz(bridge.W_U, 1)}
    for l in range(graph.n_layers):
        for h in range(graph.n_heads):
            writes[head_name(l, h)] = nz(bridge.W_O[l, h], 0)
            for port in "qkv":
                reads[f"{head_name(l, h)}:{port}"] = nz(getattr(bridge, f"W_{port.upper()}")[l, h], 1)
        if graph.has_mlp:
            writes[mlp_name(l)] = nz(bridge.W_out[l], 0) | (bridge.b_out[l].detach().abs() > tol)
            reads[mlp_name(l)] = nz(bridge.W_in[l], 1)
    return [e for e in graph.edges if bool((writes[e.split("->")[0]] & reads[e.split("->")[1]]).any())]


def _agreement(bridge: Any, model: Any, spec: Program, n: int = 200, seed: int = 0) -> float:
    """Share of random inputs on which the bridge's argmax equals Tracr's own output."""
    rng = random.Random(seed)
    enc, dec = model.input_encoder.encoding_map, {v: k for k, v in model.output_encoder.encoding_map.items()}
    ok = 0
    for _ in range(n):
        seq = _sample(rng, spec)
        ids = torch.tensor([[enc[t] for t in [BOS] + seq]])
        with torch.no_grad():
            pred = [dec[i] for i in bridge(ids)[0, 1:].argmax(-1).tolist()]
        ok += pred == model.apply([BOS] + seq).decoded[1:]
    return ok / n


def _label(direction: str) -> str:
    """A residual direction's name without the id Tracr appends to unnamed operations, which counts
    every RASP expression made in the process: ``length_5:3`` -> ``length:3``."""
    return re.sub(r"_\d+(?=$|:|_selector_width)", "", direction)


def compile_into(bridge: Any, recipe: dict[str, Any], checkpoints: Checkpoints) -> dict[str, Any]:
    """The zoo's 'trainer' of a compiled model: compile the program with Tracr, convert the weights
    with TransformerLens's converter, load them into ``bridge`` and return what the checkpoint
    records (ground truth, encodings, agreement with Tracr's own forward pass)."""
    _import_tracr()
    from transformer_lens.utilities import tracr as tl_tracr

    start = time.time()
    spec = PROGRAMS[recipe["program"]]
    model, blocks, output = _compile(spec.name, int(recipe["mlp_exactness"]))
    seconds = time.time() - start
    cfg = tl_tracr.make_tracr_transformer_bridge_config(model)
    shape = {k: int(getattr(cfg, k)) for k in spec.shape}
    if shape != spec.shape or cfg.attention_dir != "bidirectional":
        raise ParameterError(f"This Tracr version compiles {spec.name!r} to shape {shape}, not the registered "
                             f"{spec.shape}; update PROGRAMS in shared/zoo/compiled.py.")
    state = tl_tracr.make_tracr_transformer_bridge_state_dict(model)
    with torch.no_grad():
        for p in bridge.original_model.parameters():
            p.zero_()  # e.g. the unembedding bias, which Tracr does not have
    result = bridge.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"The Tracr converter gave weights the native model lacks: {result.unexpected_keys}")
    bridge.eval()
    agreement = _agreement(bridge, model, spec)
    if agreement < 1:
        raise RuntimeError(f"The converted {spec.name!r} model agrees with Tracr on only {agreement:.0%} of inputs.")
    graph = Graph.of(bridge)
    embedded = sorted({lab for lab in model.residual_labels if lab.split(":")[0] in ("tokens", "indices", "one")})
    edges = program_edges(blocks, output, graph, embedded)
    return {"program": spec.name, "vocab": list(spec.vocab), "seq_len": SEQ_LEN, "compile_seconds": round(seconds, 1),
            "tracr_labels": "RASP labels without Tracr's process-wide id suffixes (length_5 -> length)",
            "input_ids": {str(k): int(v) for k, v in model.input_encoder.encoding_map.items()},
            "output_ids": {str(k): int(v) for k, v in model.output_encoder.encoding_map.items()},
            "blocks": [{"node": n, "op": _label(op), "writes": [_label(x) for x in w],
                        "reads": {p or "in": [_label(x) for x in d] for p, d in ports.items()}}
                       for n, op, ports, w in blocks],
            "output_directions": [_label(x) for x in output], "truth_edges": edges,
            "truth_nodes": sorted({n for n, _, _, _ in blocks}, key=graph.nodes.index),
            "agreement_with_tracr": agreement}


@dataclass
class CompiledModel:
    """A compiled program's bridge with its ground truth: ``edges`` (every edge that carries a RASP
    operation), ``nodes`` (the heads and MLPs Tracr placed) and ``ops`` (node -> RASP operation)."""

    bridge: Any
    program: Program
    edges: list[str]
    nodes: list[str]
    ops: dict[str, str]
    record: dict[str, Any] = field(repr=False, default_factory=dict)
    active: list[str] = field(default_factory=list)  # truth edges a task's corruption moves (set by a check)

    @property
    def description(self) -> str:
        return f"Tracr-compiled {self.program.name!r}"

    def encode(self, seqs: list[list[int]]) -> torch.Tensor:
        """Token ids of programs inputs, with BOS in front."""
        ids = self.record["input_ids"]
        return torch.tensor([[ids[BOS]] + [ids[str(t)] for t in s] for s in seqs])

    def outputs(self, seqs: list[list[int]]) -> torch.Tensor:
        """Output ids of the program's reference answers at positions 1..n."""
        ids = self.record["output_ids"]
        return torch.tensor([[ids[str(v)] for v in self.program.reference(s)] for s in seqs])

    def batch(self, n: int, seed: int = 0) -> PromptBatch:
        """``n`` clean/corrupted input pairs: a random position p (1..n) is scored; the corrupted input
        is another random input whose answer at p differs (logit difference clean answer minus
        corrupted answer at p)."""
        rng = random.Random(seed)
        clean, corrupt, pos = [], [], []
        for _ in range(n):
            a = _sample(rng, self.program)
            p = rng.randrange(SEQ_LEN)
            while True:
                b = _sample(rng, self.program)
                if self.program.reference(b)[p] != self.program.reference(a)[p]:
                    break
            clean.append(a), corrupt.append(b), pos.append(p)
        idx = torch.arange(n)
        at = torch.tensor(pos)
        return PromptBatch(self.encode(clean), self.encode(corrupt), self.outputs(clean)[idx, at],
                           self.outputs(corrupt)[idx, at], answer_pos=at + 1,
                           labels=[f"{a} vs {b} @ {p + 1}" for a, b, p in zip(clean, corrupt, pos)])


def _sample(rng: random.Random, spec: Program) -> list[int]:
    if spec.distinct:
        return rng.sample(list(spec.vocab), SEQ_LEN)
    return [rng.choice(spec.vocab) for _ in range(SEQ_LEN)]


def compiled_model(program: str, retrain: bool = False) -> CompiledModel:
    """The compiled model of ``program`` (one of :data:`PROGRAMS`) with its ground truth."""
    if program not in PROGRAMS:
        raise ParameterError(f"Unknown compiled program {program!r}; use one of {sorted(PROGRAMS)}.")
    name = model_name(program)
    bridge = load_model(name, retrain=retrain)
    record = model_metrics(name)
    ops = {b["node"]: b["op"] for b in record["blocks"]}
    return CompiledModel(bridge, PROGRAMS[program], list(record["truth_edges"]), list(record["truth_nodes"]), ops,
                         record)


for _p in PROGRAMS.values():
    register_local_model(LocalModel(
        name=model_name(_p.name),
        description=f"Tracr-compiled RASP program {_p.name!r} ({_p.description}), inputs of {SEQ_LEN} tokens "
                    f"from {list(_p.vocab)} after BOS",
        config=dict(_p.shape, n_ctx=SEQ_LEN + 1, act_fn="relu", attention_dir="bidirectional",
                    normalization_type=None),
        recipe={"program": _p.name, "mlp_exactness": 100, "compiler": "tracr-pypi 1.0.0"},
        trainer=compile_into,
        save_dtype=torch.float16,
    ))

__all__ = ["BOS", "INSTALL", "PAD", "PROGRAMS", "SEQ_LEN", "CompiledModel", "Program", "compile_into",
           "compiled_model", "model_name", "program_edges", "weight_edges"]
