"""The architecture model behind budgets: parameters, FLOPs, KV cache and memory of a shape.

One explicit object, :class:`ModelShape`, turns an active-parameter count into a concrete
transformer (``d_model``, blocks) and from there into total parameters, KV-cache size and bytes.
Defaults are the joint law's conventions (Ludziejewski et al. 2025, App. A; LAWS.md §1.4 and
"Conventions" 2-4):

* ``N_act   = 2·d·V + (4 + 3·ffn_mult)·n_blocks·d²``   (embedding + unembedding counted)
* ``N_total = 2·d·V + (4 + 3·ffn_mult·E)·n_blocks·d²`` (SwiGLU expert of hidden ffn_mult·d: 9·d²)
* ``n_blocks = d / d_per_block`` (64 in the paper) unless fixed
* KV cache: ``2·T·n_blocks·d·kv_fraction`` values (multi-head attention: kv_fraction 1; a smaller
  fraction for GQA/MQA is a bayesmoe extension, not in the paper)
* memory: ``bytes_per_value·(N_total + KV)``, bf16 = 2 bytes, 1 GB = 1e9 bytes
* FLOPs: training 6·N_act per token, inference 2·N_act per token; routing neglected (E ≤ 32, G = 1).

Every function is vectorised (numpy or jax arrays broadcast) and solves for ``d_model``
continuously, as the paper does.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["ModelShape", "GB"]

GB = 1e9  # bytes, as in the paper's Figure 4


@dataclass(frozen=True)
class ModelShape:
    """A transformer family parametrised by its width; see the module docstring for the formulas.

    Parameters
    ----------
    vocab : int
        Vocabulary size (50,257: GPT-2's tokenizer).
    d_per_block : float
        ``d_model / n_blocks`` when ``n_blocks`` is None (64 in the joint-law paper).
    n_blocks : float, optional
        A fixed depth instead (e.g. 2 for ``reference_runs``).
    ffn_mult : float
        Expert hidden size as a multiple of ``d_model`` (SwiGLU with 3·d: 9·d² per expert).
    attn_params : float
        Attention parameters per block in units of d² (4).
    bytes_per_value : float
        Bytes per weight and per cached value (bf16: 2).
    kv_fraction : float
        KV heads / query heads (1 for multi-head attention as in the paper).
    """

    vocab: int = 50257
    d_per_block: float = 64.0
    n_blocks: float | None = None
    ffn_mult: float = 3.0
    attn_params: float = 4.0
    bytes_per_value: float = 2.0
    kv_fraction: float = 1.0

    # ------------------------------------------------------------------ width <-> counts
    def blocks(self, d):
        return d / self.d_per_block if self.n_blocks is None else jnp.full_like(d, self.n_blocks)

    def n_active_of_d(self, d):
        return 2 * d * self.vocab + (self.attn_params + 3 * self.ffn_mult) * self.blocks(d) * d**2

    def n_total_of_d(self, d, experts):
        return 2 * d * self.vocab + (self.attn_params + 3 * self.ffn_mult * experts) * self.blocks(d) * d**2

    def kv_values_of_d(self, d, context_tokens):
        return 2 * context_tokens * self.blocks(d) * d * self.kv_fraction

    def memory_bytes_of_d(self, d, experts, context_tokens=0.0):
        return self.bytes_per_value * (self.n_total_of_d(d, experts) + self.kv_values_of_d(d, context_tokens))

    def d_model(self, n_active):
        """Width whose active count is ``n_active`` (continuous; monotone, solved by bisection)."""
        n = jnp.asarray(n_active)
        return _bisect_increasing(self.n_active_of_d, n)

    # ------------------------------------------------------------------ counts from N_act
    def n_total(self, n_active, experts):
        """Total parameters of the E-expert model with ``n_active`` active parameters."""
        return self.n_total_of_d(self.d_model(n_active), experts)

    def kv_values(self, n_active, context_tokens):
        return self.kv_values_of_d(self.d_model(n_active), context_tokens)

    def memory_bytes(self, n_active, experts, context_tokens=0.0):
        """Bytes of weights plus a KV cache of ``context_tokens`` tokens."""
        return self.memory_bytes_of_d(self.d_model(n_active), experts, context_tokens)

    def max_n_active(self, memory_bytes, experts, context_tokens=0.0):
        """Largest ``n_active`` whose weights + KV cache fit in ``memory_bytes`` (per expert count)."""
        m, e = jnp.broadcast_arrays(jnp.asarray(memory_bytes, dtype=float), jnp.asarray(experts, dtype=float))
        d = _bisect_increasing(lambda d: self.memory_bytes_of_d(d, e, context_tokens), m)
        return self.n_active_of_d(d)

    @staticmethod
    def train_flops_per_token(n_active):
        return 6.0 * jnp.asarray(n_active)

    @staticmethod
    def inference_flops_per_token(n_active):
        return 2.0 * jnp.asarray(n_active)


def _bisect_increasing(f, target, lo=1e-3, hi=1e7, iters=48):
    """Solve ``f(x) = target`` for an increasing ``f`` on [lo, hi], in log space, elementwise.

    48 halvings of the 23.0-wide log interval leave 8e-14: float64 resolution (callers that
    report sizes run under ``jax.enable_x64``)."""
    dtype = jnp.result_type(float)  # float64 under enable_x64, else float32
    target = jnp.asarray(target, dtype=dtype)

    def step(_, bounds):
        log_lo, log_hi = bounds
        mid = 0.5 * (log_lo + log_hi)
        below = f(jnp.exp(mid)) < target
        return jnp.where(below, mid, log_lo), jnp.where(below, log_hi, mid)

    start = (jnp.full(target.shape, jnp.log(lo), dtype), jnp.full(target.shape, jnp.log(hi), dtype))
    log_lo, log_hi = jax.lax.fori_loop(0, iters, step, start)
    return jnp.exp(0.5 * (log_lo + log_hi))
