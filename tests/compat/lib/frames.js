'use strict';
// A tiny, dependency-free encoder/decoder for the few Pulsar binary-protocol
// frames the raw-socket tests need (see docs/wire-pulsar.md).
//
// Framing:  simple  = [u32 totalSize][u32 cmdSize][BaseCommand]
//           payload = [u32 totalSize][u32 cmdSize][BaseCommand]
//                     [0x0e01][u32 crc32c][u32 metaSize][MessageMetadata][payload]
// BaseCommand = { 1: type (varint), <type>: sub-message }

const TYPE = Object.freeze({
  CONNECT: 2,
  CONNECTED: 3,
  SUBSCRIBE: 4,
  PRODUCER: 5,
  SEND: 6,
  SEND_RECEIPT: 7,
  SEND_ERROR: 8,
  MESSAGE: 9,
  ACK: 10,
  FLOW: 11,
  UNSUBSCRIBE: 12,
  SUCCESS: 13,
  ERROR: 14,
  CLOSE_PRODUCER: 15,
  CLOSE_CONSUMER: 16,
  PRODUCER_SUCCESS: 17,
  PING: 18,
  PONG: 19,
  REDELIVER_UNACKNOWLEDGED_MESSAGES: 20,
  PARTITIONED_METADATA: 21,
  PARTITIONED_METADATA_RESPONSE: 22,
  LOOKUP: 23,
  LOOKUP_RESPONSE: 24,
  REACHED_END_OF_TOPIC: 27,
  ACK_RESPONSE: 38,
});
const TYPE_NAME = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k]));

const SERVER_ERROR = Object.freeze({
  UnknownError: 0,
  MetadataError: 1,
  PersistenceError: 2,
  AuthenticationError: 3,
  AuthorizationError: 4,
  ConsumerBusy: 5,
  ServiceNotReady: 6,
  ChecksumError: 9,
  TopicNotFound: 11,
  TopicTerminatedError: 15,
  ProducerBusy: 16,
  InvalidTopicName: 17,
  NotAllowedError: 22,
});

const SUB_TYPE = Object.freeze({ Exclusive: 0, Shared: 1, Failover: 2, Key_Shared: 3 });

// ---------------------------------------------------------------- protobuf writer

function varintBytes(value) {
  let v = BigInt.asUintN(64, BigInt(value)); // negative int32/int64 -> 10-byte two's complement
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

class PbWriter {
  constructor() {
    this.parts = [];
  }
  _key(field, wire) {
    this.parts.push(varintBytes((field << 3) | wire));
  }
  varint(field, value) {
    if (value === undefined || value === null) return this;
    this._key(field, 0);
    this.parts.push(varintBytes(value));
    return this;
  }
  bool(field, value) {
    if (value === undefined || value === null) return this;
    return this.varint(field, value ? 1 : 0);
  }
  bytes(field, buf) {
    if (buf === undefined || buf === null) return this;
    const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
    this._key(field, 2);
    this.parts.push(varintBytes(b.length), b);
    return this;
  }
  string(field, s) {
    if (s === undefined || s === null) return this;
    return this.bytes(field, Buffer.from(String(s), 'utf8'));
  }
  message(field, w) {
    if (w === undefined || w === null) return this;
    return this.bytes(field, w instanceof PbWriter ? w.finish() : w);
  }
  finish() {
    return Buffer.concat(this.parts);
  }
}

// ---------------------------------------------------------------- protobuf reader

function readVarint(buf, pos) {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7n;
    if (shift > 70n) throw new Error('varint too long');
  }
  return [result, pos];
}

