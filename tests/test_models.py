"""The model zoo: local training + cache, Hugging Face folders, pretrained names offline."""
from __future__ import annotations

import json

import pytest
import torch

from shared.zoo import registry as models
from shared.errors import ModelUnavailableError, ParameterError, UnknownModelError
from shared.zoo.train import log_spaced_steps, train_loop

TINY = dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=11, n_ctx=8, attn_only=True,
            normalization_type="LN", seed=0)
calls = {"n": 0}


def _train_tiny(bridge, recipe, checkpoints):
    """Learn to repeat the previous token; saves two intermediate checkpoints."""
    calls["n"] += 1
    if recipe.get("explode"):
        raise RuntimeError("trainer failed on purpose")
    gen = torch.Generator().manual_seed(recipe["seed"])
    data = torch.randint(0, 11, (64, 8), generator=gen)

    def on_step(step, loss):
        if step in (1, recipe["steps"]):
            checkpoints.save(step)

    losses = train_loop(bridge, lambda step: (data[(step * 8) % 64:(step * 8) % 64 + 8], None),
                        recipe["steps"], lr=1e-2, warmup=2, seed=recipe["seed"], on_step=on_step)
    return {"final_loss": losses[-1]}


@pytest.fixture
def tiny_model(tmp_cache):
    spec = models.LocalModel("test-tiny", "tiny test model", TINY, {"steps": 6, "seed": 0, "explode": False},
                             _train_tiny)
    models.register_local_model(spec)
    calls["n"] = 0
    yield spec
    models._LOCAL.pop("test-tiny", None)


def test_local_model_trains_once_and_is_cached(tiny_model, tmp_cache):
    first = models.load_model("test-tiny")
    assert calls["n"] == 1
    second = models.load_model("test-tiny")
    assert calls["n"] == 1, "a cached model must not retrain"
    for a, b in zip(first.original_model.state_dict().values(), second.original_model.state_dict().values()):
        assert torch.equal(a, b)
    folder = models.local_model_dir("test-tiny")
    key = json.loads((folder / "key.json").read_text())
    assert key["config"] == TINY and key["recipe"]["steps"] == 6
    assert models.model_metrics("test-tiny")["final_loss"] > 0
    assert "test-tiny" in models.describe(first)


def test_overrides_change_the_cache_key_and_retrain_is_reproducible(tiny_model, tmp_cache):
    base = models.local_model_dir("test-tiny")
    other = models.local_model_dir("test-tiny", seed=1)
    assert base != other and calls["n"] == 2
    w1 = models.load_model("test-tiny").W_Q.detach().clone()
    w2 = models.load_model("test-tiny", retrain=True).W_Q.detach()
    assert calls["n"] == 3
    assert torch.equal(w1, w2), "same config and seed must give identical weights"
    with pytest.raises(ParameterError, match="no setting 'nonsense'"):
        models.load_model("test-tiny", nonsense=3)


def test_intermediate_checkpoints(tiny_model):
    assert models.checkpoint_steps("test-tiny") == [1, 6]
    early = models.load_model("test-tiny", step=1)
    final = models.load_model("test-tiny", step=6)
    assert not torch.equal(early.W_Q, final.W_Q)
    assert torch.equal(final.W_Q, models.load_model("test-tiny").W_Q)
    with pytest.raises(ParameterError, match="no checkpoint at step 3"):
        models.load_model("test-tiny", step=3)


def test_failed_training_leaves_no_cache_entry(tiny_model, tmp_cache):
    with pytest.raises(RuntimeError):
        models.load_model("test-tiny", explode=True)
    leftovers = list((tmp_cache / "models").iterdir())
    assert leftovers == [], f"half-written cache entries: {leftovers}"


@pytest.mark.parametrize("arch", ["gpt2", "neox", "llama"])
def test_hf_folder_loads_through_boot_transformers(arch, hf_folders):
    import transformers

    folder = hf_folders[arch]
    bridge = models.load_model(str(folder))
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    tokens = torch.tensor([[1, 5, 9, 30, 7]])
    with torch.no_grad():
        ours = bridge(tokens)
        ref = hf(tokens).logits
    assert torch.allclose(ours, ref, atol=1e-4), "bridge logits must match the HF model"
    _, cache = bridge.run_with_cache(tokens)
    assert cache["blocks.1.attn.hook_z"].shape == (1, 5, 4, 8)
    assert "Hugging Face model folder" in models.describe(bridge)


