import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatAccessList,
  parseAccessList,
  parsePortSpec,
  portSpecEquals,
  protoFromNumber,
} from '../../protocol/access.js';
import { ConfigError } from '../../protocol/errors.js';
import { ACCESS_MAX_ENTRIES } from '../../protocol/limits.js';

function refused(text: string, code = 'ACCESS_SPEC'): ConfigError {
  let caught: unknown;
  try {
    parseAccessList(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ConfigError, `'${text}' must be refused with a ConfigError`);
  assert.equal(caught.code, code, `'${text}'`);
  return caught;
}

describe('access lists', () => {
  test('tcp/22,udp/53 parses to two entries in the order given and formats back', () => {
    const list = parseAccessList('tcp/22,udp/53');
    assert.deepEqual(list, [
      { proto: 'tcp', port: 22 },
      { proto: 'udp', port: 53 },
    ]);
    assert.equal(formatAccessList(list), 'tcp/22,udp/53');
    assert.equal(formatAccessList(parseAccessList('udp/53,tcp/22')), 'udp/53,tcp/22');
  });

  test('ports 1 and 65535 are accepted, 0 and 65536 are not', () => {
    assert.deepEqual(parseAccessList('tcp/1,udp/65535'), [
      { proto: 'tcp', port: 1 },
      { proto: 'udp', port: 65535 },
    ]);
    refused('tcp/0');
    refused('udp/65536');
    refused('tcp/99999');
  });

  test('port ranges are refused with a hint to list each port', () => {
    for (const t of ['tcp/1000-2000', 'tcp/1000:2000']) {
      const e = refused(t);
      assert.match(e.message, /ranges are not supported/);
    }
  });

  test('duplicates are removed and the first occurrence keeps its place', () => {
    assert.equal(formatAccessList(parseAccessList('tcp/22,udp/53,tcp/22,udp/53')), 'tcp/22,udp/53');
  });

  test('17 different entries are refused; 16 are accepted, and so are 17 with one duplicate', () => {
    const ports = (n: number) => Array.from({ length: n }, (_, i) => `tcp/${1000 + i}`);
    assert.equal(parseAccessList(ports(ACCESS_MAX_ENTRIES).join(',')).length, ACCESS_MAX_ENTRIES);
    refused(ports(ACCESS_MAX_ENTRIES + 1).join(','), 'LIMIT_EXCEEDED');
    assert.equal(parseAccessList([...ports(16), 'tcp/1000'].join(',')).length, 16);
  });

  test('uppercase protocol names (TCP/22) are refused', () => {
    refused('TCP/22');
    refused('tcp/22,Udp/53');
  });

  test('ports with leading zeros (tcp/022) are refused', () => {
    refused('tcp/022');
    refused('tcp/00');
  });

  test('other protocols, missing parts and stray characters are refused', () => {
    for (const t of [
      'icmp/1',
      'sctp/22',
      'tcp',
      '22',
      'tcp/',
      '/22',
      'tcp/22/1',
      'tcp/+22',
      'tcp/2 2',
      'tcp:22',
      'tcp/0x16',
      'tcp/22x',
    ]) {
      refused(t);
    }
  });

  test('an empty list is refused', () => {
    refused('');
    refused(',');
    refused(' , ');
  });

  test('spaces around items are tolerated', () => {
    assert.equal(formatAccessList(parseAccessList(' tcp/22 , udp/53 ')), 'tcp/22,udp/53');
  });

  test('errors name the field they came from', () => {
    assert.throws(
      () => parseAccessList('tcp/x', 'open_ports'),
      (e: unknown) => e instanceof ConfigError && e.field === 'open_ports',
    );
  });

  test('a smaller maximum can be imposed by the caller', () => {
    assert.throws(
      () => parseAccessList('tcp/1,tcp/2,tcp/3', 'access', 2),
      (e: unknown) => e instanceof ConfigError && e.code === 'LIMIT_EXCEEDED',
    );
  });
});

describe('port specs', () => {
  test('parsePortSpec reads one item', () => {
    assert.deepEqual(parsePortSpec('udp/500'), { proto: 'udp', port: 500 });
    assert.throws(() => parsePortSpec('udp/500,tcp/1'), ConfigError);
  });

  test('protocol numbers map to names for tcp (6) and udp (17) only', () => {
    assert.equal(protoFromNumber(6), 'tcp');
    assert.equal(protoFromNumber(17), 'udp');
    assert.equal(protoFromNumber(1), null);
    assert.equal(protoFromNumber(0), null);
  });

  test('portSpecEquals compares protocol and port', () => {
    assert.ok(portSpecEquals({ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 22 }));
    assert.ok(!portSpecEquals({ proto: 'tcp', port: 22 }, { proto: 'udp', port: 22 }));
    assert.ok(!portSpecEquals({ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 23 }));
  });
});
