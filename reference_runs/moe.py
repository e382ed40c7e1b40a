"""A small decoder-only transformer whose FFN is a token-choice top-k Mixture-of-Experts layer.

Shape conventions follow ``LAWS.md`` §"Conventions" (the joint MoE law, arXiv 2502.05172, App. A):

* attention is 4·d² per block (fused QKV + output projection, no biases);
* every FFN is a SwiGLU with hidden size ``d_ff = ffn_mult·d_model`` (default 3·d, so 9·d² per
  block for the dense model and per expert at G = 1);
* granularity G (arXiv 2402.07871) splits each expert into G experts of width ``d_ff / G`` and
  routes every token to ``top_k = G`` of the ``E·G`` experts, so active parameters do not change
  with G;
* the token embedding and the unembedding are separate (untied) matrices, 2·d·V together;
  positions are rotary (no parameters).

E = 1, G = 1 is exactly the dense model: the router sees one expert whose gate is 1.

Experts are computed by sorting the (token, expert) assignments by expert and running two grouped
matmuls (``torch.nn.functional.grouped_mm`` where it runs, else ``split`` + ``unbind``), so each
token meets only its own k experts and no Python loop indexes a stacked weight per expert.
``expert_impl="loop"`` is that slow pattern, kept only as a reference for tests and the benchmark.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

GATE_NORMS = ("scaled", "renorm", "softmax")
EXPERT_IMPLS = ("auto", "grouped", "split", "loop")


@dataclass(frozen=True)
class MoEConfig:
    """Architecture of one reference model.

    Parameters
    ----------
    d_model, n_blocks : int
        Width and depth.
    n_heads : int
        Attention heads; 0 means ``max(1, d_model // 32)``.
    vocab_size : int
        256 for byte-level tokens.
    seq_len : int
        Context length in tokens.
    experts : int
        Expansion rate E (total FFN parameters / dense FFN parameters); 1 is dense.
    granularity : int
        G: experts have width ``d_ff / G`` and each token picks ``G`` of the ``E·G`` experts.
    ffn_mult : float
        SwiGLU hidden size in units of ``d_model`` (3 gives the 9·d² of the joint law).
    gate_norm : str
        How the top-k router probabilities weight the expert outputs:
        ``"scaled"``: raw softmax probabilities × (E·G)/k, i.e. × E (the default; ≈ 1 per token);
        ``"renorm"``: top-k probabilities renormalised to sum to 1;
        ``"softmax"``: raw softmax probabilities.
    aux_loss_coef : float
        Weight of the Switch load-balancing loss (Fedus et al. 2021, Eq. 4).
    expert_impl : str
        ``"auto"`` (grouped_mm where it runs, else split), ``"grouped"``, ``"split"`` or ``"loop"``
        (slow reference).
    init_std : float
        GPT-2 initialisation: N(0, init_std²), residual projections scaled by 1/sqrt(2·n_blocks).
    """

    d_model: int = 64
    n_blocks: int = 2
    n_heads: int = 0
    vocab_size: int = 256
    seq_len: int = 128
    experts: int = 1
    granularity: int = 1
    ffn_mult: float = 3.0
    gate_norm: str = "scaled"
    aux_loss_coef: float = 0.01
    expert_impl: str = "auto"
    init_std: float = 0.02

    def __post_init__(self):
        problems = []
        if self.experts < 1 or self.granularity < 1:
            problems.append(f"experts and granularity must be >= 1, got {self.experts}, "
                            f"{self.granularity}")
        if self.d_ff % self.granularity:
            problems.append(f"d_ff = {self.d_ff} must be divisible by granularity "
                            f"{self.granularity}")
        if self.d_model % self.heads:
            problems.append(f"d_model {self.d_model} must be divisible by n_heads {self.heads}")
        if (self.d_model // self.heads) % 2:
            problems.append("head dimension must be even for rotary positions")
        if self.gate_norm not in GATE_NORMS:
            problems.append(f"gate_norm must be one of {GATE_NORMS}, got {self.gate_norm!r}")
        if self.expert_impl not in EXPERT_IMPLS:
            problems.append(f"expert_impl must be one of {EXPERT_IMPLS}, got "
                            f"{self.expert_impl!r}")
        if problems:
            raise ValueError("invalid MoEConfig: " + "; ".join(problems))

    @property
    def heads(self) -> int:
        return self.n_heads or max(1, self.d_model // 32)

    @property
    def d_ff(self) -> int:
        """Dense SwiGLU hidden size."""
        return int(round(self.ffn_mult * self.d_model))

    @property
    def n_routed(self) -> int:
        """Number of expert modules per layer, E·G."""
        return self.experts * self.granularity

    @property
    def top_k(self) -> int:
        return self.granularity

    @property
    def d_expert(self) -> int:
        return self.d_ff // self.granularity

    @property
    def is_dense(self) -> bool:
        return self.n_routed == 1

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- counting
def count_params(cfg: MoEConfig) -> dict[str, int]:
    """Exact parameter counts by the conventions of LAWS.md §"Conventions".

    Returns a dict with

    * ``n_active``: active parameters *including* the embedding and unembedding (2·d·V),
      excluding router and norms: the joint law's N_act (2502.05172, Eq. 10);
    * ``n_active_nonemb``: the same without embeddings (the joint law's LR rule; Krajewski's N_act);
    * ``n_total`` / ``n_total_nonemb``: all experts counted, with / without embeddings
      (``n_total_nonemb`` is the fine-grained law's N, 2402.07871 §5, for this expert shape);
    * ``router_params``: d·E·G per block (0 for the dense model, which has no router);
    * ``norm_params``: RMSNorm gains, (2·n_blocks + 1)·d;
    * ``embedding_params``: 2·d·V;
    * ``n_params_all``: every trainable tensor element (n_total + router + norms).
    """
    d, nb, V = cfg.d_model, cfg.n_blocks, cfg.vocab_size
    emb = 2 * d * V
    attn = 4 * d * d
    expert = 3 * d * cfg.d_expert  # SwiGLU: gate, up, down
    ffn_active = cfg.top_k * expert
    ffn_total = cfg.n_routed * expert
    router = 0 if cfg.is_dense else d * cfg.n_routed
    norms = (2 * nb + 1) * d
    out = {
        "n_active": emb + nb * (attn + ffn_active),
        "n_active_nonemb": nb * (attn + ffn_active),
        "n_total": emb + nb * (attn + ffn_total),
        "n_total_nonemb": nb * (attn + ffn_total),
        "router_params": nb * router,
        "norm_params": norms,
        "embedding_params": emb,
    }
    out["n_params_all"] = out["n_total"] + out["router_params"] + norms
    return out


def count_flops_per_token(cfg: MoEConfig) -> dict[str, float]:
    """Training FLOPs per token, in the conventions each law uses.

    * ``flops_per_token``: 6·N_act with N_act including embeddings (joint law, LAWS.md §1.4);
    * ``flops_per_token_nonemb``: 6·N_act without embeddings (Kaplan/Chinchilla style);
    * ``router_flops_per_token``: 14·d·E·G·n_blocks (Krajewski et al. Eq. 10, c_r = 14);
    * ``attn_flops_per_token``: 6·n_blocks·seq_len·d, the attention-context term (Kaplan et al.
      2020, Table 1, × 3 for training; not halved for the causal mask).
    """
    c = count_params(cfg)
    return {
        "flops_per_token": 6.0 * c["n_active"],
        "flops_per_token_nonemb": 6.0 * c["n_active_nonemb"],
        "router_flops_per_token": 0.0 if cfg.is_dense else
        14.0 * cfg.d_model * cfg.n_routed * cfg.n_blocks,
        "attn_flops_per_token": 6.0 * cfg.n_blocks * cfg.seq_len * cfg.d_model,
    }


# --------------------------------------------------------------------------- expert matmuls
_GROUPED_OK: dict[tuple[str, torch.dtype], bool] = {}


def grouped_mm_available(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether ``F.grouped_mm`` runs forward and backward here (probed once per device/dtype)."""
    device = torch.device(device)
    key = (device.type, dtype)
    if key not in _GROUPED_OK:
        ok = hasattr(F, "grouped_mm")
        if ok:
            try:
                x = torch.randn(24, 16, device=device, dtype=dtype, requires_grad=True)
                w = torch.randn(3, 16, 16, device=device, dtype=dtype, requires_grad=True)
                offs = torch.tensor([8, 8, 24], device=device, dtype=torch.int32)
                y = F.grouped_mm(x, w, offs=offs)
                y.backward(torch.ones_like(y))
                ref = torch.cat([x[:8] @ w[0], x[8:] @ w[2]])
                ok = bool(torch.allclose(y, ref, atol=1e-2, rtol=1e-2))
            except (RuntimeError, NotImplementedError, TypeError, ValueError):
                ok = False
        _GROUPED_OK[key] = ok
    return _GROUPED_OK[key]


def resolve_expert_impl(cfg: MoEConfig, device: torch.device | str,
                        dtype: torch.dtype = torch.float32) -> str:
    """What ``expert_impl="auto"`` runs: ``grouped`` where grouped_mm runs and every row stride
    is a multiple of 16 bytes (grouped_mm's requirement, e.g. d_expert = 18 fails in float32),
    else ``split``; ``dense`` for E·G = 1, which has no MoE layer."""
    if cfg.expert_impl != "auto":
        return cfg.expert_impl
    if cfg.is_dense:
        return "dense"
    itemsize = torch.empty((), dtype=dtype).element_size()
    aligned = all(n * itemsize % 16 == 0 for n in (cfg.d_model, cfg.d_expert))
    return "grouped" if aligned and grouped_mm_available(device, dtype) else "split"


def _contiguous_grad(g: torch.Tensor) -> torch.Tensor:
    return g.contiguous()  # grouped_mm's CPU backward rejects expanded (stride-0) gradients


def expert_matmul(x: torch.Tensor, w: torch.Tensor, counts: torch.Tensor, impl: str
                  ) -> torch.Tensor:
    """Rows of ``x`` sorted by expert, times that expert's ``w[e]``; ``counts[e]`` rows each."""
    if impl == "grouped":
        offs = torch.cumsum(counts, 0).to(torch.int32)
        y = F.grouped_mm(x, w, offs=offs)
        if y.requires_grad:
            y.register_hook(_contiguous_grad)
        return y
    # split + unbind: one matmul per expert on views, no gather of the stacked weight
    parts = torch.split(x, counts.tolist())
    return torch.cat([p @ we for p, we in zip(parts, w.unbind(0))])


# --------------------------------------------------------------------------- modules
class DenseMLP(nn.Module):
    """SwiGLU FFN: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d_model: int, d_hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_hidden, bias=False)
        self.w3 = nn.Linear(d_model, d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.w2(F.silu(self.w1(x)) * self.w3(x)), x.new_zeros(())


class MoELayer(nn.Module):
    """Token-choice top-k MoE of SwiGLU experts with a Switch load-balancing loss.

    Expert weights are stacked: ``w13[e]`` is (d, 2·d_expert) (gate | up), ``w2[e]`` is
    (d_expert, d).
    """

    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        n, d, h = cfg.n_routed, cfg.d_model, cfg.d_expert
        self.router = nn.Linear(d, n, bias=False)
        self.w13 = nn.Parameter(torch.empty(n, d, 2 * h))
        self.w2 = nn.Parameter(torch.empty(n, h, d))
        nn.init.normal_(self.w13, std=cfg.init_std)
        nn.init.normal_(self.w2, std=cfg.init_std)
        self.impl = cfg.expert_impl

    def _resolved_impl(self, x: torch.Tensor) -> str:
        if self.impl != "auto":
            return self.impl
        return resolve_expert_impl(self.cfg, x.device, x.dtype)

    def _gates(self, top_p: torch.Tensor) -> torch.Tensor:
        norm = self.cfg.gate_norm
        if norm == "renorm":
            return top_p / top_p.sum(-1, keepdim=True)
        if norm == "scaled":
            return top_p * (self.cfg.n_routed / self.cfg.top_k)
        return top_p

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        n, k, h = self.cfg.n_routed, self.cfg.top_k, self.cfg.d_expert
        probs = self.router(x).softmax(-1)
        top_p, top_i = probs.topk(k, dim=-1, sorted=False)
        gates = self._gates(top_p)
        flat_e = top_i.reshape(-1)
        counts = torch.bincount(flat_e, minlength=n)
        if n > 1:
            # Switch loss: n · Σ_e (share of assignments to e) · (mean router probability of e)
            aux = n * torch.sum(counts.to(probs.dtype) / flat_e.numel() * probs.mean(0))
        else:
            aux = x.new_zeros(())
        impl = self._resolved_impl(x)
        if impl == "loop":
            return self._forward_loop(x, top_i, gates).reshape(shape), aux
        order = torch.argsort(flat_e, stable=True)
        token = order // k
        xs = x.index_select(0, token)
        hid = expert_matmul(xs, self.w13, counts, impl)
        act = F.silu(hid[:, :h]) * hid[:, h:]
        ys = expert_matmul(act, self.w2, counts, impl)
        ys = ys * gates.reshape(-1).index_select(0, order).unsqueeze(1)
        out = torch.zeros_like(x).index_add_(0, token, ys)
        return out.reshape(shape), aux

    def _forward_loop(self, x, top_i, gates):
        """Slow reference: a Python loop that indexes the stacked weights per expert."""
        h = self.cfg.d_expert
        out = torch.zeros_like(x)
        for e in range(self.cfg.n_routed):
            tok, slot = torch.nonzero(top_i == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            hid = x[tok] @ self.w13[e]
            y = (F.silu(hid[:, :h]) * hid[:, h:]) @ self.w2[e]
            out = out.index_add(0, tok, y * gates[tok, slot].unsqueeze(1))
        return out


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions, 4·d² parameters."""

    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.n_heads = cfg.heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        q, k = _rotary(q, cos, sin), _rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.attn = Attention(cfg)
        self.norm2 = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.ffn = DenseMLP(cfg.d_model, cfg.d_ff) if cfg.is_dense else MoELayer(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        y, aux = self.ffn(self.norm2(x))
        return x + y, aux


class MoETransformer(nn.Module):
    """Decoder-only byte-level language model; ``forward`` returns (logits, ce_loss, aux_loss)."""

    def __init__(self, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_blocks))
        self.norm = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        hd = cfg.d_model // cfg.heads
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(cfg.seq_len, dtype=torch.float32), inv)
        self.register_buffer("cos", ang.cos(), persistent=False)
        self.register_buffer("sin", ang.sin(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 initialisation: N(0, 0.02²); residual outputs N(0, (0.02/sqrt(2·n_blocks))²)."""
        std = self.cfg.init_std
        resid = std / math.sqrt(2 * self.cfg.n_blocks)
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.ones_(p)  # RMSNorm gains
            elif name.endswith(("attn.proj.weight", "ffn.w2.weight", "ffn.w2")):
                nn.init.normal_(p, std=resid)
            else:
                nn.init.normal_(p, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        t = idx.shape[1]
        x = self.embed(idx)
        cos, sin = self.cos[:t], self.sin[:t]
        aux = x.new_zeros(())
        for block in self.blocks:
            x, a = block(x, cos, sin)
            aux = aux + a
        logits = self.unembed(self.norm(x))
        ce = None
        if targets is not None:
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, ce, aux / len(self.blocks)


def dense_twin(moe_layer: MoELayer) -> DenseMLP:
    """The dense SwiGLU with the weights of a one-expert, top-1 MoE layer (for tests)."""
    cfg = moe_layer.cfg
    if cfg.n_routed != 1:
        raise ValueError(f"dense_twin needs E·G = 1, got {cfg.n_routed}")
    h = cfg.d_expert
    mlp = DenseMLP(cfg.d_model, h)
    with torch.no_grad():
        mlp.w1.weight.copy_(moe_layer.w13[0, :, :h].T)
        mlp.w3.weight.copy_(moe_layer.w13[0, :, h:].T)
        mlp.w2.weight.copy_(moe_layer.w2[0].T)
    return mlp
