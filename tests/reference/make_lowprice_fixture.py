#!/usr/bin/env python3
"""Writes tests/fixtures/binance/lowprice.jsonl: Binance `<symbol>@trade` payloads of pairs priced
far from 1, where a fixed number of decimal places loses digits:

- SHIBUSDT around 7.1e-6 (tick 1e-8) with quantities up to 1e10;
- PEPEUSDT around 9.8e-7 (tick 1e-8, sub-micro) with quantities up to 1e11;
- XRPETH around 2.1e-4 (tick 1e-7, quote ETH: the 40 ETH whale override applies);
- VETBTC around 4.3e-7 (tick 1e-10 here, quote BTC);
- BTCUSDT around 9.7e4, for scale on the other side.

Deterministic (seeded). Usage:
    python3 tests/reference/make_lowprice_fixture.py > tests/fixtures/binance/lowprice.jsonl
    python3 tests/reference/pipeline_reference.py tests/fixtures/binance/lowprice.jsonl \
        > tests/fixtures/binance/lowprice.expected.json
"""
import json
import math
import random
from decimal import Decimal

PAIRS = [
    # symbol, start price, tick, qty low, qty high, qty decimals
    ("SHIBUSDT", Decimal("0.00000712"), Decimal("0.00000001"), 1e5, 1e10, 0),
    ("PEPEUSDT", Decimal("0.00000098"), Decimal("0.00000001"), 1e6, 1e11, 0),
    ("XRPETH", Decimal("0.0002123"), Decimal("0.0000001"), 1, 5e5, 1),
    ("VETBTC", Decimal("0.0000004321"), Decimal("0.0000000001"), 1, 5e7, 2),
    ("BTCUSDT", Decimal("97123.45"), Decimal("0.01"), 1e-4, 3, 5),
]


def main():
    rng = random.Random(20261129)
    ts = 1764400000000
    ids = {p[0]: 0 for p in PAIRS}
    prices = {p[0]: p[1] for p in PAIRS}
    for _ in range(2500):
        sym, _, tick, lo, hi, qd = rng.choice(PAIRS)
        ts += rng.randint(1, 2000)
        ids[sym] += 1
        step = rng.choice([-2, -1, 0, 0, 1, 2])
        price = max(tick, prices[sym] + step * tick)
        prices[sym] = price
        unit = Decimal(1).scaleb(-qd)
        qty = Decimal(repr(10 ** rng.uniform(math.log10(lo), math.log10(hi)))).quantize(unit)
        qty = max(qty, unit)
        # Binance writes prices and quantities as plain decimals with 8 places.
        places = Decimal(1).scaleb(-max(8, -tick.as_tuple().exponent))
        msg = {"e": "trade", "E": ts + 1, "s": sym, "t": ids[sym],
               "p": format(price.quantize(places), "f"), "q": format(qty.quantize(places), "f"),
               "T": ts, "m": rng.random() < 0.5, "M": True}
        print(json.dumps(msg, separators=(",", ":")))


if __name__ == "__main__":
    main()
