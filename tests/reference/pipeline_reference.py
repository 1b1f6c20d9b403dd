#!/usr/bin/env python3
"""Independent reference for cryptoflow's trade pipeline, in plain Python with `decimal`.

Reads Binance trade payloads (JSON lines; other lines are skipped like cryptoflow skips them) in
file order and computes what the pipeline must produce:

- each (symbol, trade id) once: a repeated id (overlapping captures) is counted, not used;
- per trade: the mean price of the last N trades of its symbol (all trades so far during warm-up);
- the whale flag: price * qty >= threshold;
- final 1-minute candles: open/close = price of the lowest/highest trade id in the window, high,
  low, volume, quote volume, VWAP (at 60 significant digits; cryptoflow keeps up to 28, so tests compare relatively), trade count, taker-buy volume, first and
  last trade id;
- late trades: a trade whose candle end is <= (newest event time seen before it - allowed lateness)
  does not change its candle;
- per-symbol aggregates: trade count, total volume, moving average and price of the highest id.

Usage: pipeline_reference.py INPUT.jsonl > EXPECTED.json
"""
import json
import sys
from collections import defaultdict, deque
from decimal import Decimal, getcontext

getcontext().prec = 60
SMA = 20
WHALE = Decimal(100000)
# cryptoflow's default per-quote-asset overrides (dataflows/default.toml [whales.per_quote]).
WHALE_PER_QUOTE = {"BTC": Decimal(2), "ETH": Decimal(40), "EUR": Decimal(90000)}


def whale_threshold(symbol):
    for quote, threshold in WHALE_PER_QUOTE.items():
        if symbol.endswith(quote):
            return threshold
    return WHALE
LATENESS_MS = 2000
INTERVAL_MS = 60000


def main(path):
    windows = defaultdict(deque)
    trades = []
    candles = {}
    late = []
    max_ts = None
    seen = set()
    duplicates = 0
    for line in open(path):
        line = line.strip()
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        msg = msg.get("data", msg)
        if msg.get("e") != "trade":
            continue
        try:
            price, qty = Decimal(msg["p"]), Decimal(msg["q"])
        except Exception:
            continue
        if not price.is_finite() or price <= 0 or qty <= 0:
            continue
        sym, tid, ts, maker = msg["s"], msg["t"], msg["T"], msg["m"]
        # Each (symbol, id) once: the first copy counts, repeats are only counted.
        if (sym, tid) in seen:
            duplicates += 1
            continue
        seen.add((sym, tid))
        w = windows[sym]
        w.append(price)
        if len(w) > SMA:
            w.popleft()
        ma = sum(w) / len(w)
        trades.append({"symbol": sym, "trade_id": tid, "price": str(price), "qty": str(qty),
                       "moving_average": str(ma), "is_whale": price * qty >= whale_threshold(sym)})
        open_time = ts // INTERVAL_MS * INTERVAL_MS
        end = open_time + INTERVAL_MS
        if max_ts is not None and max_ts - LATENESS_MS >= end:
            late.append({"symbol": sym, "trade_id": tid, "candle_open_time": open_time})
        else:
            c = candles.setdefault((sym, open_time), {"trades": []})
            c["trades"].append((tid, price, qty, maker))
        if max_ts is None or ts > max_ts:
            max_ts = ts
    out_candles = []
    for (sym, open_time), c in sorted(candles.items()):
        ts_ = sorted(c["trades"])
        vol = sum(q for _, _, q, _ in ts_)
        quote = sum(p * q for _, p, q, _ in ts_)
        out_candles.append({
            "symbol": sym, "open_time": open_time, "close_time": open_time + INTERVAL_MS,
            "open": str(ts_[0][1]), "close": str(ts_[-1][1]),
            "high": str(max(p for _, p, _, _ in ts_)), "low": str(min(p for _, p, _, _ in ts_)),
            "volume": str(vol), "quote_volume": str(quote),
            "vwap": str(quote / vol),
            "trade_count": len(ts_),
            "taker_buy_volume": str(sum(q for _, _, q, m in ts_ if not m)),
            "first_trade_id": ts_[0][0], "last_trade_id": ts_[-1][0],
        })
    aggs = {}
    for t in trades:
        a = aggs.setdefault(t["symbol"], {"trade_count": 0, "total_volume": Decimal(0), "last_trade_id": -1})
        a["trade_count"] += 1
        a["total_volume"] += Decimal(t["qty"])
        if t["trade_id"] > a["last_trade_id"]:
            a.update(last_trade_id=t["trade_id"], last_price=t["price"], moving_average=t["moving_average"])
    for a in aggs.values():
        a["total_volume"] = str(a["total_volume"])
    json.dump({"trades": trades, "candles": out_candles, "late": late, "aggregates": aggs,
               "whales": sum(1 for t in trades if t["is_whale"]),
               "duplicates": duplicates}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
