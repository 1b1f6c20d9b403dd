"""A third-party Kafka client reads cryptoflow's topics and validates every message.

Uses confluent-kafka (a consumer group) and jsonschema against the published schemas in
schemas/kafka/. Usage:

    python kafka_schema_check.py --brokers HOST:PORT --group G --schemas DIR \
        --topic trades=crypto-trades-x:1000 --topic prices=crypto-prices-x:1 ...

Each --topic is KIND=TOPIC:MIN: consume TOPIC until at least MIN messages arrived, validating
against schemas/kafka/crypto-KIND.v1.json. Prints one JSON object with per-topic counts and
exits 1 if a message is invalid, a key is not the symbol (coin for sentiment), or a minimum is
not reached in time. For signals it also lists the distinct signal ids. --drain S: once the minimums are met, read on until S seconds pass quietly.
"""
import argparse
import json
import sys
import time

import jsonschema
from confluent_kafka import Consumer, KafkaError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--topic", action="append", required=True)
    ap.add_argument("--timeout", type=float, default=90.0)
    # After every minimum is met, keep reading until no message came for this many seconds.
    ap.add_argument("--drain", type=float, default=0.0)
    args = ap.parse_args()

    wanted = {}
    for spec in args.topic:
        kind, rest = spec.split("=", 1)
        topic, minimum = rest.rsplit(":", 1)
        with open(f"{args.schemas}/crypto-{kind}.v1.json") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        wanted[topic] = {
            "kind": kind,
            "min": int(minimum),
            "validator": jsonschema.Draft202012Validator(schema),
        }
    stats = {t: {"messages": 0, "invalid": 0, "bad_keys": 0, "ids": set(), "types": {}} for t in wanted}
    errors = []

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    })
    consumer.subscribe(list(wanted))
    deadline = time.time() + args.timeout
    last_message = time.time()
    try:
        while time.time() < deadline:
            if all(stats[t]["messages"] >= w["min"] for t, w in wanted.items()):
                if time.time() - last_message >= args.drain:
                    break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            last_message = time.time()
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    errors.append(str(msg.error()))
                continue
            t = msg.topic()
            s = stats[t]
            s["messages"] += 1
            try:
                value = json.loads(msg.value())
                wanted[t]["validator"].validate(value)
            except Exception as e:  # invalid JSON or schema violation
                s["invalid"] += 1
                if len(errors) < 10:
                    errors.append(f"{t}: {e}")
                continue
            typ = value.get("type", wanted[t]["kind"])
            s["types"][typ] = s["types"].get(typ, 0) + 1
            key = msg.key().decode() if msg.key() is not None else None
            if "symbol" in value:
                expected_key = value["symbol"]
            elif "coin" in value:
                expected_key = value["coin"]
            elif "coins" in value:
                expected_key = value["coins"][0] if value["coins"] else value["item_key"]
            else:
                expected_key = "cryptoflow"
            if key != expected_key:
                s["bad_keys"] += 1
            if wanted[t]["kind"] == "trades":
                s["ids"].add((value["symbol"], value["trade_id"]))
            elif wanted[t]["kind"] == "signals":
                s["ids"].add(value["id"])
    finally:
        consumer.close()

    out = {}
    ok = not errors
    for t, s in stats.items():
        out[t] = {
            "messages": s["messages"],
            "invalid": s["invalid"],
            "bad_keys": s["bad_keys"],
            "distinct_trades": len(s["ids"]),
            "signal_ids": sorted(s["ids"]) if wanted[t]["kind"] == "signals" else [],
            "types": s["types"],
        }
        if s["invalid"] or s["bad_keys"] or s["messages"] < wanted[t]["min"]:
            ok = False
    out["errors"] = errors
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
