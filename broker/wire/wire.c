/*
 * wire.c - Pulsar binary protocol framing codec (docs/wire-pulsar.md §1-§2). No event loop, no I/O.
 *
 * Happy path (decode): wire_frame_read peeks the 4-byte total size, checks it against the
 * frame limit before waiting for or allocating anything, waits (returns 0, drains nothing)
 * until the whole frame is buffered, pulls up only the bounded command bytes and unpacks the
 * BaseCommand with protobuf-c. For SEND and MESSAGE it walks the optional 0x0e02 broker
 * entry metadata and 0x0e01 checksum sections, checks that the metadata size fits and that
 * MessageMetadata unpacks, computes the CRC32C over metadataSize+metadata+payload in place
 * and then moves the rest of the frame into a new evbuffer with evbuffer_remove_buffer (chains
 * are relinked, never flattened). A SEND without checksum gets 0x0e01 + the computed CRC in
 * front, so a stored entry always has the checksummed form; a 0x0e02 section on a SEND is
 * dropped (clients must not send one), on a MESSAGE it is kept.
 * Happy path (encode): simple commands are packed into one evbuffer_reserve_space extent;
 * MESSAGE frames append the stored entry by evbuffer_add_buffer_reference.
 *
 * Failure modes: a declared size over the limit gives -MG_ETOOBIG; sizes that do not add
 * up, an unparsable BaseCommand, a known type without its sub-message, bytes after a command
 * that carries no payload, bad metadata sizes or unparsable MessageMetadata give -MG_EPROTO.
 * On any error nothing is drained and errmsg says why; the caller logs and closes the
 * connection. A checksum mismatch is not an error here: checksum_ok is false and the
 * connection answers SEND_ERROR(ChecksumError). Unknown command types that parse are
 * returned as frames (the connection decides). Only our own invariants use MG_ASSERT.
 */
#include "wire/wire.h"
#include "wire/wire_int.h"

#include "util/alloc.h"
#include "util/base64.h"
#include "util/bytes.h"
#include "util/crc.h"
#include "util/err.h"
#include "util/log.h"
#include "util/map.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* Metadata up to this size is unpacked from a stack buffer; larger goes to the heap. */
#define WIRE_MD_STACK 512

/* Where the sections of a payload part (the bytes after the command) lie in an evbuffer. */
struct wire_layout {
    size_t bem_len;    /* 0x0e02 + size + BrokerEntryMetadata, 0 when absent */
    bool had_checksum; /* 0x0e01 + crc present */
    uint32_t crc_sent; /* the checksum the sender put in, if had_checksum */
    size_t md_off;     /* offset of the metadataSize field */
    uint32_t md_size;  /* metadataSize */
    size_t tail_len;   /* metadataSize field + metadata + payload */
};

