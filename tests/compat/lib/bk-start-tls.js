'use strict';
// bk-start-tls.js - a BookKeeper client's START_TLS, by hand: one v3 START_TLS request in
// plain text, the bookie's answer, the TLS handshake on the same socket (node's tls over the
// socket), then v2 ADDs through TLS. For tests of the bookie's TLS (tests/integration).
//
//   node lib/bk-start-tls.js --port P --ca CA.pem [--cert C.pem --key K.pem] [--adds N]
//        [--ledger L] [--hold-ms MS]
//
// Prints one JSON line: {"serial": the bookie certificate's serial (hex, upper case),
// "rcs": [the rc of each ADD's answer, in order]} or {"error": "..."}; exit 0 when the
// exchange completed (whatever the rcs), 1 otherwise. --hold-ms keeps the connection open
// that long after the first ADDs and sends the same number again before closing (a live
// connection across a certificate rotation). The whole run is bounded (20 s + hold).
const net = require('net');
const tls = require('tls');
const fs = require('fs');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const adds = Number(args.adds || 0);
const ledger = BigInt(args.ledger || 77);
const hold = Number(args['hold-ms'] || 0);
const deadline = setTimeout(() => done({ error: 'timed out' }), 20000 + hold);

function done(out) {
  clearTimeout(deadline);
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.error ? 1 : 0);
}

// protobuf varint and fields, enough for a START_TLS request
function varint(n) {
  const b = [];
  n = BigInt(n);
  do {
    let byte = Number(n & 0x7fn);
    n >>= 7n;
    if (n) byte |= 0x80;
    b.push(byte);
  } while (n);
  return Buffer.from(b);
}
const field = (no, wire, payload) => Buffer.concat([varint((no << 3) | wire), payload]);
const lenField = (no, buf) => field(no, 2, Buffer.concat([varint(buf.length), buf]));
function startTls(txn) {
  const header = Buffer.concat([field(1, 0, varint(3)), field(2, 0, varint(9)), field(3, 0, varint(txn))]);
  const req = Buffer.concat([lenField(1, header), lenField(106, Buffer.alloc(0))]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(req.length);
  return Buffer.concat([len, req]);
}
// a v2 ADD: [len][v2 header: version 2, ADD, flags 0][master key 20][ledger, entry, lac, length][data]
function add(entry) {
  const data = Buffer.from('hello');
  const b = Buffer.alloc(4 + 4 + 20 + 32 + data.length);
  b.writeUInt32BE(b.length - 4, 0);
  b.writeUInt32BE(0x02010000, 4);
  b.fill('k', 8, 28);
  b.writeBigUInt64BE(ledger, 28);
  b.writeBigUInt64BE(BigInt(entry), 36);
  b.writeBigInt64BE(-1n, 44);
  b.writeBigUInt64BE(BigInt(data.length), 52);
  data.copy(b, 60);
  return b;
}

const sock = net.connect(Number(args.port), '127.0.0.1', () => sock.write(startTls(1)));
sock.on('error', (e) => done({ error: 'socket: ' + e.message }));
let plain = Buffer.alloc(0);
sock.on('data', function onPlain(d) {
  plain = Buffer.concat([plain, d]);
  if (plain.length < 4 || plain.length < 4 + plain.readUInt32BE(0)) return;
  sock.removeListener('data', onPlain);
  sock.pause();
  const opts = { socket: sock, ca: fs.readFileSync(args.ca), checkServerIdentity: () => undefined };
  if (args.cert) {
    opts.cert = fs.readFileSync(args.cert);
    opts.key = fs.readFileSync(args.key);
  }
  const t = tls.connect(opts, () => {
    const serial = t.getPeerCertificate().serialNumber;
    const rcs = [];
    let got = Buffer.alloc(0), sent = 0, want = adds;
    const sendAdds = () => {
      for (let i = 0; i < adds; i++) t.write(add(sent++));
    };
    t.on('data', (d) => {
      got = Buffer.concat([got, d]);
      while (got.length >= 28) {
        rcs.push(got.readInt32BE(8));
        got = got.subarray(28);
      }
      if (rcs.length === want && want === adds && hold > 0) {
        want += adds;
        setTimeout(sendAdds, hold);
      } else if (rcs.length >= want) {
        t.end();
        done({ serial, rcs });
      }
    });
    t.on('close', () => done({ serial, rcs, closed: true }));
    if (adds === 0) done({ serial, rcs });
    sendAdds();
  });
  t.on('error', (e) => done({ error: 'tls: ' + e.message }));
});
