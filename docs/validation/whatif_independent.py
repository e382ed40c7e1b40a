"""What-if: a per-run independent discrepancy ρ·|e_i| beside the shared random slope τ·b·e_i.

    PYTHONPATH=. .venv/bin/python docs/validation/whatif_independent.py    # about 4 minutes, writes whatif_independent.csv

Hypothesis (session 22): on the IsoFLOP tables the backtests' runs beyond a cut scatter more than
the fitted noise, run by run, and the shared slope b (3 axes) can absorb that only by growing τ,
which would make Llama 3's intervals 16 × its hold-out RMSE. The alternative model adds an
independent term, δ_i = b·e_i + ρ·|e_i|·z_i (z_i ~ N(0, 1)), so the backtest likelihood of each cut
becomes r ~ N(0, diag(noise² + ρ²|e|²) + P Pᵀ + τ² E Eᵀ). τ and ρ are learned on a 60 × 60 grid
from the committed backtests (docs/validation/backtests/) with each table's leave-one-table-out
prior on ln τ, and the same lognormal prior on ln ρ (a what-if, not a distilled prior).

Re-scoring is approximate and needs no refit: each held-out run's law-only new-run predictive is
taken as Normal(prediction, (width90_law / 3.29)²) in loss units (from
discrepancy_holdout_<table>.csv), δ's sd is sqrt(τ² + ρ²) · distance · loss, and the 90 % interval
is that mixture's over the (τ, ρ) posterior. The "shared" rows (ρ = 0) are the shipped model
under the same approximation: they must reproduce the table in docs/validation.md.
"""
import json, glob, os, sys
import numpy as np, pandas as pd
from scipy import stats
V = os.path.dirname(os.path.abspath(__file__))
loto = json.load(open(f'{V}/discrepancy_prior_loto.json'))
RHO = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 60)])
TAU = np.geomspace(1e-4, 1.0, 60)

def loglik(table, tau, rho):
    pcs = [c for c in table.columns if str(c).startswith('pc_')]
    ax = [c for c in table.columns if c.startswith('e_')]
    total = 0.0
    for _, part in table.groupby([k for k in ('axis', 'cut', 'group') if k in table]):
        r = part.residual.to_numpy(float)
        dist2 = (part[ax].to_numpy(float) ** 2).sum(axis=1)
        d = part.noise_sd.to_numpy(float) ** 2 + rho ** 2 * dist2
        p = np.nan_to_num(part[pcs].to_numpy(float))
        e = part[ax].to_numpy(float)
        u = np.concatenate([p, tau * e], axis=1)
        du = u / d[:, None]
        m = np.eye(u.shape[1]) + u.T @ du
        utr = du.T @ r
        total += -0.5 * (len(r) * np.log(2 * np.pi) + np.log(d).sum() + np.linalg.slogdet(m)[1]
                         + float(r @ (r / d) - utr @ np.linalg.solve(m, utr)))
    return total

rows = []
for f in sorted(glob.glob(f'{V}/backtests/*.csv')):
    name = os.path.basename(f)[:-4]
    if name not in loto: continue
    bt = pd.read_csv(f)
    ho = pd.read_csv(f'{V}/discrepancy_holdout_{name}.csv')
    pr = loto[name]
    ltau = np.log(TAU)
    logprior_tau = stats.norm.logpdf(ltau, pr['mu'], pr['sigma'])
    for model in ('shared', 'shared+indep'):
        rhos = RHO[:1] if model == 'shared' else RHO[1:]
        # prior on ln rho: the same population prior as tau's (a what-if; both are "per-decade error")
        lp_rho = np.zeros(len(rhos)) if model == 'shared' else stats.norm.logpdf(np.log(rhos), pr['mu'], pr['sigma'])
        L = np.array([[loglik(bt, t, r) for r in rhos] for t in TAU]) + logprior_tau[:, None] + lp_rho[None, :]
        w = np.exp(L - L.max()); w /= w.sum()
        # predictive at each held-out run: mixture over the grid of Normal(0, s_law^2 + (tau^2+rho^2) dist^2 L^2)
        s_law = ho.width90_law.to_numpy() / (2 * 1.6449)
        err = (ho.loss - ho.predicted).to_numpy()
        var_d = (TAU[:, None] ** 2 + rhos[None, :] ** 2)
        lo = []; hi = []; cov = []; width = []
        for i in range(len(ho)):
            sd = np.sqrt(s_law[i] ** 2 + var_d * (ho.distance.iloc[i] * ho.loss.iloc[i]) ** 2)
            # mixture cdf quantiles by bisection
            def cdf(x): return float((w * stats.norm.cdf(x / sd)).sum())
            qs = []
            for q in (0.05, 0.95):
                a, b = -10 * sd.max(), 10 * sd.max()
                for _ in range(60):
                    mid = (a + b) / 2
                    a, b = (mid, b) if cdf(mid) < q else (a, mid)
                qs.append((a + b) / 2)
            cov.append(qs[0] <= err[i] <= qs[1]); width.append(qs[1] - qs[0])
        rmse = float(np.sqrt(np.mean(err ** 2)))
        ti = w.sum(axis=1); ri = w.sum(axis=0)
        rows.append(dict(table=name, model=model, n=len(ho), cov90=np.mean(cov), w_rmse=np.median(width) / rmse,
                         tau=float(np.exp((ti * ltau).sum())), rho=float(np.exp((ri * np.log(np.where(rhos > 0, rhos, 1e-12))).sum())) if model != 'shared' else 0.0,
                         shipped_cov=ho.in90.mean(), shipped_w=ho.width90.median() / rmse))
        print(rows[-1], flush=True)
t = pd.DataFrame(rows)
t.to_csv(f'{V}/whatif_independent.csv', index=False)
print(t.round(3).to_string())
for m, g in t.groupby('model'):
    pooled = (g.cov90 * g.n).sum() / g.n.sum()
    print(m, 'pooled', round(pooled, 3), 'within 80-97:', int(g.cov90.between(0.8, 0.97).sum()), 'sharp:', int((g.w_rmse <= 4).sum()))