void wire_set_err(char *errmsg, size_t errlen, const char *fmt, ...)
{
    if (!errmsg || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
}

/* Copy n bytes at off out of b without draining; 0 or -1 when fewer are there. */
static int wire_peek_at(struct evbuffer *b, size_t off, void *out, size_t n)
{
    struct evbuffer_ptr pos;
    if (evbuffer_ptr_set(b, &pos, off, EVBUFFER_PTR_SET) < 0)
        return -1;
    if (evbuffer_copyout_from(b, &pos, out, n) != (ev_ssize_t)n)
        return -1;
    return 0;
}

/* Walk the payload part that occupies [off, off+len) of b. */
static int wire_layout_parse(struct evbuffer *b, size_t off, size_t len, struct wire_layout *l,
                             char *errmsg, size_t errlen)
{
    uint8_t h[6];
    size_t pos = off, end = off + len;

    memset(l, 0, sizeof(*l));
    if (end - pos >= 2 && wire_peek_at(b, pos, h, 2) == 0 &&
        mg_get_be16(h) == WIRE_MAGIC_BROKER_ENTRY_METADATA) {
        if (end - pos < 6 || wire_peek_at(b, pos, h, 6) < 0) {
            wire_set_err(errmsg, errlen, "truncated broker entry metadata header");
            return -MG_EPROTO;
        }
        uint32_t bem_size = mg_get_be32(h + 2);
        if (bem_size > end - pos - 6) {
            wire_set_err(errmsg, errlen, "broker entry metadata size %u exceeds the %zu bytes left",
                         bem_size, end - pos - 6);
            return -MG_EPROTO;
        }
        l->bem_len = 6 + (size_t)bem_size;
        pos += l->bem_len;
    }
    if (end - pos >= 2 && wire_peek_at(b, pos, h, 2) == 0 &&
        mg_get_be16(h) == WIRE_MAGIC_CHECKSUM) {
        if (end - pos < 6 || wire_peek_at(b, pos, h, 6) < 0) {
            wire_set_err(errmsg, errlen, "truncated checksum");
            return -MG_EPROTO;
        }
        l->had_checksum = true;
        l->crc_sent = mg_get_be32(h + 2);
        pos += 6;
    }
    if (end - pos < 4 || wire_peek_at(b, pos, h, 4) < 0) {
        wire_set_err(errmsg, errlen, "no room for the metadata size (%zu bytes left)", end - pos);
        return -MG_EPROTO;
    }
    l->md_off = pos;
    l->md_size = mg_get_be32(h);
    l->tail_len = end - pos;
    if (l->md_size > end - pos - 4) {
        wire_set_err(errmsg, errlen, "metadata size %u exceeds the %zu bytes left", l->md_size,
                     end - pos - 4);
        return -MG_EPROTO;
    }
    return 0;
}

/* Unpack the MessageMetadata the layout points at; NULL when it does not parse. */
static Pulsar__Proto__MessageMetadata *wire_metadata_unpack(struct evbuffer *b,
                                                            const struct wire_layout *l)
{
    uint8_t stack[WIRE_MD_STACK];
    uint8_t *buf = l->md_size <= sizeof(stack) ? stack : mg_malloc(l->md_size);
    Pulsar__Proto__MessageMetadata *md = NULL;

    if (wire_peek_at(b, l->md_off + 4, buf, l->md_size) == 0)
        md = pulsar__proto__message_metadata__unpack(NULL, l->md_size, buf);
    if (buf != stack)
        mg_free(buf);
    return md;
}

/* A known type whose sub-message field (field number = type value) is absent. */
static bool wire_missing_submessage(const wire_cmd *cmd)
{
    const ProtobufCFieldDescriptor *fd;

    if (cmd->type <= 0)
        return false;
    fd = protobuf_c_message_descriptor_get_field(&pulsar__proto__base_command__descriptor,
                                                 (unsigned)cmd->type);
    if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE)
        return false;
    const void *sub;
    memcpy(&sub, (const char *)cmd + fd->offset, sizeof(sub));
    return sub == NULL;
}

/* protobuf-c unpacks a string field into a NUL-terminated C string, so a string whose
 * bytes hold a NUL would silently lose everything after it ("a\0b" becomes "a"). Walk the
 * raw bytes of a message that already unpacked (so they are well-formed) with its
 * descriptor and return the name of the first string field holding a NUL, or NULL. Linear
 * in len; nesting is bounded. */
static bool wire_read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

static const char *wire_nul_string_field(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                         size_t len, int depth)
{
    size_t i = 0;
    while (i < len) {
        uint64_t key, v;
        if (!wire_read_varint(p, len, &i, &key))
            return NULL;
        switch (key & 7) {
        case 0: /* varint */
            if (!wire_read_varint(p, len, &i, &v))
                return NULL;
            break;
        case 1: /* 64-bit */
            i += 8;
            break;
        case 5: /* 32-bit */
            i += 4;
            break;
        case 2: { /* length-delimited */
            if (!wire_read_varint(p, len, &i, &v) || v > len - i)
                return NULL;
            const ProtobufCFieldDescriptor *fd =
                protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
            if (fd && fd->type == PROTOBUF_C_TYPE_STRING && memchr(p + i, 0, (size_t)v))
                return fd->name;
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8) {
                const char *r = wire_nul_string_field(fd->descriptor, p + i, (size_t)v, depth + 1);
                if (r)
                    return r;
            }
            i += (size_t)v;
            break;
        }
        default: /* groups: not in Pulsar's protocol */
            return NULL;
        }
    }
    return NULL;
}

