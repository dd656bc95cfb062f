"""The model registry: built-ins found on first lookup in a fresh interpreter (the README's
snippet), third-party models through the ``tensormol.models`` entry-point group, the config class
registered with the builder, and errors that list the valid names."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tensormol.config import ConfigError, config_from_dict
from tensormol.models import TensorNet, TensorNetConfig
from tensormol.registry import MODELS, Registry, RegistryEntry

README = Path(__file__).resolve().parents[2] / "README.md"


def _run(code: str, pythonpath: Path | None = None) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (fail with its stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _readme_block_with(text: str) -> str:
    """The README's ```python block that contains ``text``, as written there."""
    readme = README.read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    found = [b for b in blocks if text in b]
    assert len(found) == 1, f"README has {len(found)} python blocks with {text!r}"
    return found[0]


def test_readme_snippet_runs_in_a_fresh_interpreter() -> None:
    """The README's Python example, exactly as written there, in a fresh interpreter: the
    registry finds the model without an earlier import of the zoo."""
    snippet = _readme_block_with('MODELS.get("tensornet")(atomic_numbers=[1, 6, 8]')
    out = _run(textwrap.dedent("""
        import sys
        from tensormol.registry import MODELS
        assert "tensormol.models" not in sys.modules, "importing the registry imported the zoo"
        print(MODELS.names())
        assert "tensormol.models" not in sys.modules, "listing names imported the zoo"
    """) + snippet + "print(type(model).__name__, tuple(out['forces'].shape))\n")
    lines = out.splitlines()
    assert lines[0] == "['gauntnet', 'tensornet']"
    assert lines[-1] == "TensorNet (12, 3)"  # ethanol (9 atoms) and water (3)
    assert "tensor([" in lines[1]  # the snippet's own print of the two energies


def test_importing_tensormol_registers_nothing() -> None:
    out = _run("import sys, tensormol; print(sorted(m for m in sys.modules "
               "if m.startswith('tensormol.models')))")
    assert out.strip() == "[]"


def test_builtin_entries_carry_their_config_class() -> None:
    entry = MODELS.entry("tensornet")
    assert entry.config_class is TensorNetConfig and entry.source == "built-in"
    assert MODELS.config_class("gauntnet").__name__ == "GauntNetConfig"
    assert isinstance(MODELS.get("tensornet")(atomic_numbers=[1], hidden_channels=4), TensorNet)
    assert "tensornet" in MODELS and "nope" not in MODELS and len(MODELS) >= 2


def test_unknown_model_lists_valid_names_with_a_suggestion() -> None:
    with pytest.raises(KeyError, match=r"unknown model 'tensornett' \(did you mean 'tensornet'"
                                       r"\?\); valid models are: gauntnet, tensornet"):
        MODELS.get("tensornett")
    with pytest.raises(ConfigError, match=r"model.name.*did you mean 'gauntnet'"):
        config_from_dict({"data": {"path": "x.xyz"}, "model": {"name": "gaunet"}})
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register("tensornet", TensorNet)


def test_register_at_run_time_with_config_in_one_call() -> None:
    reg: Registry = Registry("model", builtins={
        "tensornet": ("tensormol.models._tensornet", "build_tensornet", "TensorNetConfig")})

    @reg.register("custom", config=TensorNetConfig)
    def build(config=None, /, *, atomic_numbers, **params):
        return TensorNet(config, atomic_numbers=atomic_numbers, **params)

    assert reg.names() == ["custom", "tensornet"]
    assert reg.entry("custom") == RegistryEntry(build, TensorNetConfig)
    reg.register("custom", build, config=TensorNetConfig)  # the same registration again: fine
    with pytest.raises(ValueError, match="'custom' is already registered"):
        reg.register("custom", TensorNet)
    with pytest.raises(ValueError, match="'tensornet' is already registered"):
        reg.register("tensornet", build)


