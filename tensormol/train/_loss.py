"""Weighted energy/force/stress loss and the error sums behind the metrics."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tensormol import keys as K

__all__ = ["PotentialLoss", "ErrorSums", "ERROR_FIELDS"]


def _elementwise(diff: Tensor, kind: str, delta: float) -> Tensor:
    if kind == "mse":
        return diff.square()
    # Huber: quadratic below delta, linear above; 2x scaled so it equals the MSE for small errors.
    a = diff.abs()
    return torch.where(a < delta, a.square(), 2.0 * delta * a - delta * delta)


class PotentialLoss(nn.Module):
    """``w_E·L(E) + w_F·L(F) + w_σ·L(σ)``, each term a mean over its elements.

    Parameters
    ----------
    energy_weight, forces_weight, stress_weight : float
        Non-negative weights; a zero weight skips the term (no forces are then needed for it).
    energy_per_atom : bool
        Compare ``E/N`` instead of ``E``, so structures of different size weigh alike.
    kind : {"mse", "huber"}
        Elementwise loss of the errors (eV, eV/Å, eV/Å³).
    huber_delta : float
        Transition of the Huber loss.

    Notes
    -----
    The energy term averages over structures, the force term over all force components of the
    batch and the stress term over stress components. Under data parallelism with equal local
    batches, averaging the per-process gradients therefore equals the single-process gradient.
    """

    def __init__(self, energy_weight: float = 1.0, forces_weight: float = 10.0,
                 stress_weight: float = 0.0, energy_per_atom: bool = True, kind: str = "mse",
                 huber_delta: float = 0.01) -> None:
        super().__init__()
        for name, w in (("energy_weight", energy_weight), ("forces_weight", forces_weight),
                        ("stress_weight", stress_weight)):
            if not float(w) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {w!r}")
        if kind not in ("mse", "huber"):
            raise ValueError(f"kind must be 'mse' or 'huber', got {kind!r}")
        self.weights = {"energy": float(energy_weight), "forces": float(forces_weight),
                        "stress": float(stress_weight)}
        self.energy_per_atom = bool(energy_per_atom)
        self.kind = kind
        self.huber_delta = float(huber_delta)

    @classmethod
    def from_config(cls, loss) -> PotentialLoss:
        """The loss a ``training.loss`` section (:class:`tensormol.config.LossConfig`) says."""
        return cls(**loss.to_dict())

    @property
    def needs_forces(self) -> bool:
        return self.weights["forces"] > 0

    @property
    def needs_stress(self) -> bool:
        return self.weights["stress"] > 0

    def term_sums(self, pred: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-term ``(sum of elementwise losses, element count)`` as a (2,) float64 tensor."""
        out: dict[str, Tensor] = {}
        if self.weights["energy"] > 0:
            diff = pred[K.ENERGY].to(torch.float64) - batch[K.ENERGY].to(torch.float64)
            if self.energy_per_atom:
                diff = diff / batch[K.NUM_ATOMS].to(torch.float64)
            e = _elementwise(diff, self.kind, self.huber_delta)
            out["energy"] = torch.stack([e.sum(), e.new_tensor(float(e.numel()))])
        if self.weights["forces"] > 0:
            diff = pred[K.FORCES].to(torch.float64) - batch[K.FORCES].to(torch.float64)
            e = _elementwise(diff, self.kind, self.huber_delta)
            out["forces"] = torch.stack([e.sum(), e.new_tensor(float(e.numel()))])
        if self.weights["stress"] > 0:
            if K.STRESS not in batch:
                raise KeyError(
                    "stress_weight > 0 but the batch has no reference stress "
                    f"({K.STRESS!r}); set training.loss.stress_weight: 0 for this data"
                )
            diff = pred[K.STRESS].to(torch.float64) - batch[K.STRESS].to(torch.float64)
            e = _elementwise(diff, self.kind, self.huber_delta)
            out["stress"] = torch.stack([e.sum(), e.new_tensor(float(e.numel()))])
        return out

    def combine(self, sums: dict[str, Tensor]) -> Tensor:
        """Weighted total from :meth:`term_sums` (possibly summed over batches or processes)."""
        total = None
        for name, s in sums.items():
            term = self.weights[name] * s[0] / s[1].clamp_min(1.0)
            total = term if total is None else total + term
        assert total is not None  # the config guarantees one positive weight
        return total

    def forward(self, pred: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        return self.combine(self.term_sums(pred, batch))


#: Order of the entries of an :class:`ErrorSums` vector.
ERROR_FIELDS: tuple[str, ...] = (
    "n_structures", "energy_abs", "energy_sq", "epa_abs", "epa_sq",
    "n_force_components", "forces_abs", "forces_sq",
    "n_stress_components", "stress_abs", "stress_sq",
    "loss_energy", "n_loss_energy", "loss_forces", "n_loss_forces", "loss_stress",
    "n_loss_stress",
)
_IDX = {name: i for i, name in enumerate(ERROR_FIELDS)}


class ErrorSums:
    """Running sums of absolute and squared errors over a split (one float64 vector).

    The sums add across batches and across processes (one all-reduce of the vector), so MAE and
    RMSE over a whole split are exact under data parallelism, whatever the batch layout.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.values = torch.zeros(len(ERROR_FIELDS), dtype=torch.float64, device=device)

    def reset(self, device: torch.device | str | None = None) -> None:
        self.values = torch.zeros(len(ERROR_FIELDS), dtype=torch.float64,
                                  device=device if device is not None else self.values.device)

    @torch.no_grad()
    def update(self, pred: dict[str, Tensor], batch: dict[str, Tensor],
               loss_sums: dict[str, Tensor] | None = None) -> None:
        """Add the errors of one batch (``pred`` from the model, references from ``batch``)."""
        v = torch.zeros_like(self.values)
        de = pred[K.ENERGY].detach().to(torch.float64) - batch[K.ENERGY].to(torch.float64)
        dea = de / batch[K.NUM_ATOMS].to(torch.float64)
        v[_IDX["n_structures"]] = de.numel()
        v[_IDX["energy_abs"]] = de.abs().sum()
        v[_IDX["energy_sq"]] = de.square().sum()
        v[_IDX["epa_abs"]] = dea.abs().sum()
        v[_IDX["epa_sq"]] = dea.square().sum()
        if K.FORCES in pred and K.FORCES in batch:
            df = pred[K.FORCES].detach().to(torch.float64) - batch[K.FORCES].to(torch.float64)
            v[_IDX["n_force_components"]] = df.numel()
            v[_IDX["forces_abs"]] = df.abs().sum()
            v[_IDX["forces_sq"]] = df.square().sum()
        if K.STRESS in pred and K.STRESS in batch:
            ds = pred[K.STRESS].detach().to(torch.float64) - batch[K.STRESS].to(torch.float64)
            v[_IDX["n_stress_components"]] = ds.numel()
            v[_IDX["stress_abs"]] = ds.abs().sum()
            v[_IDX["stress_sq"]] = ds.square().sum()
        for name, s in (loss_sums or {}).items():
            v[_IDX[f"loss_{name}"]] = s[0].detach()
            v[_IDX[f"n_loss_{name}"]] = s[1].detach()
        self.values += v.to(self.values.device)

    def compute(self, loss: PotentialLoss | None = None) -> dict[str, float]:
        """MAE/RMSE of energy (eV), energy per atom (eV/atom), forces (eV/Å), stress (eV/Å³).

        Force errors are per Cartesian component. ``loss`` adds the weighted loss of the split.
        """
        v = self.values.detach().cpu()
        g = lambda name: float(v[_IDX[name]])  # noqa: E731
        out: dict[str, float] = {}
        n = g("n_structures")
        if n > 0:
            out["energy_mae"] = g("energy_abs") / n
            out["energy_rmse"] = (g("energy_sq") / n) ** 0.5
            out["energy_per_atom_mae"] = g("epa_abs") / n
            out["energy_per_atom_rmse"] = (g("epa_sq") / n) ** 0.5
        nf = g("n_force_components")
        if nf > 0:
            out["forces_mae"] = g("forces_abs") / nf
            out["forces_rmse"] = (g("forces_sq") / nf) ** 0.5
        ns = g("n_stress_components")
        if ns > 0:
            out["stress_mae"] = g("stress_abs") / ns
            out["stress_rmse"] = (g("stress_sq") / ns) ** 0.5
        if loss is not None:
            sums = {}
            for name in loss.weights:
                if loss.weights[name] > 0 and g(f"n_loss_{name}") > 0:
                    sums[name] = torch.tensor([g(f"loss_{name}"), g(f"n_loss_{name}")],
                                              dtype=torch.float64)
            if sums:
                out["loss"] = float(loss.combine(sums))
        return out
