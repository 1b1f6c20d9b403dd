"""Golden values of the technical indicators, computed by TA-Lib (and exact Python fractions /
decimal for the three TA-Lib lacks) on generated candles, at several price scales.

    PY=$(bash scripts/reference-venv.sh)
    $PY tests/reference/indicators_reference.py tests/fixtures/indicators

writes, for every series, its candles (the input) and golden values (one row per candle; empty =
no value yet):

- candles.csv / golden.csv: 400 candles around 100 (a random walk with calm and wild stretches,
  unchanged closes, zero-range bars and zero volumes);
- candles_<scale>.csv / golden_<scale>.csv for scale p1e-8, p1e-6, p1 and p1e5: the same candles
  with every price multiplied by 1e-10, 1e-8, 1e-2 and 1e3 (prices around 1e-8, 1e-6, 1 and 1e5)
  and the volumes by 2e9, 1e8, 1e3 and 1e-2 (up to 1e12 at the smallest prices), exactly in
  decimal;
- candles_shib.csv / golden_shib.csv: 400 SHIB/USDT-like candles, prices ≈ 7e-6 on a 1e-8 tick
  with moves of a few ticks, a flat start and a flat stretch, volumes ≈ 1e11;
- candles_regimes.csv / golden_regimes.csv: 1,500 candles through price regimes (≈ 1, a jump to
  ≈ 1e4 with tiny moves, a one-candle spike, a flat stretch, a fall to ≈ 1e-3), long enough for
  every periodic recomputation (WMA every 160 values, Bollinger every 640) and for each of the
  Bollinger deviation's re-centering tests.

Volatility and z-score (no TA-Lib function) are computed exactly from the same f64 closes and
log returns (Python fractions and 60-digit decimals), then rounded: the z-score of a window of
equal closes is 0.
"""
import csv
import math
import random
import sys
from decimal import Decimal, getcontext
from fractions import Fraction
from pathlib import Path

import numpy as np
import talib

getcontext().prec = 60
N = 400


def candles():
    rng = random.Random(20261122)
    price = Decimal("100.00")
    rows = []
    for i in range(N):
        # A random walk with calm and wild stretches, flat bars and repeated closes.
        vol = Decimal("0.2") if (i // 50) % 2 == 0 else Decimal("2.5")
        o = price
        if i % 37 == 5:
            c = o  # unchanged close
        else:
            c = (o + Decimal(rng.gauss(0, 1)).quantize(Decimal("0.0001")) * vol).quantize(Decimal("0.01"))
            if c <= Decimal("1"):
                c = Decimal("1.00")
        if i % 61 == 7:
            h = l = c = o  # a bar without range
        else:
            h = max(o, c) + Decimal(abs(rng.gauss(0, 1))).quantize(Decimal("0.01")) * vol
            l = min(o, c) - Decimal(abs(rng.gauss(0, 1))).quantize(Decimal("0.01")) * vol
            l = max(l, Decimal("0.50"))
        volume = Decimal(rng.randint(1, 500_000)) / Decimal(1000)
        if i % 43 == 11:
            volume = Decimal(0)
        vwap = ((h + l + c) / 3).quantize(Decimal("0.0001"))
        quote = (vwap * volume).quantize(Decimal("0.00000001"))
        rows.append((i * 60_000, o, h, l, c, volume, quote))
        price = c
    return rows


# name → (price factor, volume factor) applied to candles(); "" is the original series.
SCALES = {
    "": (Decimal(1), Decimal(1)),
    "p1e-8": (Decimal("1E-10"), Decimal("2E9")),
    "p1e-6": (Decimal("1E-8"), Decimal("1E8")),
    "p1": (Decimal("1E-2"), Decimal("1E3")),
    "p1e5": (Decimal("1E3"), Decimal("1E-2")),
}


def scaled(rows, pf, vf):
    return [
        (t, o * pf, h * pf, l * pf, c * pf, v * vf, q * pf * vf)
        for (t, o, h, l, c, v, q) in rows
    ]


def shib_candles():
    """SHIB/USDT-like 5 m candles: prices ≈ 7e-6 quoted on a 1e-8 tick, most closes within a tick
    or two of the previous one, a flat start (16 unchanged candles) and a flat stretch (candles
    200..229), volumes ≈ 1e11 (some zero)."""
    rng = random.Random(7123)
    tick = Decimal("0.00000001")
    price = Decimal("0.00000712")
    rows = []
    for i in range(N):
        o = price
        if i < 16 or 200 <= i < 230:
            c = h = l = o
        else:
            c = o + tick * rng.choice([-2, -1, -1, 0, 0, 0, 0, 1, 1, 2])
            h = max(o, c) + tick * rng.choice([0, 0, 1, 1, 2])
            l = min(o, c) - tick * rng.choice([0, 0, 1, 1, 2])
        volume = Decimal(rng.randint(20_000_000_000, 300_000_000_000))
        if i % 43 == 11:
            volume = Decimal(0)
        vwap = ((h + l + c) / 3).quantize(Decimal("1E-12"))
        quote = (vwap * volume).quantize(Decimal("0.00000001"))
        rows.append((i * 300_000, o, h, l, c, volume, quote))
        price = c
    return rows


def regime_candles():
    rng = random.Random(1500)
    rows = []
    price = Decimal("1.0000")
    for i in range(1500):
        o = price
        if i == 300:
            c = Decimal("10000.0000")  # a jump: the old reference is 1e4 away
        elif i == 600:
            c = o * 1000  # a one-candle spike
        elif i == 601:
            c = o / 1000
        elif 800 <= i < 850:
            c = o  # flat
        elif i == 1000:
            c = Decimal("0.0010000")
        else:
            step = Decimal("0.0001") if i < 300 else (Decimal("0.0001") if i < 1000 else Decimal("0.0000001"))
            c = o + step * rng.randint(-5, 5)
            if c <= 0:
                c = o
        if 800 <= i < 850:
            h = l = c
        else:
            h = max(o, c) + abs(c) * Decimal("0.0001") * rng.randint(0, 3)
            l = min(o, c) - abs(c) * Decimal("0.0001") * rng.randint(0, 3)
        volume = Decimal(rng.randint(0, 10_000)) / 10
        quote = (((h + l + c) / 3) * volume).quantize(Decimal("1E-12"))
        rows.append((i * 60_000, o, h, l, c, volume, quote))
        price = c
    return rows


def to_decimal(q):
    return Decimal(q.numerator) / Decimal(q.denominator)


def exact_var(xs):
    """Population variance of the f64 values, exact, rounded to the nearest f64."""
    w = [Fraction(x) for x in xs]
    mean = sum(w) / len(w)
    return float(sum((x - mean) ** 2 for x in w) / len(w))


def plain(d):
    """A decimal in positional notation (no exponent)."""
    return format(d, "f")


def fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x))


