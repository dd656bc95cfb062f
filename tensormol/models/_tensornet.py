r"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023).

"TensorNet: Cartesian Tensor Representations for Efficient Learning of Molecular Potentials".
Every atom carries ``H`` channels of a rank-2 Cartesian tensor :math:`X = I + A + S` (scalar,
antisymmetric and symmetric-traceless parts).

Embedding. For an edge with unit vector :math:`\hat r_{ij} = (r_j - r_i)/|r_j - r_i|` and radial
basis :math:`e(r_{ij})`,

.. math::
    X_i = \sum_j \phi(r_{ij})\, Z_{ij} \big( f_I(e)\, 1 + f_A(e)\, [\hat r_{ij}]_\times
          + f_S(e)\, (\hat r_{ij}\hat r_{ij}^T - \tfrac13 1) \big),
    \quad Z_{ij} = W [z_i \| z_j] + b,

with :math:`\phi` the cosine cutoff and :math:`f_{I,A,S}` linear maps of the basis. The norms
:math:`\|X_i\|^2` go through a LayerNorm and a two-layer MLP giving per-channel factors
:math:`g_{I,A,S}`, and :math:`X_i \leftarrow g_I W_I I_i + g_A W_A A_i + g_S W_S S_i`.

Interaction (each layer). Radial MLP :math:`f = \phi(r)\, \mathrm{MLP}(e(r))` split into
:math:`f_I, f_A, f_S`; :math:`X \leftarrow X / (\|X\|^2 + 1)`;
:math:`Y = W_I I + W_A A + W_S S`; messages :math:`M_i = \sum_j f_I I^Y_j + f_A A^Y_j + f_S S^Y_j`;
then :math:`P = M Y + Y M` (O(3)) or :math:`P = 2\, Y M` (SO(3), which lets pseudotensors in and
makes the model sensitive to reflections); :math:`P \leftarrow P / (\|P\|^2 + 1)`;
:math:`dX = W'_I I^P + W'_A A^P + W'_S S^P`; :math:`X \leftarrow X + dX + dX^2`.

Readout: :math:`[\|I\|^2, \|A\|^2, \|S\|^2]` → LayerNorm → act(Linear) → Linear, act, Linear → one
number per atom.

This follows TorchMD-Net's implementation (norms are squared Frobenius norms; the neighbour list
includes each atom itself, ``self_loops=True``), so its weights map one-to-one onto this module
(same parameter count). Loaded with TorchMD-Net 3.1.0's weights, the forces agree to 2e-8 eV/Å in
float64 and energies up to a per-element constant (``benchmarks/bench_tensornet.py``).

