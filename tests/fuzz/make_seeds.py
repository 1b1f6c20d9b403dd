#!/usr/bin/env python3
"""The fuzz targets' seed corpora, from the real payload shapes: the decoders' own test payloads,
tests/fixtures, the example config. Re-run after adding shapes; each seed is named by its SHA-1."""
import re, os, glob, gzip, json, hashlib, struct
# Run from anywhere: python3 tests/fuzz/make_seeds.py (writes tests/fuzz/seeds/).
root=os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
out=root+'/tests/fuzz/seeds'
def put(target, data):
    if isinstance(data,str): data=data.encode()
    d=f'{out}/{target}'; os.makedirs(d,exist_ok=True)
    h=hashlib.sha1(data).hexdigest()[:16]
    open(f'{d}/{h}','wb').write(data)
def raws(path):
    s=open(root+'/'+path).read()
    return re.findall(r'r#"(.*?)"#', s, re.S)
def lits(path):
    s=open(root+'/'+path).read()
    r=[]
    for m in re.findall(r'"((?:[^"\\\n]|\\.)*)"', s):
        try: r.append(json.loads('"'+m+'"'))
        except Exception: r.append(m)
    return r

# Binance frames: the decoder's own test frames, fixture lines, wrappers.
frames=[r for r in raws('sources/src/binance.rs') if r.lstrip().startswith(('{','['))]
for fx in ['tests/fixtures/binance/trades.jsonl','tests/fixtures/binance/repeats.jsonl','tests/fixtures/binance/lowprice.jsonl']:
    frames+=open(root+'/'+fx).read().splitlines()[:5]
base=list(frames)
for f in base[:40]:
    frames.append('{"stream":"btcusdt@trade","data":%s}'%f)
    frames.append('{"ts_received":1700000000999,"frame":%s}'%f)
frames.append('{"result":null,"id":1}')
frames.append('{"capture":{"venue":"binance-usdm"}}')
for f in frames: put('binance_frame', f)
# Kafka: messages of frames, with venue flags.
for i in range(0,len(frames)-2,3):
    msg=b''
    for j,f in enumerate(frames[i:i+3]):
        b=f.encode(); msg+=bytes([j%6])+struct.pack('<H',len(b))+b
    put('kafka_message', msg)
# REST pages.
for r in raws('sources/src/rest.rs'):
    if r.lstrip().startswith('['): put('binance_rest', r)
put('binance_rest','[]')
# CSV lines.
csv=[l for l in lits('sources/src/binance.rs') if re.match(r'^-?[0-9a-z_]+(,[^,]*){5,}$', l)]
csv+=['id,price,qty,quote_qty,time,is_buyer_maker,is_best_match',
      'agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match',
      'open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore']
for l in csv: put('csv_line', l)
# Replay files: mode byte + file.
tr=open(root+'/tests/fixtures/binance/trades.jsonl').read().splitlines()
put('replay_file', b'\x01'+('\n'.join(tr[:30])+'\n').encode())
put('replay_file', b'\x01'+('{"capture":{"venue":"binance"}}\n'+'\n'.join('{"ts_received":%d,"frame":%s}'%(1700000000000+i,l) for i,l in enumerate(tr[:20]))+'\n').encode())
put('replay_file', b'\x01'+gzip.compress(('\n'.join(tr[:20])+'\n').encode(),mtime=0))
put('replay_file', b'\x00'+('\n'.join(csv)+'\n').encode())
put('replay_file', b'\x00'+b'id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n'+b''.join(b'%d,42000.5,0.01,420.005,%d,True,True\n'%(100+i,1700000000123+i) for i in range(10)))
put('replay_file', b'\x04'+gzip.compress(b''.join(b'%d,1.5,2,10,12,%d,false,true\n'%(i,1700000000000+i) for i in range(10)),mtime=0))
put('replay_file', b'\x03'+b'{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true,"M":true}\n{"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012","time":1499865549590,"isBuyerMaker":true,"isBestMatch":true}\n')
put('replay_file', b'\x01'+b'\xef\xbb\xbf'+('\n'.join(frames[:15])+'\n').encode())
# Feeds.
for f in glob.glob(root+'/tests/fixtures/news/*.xml')+glob.glob(root+'/tests/fixtures/poll/news/*.xml'):
    put('rss', open(f,'rb').read())
for r in raws('sources/src/poll/rss.rs'):
    if '<' in r: put('rss', r)
for name in ['reddit','fred','coingecko','myinvestor']:
    for r in raws(f'sources/src/poll/{name}.rs'):
        if r.strip().startswith(('{','[','<')): put(name, r)