_PLUGIN = '''
"""A third-party model: a Morse-like pair energy, published through an entry point."""
from dataclasses import dataclass

import torch

from tensormol.config import option
from tensormol.models import EnergyModel, EnergyModelConfig
from tensormol.registry import RegistryEntry


@dataclass(frozen=True)
class PairConfig(EnergyModelConfig):
    depth: float = option(0.5, doc="well depth (eV)", gt=0)
    cutoff: float = option(3.0, doc="cutoff (Å)", gt=0)
    dtype: str = option("float64", doc="dtype", choices=("float32", "float64"))


class PairModel(EnergyModel):
    def __init__(self, config=None, *, atomic_numbers, **params):
        cfg = PairConfig.resolve(config, params)
        super().__init__(cutoff=cfg.cutoff, atomic_numbers=atomic_numbers)
        self.depth = torch.nn.Parameter(torch.tensor(cfg.depth, dtype=cfg.torch_dtype))

    def atomic_energies(self, graph):
        r = graph.edge_lengths.to(self.depth.dtype)
        e = self.depth * ((1 - torch.exp(-(r - 1.0))) ** 2 - 1) * torch.cos(
            torch.pi * r / (2 * self.cutoff)) ** 2
        out = torch.zeros(graph.num_nodes, dtype=e.dtype)
        return out.index_add(0, graph.edge_index[0], 0.5 * e)


def build(config=None, /, *, atomic_numbers, **params):
    return PairModel(config, atomic_numbers=atomic_numbers, **params)


ENTRY = RegistryEntry(build, PairConfig)
'''


def _install_plugin(root: Path, entry_points: str) -> Path:
    """A distribution on a path entry: a package and its dist-info with ``entry_points.txt``."""
    (root / "pairplugin").mkdir(parents=True)
    (root / "pairplugin" / "__init__.py").write_text(_PLUGIN, encoding="utf-8")
    info = root / "pairplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pairplugin\nVersion: 0.1\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return root


def test_third_party_model_through_the_entry_point_group(tmp_path: Path) -> None:
    """A distribution publishes a model (builder and config class); a clash with a built-in name
    is ignored with a warning; a broken entry point names itself."""
    root = _install_plugin(tmp_path, "[tensormol.models]\npair = pairplugin:ENTRY\n"
                                     "tensornet = pairplugin:build\n"
                                     "broken = pairplugin:MISSING\n")
    out = _run(textwrap.dedent("""
        import sys, warnings
        import torch
        from tensormol import keys as K
        from tensormol.config import ConfigError, config_from_dict
        from tensormol.registry import MODELS
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(MODELS.names())
        print([str(w.message) for w in caught])
        assert "pairplugin" not in sys.modules, "listing names loaded the plugin"
        entry = MODELS.entry("pair")
        print(entry.config_class.__name__, entry.source)
        model = MODELS.get("pair")(atomic_numbers=[1, 8], depth=0.7)
        pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.3]], dtype=torch.float64)
        out = model({K.POSITIONS: pos, K.ATOMIC_NUMBERS: torch.tensor([1, 8])})
        print(float(out[K.ENERGY][0]), float(out[K.FORCES][1, 2]))
        try:
            config_from_dict({"data": {"path": "x.xyz"}, "model": {"name": "pair", "dept": 1}})
        except ConfigError as err:
            print(err)
        print(type(MODELS.get("tensornet")(atomic_numbers=[1])).__name__)
        try:
            MODELS.get("broken")
        except ImportError as err:
            print(err)
    """), pythonpath=root)
    names, warned, entry, numbers, config_error, builtin, broken = out.splitlines()
    assert names == "['broken', 'gauntnet', 'pair', 'tensornet']"
    assert "reuses the built-in model name 'tensornet'; it is ignored" in warned
    assert entry == "PairConfig entry point pairplugin:ENTRY (pairplugin)"
    # E = 0.7 [(1 - e^-0.3)^2 - 1] cos^2(pi 1.3 / 6): one pair, both half-energies.
    import math

    r = 1.3
    want = 0.7 * ((1 - math.exp(-(r - 1.0))) ** 2 - 1) * math.cos(math.pi * r / 6) ** 2
    energy, force_z = (float(v) for v in numbers.split())
    assert energy == pytest.approx(want, rel=1e-12)
    assert force_z != 0.0
    assert "unknown config key 'model.dept' (did you mean 'depth'?)" in config_error
    assert builtin == "TensorNet"
    assert "model 'broken': cannot load entry point pairplugin:MISSING (pairplugin)" in broken
    assert "'tensormol.models'" in broken
