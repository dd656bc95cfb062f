"""tensormol: equivariant molecular machine learning on one shared O(3) kernel.

Importing tensormol has no side effects: no global dtype, no thread settings, no compiled code
loaded until a fast op asks for it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