for f in glob.glob(root+'/tests/fixtures/poll/coingecko/*.json'):
    put('coingecko', open(f,'rb').read())
# Config files.
put('config_file', open(root+'/cryptoflow.example.toml','rb').read())
put('config_file', '[pipeline]\nworkers = 2\n[binance]\nvenue = "binance-usdm"\nsymbols = ["btcusdt","ethusdt"]\n')
put('config_file', '[sinks.postgres]\nurl = "postgres://root@127.0.0.1:5432/test"\n[sinks.kafka.producer]\n"linger.ms" = "5"\n')
for r in raws('dataflows/config.rs'):
    if '=' in r and len(r)<4000: put('config_file', r)
# Telegram.
tg=[]
for r in raws('sources/src/telegram/poller.rs')+raws('sources/src/telegram/api.rs')+raws('sources/src/telegram/input.rs'):
    if r.strip().startswith('{'): tg.append(r)
ups=[{"update_id":100,"message":{"message_id":1,"chat":{"id":42,"type":"private"},"from":{"id":7,"is_bot":False,"first_name":"Ana","last_name":"Ruiz","username":"ana"},"date":1700000000,"text":"/status"}},
     {"update_id":101,"message":{"message_id":2,"chat":{"id":42},"from":{"id":7,"first_name":"Ana"},"text":"buy 0.1 BTC at market"}},
     {"update_id":102,"callback_query":{"id":"cb1","from":{"id":7,"first_name":"Ana"},"message":{"message_id":3,"chat":{"id":42}},"data":"confirm:abc123"}},
     {"update_id":103,"callback_query":{"id":"cb2","from":{"id":7,"first_name":"Ana"},"message":{"message_id":3,"chat":{"id":42}},"data":"reject:abc123"}},
     {"update_id":104,"message":{"chat":{"id":-100},"text":"/help@MyBot"}},
     {"update_id":105,"edited_message":{"chat":{"id":42},"text":"x"}}]
put('telegram_updates', json.dumps({"ok":True,"result":ups}))
for u in ups: put('telegram_updates', json.dumps({"ok":True,"result":[u]}))
put('telegram_updates', '{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}')
put('telegram_updates', '{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request"}')
put('telegram_updates', '{"ok":true,"result":[]}')
for r in tg: put('telegram_updates', r)
# Text orders: the grammar's test sentences.
for l in lits('operators/src/trading/text.rs'):
    if 2 < len(l) < 200 and re.search(r'(?i)\b(buy|sell|cancel|long|short|compra|vende)\b', l): put('text_order', l)
# API requests.
reqs=['GET /health','GET /ready','GET /metrics','GET /openapi.json','GET /api/v1/symbols',
 'GET /api/v1/prices/current/BTCUSDT','GET /api/v1/candles/BTCUSDT?interval=1m&limit=5',
 'GET /api/v1/candles/BTCUSDT?interval=5m&from=1700000000000&to=2024-01-01T00:00:00Z&forming=true',
 'GET /api/v1/technical/ETHUSDT?interval=1m&from=0','GET /api/v1/whales?symbol=BTCUSDT&since=0&limit=10',
 'GET /api/v1/sentiment/btc?window=1h','GET /api/v1/news/latest?coin=BTC&limit=3',
 'GET /api/v1/ml-features/BTCUSDT?interval=1m&at=1700000060000','GET /api/v1/quality?symbol=BTCUSDT',
 'GET /api/v1/markets?limit=5','GET /api/v1/macro/DGS10?from=2024-01-01T00:00:00Z',
 'GET /api/v1/symbols?access_token=fuzz-token','GET /api/v1/symbols\nAuthorization: Bearer fuzz-token',
 'OPTIONS /api/v1/symbols\nOrigin: https://dash.example\nAccess-Control-Request-Method: GET',
 'GET /ws?symbols=BTCUSDT&kinds=candle\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
 'POST /api/v1/symbols\nContent-Length: 3\n\nabc','GET /assets/app.js','GET /','GET /nope?x=1']
for r in reqs: put('api_request', r)
# MyInvestor HTML pages (the tests' shapes).
s=open(root+'/tests/services/poll_e2e.rs').read()
m=re.search(r'const FUNDS: &str = r#"(.*?)"#;', s, re.S); put('myinvestor', m.group(1))
s=open(root+'/sources/src/poll/myinvestor.rs').read()
for m in re.findall(r'"(<(?:html|table)(?:[^"\\]|\\.)*)"', s, re.S):
    put('myinvestor', m.replace('\\"','"'))
