
²
tx-10-0(
rejectedduel

x6a

y6b àÔ"i
tx-10-0rejected *shard [b] voted NO2
x6a€€(2
y6b€€("BUSY*
in a queue:r2Hªø¥ùÁ2Pşø¥ùÁ2*a*b2a2b8€€(H

~
tx-11-0
operatorduel	

x7a àÔ"G
tx-11-0operator *aborted by operator2
x7a€€,H±ø¥ùÁ2Pƒù¥ùÁ2*a8€€,H
·
tx-13-0…
richduel

r1a

r2b

r3a3
1
r4b(¤euparty-1"
eu"
us_*
kv àÔ(Ü2
mapdust2
regioneu-west"W
tx-13-0rich2
r1a€€42
r2b€€42
r3a€€42
r4b€€4:r2H¿ø¥ùÁ2Pùø¥ùÁ2*a*b2a2b8€€4HR700-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01
É
tx-14-0&
leasedduel

z9a

x1a àÔ"Š
tx-14-0leased *,lease: players leased: "x1" held by "tx-5-0"23
x1a"LEASED*player is in another match2tx-5-0:r1HÆø¥ùÁ2PÆø¥ùÁ2*a8€€8H
Š
tx-15-0
deniedduel	

d1a àÔ"U
tx-15-0denied *denied by policy:r3B

MMR_SPREADtoo wided1HÍø¥ùÁ2PÍø¥ùÁ2*a8€€<H
¤
tx-16-0*
unknown-shardduel

u1nowhere àÔ"\
tx-16-0unknown-shard *,shard "nowhere" is not registered and active:r1HÔø¥ùÁ2PÔø¥ùÁ2*nowhere8€€@H
”
tx-17-0%
draining-shardduel	

u2c àÔ"W
tx-17-0draining-shard *&shard "c" is not registered and active:r1HÛø¥ùÁ2PÛø¥ùÁ2*c8€€DH
´
tx-5-0)
	preparingduel

x1a

y1b àÔ"8
tx-5-0	preparing2
x1a€€2
y1b€€:r1H‡ø¥ùÁ2*a*b8€€HR700-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01
€
tx-6-0$
liveduel

x2a

y2b àÔ"<
tx-6-0live2
x2a€€2
y2b€€:r1Hø¥ùÁ2Pàø¥ùÁ2*a*b2a2b8€€H
‹
tx-7-0+
undeliveredduel

x3a

y3b àÔ"C
tx-7-0undelivered2
x3a€€2
y3b€€:r1H•ø¥ùÁ2Påø¥ùÁ2*a*b2b8€€H
’
tx-8-0(
releasedduel

x4a

y4b àÔ"@
tx-8-0released2
x4a€€ 2
y4b€€ :r2Hœø¥ùÁ2Pêø¥ùÁ2*a*b2a2b8€€ BreleasedH
s
tx-9-0
expiredduel	

x5a àÔ"2
tx-9-0expired2
x5a€€$:r2H£ø¥ùÁ2Pïø¥ùÁ2*a2a8€€$BexpiredH	
r1tx-13-0€€4 (àÔ0
r2tx-13-0€€4 (àÔ0
r3tx-13-0€€4 (àÔ0
r4tx-13-0€€4 (àÔ0
x1tx-5-0€€ (àÔ
x2tx-6-0€€ (àÔ0
x3tx-7-0€€ (àÔ
y1tx-5-0€€ (àÔ
y2tx-6-0€€ (àÔ0
y3tx-7-0€€ (àÔ
a0
b0,
ceu-west¬"
tiergold"	
zone1(0 '(€€4