def golden(rows):
    n = len(rows)
    high = np.array([float(r[2]) for r in rows])
    low = np.array([float(r[3]) for r in rows])
    close = np.array([float(r[4]) for r in rows])
    volume = np.array([float(r[5]) for r in rows])
    cols = {}
    cols["sma_20"] = talib.SMA(close, 20)
    cols["ema_20"] = talib.EMA(close, 20)
    cols["wma_20"] = talib.WMA(close, 20)
    cols["rsi_14"] = talib.RSI(close, 14)
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    cols["macd"], cols["macd_signal"], cols["macd_hist"] = macd, signal, hist
    up, mid, lo = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    cols["bb_upper"], cols["bb_middle"], cols["bb_lower"] = up, mid, lo
    cols["atr_14"] = talib.ATR(high, low, close, 14)
    cols["obv"] = talib.OBV(close, volume)
    k, d = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
    cols["stoch_k"], cols["stoch_d"] = k, d
    cols["roc_10"] = talib.ROC(close, 10)
    cols["mom_10"] = talib.MOM(close, 10)
    # No TA-Lib function: computed exactly (fractions) from the same f64 values the indicators
    # get, then rounded once. (numpy's std / mean round at the price's scale: in a window of
    # prices ≈ 1e4 moving by 1e-4 its z-score is off by up to 3e-8.)
    logret = [math.log(close[i] / close[i - 1]) for i in range(1, n)]
    vol20 = np.full(n, np.nan)
    for i in range(20, n):
        vol20[i] = math.sqrt(exact_var(logret[i - 20 : i]))
    cols["volatility_20"] = vol20
    z20 = np.full(n, np.nan)
    for i in range(19, n):
        w = [Fraction(x) for x in close[i - 19 : i + 1]]
        mean = sum(w) / len(w)
        var = sum((x - mean) ** 2 for x in w) / len(w)
        z20[i] = float(to_decimal(w[-1] - mean) / to_decimal(var).sqrt()) if var > 0 else 0.0
    cols["zscore_20"] = z20
    vwap = [None] * n
    with_prec = getcontext().copy()
    with_prec.prec = 18
    for i in range(19, n):
        q = sum(r[6] for r in rows[i - 19 : i + 1])
        v = sum(r[5] for r in rows[i - 19 : i + 1])
        vwap[i] = plain(with_prec.divide(q, v)) if v != 0 else None
    return cols, vwap


def write(out, suffix, rows):
    with open(out / f"candles{suffix}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["open_time", "open", "high", "low", "close", "volume", "quote_volume"])
        for r in rows:
            w.writerow([r[0]] + [plain(v) for v in r[1:]])
    cols, vwap = golden(rows)
    names = list(cols) + ["vwap_20"]
    with open(out / f"golden{suffix}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["open_time"] + names)
        for i, r in enumerate(rows):
            w.writerow([r[0]] + [fmt(cols[n][i]) for n in cols] + [vwap[i] or ""])
    return len(names)


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = candles()
    series = [(name, scaled(base, pf, vf)) for name, (pf, vf) in SCALES.items()]
    series.append(("shib", shib_candles()))
    series.append(("regimes", regime_candles()))
    for name, rows in series:
        ncols = write(out, f"_{name}" if name else "", rows)
        print(f"{name or 'base'}: {len(rows)} candles, {ncols} columns", file=sys.stderr)
    print(f"talib {talib.__version__} (C core {talib.__ta_version__.decode()}), numpy {np.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/indicators")
