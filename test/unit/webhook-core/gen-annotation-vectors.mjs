// Writes test/vectors/annotations.json: accepted and rejected values of every traffic annotation the plugin reads.
// Every `valid` below is written by hand from the rules in test/vectors/README.md; nothing here calls the implementation.
// Run: node test/unit/webhook-core/gen-annotation-vectors.mjs
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const T = 'traffic.sidecar.istio.io/';
const table = {
  'sidecar.istio.io/interceptionMode': {
    valid: ['REDIRECT', 'TPROXY', 'NONE'],
    invalid: ['', 'redirect', 'Redirect', ' REDIRECT', 'REDIRECT ', 'DROP', 'TPROXY,REDIRECT', 'none'],
  },
  [T + 'includeOutboundIPRanges']: {
    valid: ['*', '', '10.0.0.0/8', '10.0.0.0/8,172.16.0.0/12', '127.0.0.1/24,10.96.0.1/24', '0.0.0.0/0', '192.0.2.1/32',
      '2001:db8::/32', '::/0', '::1/128', '::ffff:192.0.2.1/128', '2001:DB8:0:0:0:0:0:1/128', '10.0.0.0/8,2001:db8::/32'],
    invalid: ['* ', '*,10.0.0.0/8', '10.0.0.0', '10.0.0.0/33', '10.0.0.0/08', '010.0.0.0/8', '10.0.0.0/8, 172.16.0.0/12',
      ' 10.0.0.0/8', '10.0.0.0/8,', ',10.0.0.0/8', '10.0.0.0/8,,192.0.2.0/24', 'fe80::1%eth0/64', '2001:db8::/129',
      '2001:db8:::/32', '1:2:3:4:5:6:7:8:9/128', '1.2.3/24', '256.0.0.0/8', '10.0.0.0/-1', '10.0.0.0/+8', '10.0.0.0/',
      'example.com/32', 'bad'],
  },
  [T + 'excludeOutboundIPRanges']: {
    valid: ['', '10.96.0.2/24,10.96.0.3/24', '2001:db8::/32', '169.254.169.254/32'],
    invalid: ['*', '10.0.0.0', 'bad', '10.0.0.0/8 ', '10.0.0.0/8;192.0.2.0/24'],
  },
  [T + 'includeInboundPorts']: {
    valid: ['*', '', '80', '1,2,3', '1, 2, 3', ' 80 ', '65535', '080', '8080,9090'],
    invalid: ['bad', '0', '65536', '80,', '80,,81', '-1', '+80', '80-90', '*,80', '0x50', '8 0', '* '],
  },
  [T + 'excludeInboundPorts']: {
    valid: ['', '4,5,6', '15020', '4,5,6,15020', '15090,15021,15020'],
    invalid: ['*', 'bad', '0', '4,5,6,', '99999'],
  },
  [T + 'includeOutboundPorts']: {
    valid: ['', '443', '80,443'],
    invalid: ['*', 'bad', '443,', '0'],
  },
  [T + 'excludeOutboundPorts']: {
    valid: ['', '7,8,9', '15020', '5555, 6666'],
    invalid: ['*', '70000', 'ssh', '7;8'],
  },
  [T + 'kubevirtInterfaces']: {
    valid: ['', 'eth1', 'eth1,eth2', 'eth1, eth2', 'net1', 'veth+', 'br-ext.100', 'k8s_pod0', '123456789012345'],
    invalid: ['eth1,', 'eth 1', 'eth1/2', 'eth0:1', 'a-very-long-interface', '.', '..', '*', 'eth+1', '+', 'eth1,,eth2'],
  },
  'istio.io/reroute-virtual-interfaces': {
    valid: ['', 'eth1', 'eth0,eth1'],
    invalid: ['eth1;eth2', 'eth1 eth2'],
  },
  [T + 'excludeInterfaces']: {
    valid: ['', 'not-istio-nic', 'eth1,eth2'],
    invalid: ['not istio nic', 'eth1/2', '1234567890123456'],
  },
};

const cases = [];
for (const [annotation, { valid, invalid }] of Object.entries(table)) {
  for (const value of valid) cases.push({ annotation, value, valid: true });
  for (const value of invalid) cases.push({ annotation, value, valid: false });
}
const seen = new Set();
for (const c of cases) {
  const k = c.annotation + '\0' + c.value;
  if (seen.has(k)) throw new Error(`duplicate: ${c.annotation} ${JSON.stringify(c.value)}`);
  seen.add(k);
}
const out = fileURLToPath(new URL('../../vectors/annotations.json', import.meta.url));
writeFileSync(out, '{\n  "cases": [\n' + cases.map((c) => '    ' + JSON.stringify(c)).join(',\n') + '\n  ]\n}\n');
console.log(`wrote ${cases.length} cases to ${out}`);
