import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scriptLine } from '../../server/firewall/nft-shell.js';

test('a multi-line nft script becomes one line of commands joined by semicolons, so it stays one transaction', () => {
  assert.equal(
    scriptLine(
      'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 5s }\n\n  delete element inet spa allow4 { 198.51.100.2 . tcp . 22 }\n',
    ),
    'add element inet spa allow4 { 198.51.100.2 . tcp . 22 timeout 5s }; delete element inet spa allow4 { 198.51.100.2 . tcp . 22 }',
  );
});

test('an empty or oversized script is not sent through the shell', () => {
  assert.equal(scriptLine('\n \n'), null);
  assert.equal(scriptLine(`add table inet spa\n${'flush set inet spa allow4\n'.repeat(3000)}`), null);
});
