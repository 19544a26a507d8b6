import Fastify from 'fastify';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { TrustProxy } from '../../server/config.ts';
import { addressKey, compileTrust, handshakeAddress, normalizeAddress, requestAddress } from '../../server/gateway/address.ts';

const test = suite('gateway/addresses');

test('an IPv6 address counts as its /64 for limits; IPv4 and mapped IPv6 count as the address itself', () => {
  assert.is(addressKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
  assert.is(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.is(addressKey(normalizeAddress('2001:DB8:0001:0002:aaaa::7')), '2001:db8:1:2::/64', 'zeros and case do not make another key');
  assert.is(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.is(addressKey('::1'), '0:0:0:0::/64');
  assert.is(addressKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64');
  assert.is.not(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'), 'the next /64 is another client');
  assert.is(addressKey('203.0.113.9'), '203.0.113.9');
  assert.is(addressKey(normalizeAddress('::ffff:203.0.113.9')), '203.0.113.9');
  assert.is(normalizeAddress('fe80::1%eth0'), 'fe80::1');
  assert.is(normalizeAddress('not an address'), 'unknown', 'junk shares one key instead of minting new ones');
});

/** `request.ip` of a Fastify server configured the way createHttp configures it. */
async function fastifyIp(trust: TrustProxy, peer: string, forwarded: string | undefined): Promise<string> {
  const app = Fastify({ trustProxy: compileTrust(trust) || false });
  app.get('/', async (request) => ({ ip: requestAddress(request) }));
  const res = await app.inject({ method: 'GET', url: '/', remoteAddress: peer, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } });
  await app.close();
  return (res.json() as { ip: string }).ip;
}

test('spoofed X-Forwarded-For hops are ignored: the client is the rightmost untrusted hop, for HTTP and handshakes alike', async () => {
  const cases: { trust: TrustProxy; peer: string; xff?: string; client: string; why: string }[] = [
    { trust: { hops: 0 }, peer: '198.51.100.1', xff: '203.0.113.66', client: '198.51.100.1', why: 'no trusted proxy: the header is ignored' },
    { trust: { hops: 1 }, peer: '10.0.0.2', xff: '203.0.113.66, 198.51.100.7', client: '198.51.100.7', why: 'one proxy: the forged left entry is ignored' },
    { trust: { hops: 1 }, peer: '10.0.0.2', xff: '1.1.1.1, 2.2.2.2, 198.51.100.7', client: '198.51.100.7', why: 'several forged hops' },
    { trust: { hops: 2 }, peer: '10.0.0.2', xff: '203.0.113.66, 198.51.100.7, 10.0.0.3', client: '198.51.100.7', why: 'two proxies' },
    { trust: { cidrs: ['10.0.0.0/8'] }, peer: '10.0.0.2', xff: '203.0.113.66, 198.51.100.7, 10.9.9.9', client: '198.51.100.7', why: 'trusted network: every hop inside it is skipped' },
    { trust: { cidrs: ['10.0.0.0/8'] }, peer: '192.0.2.50', xff: '203.0.113.66', client: '192.0.2.50', why: 'a peer outside the trusted network is the client' },
    { trust: { cidrs: ['fd00::/8'] }, peer: 'fd00::2', xff: '2001:db8:5:6::9', client: '2001:db8:5:6::9', why: 'IPv6 proxies' },
    { trust: { hops: 1 }, peer: '10.0.0.2', client: '10.0.0.2', why: 'no header: the peer' },
  ];
  for (const c of cases) {
    const headers = c.xff === undefined ? {} : { 'x-forwarded-for': c.xff };
    assert.is(handshakeAddress({ address: c.peer, headers }, c.trust), c.client, `handshake: ${c.why}`);
    assert.is(await fastifyIp(c.trust, c.peer, c.xff), c.client, `HTTP: ${c.why}`);
  }
});

test.run();