The implementation differs for speed: tensors are stored as their 1 + 3 + 5 irreducible
components, radial functions are computed once per undirected pair, the atomic-number pair
embedding is linear in each atom's embedding and is evaluated per atom, self-loops are node terms
instead of edges, and the edge operations run fused over blocks of edges
(:mod:`tensormol.models._tensornet_ops`, imported as ``fused``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from tensormol.config import option
from tensormol.models import _irreducible as irr
from tensormol.models import _tensornet_ops as fused
from tensormol.models._base import MODEL_DTYPES, AtomicGraph, EnergyModel, EnergyModelConfig
from tensormol.models._pairs import undirected_pairs
from tensormol.nn import ACTIVATIONS, CosineCutoff, ExpNormalRBF, GaussianRBF

__all__ = ["TensorNet", "TensorNetConfig", "build_tensornet"]

_RBF_TYPES = ("expnorm", "gauss")


@dataclass(frozen=True)
class TensorNetConfig(EnergyModelConfig):
    """Hyperparameters of :class:`TensorNet` (TorchMD-Net's names where they mean the same)."""

    hidden_channels: int = option(128, doc="channels H of the tensor features", ge=1)
    num_layers: int = option(2, doc="interaction layers", ge=0)
    num_rbf: int = option(32, doc="radial basis functions", ge=1)
    rbf_type: str = option("expnorm", doc="radial basis", choices=_RBF_TYPES)
    trainable_rbf: bool = option(False, doc="train the radial basis centres and widths")
    activation: str = option("silu", doc="activation", choices=tuple(ACTIVATIONS))
    cutoff_lower: float = option(0.0, doc="lower cutoff (Å)", ge=0)
    cutoff_upper: float = option(4.5, doc="cutoff (Å): the model's interaction range", gt=0)
    max_z: int = option(128, doc="size of the atomic-number embedding table", ge=2)
    equivariance_invariance_group: str = option(
        "O(3)", doc="O(3): invariant under reflections; SO(3): rotations only",
        choices=("O(3)", "SO(3)"),
    )
    dtype: str = option("float32", doc="dtype of the layers", choices=tuple(MODEL_DTYPES))
    self_loops: bool = option(
        True, doc="each atom messages itself (as TorchMD-Net, whose neighbour list has i-i pairs)"
    )

    def __post_init__(self) -> None:
        if not self.cutoff_lower < self.cutoff_upper:
            raise ValueError(
                f"cutoff_lower ({self.cutoff_lower}) must be smaller than cutoff_upper "
                f"({self.cutoff_upper})"
            )


def _flush_tiny(x: Tensor) -> Tensor:
    """Set entries of a nonnegative tensor below 1e-30 to exactly 0.

    The exp-normal basis is ~e^-100 far from its centres: float32 subnormals, which make every
    matmul and product downstream many times slower (up to 8x measured here), and which a library
    must not cure by setting the process-wide flush-to-zero flag. Values this small change no
    result.
    """
    return nn.functional.threshold(x, 1e-30, 0.0)


class _Embedding(nn.Module):
    """Edge tensors from atomic-number pairs and radial filters, summed onto atoms."""

    def __init__(self, cfg: TensorNetConfig, act: type[nn.Module], dtype: torch.dtype,
                 num_species: int) -> None:
        super().__init__()
        h, r = cfg.hidden_channels, cfg.num_rbf
        self.hidden_channels = h
        #: Sum the edge tensors per (atom, neighbour species) on an (R + 1)-wide basis and apply
        #: the channel maps per atom, or form H-wide edge tensors: the first does less work when
        #: K (R + 1) <= 2 H. Fixed at construction, from the model's species and widths.
        self.sum_by_species = num_species * (r + 1) <= 2 * h
        self.distance_proj = nn.ModuleList(nn.Linear(r, h, dtype=dtype) for _ in range(3))
        self.emb = nn.Embedding(cfg.max_z, h, dtype=dtype)
        self.emb2 = nn.Linear(2 * h, h, dtype=dtype)
        self.act = act()
        self.linears_tensor = nn.ModuleList(
            nn.Linear(h, h, bias=False, dtype=dtype) for _ in range(3)
        )
        self.linears_scalar = nn.ModuleList(
            [nn.Linear(h, 2 * h, dtype=dtype), nn.Linear(2 * h, 3 * h, dtype=dtype)]
        )
        self.init_norm = nn.LayerNorm(h, dtype=dtype)

    def forward(self, z: Tensor, species: Tensor, known_z: Tensor, g: _Graph) -> Tensor:
        """Embedded tensors (9, M, H) of atoms ``z`` (M,) with species indices ``species`` (M,)
        into ``known_z`` (K,) (the model's elements)."""
        h = self.hidden_channels
        m = z.shape[0]
        w = torch.cat([p.weight for p in self.distance_proj])  # (3H, R)
        b = torch.cat([p.bias for p in self.distance_proj])  # (3H,)
        # W [z_i || z_j] + b = W_a z_i + (W_b z_j + b): two products per element, not per edge.
        ze = self.emb(known_z)
        za = nn.functional.linear(ze, self.emb2.weight[:, :h])  # (K, H)
        zb = nn.functional.linear(ze, self.emb2.weight[:, h:], self.emb2.bias)
        if self.sum_by_species:
            x = self._sum_by_species(species, g, w, b, za, zb)
        else:
            radial = (nn.functional.linear(g.rbf, w, b) * g.cut[:, None]).view(-1, 3, h)
            zij = za.index_select(0, species.index_select(0, g.i)) + zb.index_select(
                0, species.index_select(0, g.j))
            coef = radial.transpose(0, 1).index_select(1, g.pair) * zij  # (3, E, H)
            x = fused.scatter_outer(coef, g.basis, g.i, m)  # (9, M, H)
        if g.rbf0 is not None:
            # Self-loop (r = 0, no direction): only the scalar part, f_I(e(0)) phi(0) Z_ii.
            f0 = nn.functional.linear(g.rbf0, w[:h], b[:h]) * g.cut0[:, None]
            self_i = f0 * (za + zb).index_select(0, species)
            x_i, x_rest = x.split((1, 8))
            x = torch.cat([x_i + self_i.unsqueeze(0), x_rest])
        s = self.init_norm(irr.norm2(x))
        for lin in self.linears_scalar:
            s = self.act(lin(s))
        lt = self.linears_tensor
        mixed = irr.mix_channels(x, lt[0].weight, lt[1].weight, lt[2].weight)
        return mixed * irr.expand_groups(s.view(m, 3, h).transpose(0, 1))

    @staticmethod
    def _sum_by_species(species: Tensor, g: _Graph, w: Tensor, b: Tensor, za: Tensor,
                        zb: Tensor) -> Tensor:
        """The edge sum of the embedding with per-edge work of R + 1 numbers instead of H.

        The edge tensor is ``b_e[k] C_e (W_g e_e + b_g) * (za[s_i] + zb[s_j])``: linear in the
        radial basis, and the atomic-number factor depends only on the two species. So sum
        ``b_e[k] C_e [e_e, 1]`` per (atom, neighbour species) first (an (R + 1)-wide scatter),
        then apply the (H, R + 1) maps and the species factors as GEMMs on atoms.
        """
        h, k, m = za.shape[1], za.shape[0], species.shape[0]
        r1 = _flush_tiny(torch.cat([g.rbf, torch.ones_like(g.cut)[:, None]], 1) * g.cut[:, None])
        c = r1.index_select(0, g.pair)  # (E, R + 1)
        dest = g.i * k + species.index_select(0, g.j)
        q = fused.scatter_outer(c.unsqueeze(0).expand(3, -1, -1), g.basis, dest, m * k)
        q = q.view(9, m, k, -1)  # (9, M, K, R + 1)
        wfull = torch.cat([w, b[:, None]], 1).view(3, h, -1)  # per part (H, R + 1)
        w9 = irr.expand_groups(wfull)  # (9, H, R + 1)
        own = torch.bmm(q.sum(2), w9.transpose(1, 2)) * za.index_select(0, species)
        # sum_s zb[s, h] (q_s @ W^T)[h] = q (flattened over s, r) @ V^T, V[h, (s, r)] = zb W
        v = zb.t()[None, :, :, None] * wfull[:, :, None, :]  # (3, H, K, R + 1)
        v9 = irr.expand_groups(v.reshape(3, h, -1))
        return own + torch.bmm(q.reshape(9, m, -1), v9.transpose(1, 2))


class _Interaction(nn.Module):
    """One TensorNet interaction layer."""

    def __init__(self, cfg: TensorNetConfig, act: type[nn.Module], dtype: torch.dtype) -> None:
        super().__init__()
        h, r = cfg.hidden_channels, cfg.num_rbf
        self.hidden_channels = h
        self.so3 = cfg.equivariance_invariance_group == "SO(3)"
        self.linears_scalar = nn.ModuleList(
            [nn.Linear(r, h, dtype=dtype), nn.Linear(h, 2 * h, dtype=dtype),
             nn.Linear(2 * h, 3 * h, dtype=dtype)]
        )
        self.linears_tensor = nn.ModuleList(
            nn.Linear(h, h, bias=False, dtype=dtype) for _ in range(6)
        )
        self.act = act()

    def radial(self, rbf: Tensor, cut: Tensor) -> Tensor:
        """Radial filters (3, P, H): the I, A, S factors of each pair (part-major)."""
        f = rbf
        for lin in self.linears_scalar:
            f = self.act(lin(f))
        f = (f * cut[:, None]).view(-1, 3, self.hidden_channels)
        return f.transpose(0, 1).contiguous()

    def forward(self, x: Tensor, g: _Graph) -> Tensor:
        lt = self.linears_tensor
        x = irr.normalize(x)
        y = irr.mix_channels(x, lt[0].weight, lt[1].weight, lt[2].weight)
        msg = fused.message_passing(self.radial(g.rbf, g.cut), y, g.i, g.j, g.pair, y.shape[1])
        if g.rbf0 is not None:
            msg = torch.addcmul(msg, y, irr.expand_groups(self.radial(g.rbf0, g.cut0)))
        ym, mm = irr.to_matrix(y), irr.to_matrix(msg)
        if self.so3:
            p = 2.0 * irr.matmul3(ym, mm)
        else:
            p = irr.anticommutator(mm, ym)
        pc = irr.normalize(irr.from_matrix(p))
        dx = irr.mix_channels(pc, lt[3].weight, lt[4].weight, lt[5].weight)
        dxm = irr.to_matrix(dx)
        return irr.from_matrix_add(x + dx, irr.matmul3(dxm, dxm))


class _Graph(NamedTuple):
    """Per-call edge data shared by the embedding and the interaction layers."""

    i: Tensor  # (E,) receiving atom
    j: Tensor  # (E,) sending atom
    pair: Tensor  # (E,) undirected pair of each edge
    basis: Tensor  # (E, 9) components of 1 + [u]x + (u u^T - 1/3)
    rbf: Tensor  # (P, R) radial basis per pair
    cut: Tensor  # (P,) cosine cutoff per pair
    rbf0: Tensor | None  # (1, R) radial basis at r = 0 (self-loops), or None
    cut0: Tensor | None  # (1,)


class TensorNet(EnergyModel):
    """TensorNet potential (Simeon & De Fabritiis, NeurIPS 2023); see the module docstring.

    Parameters
    ----------
    config : TensorNetConfig or mapping, optional
        Hyperparameters; keyword arguments override its entries.
    atomic_numbers : sequence of int
        Elements the model is trained for.
    **params
        Entries of :class:`TensorNetConfig` (``hidden_channels=64``, ...). Unknown names raise
        ``ConfigError`` suggesting the closest valid one.
    """

    def __init__(
        self,
        config: TensorNetConfig | Mapping[str, Any] | None = None,
        *,
        atomic_numbers: Sequence[int],
        **params: Any,
    ) -> None:
        cfg = TensorNetConfig.resolve(config, params)
        super().__init__(cutoff=cfg.cutoff_upper, atomic_numbers=atomic_numbers)
        too_big = [z for z in self.atomic_numbers if z >= cfg.max_z]
        if too_big:
            raise ValueError(
                f"max_z = {cfg.max_z} is too small for atomic numbers {too_big}; "
                f"max_z must exceed the largest atomic number"
            )
        self.config = cfg
        dtype = cfg.torch_dtype
        act = ACTIVATIONS[cfg.activation]
        rbf_cls = ExpNormalRBF if cfg.rbf_type == "expnorm" else GaussianRBF
        self.distance_expansion = rbf_cls(
            cfg.num_rbf, cfg.cutoff_upper, cutoff_lower=cfg.cutoff_lower,
            trainable=cfg.trainable_rbf, dtype=dtype,
        )
        # TorchMD-Net's exp-normal basis carries its own cosine envelope from 0 to the cutoff
        # (whatever cutoff_lower); the Gaussian basis has none.
        self.rbf_envelope = CosineCutoff(cfg.cutoff_upper) if cfg.rbf_type == "expnorm" else None
        self.cutoff_fn = CosineCutoff(cfg.cutoff_upper, cutoff_lower=cfg.cutoff_lower)
        self.tensor_embedding = _Embedding(cfg, act, dtype, self.num_species)
        self.layers = nn.ModuleList(_Interaction(cfg, act, dtype) for _ in range(cfg.num_layers))
        h = cfg.hidden_channels
        self.out_norm = nn.LayerNorm(3 * h, dtype=dtype)
        self.linear = nn.Linear(3 * h, h, dtype=dtype)
        self.act = act()
        # TorchMD-Net's "Scalar" output head: H -> H/2 -> 1.
        self.output_network = nn.Sequential(
            nn.Linear(h, h // 2 or 1, dtype=dtype), act(), nn.Linear(h // 2 or 1, 1, dtype=dtype)
        )
        nn.init.xavier_uniform_(self.output_network[0].weight)
        nn.init.zeros_(self.output_network[0].bias)
        nn.init.xavier_uniform_(self.output_network[2].weight)
        nn.init.zeros_(self.output_network[2].bias)

    def _radial_basis(self, r: Tensor) -> Tensor:
        rbf = self.distance_expansion(r)
        if self.rbf_envelope is not None:
            rbf = rbf * self.rbf_envelope(r)[:, None]
        return _flush_tiny(rbf)

    def atomic_energies(self, graph: AtomicGraph) -> Tensor:
        dtype = self.out_norm.weight.dtype
        pair, rep = undirected_pairs(graph.edge_index, graph.cell_shifts, graph.num_nodes)
        r = graph.edge_lengths.index_select(0, rep).to(dtype)
        # Unit vectors r_j - r_i, TorchMD-Net 3.1's orientation. It matters for the SO(3) variant
        # only (Y M vs M Y); benchmarks/bench_tensornet.py checks it against TorchMD-Net's weights.
        u = (graph.edge_vectors / graph.edge_lengths[:, None]).to(dtype)
        rbf0 = cut0 = None
        if self.config.self_loops:
            zero = r.new_zeros(1)
            rbf0, cut0 = self._radial_basis(zero), self.cutoff_fn(zero)
        g = _Graph(
            i=graph.edge_index[0], j=graph.edge_index[1], pair=pair, basis=irr.edge_basis(u),
            rbf=self._radial_basis(r), cut=self.cutoff_fn(r), rbf0=rbf0, cut0=cut0,
        )
        x = self.tensor_embedding(graph.atomic_numbers, graph.species, self.species, g)
        for layer in self.layers:
            x = layer(x, g)
        feats = irr.group_norms2(x).permute(1, 0, 2).flatten(1)  # (M, 3H): |I|², |A|², |S|²
        out = self.act(self.linear(self.out_norm(feats)))
        return self.output_network(out).squeeze(-1)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{super().extra_repr()}, hidden_channels={c.hidden_channels}, "
            f"num_layers={c.num_layers}, group={c.equivariance_invariance_group}, dtype={c.dtype}"
        )


def build_tensornet(
    config: TensorNetConfig | Mapping[str, Any] | None = None,
    /,
    *,
    atomic_numbers: Sequence[int],
    **params: Any,
) -> TensorNet:
    """Builder of ``"tensornet"`` in :data:`tensormol.registry.MODELS` (with
    :class:`TensorNetConfig`): ``MODELS.get("tensornet")(atomic_numbers=..., **params)``."""
    return TensorNet(config, atomic_numbers=atomic_numbers, **params)

