#!/usr/bin/env python3
"""Measures the exponential bucket bounds of a local Prometheus 2.42 through
its query API and writes them to /tmp/nhist-gen/table.json, from which
crates/model/src/histogram_bounds.rs was generated. Needs `prometheus` on
PATH; uses port 19151."""
# Measures Prometheus 2.42's exponential bucket bounds through its query API.
import struct, subprocess, time, urllib.request, urllib.parse, json, os, shutil, sys
def uv(n):
    out=b''
    while n>=0x80: out+=bytes([(n&0x7f)|0x80]); n>>=7
    return out+bytes([n])
def zz(n): return (n<<1)^(n>>63)
def key(f,w): return uv((f<<3)|w)
def ld(f,b): return key(f,2)+uv(len(b))+b
def snappy(raw):
    out=uv(len(raw)); i=0
    while i<len(raw):
        c=raw[i:i+60000]; n=len(c)-1
        out+=bytes([61<<2])+struct.pack('<H',n)+c; i+=len(c)
    return out
t=int(time.time()*1000)-60000
ts=b''
for s in range(1,9):
    n=2**s
    h=key(2,1)+struct.pack('<d',float(n))+key(3,1)+struct.pack('<d',1.0)+key(4,0)+uv(zz(s))
    h+=ld(11,key(1,0)+uv(zz(0))+key(2,0)+uv(n))
    h+=ld(13,b''.join(struct.pack('<d',1.0) for _ in range(n)))
    h+=key(15,0)+uv(t)
    series=ld(1,ld(1,b'__name__')+ld(2,('bounds_s%d'%s).encode()))+ld(4,h)
    ts+=ld(1,series)
body=snappy(ts)
d='/tmp/nhist-gen/data'; shutil.rmtree(d,ignore_errors=True)
open('/tmp/nhist-gen/p.yml','w').write('global:\n  scrape_interval: 1h\n')
p=subprocess.Popen(['prometheus','--config.file=/tmp/nhist-gen/p.yml','--storage.tsdb.path='+d,'--web.listen-address=127.0.0.1:19151','--web.enable-remote-write-receiver','--enable-feature=native-histograms'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen('http://127.0.0.1:19151/-/ready'); break
        except Exception: time.sleep(0.2)
    req=urllib.request.Request('http://127.0.0.1:19151/api/v1/write',data=body,headers={'Content-Type':'application/x-protobuf','Content-Encoding':'snappy'})
    print(urllib.request.urlopen(req).status, file=sys.stderr)
    table={0:[0.5]}
    for s in range(1,9):
        q=urllib.parse.urlencode({'query':'bounds_s%d'%s,'time':'%.3f'%(t/1000)})
        r=json.load(urllib.request.urlopen('http://127.0.0.1:19151/api/v1/query?'+q))
        b=r['data']['result'][0]['histogram'][1]['buckets']
        ups=[float(x[2]) for x in b]
        assert len(ups)==2**s, len(ups)
        table[s]=[u/2 for u in ups]
    json.dump({str(k):[repr(x) for x in v] for k,v in table.items()},open('/tmp/nhist-gen/table.json','w'))
finally:
    p.terminate(); p.wait()
