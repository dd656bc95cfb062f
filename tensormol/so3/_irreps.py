"""Irreducible representations of O(3) and their direct sums, with e3nn's string syntax.

An irrep of O(3) is labelled by a degree ``l >= 0`` (dimension ``2l + 1``) and a parity ``p = ±1``
(how it transforms under the inversion ``-I``). A direct sum is written like e3nn:
``"8x0e + 4x1o + 2x2e"`` (multiplicity ``x`` irrep, ``e`` even, ``o`` odd, ``y`` = ``(-1)^l``, the
parity of the spherical harmonics). Both classes are tuples, exactly like e3nn's: ``Irrep("1o")``
is ``(1, -1)`` and ``Irreps("2x1o")`` is ``((2, (1, -1)),)``, so they compare and hash equal to
their e3nn counterparts and to plain tuples.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Union

import torch

__all__ = ["Irrep", "MulIr", "Irreps", "IrrepsLike"]

_PARITY_CHARS = {"e": 1, "o": -1}
# One irrep token: integer l (digits only, so "-1e" and "1.5e" are rejected) then e, o or y.
_IRREP_RE = re.compile(r"^\s*(\d+)\s*([eoy])\s*$")
# One term of a sum: optional "<mul>x" then an irrep token.
_TERM_RE = re.compile(r"^\s*(?:(\d+)\s*x)?\s*(\d+)\s*([eoy])\s*$")
_EXPECTED_IRREP = "'<l><p>' with integer l >= 0 and parity p in {e, o, y}, e.g. '0e', '1o', '2y'"
_EXPECTED_IRREPS = (
    "a sum of '<mul>x<l><p>' terms with integers mul, l >= 0 and parity p in {e, o, y}, "
    "e.g. '8x0e + 4x1o + 2x2e' (a missing 'mul x' means 1; '' is the empty sum)"
)


def _is_int(x: object) -> bool:
    # bool is an int subclass but "True" as a degree is a bug, not a 1.
    if isinstance(x, bool):
        return False
    if isinstance(x, int):
        return True
    try:
        import numpy as np

        return isinstance(x, np.integer)
    except ImportError:  # pragma: no cover
        return False


def _plain_tuple(x: Any) -> tuple | None:
    """The items of a tuple (subclasses included, bypassing overrides such as e3nn's
    ``Irrep.__len__``, which raises), or None if ``x`` is not a tuple."""
    if isinstance(x, tuple):
        return tuple.__getitem__(x, slice(None))
    return None


class Irrep(tuple):
    r"""Irreducible representation ``(l, p)`` of O(3).

    Parameters
    ----------
    l : int, str, tuple or Irrep
        Degree ``l >= 0``; or a string ``"1o"`` / ``"2e"`` / ``"3y"``; or a tuple ``(l, p)``; or an
        existing irrep (e3nn's included).
    p : int, optional
        Parity, ``+1`` (even) or ``-1`` (odd). Required when ``l`` is an integer.

    Examples
    --------
    >>> Irrep("1o"), Irrep(2, 1), Irrep("3y"), Irrep("1o").dim
    (1o, 2e, 3o, 3)
    """

    def __new__(cls, l: Any, p: int | None = None) -> Irrep:  # noqa: E741
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, str):
                m = _IRREP_RE.match(l)
                if m is None:
                    raise ValueError(f"cannot parse irrep {l!r}: expected {_EXPECTED_IRREP}")
                deg = int(m.group(1))
                ch = m.group(2)
                par = (-1) ** deg if ch == "y" else _PARITY_CHARS[ch]
                return super().__new__(cls, (deg, par))
            items = _plain_tuple(l)
            if items is not None and len(items) == 2:
                l, p = items  # noqa: E741
            else:
                raise ValueError(
                    f"cannot interpret {l!r} as an irrep: expected {_EXPECTED_IRREP}, a tuple "
                    "(l, p) or Irrep(l, p)"
                )
        if not _is_int(l) or int(l) < 0:
            raise ValueError(f"irrep degree l must be an integer >= 0, got {l!r}")
        if not _is_int(p) or int(p) not in (-1, 1):
            raise ValueError(f"irrep parity p must be +1 (even) or -1 (odd), got {p!r}")
        return super().__new__(cls, (int(l), int(p)))

    @property
    def l(self) -> int:  # noqa: E743
        """Degree ``l``."""
        return self[0]

    @property
    def p(self) -> int:
        """Parity ``+1`` or ``-1``."""
        return self[1]

    @property
    def dim(self) -> int:
        """Dimension ``2l + 1``."""
        return 2 * self[0] + 1

    def is_scalar(self) -> bool:
        """True for ``0e``."""
        return self[0] == 0 and self[1] == 1

    def __repr__(self) -> str:
        return f"{self[0]}{'e' if self[1] == 1 else 'o'}"

    __str__ = __repr__

    @classmethod
    def iterator(cls, lmax: int | None = None) -> Iterator[Irrep]:
        """All irreps in the order ``0e, 0o, 1o, 1e, 2e, 2o, ...`` (up to ``lmax`` if given)."""
        for deg in itertools.count():
            if lmax is not None and deg > lmax:
                return
            yield Irrep(deg, (-1) ** deg)
            yield Irrep(deg, -((-1) ** deg))

    def __mul__(self, other: Any) -> Iterator[Irrep]:
        """Irreps of the product ``self x other``: ``|l1 - l2| .. l1 + l2``, parity ``p1 p2``."""
        other = Irrep(other)
        par = self.p * other.p
        for deg in range(abs(self.l - other.l), self.l + other.l + 1):
            yield Irrep(deg, par)

    def __rmul__(self, mul: int) -> Irreps:
        """``3 * Irrep("1e")`` is ``Irreps("3x1e")``."""
        if not _is_int(mul):
            return NotImplemented
        return Irreps([(int(mul), self)])

    def __add__(self, other: Any) -> Irreps:
        return Irreps(self) + Irreps(other)

    def __radd__(self, other: Any) -> Irreps:
        return Irreps(other) + Irreps(self)

    def count(self, _value: Any) -> int:  # the tuple method makes no sense for an irrep
        raise NotImplementedError("Irrep.count is not defined; use Irreps.count")

    def index(self, _value: Any, *args: Any) -> int:
        raise NotImplementedError("Irrep.index is not defined")

    def D_from_angles(self, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                      k: torch.Tensor | None = None) -> torch.Tensor:
        r"""Representation matrix ``p^k D^l(alpha, beta, gamma)`` (e3nn's Y-X-Y Euler angles).

        Parameters
        ----------
        alpha, beta, gamma : torch.Tensor
            Broadcastable angles, shape ``(...)``, radians.
        k : torch.Tensor, optional
            Number of inversions applied, shape ``(...)`` (0 or 1).

        Returns
        -------
        torch.Tensor
            Shape ``(..., 2l+1, 2l+1)``.
        """
        from ._wigner import wigner_D

        D = wigner_D(self.l, alpha, beta, gamma)
        if k is None:
            return D
        k = torch.as_tensor(k, dtype=D.dtype, device=D.device)
        sign = torch.where(torch.remainder(k, 2) == 1, float(self.p), 1.0).to(D.dtype)
        return D * sign[..., None, None]

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        r"""Representation matrix of an orthogonal matrix ``R`` (proper or improper).

        An improper ``R`` (``det R = -1``) is ``-I`` times the rotation ``-R``, so its matrix is
        ``p D^l(-R)``.

        Parameters
        ----------
        R : torch.Tensor
            Orthogonal matrices, shape ``(..., 3, 3)``, floating point.

        Returns
        -------
        torch.Tensor
            Shape ``(..., 2l+1, 2l+1)``, dtype of ``R``.
        """
        from ._wigner import wigner_D_from_matrix

        return wigner_D_from_matrix(self.l, R, p=self.p)


class MulIr(tuple):
    """A multiplicity and an irrep, ``(mul, ir)``; ``repr`` is ``"<mul>x<ir>"``."""

    def __new__(cls, mul: Any, ir: Any = None) -> MulIr:
        if ir is None:
            if isinstance(mul, MulIr):
                return mul
            mul, ir = mul
        if not _is_int(mul) or int(mul) < 0:
            raise ValueError(f"multiplicity must be an integer >= 0, got {mul!r}")
        return super().__new__(cls, (int(mul), Irrep(ir)))

    @property
    def mul(self) -> int:
        """Multiplicity."""
        return self[0]

    @property
    def ir(self) -> Irrep:
        """The irrep."""
        return self[1]

    @property
    def dim(self) -> int:
        """``mul * (2l + 1)``."""
        return self[0] * self[1].dim

    def __repr__(self) -> str:
        return f"{self[0]}x{self[1]!r}"

    __str__ = __repr__


class _SortResult(NamedTuple):
    irreps: Irreps
    p: tuple[int, ...]
    inv: tuple[int, ...]


def _parse_irreps_string(s: str) -> list[MulIr]:
    if s.strip() == "":
        return []
    out = []
    for term in s.split("+"):
        m = _TERM_RE.match(term)
        if m is None:
            raise ValueError(
                f"cannot parse irreps {s!r}: term {term.strip()!r} is malformed; expected "
                f"{_EXPECTED_IRREPS}"
            )
        mul = 1 if m.group(1) is None else int(m.group(1))
        deg = int(m.group(2))
        par = (-1) ** deg if m.group(3) == "y" else _PARITY_CHARS[m.group(3)]
        out.append(MulIr(mul, Irrep(deg, par)))
    return out


class Irreps(tuple):
    r"""Direct sum of irreps of O(3): a tuple of ``(mul, ir)`` pairs, order preserved.

    Parameters
    ----------
    irreps : str, Irrep, Irreps, iterable, or None
        ``"8x0e + 4x1o + 2x2e"``, an ``Irrep``, another ``Irreps`` (e3nn's too), or an iterable of
        ``(mul, ir)`` pairs / irreps / irrep strings. ``None`` or ``""`` is the empty sum.

    Examples
    --------
    >>> x = Irreps("8x0e + 4x1o + 2x2e")
    >>> x, x.dim, x.num_irreps, x.lmax
    (8x0e+4x1o+2x2e, 30, 14, 2)
    """

    def __new__(cls, irreps: Any = None) -> Irreps:
        if isinstance(irreps, Irreps):
            return irreps
        if irreps is None:
            return super().__new__(cls, ())
        if isinstance(irreps, Irrep) or (
            isinstance(irreps, tuple) and hasattr(irreps, "l") and hasattr(irreps, "p")
        ):
            # ours, or another library's irrep object (e3nn's Irrep is a tuple with .l and .p)
            return super().__new__(cls, (MulIr(1, Irrep(_plain_tuple(irreps))),))
        if isinstance(irreps, str):
            return super().__new__(cls, _parse_irreps_string(irreps))
        if not isinstance(irreps, Iterable):
            raise ValueError(
                f"cannot interpret {irreps!r} ({type(irreps).__name__}) as irreps: expected "
                f"{_EXPECTED_IRREPS}, an Irrep, or a list of (mul, irrep) pairs"
            )
        out = []
        for item in irreps:
            if isinstance(item, MulIr):
                out.append(item)
            elif isinstance(item, Irrep) or (
                isinstance(item, tuple) and hasattr(item, "l") and hasattr(item, "p")
            ):
                out.append(MulIr(1, Irrep(_plain_tuple(item))))
            elif isinstance(item, str):
                out.append(MulIr(1, Irrep(item)))
            elif isinstance(item, (list, tuple)) and len(item) == 2 and not _is_int(item[1]):
                # (mul, ir) with ir an Irrep, a string or an (l, p) tuple; MulIr checks mul
                out.append(MulIr(item[0], Irrep(item[1])))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                raise ValueError(
                    f"cannot interpret {item!r} in {irreps!r} as (mul, irrep): the irrep must be "
                    "an Irrep, a string like '1o' or a tuple (l, p)"
                )
            else:
                raise ValueError(
                    f"cannot interpret {item!r} in {irreps!r} as an irreps term: expected "
                    "(mul, irrep), an Irrep or a string like '1o'"
                )
        return super().__new__(cls, out)

    # -- properties ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Total dimension ``sum mul (2l+1)``."""
        return sum(mi.dim for mi in self)

    @property
    def num_irreps(self) -> int:
        """Sum of the multiplicities."""
        return sum(mi.mul for mi in self)

    @property
    def ls(self) -> list[int]:
        """Degree of every copy, multiplicities expanded: ``Irreps("2x0e+1o").ls == [0, 0, 1]``."""
        return [mi.ir.l for mi in self for _ in range(mi.mul)]

    @property
    def lmax(self) -> int:
        """Largest degree present (multiplicity > 0)."""
        ls = self.ls
        if not ls:
            raise ValueError(f"lmax of empty irreps {self!r} is undefined")
        return max(ls)

    def slices(self) -> list[slice]:
        """Slice of the features of each ``(mul, ir)`` term in a vector of size ``dim``."""
        out, i = [], 0
        for mi in self:
            out.append(slice(i, i + mi.dim))
            i += mi.dim
        return out

    # -- algebra ------------------------------------------------------------------------------
    def count(self, ir: Any) -> int:
        """Total multiplicity of the irrep ``ir``."""
        ir = Irrep(ir)
        return sum(mi.mul for mi in self if mi.ir == ir)

    def index(self, _value: Any, *args: Any) -> int:
        raise NotImplementedError("Irreps.index is not defined")

    def __contains__(self, ir: object) -> bool:
        ir = Irrep(ir)
        return any(mi.ir == ir for mi in self)

    def __getitem__(self, i: Any) -> Any:
        x = super().__getitem__(i)
        if isinstance(i, slice):
            return Irreps(x)
        return x

    def __add__(self, other: Any) -> Irreps:
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other: Any) -> Irreps:
        return Irreps(other) + self

    def __mul__(self, n: Any) -> Irreps:
        """``Irreps("0e+1o") * 2`` repeats the sum: ``1x0e+1x1o+1x0e+1x1o``."""
        if isinstance(n, Irreps):
            raise NotImplementedError(
                "Irreps * Irreps is not defined: use a tensor product for products of irreps"
            )
        if not _is_int(n):
            return NotImplemented
        return Irreps(tuple(self) * int(n))

    __rmul__ = __mul__

    def simplify(self) -> Irreps:
        """Merge neighbouring equal irreps and drop zero multiplicities (no sorting), like e3nn."""
        out: list[tuple[int, Irrep]] = []
        for mul, ir in self:
            if out and out[-1][1] == ir:
                out[-1] = (out[-1][0] + mul, ir)
            elif mul > 0:
                out.append((mul, ir))
        return Irreps(out)

    def remove_zero_multiplicities(self) -> Irreps:
        """Drop terms with multiplicity 0."""
        return Irreps([mi for mi in self if mi.mul > 0])

    def sort(self) -> _SortResult:
        """Stable sort of the terms by irrep ``(l, p)``.

        Returns
        -------
        (irreps, p, inv)
            The sorted irreps; ``p[i]`` is the new position of old term ``i``; ``inv[j]`` is the
            old position of new term ``j`` (e3nn's convention).
        """
        order = sorted(range(len(self)), key=lambda i: (self[i].ir, i))
        inv = tuple(order)
        p = [0] * len(inv)
        for new, old in enumerate(inv):
            p[old] = new
        return _SortResult(Irreps([self[i] for i in inv]), tuple(p), inv)

    def regroup(self) -> Irreps:
        """``sort().irreps.simplify()``."""
        return self.sort().irreps.simplify()

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> Irreps:
        """``1x0e + 1x1o + ... + 1x<lmax>`` with parity ``p**l`` (``p=-1``: true harmonics)."""
        if not _is_int(lmax) or lmax < 0:
            raise ValueError(f"lmax must be an integer >= 0, got {lmax!r}")
        if p not in (-1, 1):
            raise ValueError(f"p must be +1 or -1, got {p!r}")
        return Irreps([(1, (deg, p**deg)) for deg in range(int(lmax) + 1)])

    def __repr__(self) -> str:
        return "+".join(repr(mi) for mi in self)

    __str__ = __repr__

    # -- representation matrices ----------------------------------------------------------------
    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        r"""Block-diagonal representation matrix of orthogonal ``R`` (proper or improper).

        Parameters
        ----------
        R : torch.Tensor
            Orthogonal matrices, shape ``(..., 3, 3)``, floating point.

        Returns
        -------
        torch.Tensor
            Shape ``(..., dim, dim)``, dtype of ``R``; block ``i`` is ``p^k D^l(R')`` with
            ``R' = det(R) R`` and ``k = 1`` for improper ``R``.
        """
        from ._wigner import _wigner_blocks_from_matrix

        ls = sorted({mi.ir.l for mi in self if mi.mul > 0})
        blocks, det_sign = _wigner_blocks_from_matrix(ls, R, "R")
        return self._assemble(blocks, det_sign, R.shape[:-2], R.dtype, R.device)

    def D_from_angles(self, alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                      k: torch.Tensor | None = None) -> torch.Tensor:
        r"""Block-diagonal ``p^k D(alpha, beta, gamma)`` (e3nn's Y-X-Y Euler angles).

        Parameters
        ----------
        alpha, beta, gamma : torch.Tensor
            Broadcastable angles, shape ``(...)``, radians.
        k : torch.Tensor, optional
            Number of inversions, shape ``(...)``.

        Returns
        -------
        torch.Tensor
            Shape ``(..., dim, dim)``.
        """
        from ._rotation import angles_to_matrix

        R = angles_to_matrix(alpha, beta, gamma)
        if k is not None:
            k = torch.as_tensor(k, device=R.device)
            sign = torch.where(torch.remainder(k, 2) == 1, -1.0, 1.0).to(R.dtype)
            R = R * torch.broadcast_to(sign, R.shape[:-2])[..., None, None]
        return self.D_from_matrix(R)

    def _assemble(self, blocks: dict[int, torch.Tensor], det_sign: torch.Tensor | None,
                  batch: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        # Block diagonal built out of place (row blocks padded with zeros, then concatenated), so
        # autograd flows into R and no Python loop runs over the batch.
        rows = []
        offset = 0
        for mul, ir in self:
            if mul == 0:
                continue
            D = blocks[ir.l]
            if ir.p == -1 and det_sign is not None:
                D = D * det_sign[..., None, None]
            for _ in range(mul):
                rows.append(torch.nn.functional.pad(D, (offset, self.dim - offset - ir.dim)))
                offset += ir.dim
        if not rows:
            return torch.zeros(*batch, 0, 0, dtype=dtype, device=device)
        return torch.cat(rows, dim=-2)

    # -- e3nn interoperability ------------------------------------------------------------------
    def to_e3nn(self) -> Any:
        """The same irreps as an ``e3nn.o3.Irreps`` (imports e3nn lazily)."""
        from e3nn import o3  # lazy: tensormol does not depend on e3nn

        return o3.Irreps([(mi.mul, (mi.ir.l, mi.ir.p)) for mi in self])

    @classmethod
    def from_e3nn(cls, irreps: Any) -> Irreps:
        """Convert an ``e3nn.o3.Irreps`` (or anything ``Irreps`` accepts)."""
        return cls([(int(mul), (int(ir[0]), int(ir[1]))) for mul, ir in irreps])

    def randn(self, *size: int, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        """Standard normal features of shape ``size + (dim,)`` (a convenience for tests)."""
        return torch.randn(*size, self.dim, generator=generator, dtype=dtype, device=device)


IrrepsLike = Union[Irreps, Irrep, str, Iterable]  # noqa: UP007 (a runtime alias on py3.10)