// Returns { fieldNumber: [values...] }: varints as BigInt, length-delimited as Buffer.
function parseMessage(buf) {
  const fields = {};
  let pos = 0;
  while (pos < buf.length) {
    let key;
    [key, pos] = readVarint(buf, pos);
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let value;
    if (wire === 0) {
      [value, pos] = readVarint(buf, pos);
    } else if (wire === 2) {
      let len;
      [len, pos] = readVarint(buf, pos);
      const n = Number(len);
      if (pos + n > buf.length) throw new Error('truncated length-delimited field');
      value = buf.subarray(pos, pos + n);
      pos += n;
    } else if (wire === 1) {
      value = buf.subarray(pos, pos + 8);
      pos += 8;
    } else if (wire === 5) {
      value = buf.subarray(pos, pos + 4);
      pos += 4;
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
    (fields[field] = fields[field] || []).push(value);
  }
  return fields;
}

// Small accessors over parseMessage() output.
const pb = {
  num(fields, n, dflt = undefined) {
    return fields && fields[n] ? Number(fields[n][0]) : dflt;
  },
  big(fields, n, dflt = undefined) {
    return fields && fields[n] ? fields[n][0] : dflt;
  },
  str(fields, n, dflt = undefined) {
    if (!fields || !fields[n]) return dflt;
    const v = fields[n][0];
    return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  },
  msg(fields, n) {
    return fields && fields[n] ? parseMessage(fields[n][0]) : undefined;
  },
};

// ---------------------------------------------------------------- CRC32C

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32c(buffers) {
  let crc = 0xffffffff;
  for (const buf of Array.isArray(buffers) ? buffers : [buffers]) {
    for (let i = 0; i < buf.length; i++) crc = CRC32C_TABLE[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- frames

function baseCommand(type, sub) {
  return new PbWriter().varint(1, type).message(type, sub).finish();
}

function simpleFrame(type, sub) {
  const cmd = baseCommand(type, sub);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(4 + cmd.length, 0);
  head.writeUInt32BE(cmd.length, 4);
  return Buffer.concat([head, cmd]);
}

function payloadFrame(type, sub, metadata, payload) {
  const cmd = baseCommand(type, sub);
  const meta = metadata instanceof PbWriter ? metadata.finish() : metadata;
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const metaSize = Buffer.alloc(4);
  metaSize.writeUInt32BE(meta.length);
  const magicCrc = Buffer.alloc(6);
  magicCrc.writeUInt16BE(0x0e01, 0);
  magicCrc.writeUInt32BE(crc32c([metaSize, meta, body]), 2);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(4 + cmd.length + 6 + 4 + meta.length + body.length, 0);
  head.writeUInt32BE(cmd.length, 4);
  return Buffer.concat([head, cmd, magicCrc, metaSize, meta, body]);
}

function messageId({ ledgerId, entryId, partition, batchIndex }) {
  return new PbWriter()
    .varint(1, ledgerId)
    .varint(2, entryId)
    .varint(3, partition)
    .varint(4, batchIndex);
}

const cmd = {
  connect({ clientVersion = 'magnetar-compat-raw 0.0.0', protocolVersion = 17 } = {}) {
    return simpleFrame(
      TYPE.CONNECT,
      new PbWriter()
        .string(1, clientVersion)
        .varint(4, protocolVersion)
        .string(5, 'none')
    );
  },
  ping() {
    return simpleFrame(TYPE.PING, new PbWriter());
  },
  pong() {
    return simpleFrame(TYPE.PONG, new PbWriter());
  },
  lookup({ topic, requestId, authoritative = false }) {
    return simpleFrame(
      TYPE.LOOKUP,
      new PbWriter().string(1, topic).varint(2, requestId).bool(3, authoritative)
    );
  },
  producer({ topic, producerId, requestId, producerName }) {
    return simpleFrame(
      TYPE.PRODUCER,
      new PbWriter()
        .string(1, topic)
        .varint(2, producerId)
        .varint(3, requestId)
        .string(4, producerName)
    );
  },
  // One non-batched message. metadata: { producerName, sequenceId, publishTime, properties,
  // deliverAtTime (MessageMetadata.deliver_at_time = 19, epoch ms; undefined: none) }.
  // chunk: { uuid, chunkId, numChunks, totalSize } makes it one chunk of a chunked message
  // (MessageMetadata uuid 26, num_chunks_from_msg 27, total_chunk_msg_size 28, chunk_id 29;
  // CommandSend.is_chunk 7).
  send({ producerId, sequenceId, producerName = 'raw', payload, properties = {}, numMessages, deliverAtTime,
    chunk }) {
    const meta = new PbWriter()
      .string(1, producerName)
      .varint(2, sequenceId)
      .varint(3, Date.now());
    for (const [k, v] of Object.entries(properties)) {
      meta.message(4, new PbWriter().string(1, k).string(2, String(v)));
    }
    if (deliverAtTime !== undefined) meta.varint(19, deliverAtTime);
    if (chunk) {
      meta.string(26, chunk.uuid).varint(27, chunk.numChunks).varint(28, chunk.totalSize)
        .varint(29, chunk.chunkId);
    }
    return payloadFrame(
      TYPE.SEND,
      new PbWriter().varint(1, producerId).varint(2, sequenceId).varint(3, numMessages)
        .bool(7, chunk ? true : undefined),
      meta,
      payload
    );
  },
  subscribe({ topic, subscription, subType = SUB_TYPE.Exclusive, consumerId, requestId, consumerName }) {
    return simpleFrame(
      TYPE.SUBSCRIBE,
      new PbWriter()
        .string(1, topic)
        .string(2, subscription)
        .varint(3, subType)
        .varint(4, consumerId)
        .varint(5, requestId)
        .string(6, consumerName)
    );
  },
  flow({ consumerId, permits }) {
    return simpleFrame(TYPE.FLOW, new PbWriter().varint(1, consumerId).varint(2, permits));
  },
  ack({ consumerId, ledgerId, entryId, requestId }) {
    return simpleFrame(
      TYPE.ACK,
      new PbWriter()
        .varint(1, consumerId)
        .varint(2, 0)
        .message(3, messageId({ ledgerId, entryId, partition: -1, batchIndex: -1 }))
        .varint(8, requestId)
    );
  },
  // REDELIVER_UNACKNOWLEDGED_MESSAGES without ids: everything the consumer has unacked.
  redeliverAll({ consumerId }) {
    return simpleFrame(TYPE.REDELIVER_UNACKNOWLEDGED_MESSAGES, new PbWriter().varint(1, consumerId));
  },
  closeProducer({ producerId, requestId }) {
    return simpleFrame(TYPE.CLOSE_PRODUCER, new PbWriter().varint(1, producerId).varint(2, requestId));
  },
  closeConsumer({ consumerId, requestId }) {
    return simpleFrame(TYPE.CLOSE_CONSUMER, new PbWriter().varint(1, consumerId).varint(2, requestId));
  },
};

// ---------------------------------------------------------------- frame reader

// Splits a byte stream into frames. Each frame: { type, typeName, cmd (fields of the
// sub-message), payloadBytes (bytes after the command, MESSAGE only), size }.
// maxFrame guards against a hostile/buggy peer (throws).
class FrameReader {
  constructor({ maxFrame = 16 * 1024 * 1024 } = {}) {
    this.chunks = [];
    this.length = 0;
    this.maxFrame = maxFrame;
  }
  push(chunk) {
    this.chunks.push(chunk);
    this.length += chunk.length;
    const frames = [];
    for (;;) {
      if (this.length < 4) break;
      const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = [buf];
      const total = buf.readUInt32BE(0);
      if (total > this.maxFrame) throw new Error(`frame of ${total} bytes exceeds ${this.maxFrame}`);
      if (buf.length < 4 + total) break;
      const frame = buf.subarray(0, 4 + total);
      const rest = buf.subarray(4 + total);
      this.chunks = rest.length ? [rest] : [];
      this.length = rest.length;
      frames.push(decodeFrame(frame));
    }
    return frames;
  }
}

function decodeFrame(frame) {
  const total = frame.readUInt32BE(0);
  const cmdSize = frame.readUInt32BE(4);
  if (cmdSize > total - 4) throw new Error(`cmdSize ${cmdSize} > totalSize-4 ${total - 4}`);
  const base = parseMessage(frame.subarray(8, 8 + cmdSize));
  const type = pb.num(base, 1);
  const cmdFields = base[type] ? parseMessage(base[type][0]) : {};
  return {
    type,
    typeName: TYPE_NAME[type] || `TYPE_${type}`,
    cmd: cmdFields,
    payloadBytes: frame.subarray(8 + cmdSize),
    size: 4 + total,
  };
}

// A MESSAGE frame's payloadBytes split into { metadata (parseMessage fields), payload }:
// an optional 0x0e02 broker-entry-metadata section, then 0x0e01 + CRC32C, the metadata
// size, the MessageMetadata and the message bytes.
function messagePayload(bytes) {
  let off = 0;
  if (bytes.length >= 6 && bytes.readUInt16BE(0) === 0x0e02) off = 6 + bytes.readUInt32BE(2);
  if (bytes.length < off + 10 || bytes.readUInt16BE(off) !== 0x0e01) throw new Error('MESSAGE without 0x0e01');
  const metaSize = bytes.readUInt32BE(off + 6);
  const metaStart = off + 10;
  return {
    metadata: parseMessage(bytes.subarray(metaStart, metaStart + metaSize)),
    payload: bytes.subarray(metaStart + metaSize),
  };
}

module.exports = {
  messagePayload,
  TYPE,
  TYPE_NAME,
  SERVER_ERROR,
  SUB_TYPE,
  PbWriter,
  parseMessage,
  pb,
  crc32c,
  simpleFrame,
  payloadFrame,
  cmd,
  FrameReader,
  decodeFrame,
  varintBytes,
};
