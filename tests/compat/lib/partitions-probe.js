'use strict';
// PARTITIONED_METADATA over a raw connection, as Java and C++ clients send it before they
// create a producer or consumer (pulsar-flex never sends it). Prints one JSON line:
// {"response": 0|1, "partitions": N, "error": E, "message": "..."}.
//
//   node lib/partitions-probe.js --url pulsar://127.0.0.1:6650 --topic persistent://t/ns/x
const { RawConn } = require('./raw');
const { TYPE, PbWriter, simpleFrame, cmd, pb } = require('./frames');

const PARTITIONED_METADATA = 21;
const PARTITIONED_METADATA_RESPONSE = 22;

function arg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`--${name} is required`);
  return process.argv[i + 1];
}

(async () => {
  const url = new URL(arg('url'));
  const c = await RawConn.connect({ host: url.hostname, port: Number(url.port) });
  c.write(cmd.connect());
  await c.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED');
  const sub = new PbWriter().string(1, arg('topic')).varint(2, 7);
  c.write(simpleFrame(PARTITIONED_METADATA, sub));
  const f = await c.waitFrame((x) => x.type === PARTITIONED_METADATA_RESPONSE, 10000,
    'PARTITIONED_METADATA_RESPONSE');
  console.log(JSON.stringify({
    response: pb.num(f.cmd, 3, 0),
    partitions: pb.num(f.cmd, 1, 0),
    error: pb.num(f.cmd, 4),
    message: pb.str(f.cmd, 5),
  }));
  c.destroy();
})().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