def test_pretrained_name_offline_gives_one_clear_error():
    with pytest.raises(ModelUnavailableError, match="set the notebook parameter `model_name`"):
        models.load_model("circuits-book-tests/no-such-model")


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="Unknown model 'gpt7'"):
        models.load_model("gpt7")
    with pytest.raises(ParameterError):
        models.load_model("gpt2-small", seed=3)


def test_log_spaced_steps():
    steps = log_spaced_steps(1000, 10)
    assert steps[0] == 1 and steps[-1] == 1000 and steps == sorted(set(steps))
    assert len(steps) == 10
    ratios = [b / a for a, b in zip(steps[3:], steps[4:])]
    assert max(ratios) / min(ratios) < 1.5


# ------------------------------------------------------------------ checked and protected checkpoints

def test_corrupted_or_truncated_checkpoint_stops_with_one_sentence(tiny_model, tmp_cache):
    from shared.errors import CheckpointError
    from shared.zoo import cache

    models.load_model("test-tiny")
    weights = models.local_model_dir("test-tiny") / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64  # same size, garbage in the middle
    weights.write_bytes(bytes(data))
    cache._VERIFIED.clear()
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match .*retrain=True"):
        models.load_model("test-tiny")
    weights.write_bytes(bytes(data[:100]))  # truncated
    cache._VERIFIED.clear()
    with pytest.raises(CheckpointError, match="test-tiny"):
        models.load_model("test-tiny")
    assert calls["n"] == 1, "a damaged entry must not be retrained silently"


def test_every_shipped_checkpoint_records_and_matches_its_digests():
    from shared.paths import shipped_cache_dir
    from shared.zoo import cache

    folders = [f for kind in ("models", "tokenizers") for f in (shipped_cache_dir() / kind).iterdir()
               if f.is_dir() and not f.name.startswith(".")]
    assert len(folders) >= 10
    for folder in folders:
        recorded = json.loads((folder / "key.json").read_text())["sha256"]
        assert set(recorded) == set(cache.file_digests(folder)), folder.name
        cache._VERIFIED.discard(folder)
        cache.verify(folder, "models")


def test_retraining_a_shipped_model_writes_to_the_local_cache(tiny_model, tmp_cache, tmp_path, monkeypatch):
    from shared.zoo import cache

    shipped = models.local_model_dir("test-tiny")
    before = (shipped / "model.safetensors").read_bytes()
    monkeypatch.setattr(cache, "is_shipped", lambda path: True)  # pretend the cache is the shipped one
    monkeypatch.setenv("CIRCUITS_BOOK_LOCAL_CACHE", str(tmp_path / "local"))
    bridge = models.load_model("test-tiny", retrain=True)
    assert calls["n"] == 2
    assert (shipped / "model.safetensors").read_bytes() == before, "the shipped weights must stay as they are"
    assert str(tmp_path / "local") in bridge.book_model_description or (tmp_path / "local" / "models").exists()
    assert (tmp_path / "local" / "models" / shipped.name / "model.safetensors").exists()


def test_orphaned_temporary_folders_of_dead_writers_are_removed(tiny_model, tmp_cache):
    orphan = tmp_cache / "models" / ".tmp-test-tiny-abc-999999999"
    orphan.mkdir(parents=True)
    models.load_model("test-tiny")
    assert not orphan.exists()


@pytest.mark.parametrize("call, message", [
    (lambda: models.load_model("test-tiny", steps="abc"), "Setting 'steps' of model 'test-tiny' must be an integer"),
    (lambda: models.load_model("test-tiny", explode=1), "must be true or false"),
    (lambda: models.load_model(None), "model name must be a non-empty string"),
    (lambda: models.load_model("test-tiny", step="x"), "step must be an integer"),
])
def test_bad_overrides_stop_before_any_training(tiny_model, call, message):
    with pytest.raises(ParameterError, match=message):
        call()
    assert calls["n"] == 0