static bool wire_is_payload_type(int type)
{
    return type == PULSAR__PROTO__BASE_COMMAND__TYPE__SEND ||
           type == PULSAR__PROTO__BASE_COMMAND__TYPE__MESSAGE;
}

static uint32_t wire_sticky_key_hash(const Pulsar__Proto__MessageMetadata *md);

/* The run a chunk belongs to: FNV-1a of its uuid (an absent uuid hashes as ""), never 0. */
static uint32_t wire_chunk_key(const Pulsar__Proto__MessageMetadata *md)
{
    if (!md->has_num_chunks_from_msg || md->num_chunks_from_msg <= 1)
        return 0;
    uint32_t h = 2166136261u;
    for (const char *p = md->uuid ? md->uuid : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = mg_hash_fmix32(h);
    return h ? h : 1;
}

/* What the broker keeps of a MessageMetadata (struct wire_msg_info). */
static void wire_msg_info_fill(const Pulsar__Proto__MessageMetadata *md, struct wire_msg_info *info)
{
    info->batched = md->has_num_messages_in_batch;
    info->num_messages = md->has_num_messages_in_batch ? md->num_messages_in_batch : 1;
    info->publish_time = md->publish_time;
    info->sequence_id = md->sequence_id;
    info->highest_sequence_id = md->has_highest_sequence_id ? md->highest_sequence_id : 0;
    info->deliver_at_time = md->has_deliver_at_time ? md->deliver_at_time : 0;
    info->num_chunks = md->has_num_chunks_from_msg ? md->num_chunks_from_msg : 0;
    info->chunk_id = md->has_chunk_id ? md->chunk_id : 0;
    info->chunk_key = wire_chunk_key(md);
    info->key_hash = wire_sticky_key_hash(md);
    info->tail_crc = 0;
    info->tail_len = 0;
}

int wire_frame_read(struct evbuffer *in, uint32_t max_frame_size, struct wire_frame *f,
                    char *errmsg, size_t errlen)
{
    uint8_t hdr[8];
    size_t avail = evbuffer_get_length(in);
    uint32_t total, cmd_size;

    memset(f, 0, sizeof(*f));
    if (avail < 4)
        return 0;
    if (evbuffer_copyout(in, hdr, avail < 8 ? 4 : 8) < 4)
        return 0;
    total = mg_get_be32(hdr);
    /* Checked before waiting for the rest so a hostile size never makes us buffer it. */
    if (total > max_frame_size) {
        wire_set_err(errmsg, errlen, "frame size %u exceeds the limit of %u bytes", total,
                     max_frame_size);
        return -MG_ETOOBIG;
    }
    if (total < 5) {
        wire_set_err(errmsg, errlen, "frame size %u too small for a command", total);
        return -MG_EPROTO;
    }
    if (avail < 8)
        return 0;
    cmd_size = mg_get_be32(hdr + 4);
    if (cmd_size == 0 || cmd_size > total - 4) {
        wire_set_err(errmsg, errlen, "command size %u does not fit frame size %u", cmd_size, total);
        return -MG_EPROTO;
    }
    if (avail - 4 < total)
        return 0;

    /* Only the bounded command bytes are made contiguous (cmd_size <= max_frame_size). */
    const uint8_t *p = evbuffer_pullup(in, 8 + (ev_ssize_t)cmd_size);
    MG_ASSERT(p != NULL);
    wire_cmd *cmd = pulsar__proto__base_command__unpack(NULL, cmd_size, p + 8);
    if (!cmd) {
        wire_set_err(errmsg, errlen, "unparsable BaseCommand (%u bytes)", cmd_size);
        return -MG_EPROTO;
    }
    if (wire_missing_submessage(cmd)) {
        wire_set_err(errmsg, errlen, "%s command without its sub-message",
                     wire_command_name(cmd->type));
        goto proto_err;
    }
    const char *nul_field =
        wire_nul_string_field(&pulsar__proto__base_command__descriptor, p + 8, cmd_size, 0);

    size_t rest = (size_t)total - 4 - cmd_size;
    if (!wire_is_payload_type(cmd->type)) {
        if (rest != 0) {
            wire_set_err(errmsg, errlen, "%zu bytes after a %s command, which carries no payload",
                         rest, wire_command_name(cmd->type));
            goto proto_err;
        }
        evbuffer_drain(in, 4 + (size_t)total);
        f->cmd = cmd;
        f->frame_size = 4 + (size_t)total;
        f->nul_string_field = nul_field;
        return 1;
    }

    struct wire_layout l;
    if (wire_layout_parse(in, 8 + (size_t)cmd_size, rest, &l, errmsg, errlen) < 0)
        goto proto_err;
    Pulsar__Proto__MessageMetadata *md = wire_metadata_unpack(in, &l);
    if (!md) {
        wire_set_err(errmsg, errlen, "unparsable MessageMetadata (%u bytes) in %s", l.md_size,
                     wire_command_name(cmd->type));
        goto proto_err;
    }
    wire_msg_info_fill(md, &f->msg);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    uint32_t crc = mg_crc32c_evbuffer(0, in, l.md_off, l.tail_len);

    /* Everything is valid: take the frame out of in. */
    evbuffer_drain(in, 8 + (size_t)cmd_size);
    struct evbuffer *payload = evbuffer_new();
    MG_ASSERT(payload != NULL);
    size_t move = rest;
    int moved;
    if (l.bem_len > 0) {
        if (cmd->type == PULSAR__PROTO__BASE_COMMAND__TYPE__SEND) {
            evbuffer_drain(in, l.bem_len);
        } else {
            moved = evbuffer_remove_buffer(in, payload, l.bem_len);
            MG_ASSERT(moved == (int)l.bem_len);
        }
        move -= l.bem_len;
    }
    if (!l.had_checksum) {
        uint8_t ck[6];
        mg_put_be16(ck, WIRE_MAGIC_CHECKSUM);
        mg_put_be32(ck + 2, crc);
        evbuffer_add(payload, ck, sizeof(ck));
    }
    moved = evbuffer_remove_buffer(in, payload, move);
    MG_ASSERT(moved == (int)move);

    f->cmd = cmd;
    f->payload = payload;
    f->had_checksum = l.had_checksum;
    f->checksum_ok = !l.had_checksum || crc == l.crc_sent;
    f->msg.tail_crc = crc; /* of what was received: the storage digest reuses it */
    f->msg.tail_len = l.tail_len;
    f->frame_size = 4 + (size_t)total;
    f->nul_string_field = nul_field;
    return 1;

proto_err:
    pulsar__proto__base_command__free_unpacked(cmd, NULL);
    return -MG_EPROTO;
}

void wire_frame_clear(struct wire_frame *f)
{
    if (!f)
        return;
    if (f->cmd)
        pulsar__proto__base_command__free_unpacked(f->cmd, NULL);
    if (f->payload)
        evbuffer_free(f->payload);
    memset(f, 0, sizeof(*f));
}

/* Sticky key hash (docs/wire-pulsar.md §6, Key_Shared). An invalid base64 partition key is hashed
 * as its raw bytes rather than failing the entry. */
static uint32_t wire_sticky_key_hash(const Pulsar__Proto__MessageMetadata *md)
{
    uint32_t h;

    if (md->has_ordering_key) {
        h = wire_murmur3_32(md->ordering_key.data, md->ordering_key.len, 0);
    } else if (md->partition_key) {
        size_t klen = strlen(md->partition_key);
        h = wire_murmur3_32(md->partition_key, klen, 0);
        if (md->has_partition_key_b64_encoded && md->partition_key_b64_encoded) {
            uint8_t *dec = mg_malloc(MG_BASE64_DECODED_MAX(klen));
            ssize_t n = mg_base64_decode(md->partition_key, klen, false, dec);
            if (n >= 0)
                h = wire_murmur3_32(dec, (size_t)n, 0);
            mg_free(dec);
        }
    } else {
        h = wire_murmur3_32("NONE_KEY", 8, 0);
    }
    return (h & 0x7fffffffu) % 65536u;
}

Pulsar__Proto__MessageMetadata *wire_entry_metadata_payload(struct evbuffer *entry,
                                                            size_t *payload_off)
{
    struct wire_layout l;

    if (wire_layout_parse(entry, 0, evbuffer_get_length(entry), &l, NULL, 0) < 0)
        return NULL;
    if (payload_off)
        *payload_off = l.md_off + 4 + l.md_size;
    return wire_metadata_unpack(entry, &l);
}

Pulsar__Proto__MessageMetadata *wire_entry_metadata(struct evbuffer *entry)
{
    return wire_entry_metadata_payload(entry, NULL);
}

int wire_entry_parse(struct evbuffer *entry, struct wire_msg_info *info)
{
    memset(info, 0, sizeof(*info));
    Pulsar__Proto__MessageMetadata *md = wire_entry_metadata(entry);
    if (!md)
        return -MG_EPROTO;
    wire_msg_info_fill(md, info);
    pulsar__proto__message_metadata__free_unpacked(md, NULL);
    return 0;
}

/* Reserve one extent for [totalSize][cmdSize][cmd] + extra contiguous bytes, pack the command
 * into it and return a pointer just past the command (extra bytes are the caller's). */
static uint8_t *wire_frame_head_begin(struct evbuffer *out, struct evbuffer_iovec *iov,
                                      const wire_cmd *cmd, size_t extra, size_t after)
{
    size_t cmd_size = protobuf_c_message_get_packed_size(&cmd->base);
    size_t head = 8 + cmd_size + extra;

    MG_ASSERT(cmd_size + extra + after + 4 <= UINT32_MAX);
    MG_ASSERT(evbuffer_reserve_space(out, (ev_ssize_t)head, iov, 1) == 1);
    MG_ASSERT(iov->iov_len >= head);
    uint8_t *p = iov->iov_base;
    mg_put_be32(p, (uint32_t)(4 + cmd_size + extra + after));
    mg_put_be32(p + 4, (uint32_t)cmd_size);
    MG_ASSERT(protobuf_c_message_pack(&cmd->base, p + 8) == cmd_size);
    iov->iov_len = head;
    return p + 8 + cmd_size;
}

void wire_write_command(struct evbuffer *out, const wire_cmd *cmd)
{
    struct evbuffer_iovec iov;

    wire_frame_head_begin(out, &iov, cmd, 0, 0);
    MG_ASSERT(evbuffer_commit_space(out, &iov, 1) == 0);
}

/* libevent 2.1 marks a referenced buffer's chains immutable and refcounted, so the bytes stay
 * valid until out has sent them, even if src is freed meanwhile, and later appends to src go
 * to new chains. src must not contain chains that are themselves references of another
 * buffer (libevent refuses to reference those); entries are built by moving data in, so that
 * only happens to data that came through an in-process bufferevent pair, and then we copy
 * instead. */
void wire_append_shared(struct evbuffer *out, struct evbuffer *src)
{
    size_t len = evbuffer_get_length(src);
    if (len == 0 || evbuffer_add_buffer_reference(out, src) == 0)
        return;

    struct evbuffer_ptr pos;
    MG_ASSERT(evbuffer_ptr_set(src, &pos, 0, EVBUFFER_PTR_SET) == 0);
    while (len > 0) {
        struct evbuffer_iovec v[8];
        int n = evbuffer_peek(src, (ev_ssize_t)len, &pos, v, 8);
        MG_ASSERT(n > 0);
        size_t done = 0;
        for (int i = 0; i < n && i < 8; i++) {
            size_t take = v[i].iov_len < len - done ? v[i].iov_len : len - done;
            MG_ASSERT(evbuffer_add(out, v[i].iov_base, take) == 0);
            done += take;
        }
        len -= done;
        if (len > 0)
            MG_ASSERT(evbuffer_ptr_set(src, &pos, done, EVBUFFER_PTR_ADD) == 0);
    }
}

void wire_write_message(struct evbuffer *out, const wire_cmd *cmd, struct evbuffer *entry)
{
    struct evbuffer_iovec iov;

    wire_frame_head_begin(out, &iov, cmd, 0, evbuffer_get_length(entry));
    MG_ASSERT(evbuffer_commit_space(out, &iov, 1) == 0);
    wire_append_shared(out, entry);
}

void wire_write_send_head(struct evbuffer *out, const wire_cmd *cmd,
                          const Pulsar__Proto__MessageMetadata *md, const void *payload,
                          size_t payload_len)
{
    struct evbuffer_iovec iov;
    size_t md_size = protobuf_c_message_get_packed_size(&md->base);
    size_t extra = 6 + 4 + md_size;
    uint8_t *p = wire_frame_head_begin(out, &iov, cmd, extra, payload_len);

    mg_put_be16(p, WIRE_MAGIC_CHECKSUM);
    mg_put_be32(p + 6, (uint32_t)md_size);
    MG_ASSERT(protobuf_c_message_pack(&md->base, p + 10) == md_size);
    uint32_t crc = mg_crc32c(0, p + 6, 4 + md_size);
    crc = mg_crc32c(crc, payload, payload_len);
    mg_put_be32(p + 2, crc);
    MG_ASSERT(evbuffer_commit_space(out, &iov, 1) == 0);
}

void wire_write_send(struct evbuffer *out, const wire_cmd *cmd,
                     const Pulsar__Proto__MessageMetadata *md, const void *payload,
                     size_t payload_len)
{
    wire_write_send_head(out, cmd, md, payload, payload_len);
    if (payload_len > 0)
        MG_ASSERT(evbuffer_add(out, payload, payload_len) == 0);
}

const char *wire_command_name(int type)
{
    const ProtobufCEnumValue *v;

    v = protobuf_c_enum_descriptor_get_value(&pulsar__proto__base_command__type__descriptor, type);
    return v ? v->name : "UNKNOWN";
}

static uint32_t wire_rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

uint32_t wire_murmur3_32(const void *data, size_t len, uint32_t seed)
{
    const uint8_t *p = data;
    const uint32_t c1 = 0xcc9e2d51u, c2 = 0x1b873593u;
    size_t nblocks = len / 4;
    uint32_t h = seed, k;

    for (size_t i = 0; i < nblocks; i++) {
        k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
            (uint32_t)p[4 * i + 3] << 24;
        k *= c1;
        k = wire_rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = wire_rotl32(h, 13);
        h = h * 5 + 0xe6546b64u;
    }
    /* Indexing, not pointer arithmetic: data may be NULL when len is 0 (an empty key). */
    size_t t = nblocks * 4;
    k = 0;
    switch (len & 3) {
    case 3:
        k ^= (uint32_t)p[t + 2] << 16;
        /* fall through */
    case 2:
        k ^= (uint32_t)p[t + 1] << 8;
        /* fall through */
    case 1:
        k ^= p[t];
        k *= c1;
        k = wire_rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    return mg_hash_fmix32(h ^ (uint32_t)len);
}
