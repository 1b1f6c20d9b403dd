"""Golden values of the technical indicators, computed by TA-Lib (and numpy / Python decimal for
the three TA-Lib lacks) on generated candles.

    PY=$(bash scripts/reference-venv.sh)
    $PY tests/reference/indicators_reference.py tests/fixtures/indicators

writes candles.csv (the input) and golden.csv (one row per candle; empty = no value yet).
"""
import csv
import math
import random
import sys
from decimal import Decimal, getcontext
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


def fmt(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x))


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = candles()
    with open(out / "candles.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["open_time", "open", "high", "low", "close", "volume", "quote_volume"])
        for r in rows:
            w.writerow([r[0]] + [str(v) for v in r[1:]])
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
    # No TA-Lib function: direct computations.
    logret = np.full(N, np.nan)
    logret[1:] = np.log(close[1:] / close[:-1])
    vol20 = np.full(N, np.nan)
    for i in range(20, N):
        vol20[i] = np.std(logret[i - 19 : i + 1])
    cols["volatility_20"] = vol20
    z20 = np.full(N, np.nan)
    for i in range(19, N):
        w = close[i - 19 : i + 1]
        sd = np.std(w)
        z20[i] = (close[i] - np.mean(w)) / sd if sd > 0 else 0.0
    cols["zscore_20"] = z20
    vwap = [None] * N
    for i in range(19, N):
        q = sum(r[6] for r in rows[i - 19 : i + 1])
        v = sum(r[5] for r in rows[i - 19 : i + 1])
        vwap[i] = str(q / v) if v != 0 else None
    names = list(cols) + ["vwap_20"]
    with open(out / "golden.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["open_time"] + names)
        for i, r in enumerate(rows):
            w.writerow([r[0]] + [fmt(cols[n][i]) for n in cols] + [vwap[i] or ""])
    print(f"talib {talib.__version__}, numpy {np.__version__}: {N} candles, {len(names)} columns", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/indicators")
