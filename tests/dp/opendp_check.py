"""OpenDP as the oracle for Enclave's differential privacy (run by tests/invisibility.rs).

Reads a JSON document from stdin — Enclave's calibration and samples — and checks:
  * Laplace: the epsilon OpenDP's make_laplace gives for Enclave's scale and sensitivity
    equals Enclave's epsilon;
  * Gaussian: OpenDP's rho for Enclave's sigma equals Enclave's rho, and Enclave's
    conversion to (epsilon, delta) is never tighter than OpenDP's (it must not under-report);
  * samples: Enclave's discrete Laplace and discrete Gaussian draws and OpenDP's draws at the
    same scale come from one distribution (two-sample Kolmogorov-Smirnov at alpha = 1e-4), and
    Enclave's draws differ from a distribution of twice the scale (the test can fail).
Exits non-zero with the reason on any mismatch.
"""
import json
import math
import sys

import opendp.prelude as dp

dp.enable_features("contrib")


def ks(a, b):
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        while i < len(a) and a[i] <= x:
            i += 1
        while j < len(b) and b[j] <= x:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return d


def critical(n, m, alpha):
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def main():
    doc = json.load(sys.stdin)
    space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
    fails = []
    for c in doc["laplace"]:
        m = dp.m.make_laplace(*space, scale=c["scale"])
        eps = m.map(int(c["sensitivity"]))
        if abs(eps - c["epsilon"]) > 1e-9 * max(1.0, eps):
            fails.append(f"laplace scale {c['scale']}: OpenDP eps {eps}, Enclave {c['epsilon']}")
    for c in doc["gaussian"]:
        m = dp.m.make_gaussian(*space, scale=c["sigma"])
        rho = m.map(int(c["sensitivity"]))
        if abs(rho - c["rho"]) > 1e-9 * max(1.0, rho):
            fails.append(f"gaussian sigma {c['sigma']}: OpenDP rho {rho}, Enclave {c['rho']}")
        eps = dp.c.make_zCDP_to_approxDP(m).map(int(c["sensitivity"])).epsilon(c["delta"])
        if c["epsilon"] < eps * (1 - 1e-9):
            fails.append(f"gaussian: Enclave reports eps {c['epsilon']} < OpenDP's {eps} at delta {c['delta']}")
    for s in doc["samples"]:
        ours = s["values"]
        n = len(ours)
        if s["mechanism"] == "laplace":
            make = lambda scale: dp.m.make_laplace(*space, scale=scale)
        else:
            make = lambda scale: dp.m.make_gaussian(*space, scale=scale)
        same = make(s["scale"])
        theirs = [same(0) for _ in range(n)]
        d = ks(ours, theirs)
        if d > critical(n, n, 1e-4):
            fails.append(f"{s['mechanism']} scale {s['scale']}: KS distance {d:.4f} to OpenDP's draws")
        wider = make(2 * s["scale"])
        other = [wider(0) for _ in range(n)]
        if ks(ours, other) <= critical(n, n, 1e-4):
            fails.append(f"{s['mechanism']}: the test cannot tell scale {s['scale']} from twice that")
    if fails:
        print("\n".join(fails))
        sys.exit(1)
    print("opendp agrees:", len(doc["laplace"]), "laplace,", len(doc["gaussian"]), "gaussian,",
          len(doc["samples"]), "sample sets")


main()
