/**
 * -R URL: learning the address to open for from an HTTP endpoint, against a local server on
 * 127.0.0.1 that answers what each test needs (a good address, garbage, a redirect, too much, or
 * nothing at all).
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { resolvePublicAddress } from '../../client/source.js';
import { formatAddress } from '../../protocol/address.js';
import { isSpaError } from '../../protocol/errors.js';
import { openKnock, parseTestOutput, spa, useKnockRig } from './client-fixtures.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const ROUTES: Record<string, Handler> = {
  '/v4': (_q, r) => r.end('203.0.113.9\n'),
  '/v6': (_q, r) => r.end('  2001:DB8::9  '),
  '/mapped': (_q, r) => r.end('::ffff:203.0.113.10'),
  '/html': (_q, r) => r.end('<html><body>Your IP is 203.0.113.9</body></html>'),
  '/404': (_q, r) => {
    r.statusCode = 404;
    r.end('203.0.113.9');
  },
  '/redirect': (_q, r) => {
    r.statusCode = 302;
    r.setHeader('location', '/v4');
    r.end();
  },
  '/huge': (_q, r) => r.end('1'.repeat(100_000)),
  '/silent': () => undefined, // never answers
};

let server: Server;
let base: string;
const pending: ServerResponse[] = [];

before(async () => {
  server = createServer((req, res) => {
    pending.push(res);
    (ROUTES[req.url ?? ''] ?? ((_q, r) => r.end('?')))(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  for (const r of pending) r.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function ioError(re: RegExp) {
  return (e: unknown) => isSpaError(e) && e.code === 'IO' && re.test(e.message) && /-a IP/.test(e.hint ?? '');
}

describe('resolvePublicAddress', () => {
  test('a plain-text IPv4 answer (with a newline) is taken', async () => {
    assert.equal(formatAddress(await resolvePublicAddress(new URL(`${base}/v4`))), '203.0.113.9');
  });

  test('an IPv6 answer is taken in canonical form', async () => {
    assert.equal(formatAddress(await resolvePublicAddress(new URL(`${base}/v6`))), '2001:db8::9');
  });

  test('an IPv4-mapped IPv6 answer is folded to IPv4', async () => {
    assert.equal(formatAddress(await resolvePublicAddress(new URL(`${base}/mapped`))), '203.0.113.10');
  });

  test('an answer that is not just an address is refused', async () => {
    await assert.rejects(
      resolvePublicAddress(new URL(`${base}/html`)),
      ioError(/not an IPv4 or IPv6 address/),
    );
  });

  test('a non-200 status is refused', async () => {
    await assert.rejects(resolvePublicAddress(new URL(`${base}/404`)), ioError(/HTTP status 404/));
  });

  test('a redirect is not followed', async () => {
    await assert.rejects(
      resolvePublicAddress(new URL(`${base}/redirect`)),
      ioError(/302 \(redirects are not followed\)/),
    );
  });

  test('an answer longer than the limit is cut off and refused', async () => {
    await assert.rejects(resolvePublicAddress(new URL(`${base}/huge`)), ioError(/longer than 1024 bytes/));
  });

  test('a server that never answers is given up on after the timeout', async () => {
    const t0 = Date.now();
    await assert.rejects(
      resolvePublicAddress(new URL(`${base}/silent`), { timeoutMs: 300 }),
      ioError(/no answer within 300 ms/),
    );
    assert.ok(Date.now() - t0 < 3000);
  });

  test('a refused connection is reported', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await assert.rejects(resolvePublicAddress(new URL(`http://127.0.0.1:${port}/`)), ioError(/ECONNREFUSED/));
  });
});

describe('spa -R URL (plain http here, so with --insecure-resolve)', () => {
  const rig = useKnockRig(null);

  test('the address the URL returns goes in the knock', async () => {
    const r = await spa([
      '--home',
      rig.H.home,
      '-A',
      'tcp/22',
      '-R',
      `${base}/v4`,
      '--insecure-resolve',
      '-p',
      String(rig.L.port),
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    const opened = await openKnock((await rig.L.next()).msg, rig.K.identity, [rig.K.alice]);
    assert.notEqual(opened.payload.source, 'any');
    assert.equal(
      formatAddress(opened.payload.source as Exclude<typeof opened.payload.source, 'any'>),
      '203.0.113.9',
    );
  });

  test('--test shows the resolved address', async () => {
    const r = await spa([
      '--home',
      rig.H.home,
      '-A',
      'tcp/22',
      '-R',
      `${base}/v6`,
      '--insecure-resolve',
      '--test',
      '127.0.0.1',
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(parseTestOutput(r.out).payload.source, '2001:db8::9');
  });

  test('a failing URL is a runtime error (exit 1) with a hint, and nothing is sent', async () => {
    const before = rig.L.received.length;
    const r = await spa([
      '--home',
      rig.H.home,
      '-A',
      'tcp/22',
      '-R',
      `${base}/html`,
      '--insecure-resolve',
      '-p',
      String(rig.L.port),
      '127.0.0.1',
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /^spa: error: -R http:\/\/127\.0\.0\.1:\d+\/html: the answer is not an IPv4 or IPv6 address/m,
    );
    assert.match(r.err, /^spa: hint: /m);
    await rig.L.settled();
    assert.equal(rig.L.received.length, before);
  });
});
