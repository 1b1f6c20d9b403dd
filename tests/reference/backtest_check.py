"""Recomputes a backtest's positions, realised PnL and fees from its journal with Python decimal.

Usage: python backtest_check.py JOURNAL.jsonl

Reads the `filled` events in order and applies them with the average-cost rule cryptoflow
documents (a buy adds qty at its price to the cost basis; a sell realises
(price - cost_basis / qty) * sold qty; every fee is realised when paid). Prints one JSON object:
{"fills", "realised", "fees", "positions": {symbol: qty}} with exact decimal strings.
"""
import json
import sys
from decimal import Decimal, getcontext

getcontext().prec = 60


def main():
    qty, cost = {}, {}
    realised = Decimal(0)
    fees = Decimal(0)
    fills = 0
    seen = set()
    with open(sys.argv[1]) as f:
        for line in f:
            e = json.loads(line)
            if e["event"] != "filled":
                continue
            fill = e["fill"]
            key = (fill["intent_id"], fill["fill_id"])
            if key in seen:
                continue
            seen.add(key)
            fills += 1
            s = fill["symbol"]
            q, p, fee = Decimal(fill["qty"]), Decimal(fill["price"]), Decimal(fill["fee"])
            held, basis = qty.get(s, Decimal(0)), cost.get(s, Decimal(0))
            if fill["side"] == "buy":
                qty[s], cost[s] = held + q, basis + q * p
            else:
                if q > held:
                    raise SystemExit(f"oversell of {s}: {q} > {held}")
                part = basis * q / held
                realised += q * p - part
                qty[s], cost[s] = held - q, basis - part
            realised -= fee
            fees += fee
    print(json.dumps({
        "fills": fills,
        "realised": str(realised),
        "fees": str(fees),
        "positions": {s: str(v) for s, v in sorted(qty.items())},
    }))


if __name__ == "__main__":
    main()
