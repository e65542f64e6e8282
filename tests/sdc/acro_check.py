#!/usr/bin/env python3
"""ACRO (the `acro` package, SACRO's output checker) as the oracle of Enclave's disclosure control.

Reads one JSON document on stdin: {"rows": [[dim1, dim2, value], ...], "aggfunc": "sum"|"mean"}
and prints, for every cell of the cross-tabulation dim1 × dim2 of value, ACRO's outcome with its
default rules (threshold 10, N-K with N=2 and K=90 %, p % with p=10 %): {"dim1|dim2": "ok" or
the failed checks, ...}, and each cell's aggregate.
"""
import json
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

import acro  # noqa: E402
import pandas as pd  # noqa: E402


def main() -> int:
    doc = json.load(sys.stdin)
    df = pd.DataFrame(doc["rows"], columns=["a", "b", "v"])
    session = acro.ACRO(suppress=False)
    table = session.crosstab(df.a, df.b, values=df.v, aggfunc=doc["aggfunc"])
    outcome = session.results.get_index(0).outcome
    cells = {}
    for a in outcome.index:
        for b in outcome.columns:
            present = ((df.a == a) & (df.b == b)).any()
            if not present:
                continue
            cells[f"{a}|{b}"] = {
                "outcome": str(outcome.loc[a, b]).strip(),
                "value": float(table.loc[a, b]),
            }
    json.dump(cells, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
